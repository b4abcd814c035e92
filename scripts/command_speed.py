#!/usr/bin/env python3
"""Speed of the command a user runs: ``kennelgate classify --json`` over real photos, per model ×
runtime, with PyTorch eager fp32 of the same encoder as the baseline, all in this one run.

For each configuration a fresh home gets a small gallery (``kennelgate gallery build``), then
``kennelgate classify --json`` runs as a subprocess on ``--small`` and on ``--large`` photos; the
marginal rate ``(large - small) / (t_large - t_small)`` is the command's throughput without its
start-up (imports, model load). The eager baseline decodes, preprocesses, runs the same encoder
in torch eager fp32 (batch 8) and decides with the same gallery, in process. Writes
docs/command_speed.json and .md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

cli = typer.Typer(add_completion=False)
DEFAULT_CONFIGS = "efficientnet-lite0@auto,efficientnet-lite1@auto,efficientnet-lite1@cpu,efficientnet-lite1@openvino"


def _gallery_root(data: Path, tmp: Path, per_species: int) -> Path:
    root = tmp / "gallery-photos"
    for species in ("cat", "dog"):
        (root / species).mkdir(parents=True)
        for f in sorted((data / "catsdogs" / species).iterdir())[:per_species]:
            shutil.copyfile(f, root / species / f.name)
    return root


def _run(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kennelgate.cli", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def _eager(env: dict, files: list[Path]) -> float:
    """Images/s of the eager baseline (batch 8) with this configuration's model and gallery."""
    code = (
        "import json,sys; from pathlib import Path\n"
        "from kennelgate.settings import Settings; from kennelgate.engine import Engine\n"
        "from kennelgate.bench import torch_rows; from embedder.export.recipes import torch_module\n"
        "e = Engine(Settings()); files = [Path(p) for p in json.loads(sys.argv[1])]\n"
        "rows = torch_rows(torch_module(e.encoder.spec), e.encoder, e.decider, files, e.settings.threads, (8,))\n"
        "print(json.dumps([r['ips'] for r in rows if r['stage'] == 'end to end'][0]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps([str(f) for f in files])], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    configs: str = typer.Option(DEFAULT_CONFIGS, help="model@providers, comma-separated."),
    small: int = typer.Option(64, help="Photos in the short run (start-up cost)."),
    large: int = typer.Option(448, help="Photos in the long run."),
    out: Path = typer.Option(Path("docs"), help="Where command_speed.json/.md go."),
) -> None:
    """Marginal images/s of `kennelgate classify` per model × runtime, against torch eager."""
    photos = sorted((data / "breeds" / "dog").rglob("*.jpg"))[:large]
    if len(photos) < large:
        raise SystemExit(f"need {large} photos under {data / 'breeds' / 'dog'}")
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        root = _gallery_root(data, tmp, 100)
        for i, config in enumerate(c for c in configs.split(",") if c):
            model, _, providers = config.partition("@")
            env = {**os.environ, "KENNELGATE_HOME": str(tmp / f"home{i}"), "KENNELGATE_MODEL": model,
                   "KENNELGATE_PROVIDERS": providers or "auto"}
            print(f"{config}: gallery", flush=True)
            _run(["gallery", "build", str(root)], env)
            t_small = _run(["classify", "--json", *map(str, photos[:small])], env)
            t_large = _run(["classify", "--json", *map(str, photos)], env)
            ips = (large - small) / max(t_large - t_small, 1e-9)
            eager = _eager(env, photos[:64])
            rows.append({"config": config, "model": model, "providers": providers or "auto",
                         "classify_ips": ips, "eager_ips": eager, "ratio": ips / eager,
                         "startup_s": t_small - small / ips})
            print(f"{config}: classify {ips:.1f} img/s, eager {eager:.1f} img/s ({ips / eager:.2f}x)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    report = {"command": "python " + " ".join(sys.argv), "cpus": os.cpu_count(), "photos": large, "rows": rows}
    (out / "command_speed.json").write_text(json.dumps(report, indent=2))
    lines = ["# Speed of `kennelgate classify`, per model and runtime", "",
             f"Command: `{report['command']}`. {os.cpu_count()} CPU cores. Marginal images/s of the real command "
             f"(a subprocess over {small} and {large} photos of `breeds/dog`, gallery of 200 photos) and PyTorch eager "
             "fp32 of the same encoder (decode, preprocess, encoder, decision; batch 8) measured in the same run.", "",
             "| model @ runtime | classify img/s | eager img/s | × eager | start-up s |", "|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['classify_ips']:.1f} | {r['eager_ips']:.1f} | {r['ratio']:.2f}× | {r['startup_s']:.1f} |"
              for r in rows]
    (out / "command_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    cli()
