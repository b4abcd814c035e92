"""The corruption suite end to end on real photos with the real model (a small slice of it)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATASETS, need_datasets, photo_root
from tests.test_cli import env, run  # noqa: F401 - the CLI fixture and runner

pytestmark = pytest.mark.integration


def test_eval_corruptions_cli_writes_table_heatmap_and_gate_record(tmp_path, env, default_model):  # noqa: F811
    need_datasets()
    cats = sorted((DATASETS / "catsdogs" / "cat").iterdir())
    dogs = sorted((DATASETS / "catsdogs" / "dog").iterdir())
    others = sorted((DATASETS / "others").iterdir())
    gallery = photo_root(tmp_path / "g", {"cat": cats[:150], "dog": dogs[:150], "other": others[::2]})
    test = photo_root(tmp_path / "t", {"cat": cats[600:615], "dog": dogs[600:615], "unknown": others[1::2][:15]})
    report = tmp_path / "report"
    out = run(["eval", "--gallery", str(gallery), "--test", str(test), "--report", str(report),
               "--corruptions", "--only", "dark,defocus_blur,fog", "--severities", "1,5"], env).stdout
    assert "corruption report" in out
    data = json.loads((report / "corruptions.json").read_text())
    conds = {(c["corruption"], c["severity"]): c for c in data["conditions"]}
    assert set(conds) == {("clean", 0)} | {(c, s) for c in ("dark", "defocus_blur", "fog") for s in (1, 5)}
    assert all(c["frames"] == 45 and c["known"] == 30 and c["unknown"] == 15 for c in conds.values())
    clean = conds[("clean", 0)]
    assert clean["accuracy"] >= 0.9 and clean["gate_rate"] <= 0.05
    # The gate stops what it should: severe darkness and severe defocus, and no door opens there.
    for bad in (("dark", 5), ("defocus_blur", 5)):
        assert conds[bad]["gate_rate"] >= 0.9 and conds[bad]["wrong_open_window"] == 0.0, conds[bad]
    # Severity costs accuracy or causes abstentions; it never helps.
    assert conds[("fog", 5)]["abstain_rate"] >= conds[("fog", 1)]["abstain_rate"]
    gate = data["gate_detection"]
    assert gate["dark"]["stopped"] >= 0.9 and gate["no_signal"]["named_right"] >= 0.95
    assert gate["frozen"]["detected_at_frame"] == 40 and gate["frozen"]["live_false_alarm"] == 0.0
    md = (report / "corruptions.md").read_text()
    assert "| dark | 5 |" in md and "Health gate" in md
    assert (report / "corruptions_heatmap.png").stat().st_size > 10_000
    err = run(["eval", "--gallery", str(gallery), "--test", str(test), "--corruptions", "--only", "lava"], env, check=False)
    assert err.returncode == 2 and "unknown corruption" in err.stderr
