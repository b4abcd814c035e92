"""docker-compose.yml cannot run here (no docker): check it is well-formed and calls real commands."""

import os
import shlex
import subprocess
from pathlib import Path

import yaml
from typer.testing import CliRunner

from kennelgate.cli import app

REPO = Path(__file__).resolve().parents[1]


def _commands(compose: dict) -> dict[str, list[str]]:
    return {name: svc["command"] for name, svc in compose["services"].items() if "command" in svc}


def test_compose_services_and_their_commands_exist():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert {"api", "postgres", "migrate", "nightly", "prometheus", "mosquitto"} <= set(compose["services"])
    api = compose["services"]["api"]
    assert api["environment"]["KENNELGATE_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    runner = CliRunner()
    for name, cmd in _commands(compose).items():
        if cmd[0] == "kennelgate":
            sub = [a for a in cmd[1:] if not a.startswith("-")][:2]
            result = runner.invoke(app, [*sub, "--help"])
            assert result.exit_code == 0, (name, sub, result.output)
        elif cmd[0] == "bash":
            assert (REPO / cmd[1]).is_file(), (name, cmd)
        else:  # a third-party image's own command (Mosquitto)
            assert "image" in compose["services"][name] and "build" not in compose["services"][name], name
    assert (REPO / "deploy" / "prometheus.yml").is_file()
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "kennelgate model build" in dockerfile and shlex.split("kennelgate serve")[1] in dockerfile


def test_nightly_script_runs_on_an_empty_home(tmp_path, model_cache, default_model):
    env = {**os.environ, "KENNELGATE_HOME": str(tmp_path / "home"), "KENNELGATE_MODEL_CACHE": str(model_cache)}
    p = subprocess.run(["bash", str(REPO / "scripts" / "nightly.sh")], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "nothing to rebuild" in p.stdout and "deleted 0 decision(s)" in p.stdout
