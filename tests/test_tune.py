"""``kennelgate tune``: the Pareto bookkeeping on synthetic rows, and a small real study end to end
(real model, real photos, Optuna with a SQLite study that resumes)."""

import json

import pytest

from tests.conftest import DATASETS, need_datasets, photo_root
from tests.test_cli import run


def _row(n, admitted, wrong, ms, **params):
    return {"number": n, "admitted": admitted, "wrong_open": wrong, "latency_ms": ms, "params": params}


def test_pareto_keeps_feasible_undominated_points_and_choose_respects_latency():
    from kennelgate.tuning import choose, pareto

    rows = [
        _row(0, 0.80, 0.000, 10.0),  # front: fastest
        _row(1, 0.78, 0.000, 12.0),  # dominated by 0
        _row(2, 0.90, 0.000, 30.0),  # front
        _row(3, 0.99, 0.020, 5.0),  # infeasible: never on the front, however good
        _row(4, 0.95, 0.004, 80.0),  # front, but over a 50 ms budget
        _row(5, 0.90, 0.001, 30.0),  # ties 2: neither beats the other
    ]
    front = pareto(rows, max_wrong=0.005)
    assert [r["number"] for r in front] == [0, 2, 5, 4]  # sorted by latency
    assert choose(front, max_ms=50)["number"] in (2, 5)
    assert choose(front, max_ms=100)["number"] == 4
    assert choose(front, max_ms=5) is None


def test_apply_writes_settings_and_keeps_other_lines(tmp_path):
    from kennelgate.settings import Settings
    from kennelgate.tuning import apply_to_env

    env = tmp_path / ".env"
    env.write_text("KENNELGATE_DATABASE_URL=sqlite:///x.db\nKENNELGATE_K=3\n")
    params = {"model": "efficientnet-lite0", "providers": "cpu", "k": 9, "target_accept": 0.9699999999999999,
              "window_k": 2, "window_n": 4}
    apply_to_env(params, env)
    lines = env.read_text().splitlines()
    assert "KENNELGATE_DATABASE_URL=sqlite:///x.db" in lines
    assert lines.count("KENNELGATE_K=9") == 1 and "KENNELGATE_K=3" not in lines
    assert "KENNELGATE_TARGET_ACCEPT=0.97" in lines  # Optuna's float steps written as a person would
    s = Settings(_env_file=env)  # the settings every command reads take the tuned values
    assert (s.model, s.k, s.target_accept, s.window_k, s.window_n) == ("efficientnet-lite0", 9, 0.97, 2, 4)


@pytest.mark.integration
def test_tune_study_reports_front_resumes_and_applies(tmp_path, model_cache, default_model):
    import os

    need_datasets()
    cats = sorted((DATASETS / "catsdogs" / "cat").iterdir())[:70]
    dogs = sorted((DATASETS / "catsdogs" / "dog").iterdir())[:70]
    root = photo_root(tmp_path, {"cat": cats, "dog": dogs})
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    for f in sorted((DATASETS / "others_objects").iterdir())[:12] + sorted((DATASETS / "raccoon").iterdir())[:12]:
        (unknown / f.name).symlink_to(f)
    env = {**os.environ, "KENNELGATE_HOME": str(tmp_path / "home"), "KENNELGATE_MODEL_CACHE": str(model_cache)}
    study, report, env_file = tmp_path / "s" / "tune.db", tmp_path / "report", tmp_path / ".env"
    args = ["tune", str(root), "--unknown", str(unknown), "--study", str(study), "--models", "efficientnet-lite1",
            "--runtimes", "cpu", "--visits", "12", "--frames", "4", "--max-ms", "10000",
            "--max-wrong", "0.5", "--report", str(report)]
    run([*args, "--trials", "3", "--apply", "--env-file", str(env_file)], env)
    out = json.loads((report / "tune.json").read_text())
    assert out["n_trials"] == 3 and out["known_visits"] <= 12 and out["unknown_visits"] == 24
    assert out["default"] is not None and out["default"]["number"] == 0  # today's defaults measured first
    for r in out["trials"]:
        assert 0 <= r["admitted"] <= 1 and 0 <= r["wrong_open"] <= 1 and r["latency_ms"] > 0
    feasible = [r for r in out["trials"] if r["wrong_open"] <= out["max_wrong"]]
    assert out["front"] and all(r in feasible for r in out["front"])  # a loose limit: this tiny study is about plumbing
    assert (report / "pareto.png").stat().st_size > 1000 and "Pareto" in (report / "tune.md").read_text()
    assert f"KENNELGATE_K={out['chosen']['params']['k']}" in env_file.read_text().splitlines()
    # The defaults and the front checked on held-out visits (other photos of the test groups).
    assert out["confirm_known_visits"] > 0
    for r in [out["default"], *out["front"]]:
        assert 0 <= r["confirm"]["admitted"] <= 1 and 0 <= r["confirm"]["wrong_open"] <= 1
    assert "held-out visits" in (report / "tune.md").read_text()
    assert (study.parent / "tune-cache" / "efficientnet-lite1.npz").is_file()  # embeddings kept for the next run

    run([*args, "--trials", "2"], env)  # resumes the same study
    again = json.loads((report / "tune.json").read_text())
    assert again["n_trials"] == 5 and again["default"]["number"] == 0
