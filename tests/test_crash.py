"""Crash consistency between the gallery index and the library's database: a real command is
killed at each step of an upload, a species removal and a rebuild (``KENNELGATE_CRASH_AT``), then
the next start reconciles. Index and database must agree, with no phantom species and no
temporary files left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kennelgate.faults import CRASH_EXIT
from tests.conftest import DATASETS, need_datasets

pytestmark = pytest.mark.integration
POINTS = ("gallery.staged", "gallery.committed", "gallery.published")


def _cli(env: dict, *args: str, crash: str = "") -> subprocess.CompletedProcess:
    env = {**env, "KENNELGATE_CRASH_AT": crash} if crash else env
    return subprocess.run([sys.executable, "-m", "kennelgate.cli", *args], env=env, capture_output=True, text=True)


def _folder(tmp: Path, species: str, source: str, n: int) -> Path:
    d = tmp / species
    d.mkdir(parents=True)
    for f in sorted((DATASETS / source).iterdir())[:n]:
        (d / f.name).write_bytes(f.read_bytes())
    return d


def _state(env: dict) -> tuple[dict, dict]:
    """(library species → photo ids, index species → photo ids), after reconciling as a start does."""
    code = (
        "import json\n"
        "from kennelgate.cli import _library\n"
        "lib = _library(); lib.engine.refresh()\n"
        "g = lib.engine.snapshot().gallery\n"
        "print(json.dumps([{k: sorted(v) for k, v in lib._library_ids().items()}, {k: sorted(p.ids) for k, p in g.species.items()}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    import json

    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def _leftovers(home: Path) -> list[str]:
    return [p.name for p in home.rglob("*") if p.name.startswith((".upload-", ".CURRENT.")) or ".tmp-" in p.name or ".old-" in p.name]


@pytest.fixture
def home_env(tmp_path, model_cache, default_model):
    need_datasets()
    env = {**os.environ, "KENNELGATE_HOME": str(tmp_path / "home"), "KENNELGATE_MODEL_CACHE": str(model_cache)}
    root = tmp_path / "photos"
    _folder(root, "cat", "catsdogs/cat", 12)
    _folder(root, "dog", "catsdogs/dog", 12)
    assert _cli(env, "gallery", "build", str(root)).returncode == 0
    return env, tmp_path


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_any_step_leaves_index_and_library_consistent(home_env, point):
    env, tmp = home_env
    fox = _folder(tmp / "new", "fox", "raccoon", 10)
    # 1. Uploading a new species.
    r = _cli(env, "gallery", "add", "fox", str(fox), crash=point)
    assert r.returncode == CRASH_EXIT, r.stderr
    library, index = _state(env)
    assert library == index, f"after a crash at {point} during an upload"
    assert ("fox" in index) == (point != "gallery.staged")  # committed → finished; not committed → undone
    # 2. Removing a species.
    r = _cli(env, "gallery", "remove", "dog", crash=point)
    assert r.returncode == CRASH_EXIT, r.stderr
    library, index = _state(env)
    assert library == index and ("dog" in index) == (point == "gallery.staged")
    # 3. A rebuild.
    r = _cli(env, "index", "rebuild", crash=point)
    assert r.returncode == CRASH_EXIT, r.stderr
    library, index = _state(env)
    assert library == index and "cat" in index
    assert _leftovers(Path(env["KENNELGATE_HOME"])) == []


def test_a_phantom_species_in_the_index_is_dropped_by_reconcile(home_env):
    """An index holding a species the library never committed (what the old write order left after
    a crash) is repaired: the phantom goes, the rest stays."""
    env, _ = home_env
    code = (
        "import numpy as np\n"
        "from kennelgate.cli import _library\n"
        "from index.gallery import SpeciesPhotos\n"
        "lib = _library(); cat = lib.engine.snapshot().gallery.species['cat']\n"
        "lib.engine.extend('ghost', SpeciesPhotos(cat.vectors[:5], [f'photo:{9000 + i}' for i in range(5)], [None] * 5))\n"
        "print(sorted(lib.engine.snapshot().gallery.species))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "ghost" in out.stdout
    library, index = _state(env)
    assert library == index and "ghost" not in index and set(index) == {"cat", "dog"}
