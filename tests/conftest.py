from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
MODELS = REPO.parent / "shared" / "models"


def need_datasets() -> None:
    if not DATASETS.is_dir():
        pytest.fail(f"real photos expected at {DATASETS} (../shared beside the checkout)")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache for the whole run: the default model is exported once (~5 s)."""
    return Path(os.environ.get("KENNELGATE_TEST_MODEL_CACHE") or tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def default_model(model_cache) -> Path:
    from embedder import registry

    return registry.resolve(registry.DEFAULT_MODEL, model_cache)


@pytest.fixture
def settings(tmp_path, model_cache):
    from kennelgate.settings import Settings

    return Settings(home=tmp_path / "home", model_cache=model_cache)


def clusters(n_per: int = 40, dim: int = 32, names=("cat", "dog"), spread: float = 0.35, seed: int = 0):
    """Unit vectors in tight clusters around random centres: a synthetic gallery."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        centre = rng.normal(size=dim)
        centre /= np.linalg.norm(centre)
        x = centre + spread * rng.normal(size=(n_per, dim)) / np.sqrt(dim)
        out[name] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), centre.astype(np.float32)
    return out


def photo_root(tmp_path: Path, spec: dict[str, list[Path]]) -> Path:
    """ROOT/<species>/ with symlinks to real photos (nothing copied)."""
    root = tmp_path / "root"
    for species, files in spec.items():
        d = root / species
        d.mkdir(parents=True, exist_ok=True)
        for f in files:
            (d / f.name).symlink_to(f)
    return root
