"""The CLI end to end with the real default model on real photos."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATASETS, need_datasets, photo_root

pytestmark = pytest.mark.integration


def run(args, env, check=True):
    p = subprocess.run([sys.executable, "-m", "kennelgate.cli", *args], capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"kennelgate {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture
def env(tmp_path, model_cache):
    import os

    return {**os.environ, "KENNELGATE_HOME": str(tmp_path / "home"), "KENNELGATE_MODEL_CACHE": str(model_cache)}


def test_build_add_classify_remove(tmp_path, env, default_model):
    need_datasets()
    cats = sorted((DATASETS / "catsdogs" / "cat").iterdir())
    dogs = sorted((DATASETS / "catsdogs" / "dog").iterdir())
    root = photo_root(tmp_path, {"cat": cats[:80], "dog": dogs[:80]})
    out = run(["gallery", "build", str(root)], env)
    assert "v000001" in out.stdout
    listing = run(["gallery", "list"], env).stdout
    assert "cat" in listing and "dog" in listing

    raccoons = sorted((DATASETS / "raccoon").iterdir())
    rac_dir = tmp_path / "rac"
    rac_dir.mkdir()
    for f in raccoons[:90]:
        (rac_dir / f.name).symlink_to(f)
    assert "v000002" in run(["gallery", "add", "raccoon", str(rac_dir)], env).stdout

    queries = [cats[900], dogs[900], raccoons[150], DATASETS / "others" / "n01440764_tench.JPEG", DATASETS / "badfiles"]
    lines = run(["classify", "--json", *map(str, queries)], env).stdout.strip().splitlines()
    recs = {r["path"]: r for r in map(json.loads, lines)}
    assert recs[str(cats[900])]["species"] == "cat" and recs[str(cats[900])]["accepted"]
    assert recs[str(dogs[900])]["species"] == "dog"
    assert recs[str(raccoons[150])]["species"] == "raccoon"
    tench = recs[str(DATASETS / "others" / "n01440764_tench.JPEG")]
    assert tench["species"] == "other" and not tench["accepted"]
    for key in ("path", "species", "score", "accepted", "breed", "top"):
        assert key in recs[str(cats[900])]
    bad = {p: r for p, r in recs.items() if "badfiles" in p}
    assert len(bad) == 10  # the batch went on past every bad file
    assert "truncated" in bad[str(DATASETS / "badfiles" / "african_elephants_truncated_file.jpg")]["error"]
    assert "species" in bad[str(DATASETS / "badfiles" / "made_rgba_alpha_256x256.png")]

    assert "v000003" in run(["gallery", "remove", "raccoon"], env).stdout
    again = json.loads(run(["classify", "--json", str(raccoons[150])], env).stdout)
    assert again["species"] != "raccoon"
    err = run(["gallery", "remove", "unicorn"], env, check=False)
    assert err.returncode == 2 and "no species" in err.stderr


def test_eval_report_and_bench(tmp_path, env, default_model):
    need_datasets()
    cats = sorted((DATASETS / "catsdogs" / "cat").iterdir())
    dogs = sorted((DATASETS / "catsdogs" / "dog").iterdir())
    gallery = photo_root(tmp_path / "g", {"cat": cats[:100], "dog": dogs[:100]})
    test = photo_root(
        tmp_path / "t",
        {"cat": cats[500:540] + dogs[600:604], "dog": dogs[500:540], "fox": sorted((DATASETS / "others").iterdir())[:40]},
    )  # four dogs planted among the test cats: error analysis must name them
    report = tmp_path / "report"
    run(["eval", "--gallery", str(gallery), "--test", str(test), "--json", str(tmp_path / "m.json"), "--report", str(report)], env)
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["accuracy"] >= 0.9 and m["unknown_reject_rate"] >= 0.85  # 4 of the 84 known are planted mislabels
    assert m["confusion_labels"] == ["cat", "dog", "unknown"]
    assert (report / "confusion.png").stat().st_size > 1000
    assert (report / "report.md").read_text().count("|") > 10
    # Error analysis: groups by (truth, decision) with a grid each, conditions, the planted mislabels.
    ea = m["error_analysis"]
    groups = {(g["truth"], g["decided"]): g for g in ea["groups"]}
    assert sum(g["count"] for g in ea["groups"]) == ea["errors"] > 0
    assert ("cat", "dog") in groups and groups[("cat", "dog")]["kind"] == "swapped"
    for g in ea["groups"]:
        assert (report / "errors" / f"{g['truth']}_as_{g['decided']}.png").stat().st_size > 1000
    assert {c["condition"] for c in ea["conditions"]} == {"brightness", "size", "sharpness"}
    assert sum(c["photos"] for c in ea["conditions"] if c["condition"] == "size") == m["n_known"] + m["n_unknown"]
    flagged = {Path(x["id"]).name for x in ea["mislabels"] if x["suggested"] == "dog" and x["filed"] == "cat"}
    planted = {f.name for f in dogs[600:604]}
    assert len(flagged & planted) >= 3 and len(flagged - planted) <= 2
    text = (report / "report.md").read_text()
    assert "## Error analysis" in text and "Suspected mislabels" in text
    assert (report / "errors" / "conditions.png").stat().st_size > 1000

    run(["gallery", "build", str(gallery)], env)
    run(["bench", "--images", str(DATASETS / "catsdogs" / "cat"), "--n", "8", "--json", str(tmp_path / "b.json")], env)
    rows = json.loads((tmp_path / "b.json").read_text())
    stages = {(r["stage"], r["batch"]) for r in rows}
    assert ("end to end", 1) in stages and ("end to end", 8) in stages
    assert ("encoder (torch eager fp32)", 8) in stages
    assert any("ratio" in r for r in rows if r["stage"] == "end to end")
    assert {"camera frames, still scene (head count off)", "camera frames, moving scene (head count off)"} <= {s for s, _ in stages}


def _all_commands() -> list[list[str]]:
    """Every command and group of the CLI, read from the Typer app itself (none can be missed)."""
    import typer.main

    from kennelgate.cli import app

    out: list[list[str]] = [[]]

    def walk(group, prefix):
        for name, cmd in getattr(group, "commands", {}).items():
            out.append([*prefix, name])
            walk(cmd, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return out


def test_every_command_has_help(env):
    from typer.testing import CliRunner

    from kennelgate.cli import app

    commands = _all_commands()
    assert ["gallery", "readiness"] in commands and ["eval"] in commands and len(commands) > 25
    runner = CliRunner()
    for cmd in commands:
        r = runner.invoke(app, [*cmd, "--help"], env=env)
        assert r.exit_code == 0 and "Usage" in r.output, (cmd, r.output)
        words = r.output.split("Usage", 1)[1]
        assert len(words.strip()) > 40, f"{cmd}: help says almost nothing"
