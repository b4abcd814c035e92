#!/usr/bin/env python3
"""Does `kennelgate data audit` find problems we plant ourselves? Writes docs/audit.md/.json.

A tree of real photos (`catsdogs/`: cats and dogs) gets planted problems:
- mislabels: photos moved into the other species' folder;
- near-duplicates: copies re-saved as JPEG quality 40, resized to 60%, or cropped to 85% (centre);
- a leak: a second tree (a "test set") holding re-saved copies of some photos of the first;
- a broken file, a tiny photo and a text file.
Then the real command runs (`kennelgate data audit ROOT --against TEST --json`) and its findings
are scored against what was planted; findings that were not planted are listed (real label noise
and real duplicates in the data) for a person to check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import typer
from PIL import Image

cli = typer.Typer(add_completion=False)


def _save_variant(src: Path, dst: Path, kind: str) -> None:
    im = Image.open(src).convert("RGB")
    w, h = im.size
    if kind == "resaved":
        im.save(dst, "JPEG", quality=40)
    elif kind == "resized":
        im.resize((int(w * 0.6), int(h * 0.6)), Image.BILINEAR).save(dst, "JPEG", quality=90)
    else:  # cropped
        dx, dy = int(w * 0.075), int(h * 0.075)
        im.crop((dx, dy, w - dx, h - dy)).save(dst, "JPEG", quality=90)


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    per_species: int = typer.Option(500, help="Photos of each species in the tree."),
    mislabels: int = typer.Option(40, help="Photos moved into the other species' folder."),
    duplicates: int = typer.Option(45, help="Near-duplicate copies planted (resaved, resized, cropped in turn)."),
    leaks: int = typer.Option(15, help="Photos copied (re-saved) into the second tree."),
    seed: int = 0,
    out: Path = typer.Option(Path("docs"), help="Where audit.md/.json go."),
) -> None:
    """Plant problems in a copy of real photos, run the audit command, score what it finds."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root, test = Path(tmp) / "gallery", Path(tmp) / "test"
        planted_mis, planted_dup, planted_leak = {}, {}, set()
        files = {}
        for sp in ("cat", "dog"):
            (root / sp).mkdir(parents=True)
            (test / sp).mkdir(parents=True)
            src = sorted((data / "catsdogs" / sp).iterdir())
            files[sp] = src[:per_species]
            for f in src[per_species : per_species + 100]:  # the test tree's own photos
                (test / sp / f.name).write_bytes(f.read_bytes())
        chosen = {sp: list(rng.permutation(len(files[sp]))) for sp in files}
        for sp, other in (("cat", "dog"), ("dog", "cat")):
            moved = set(chosen[sp][: mislabels // 2])
            for i, f in enumerate(files[sp]):
                dest = root / (other if i in moved else sp) / f.name
                dest.write_bytes(f.read_bytes())
                if i in moved:
                    planted_mis[str(dest)] = sp
        kinds = ("resaved", "resized", "cropped")
        for n in range(duplicates):
            sp = ("cat", "dog")[n % 2]
            i = chosen[sp][mislabels // 2 + n // 2]
            f = files[sp][i]
            dst = root / sp / f"copy{n}_{kinds[n % 3]}_{f.stem}.jpg"
            _save_variant(f, dst, kinds[n % 3])
            planted_dup[str(dst)] = str(root / sp / f.name)
        for n in range(leaks):
            sp = ("cat", "dog")[n % 2]
            i = chosen[sp][mislabels // 2 + duplicates // 2 + 1 + n // 2]
            f = files[sp][i]
            _save_variant(f, test / sp / f"leak{n}_{f.stem}.jpg", "resaved")
            planted_leak.add(str(root / sp / f.name))
        (root / "cat" / "broken.jpg").write_bytes(files["cat"][0].read_bytes()[:3000])
        Image.open(files["dog"][0]).convert("RGB").resize((40, 30)).save(root / "dog" / "tiny.jpg")
        (root / "dog" / "notes.txt").write_text("not a photo")

        cmd = [sys.executable, "-m", "kennelgate.cli", "data", "audit", str(root), "--against", str(test), "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        found = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    def of(problem: str) -> list[dict]:
        return [f for f in found if f["problem"] == problem]

    mis = {f["path"]: f for f in of("mislabeled")}
    mis_hits = [p for p in mis if p in planted_mis]
    dup = of("near_duplicate")
    dup_paths = {f["path"] for f in dup} | {f["of"] for f in dup}
    dup_hits = [p for p in planted_dup if p in dup_paths]
    leak_hits = [f["path"] for f in of("leak") if f["path"] in planted_leak]
    unplanted_mis = [f for p, f in mis.items() if p not in planted_mis]
    unplanted_dup = [f for f in dup if f["path"] not in planted_dup and f["of"] not in planted_dup
                     and f["path"] not in planted_dup.values()]
    report = {
        "command": "python " + " ".join(sys.argv), "photos": 2 * per_species + duplicates + 2,
        "mislabels": {"planted": len(planted_mis), "found": len(mis_hits), "flagged": len(mis),
                      "recall": len(mis_hits) / max(1, len(planted_mis)), "precision": len(mis_hits) / max(1, len(mis)),
                      "suggested_right": sum(mis[p]["suggested"] == planted_mis[p] for p in mis_hits)},
        "near_duplicates": {"planted": len(planted_dup), "found": len(dup_hits), "recall": len(dup_hits) / max(1, len(planted_dup)),
                            "by_kind": {k: sum(1 for p in dup_hits if f"_{k}_" in p) for k in kinds}},
        "leaks": {"planted": len(planted_leak), "found": len(set(leak_hits)), "flagged": len(of("leak"))},
        "files": {k: [Path(f["path"]).name for f in of(k)] for k in ("broken", "tiny", "odd")},
        "not_planted": {"mislabeled": [{"file": Path(f["path"]).name, "filed": Path(f["path"]).parent.name,
                                        "suggested": f["suggested"], "evidence": f.get("evidence")} for f in unplanted_mis],
                        "near_duplicate": [{"file": Path(f["path"]).name, "of": Path(f["of"]).name, "detail": f["detail"]}
                                           for f in unplanted_dup]},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.json").write_text(json.dumps(report, indent=2))
    m, d, lk = report["mislabels"], report["near_duplicates"], report["leaks"]
    lines = [
        "# Data audit on planted problems", "",
        f"Command: `{report['command']}`. A tree of {per_species} cats and {per_species} dogs from `catsdogs/` with problems "
        "planted, audited by the real command (`kennelgate data audit ROOT --against TEST --json`).", "",
        "| planted | found | |", "|---|---|---|",
        f"| {m['planted']} mislabels (moved to the other folder) | {m['found']} | recall **{m['recall']:.0%}**, precision "
        f"**{m['precision']:.0%}** ({m['flagged']} flagged), suggested species right for {m['suggested_right']} |",
        f"| {d['planted']} near-duplicates (re-saved q40, resized 60%, cropped 85%) | {d['found']} | recall **{d['recall']:.0%}** "
        f"(by kind: {d['by_kind']}) |",
        f"| {lk['planted']} leaks into the test tree (re-saved copies) | {lk['found']} | {lk['flagged']} flagged |",
        f"| a broken, a tiny and a text file | {report['files']} | |", "",
        "## Found but not planted (for a person to check)", "",
    ]
    lines += [f"- mislabeled? `{x['file']}` filed under {x['filed']}, looks like {x['suggested']} (evidence {x['evidence']})"
              for x in report["not_planted"]["mislabeled"]]
    lines += [f"- near-duplicate: `{x['file']}` of `{x['of']}` ({x['detail']})" for x in report["not_planted"]["near_duplicate"]]
    (out / "audit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    cli()
