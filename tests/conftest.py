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

    # The head count only where a test asks for it (a detector left in a shared model cache must not
    # change other tests' answers).
    return Settings(home=tmp_path / "home", model_cache=model_cache, head_count="off")


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


# --- databases -------------------------------------------------------------------------------
PG_ADMIN_URL = os.environ.get("KENNELGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"kg_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.fail(f"PostgreSQL expected at {PG_ADMIN_URL} (CI starts Debian's): {exc}")
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# --- a real server ---------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``kennelgate serve`` in a subprocess on loopback."""

    def __init__(self, env: dict, log_path: Path) -> None:
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kennelgate.cli", "serve", "--port", str(self.port), "--log-level", "warning"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait(self, path: str = "/healthz", timeout: float = 120.0) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not up after {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        self._log.close()


@pytest.fixture
def server_env(tmp_path, model_cache):
    return {
        **os.environ,
        "KENNELGATE_HOME": str(tmp_path / "home"),
        "KENNELGATE_MODEL_CACHE": str(model_cache),
        "KENNELGATE_ADMIN_TOKEN": "test-admin-token",
        "KENNELGATE_INDEX_POLL_SECONDS": "0.2",
        "KENNELGATE_THUMBNAILS": "all",
        "KENNELGATE_THUMBNAIL_INTERVAL_S": "0",
        "KENNELGATE_HEAD_COUNT": "off",  # tests that count animals turn it on
    }


@pytest.fixture
def start_server(tmp_path, default_model):
    servers = []

    def start(env: dict) -> Server:
        s = Server(env, tmp_path / f"server{len(servers)}.log")
        servers.append(s)
        s.wait()
        return s

    yield start
    for s in servers:
        s.stop()
