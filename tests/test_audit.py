"""Data tools on real photos with planted problems: the audit finds them; splits keep groups whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kennelgate.splits import split
from tests.conftest import DATASETS, need_datasets


def _tree(tmp: Path) -> tuple[Path, Path, dict, dict, set]:
    """100 cats + 100 dogs; 8 moved to the other folder, 9 near-duplicate copies, 4 leaks."""
    root, test = tmp / "gallery", tmp / "test"
    mis, dup, leak = {}, {}, set()
    for sp in ("cat", "dog"):
        (root / sp).mkdir(parents=True)
        (test / sp).mkdir(parents=True)
    for sp, other in (("cat", "dog"), ("dog", "cat")):
        files = sorted((DATASETS / "catsdogs" / sp).iterdir())
        for i, f in enumerate(files[:100]):
            dest = root / (other if i < 4 else sp) / f.name
            dest.write_bytes(f.read_bytes())
            if i < 4:
                mis[str(dest)] = sp
        for f in files[200:230]:
            (test / sp / f.name).write_bytes(f.read_bytes())
        for n, f in enumerate(files[10:14]):
            im = Image.open(f).convert("RGB")
            w, h = im.size
            variant = [im.resize((w * 6 // 10, h * 6 // 10)), im.crop((w // 14, h // 14, w - w // 14, h - h // 14)), im, im][n]
            dst = root / sp / f"copy{n}_{f.stem}.jpg"
            variant.save(dst, "JPEG", quality=40 if n >= 2 else 90)
            dup[str(dst)] = str(root / sp / f.name)
        for f in files[20:22]:
            Image.open(f).convert("RGB").save(test / sp / f"leak_{f.stem}.jpg", "JPEG", quality=50)
            leak.add(str(root / sp / f.name))
    (root / "cat" / "broken.jpg").write_bytes(sorted((DATASETS / "catsdogs" / "cat").iterdir())[0].read_bytes()[:2000])
    (root / "dog" / "notes.txt").write_text("not a photo")
    return root, test, mis, dup, leak


@pytest.mark.integration
def test_audit_finds_planted_mislabels_duplicates_leaks_and_bad_files(tmp_path, settings):
    need_datasets()
    from kennelgate.audit import audit
    from kennelgate.engine import Engine

    root, test, mis, dup, leak = _tree(tmp_path)
    result = audit(root, Engine(settings).encoder, against=test)
    by = {}
    for f in result.findings:
        by.setdefault(f.problem, []).append(f)
    flagged = {f.path: f for f in by.get("mislabeled", [])}
    hits = [p for p in flagged if p in mis]
    assert len(hits) >= 0.8 * len(mis) and len(hits) >= 0.5 * len(flagged), (hits, list(flagged))
    assert all(flagged[p].suggested == mis[p] for p in hits)
    linked = {f.path for f in by["near_duplicate"]} | {f.of for f in by["near_duplicate"]}
    assert sum(p in linked for p in dup) >= 0.9 * len(dup)
    assert {f.path for f in by["leak"]} >= leak
    assert [Path(f.path).name for f in by["broken"]] == ["broken.jpg"] and [Path(f.path).name for f in by["odd"]] == ["notes.txt"]
    assert result.counts["cat"] >= 100 and result.imbalance < 1.2


@pytest.mark.integration
def test_audit_and_split_commands_write_json_report_and_manifest(tmp_path, model_cache, default_model):
    need_datasets()
    import os

    root, test, mis, _, _ = _tree(tmp_path)
    env = {**os.environ, "KENNELGATE_HOME": str(tmp_path / "home"), "KENNELGATE_MODEL_CACHE": str(model_cache)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "kennelgate.cli", "data", *a], env=env, capture_output=True, text=True)  # noqa: E731
    r = run("audit", str(root), "--json", "--report", str(tmp_path / "report"))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert all({"path", "problem", "detail"} <= set(x) for x in rows)
    assert any(x["problem"] == "mislabeled" and x["path"] in mis and x["suggested"] for x in rows)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Suspected mislabels" in page and "data:image/jpeg;base64" in page
    r = run("split", str(root), "--out", str(tmp_path / "split"), "--field", str(test))
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "split" / "manifest.json").read_text())
    assert all(x["source"] == "field" for name in ("dev", "test") for x in m["splits"][name])
    groups = {name: {x["group"] for x in m["splits"][name]} for name in ("train", "dev", "test")}
    assert not (groups["train"] & groups["dev"] or groups["train"] & groups["test"] or groups["dev"] & groups["test"])


def test_split_proportions_and_groups_never_straddle():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(400), rng.integers(1, 4, 400))  # bursts of 1-3 photos
    s = split(groups, seed=3)
    n = len(groups)
    for part, share in (("train", 0.6), ("dev", 0.2), ("test", 0.2)):
        assert abs(len(getattr(s, part)) / n - share) < 0.02
    sets = [set(groups[getattr(s, p)]) for p in ("train", "dev", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sorted(s.train + s.dev + s.test) == list(range(n))
    assert split(groups, seed=3).test == s.test  # reproducible
    # Two distributions: dev/test only from the field photos, ~80% of which train.
    field = np.zeros(n, bool)
    field[-300:] = True
    s2 = split(groups, field, seed=3)
    assert all(field[i] for i in s2.dev + s2.test)
    assert abs(len(s2.dev) + len(s2.test) - 0.2 * field.sum()) <= 6 and abs(len(s2.dev) - len(s2.test)) <= 6
    # Large: dev and test capped.
    big = split(np.arange(50_000), seed=0)
    assert len(big.dev) == len(big.test) == 2_500
