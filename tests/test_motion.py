"""Motion gating and idle sampling, the frozen-feed check on unseen frames, and the decision log's
group commit (real SQLite)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from kennelgate.health import FreezeDetector, HealthThresholds
from kennelgate.motion import MotionGate


@dataclass
class Answer:
    accepted: bool
    species: str = "other"


def _gate(**kw) -> MotionGate:
    args = dict(threshold=2.5, max_skip=6, idle_after=3, idle_every=3, opens_nothing=lambda a: not a.accepted)
    return MotionGate(**{**args, **kw})


def _run(gate: MotionGate, frames: int, thumb: np.ndarray, answer: Answer) -> str:
    """One letter per frame: u = answered unseen, r = looked at and reused, c = classified."""
    out = []
    for i in range(frames):
        if gate.unseen() is not None:
            out.append("u")
        elif gate.unchanged(thumb) is not None:
            out.append("r")
        else:
            gate.anchor(thumb, str(i), answer)
            out.append("c")
    return "".join(out)


def test_an_idle_closed_scene_is_sampled_and_rechecked_less_often():
    still = np.full((72, 96), 100.0, np.float32)
    # 3 looked-at still frames make it idle; then 2 of 3 frames go unseen; the forced re-check
    # comes after 6 × 3 frames instead of 6.
    pattern = _run(_gate(), 30, still, Answer(False))
    assert pattern[:19] == "crrr" + "uur" * 5
    assert pattern[19] == "c" and pattern[20:] == "uur" * 3 + "u"  # a re-check keeps the scene idle


def test_an_answer_that_may_open_a_door_is_never_reused_unseen():
    still = np.full((72, 96), 100.0, np.float32)
    pattern = _run(_gate(), 20, still, Answer(True, "dog"))
    assert "u" not in pattern
    assert pattern == ("c" + "r" * 6) * 2 + "c" + "r" * 5  # re-checked every max_skip frames


def test_a_change_is_seen_at_the_next_looked_at_frame():
    gate = _gate()
    still, moved = np.full((72, 96), 100.0, np.float32), np.full((72, 96), 140.0, np.float32)
    _run(gate, 8, still, Answer(False))
    seen = [gate.unseen() is None for _ in range(3)]
    assert sum(seen) == 1  # within idle_every frames one is looked at…
    assert gate.unchanged(moved) is None  # …and the new scene goes to the full pipeline
    gate.anchor(moved, "x", Answer(False))
    assert gate.unseen() is None  # no longer idle: a new scene is watched frame by frame


def test_idle_sampling_off_or_gating_off():
    still = np.full((72, 96), 100.0, np.float32)
    assert "u" not in _run(_gate(idle_every=1), 20, still, Answer(False))
    assert _run(_gate(threshold=0), 5, still, Answer(False)) == "ccccc"


def test_frozen_feed_counts_identical_unseen_frames_but_not_different_ones():
    t = HealthThresholds(frozen_frames=5)
    thumb = np.full((72, 96), 90.0, np.float32)
    frozen = FreezeDetector()
    assert frozen.update(thumb, t, b"frame-bytes").ok
    faults = [frozen.update_unseen(b"frame-bytes", t).fault for _ in range(4)]
    assert faults == ["ok", "ok", "ok", "frozen"]
    live = FreezeDetector()
    live.update(thumb, t, b"a")
    assert all(live.update_unseen(f"b{i}".encode(), t).ok for i in range(10))  # re-encoded: proves nothing
    assert live.update(thumb + 5.0, t, b"c").ok  # a looked-at frame that changed ends the run


# --- decision log ------------------------------------------------------------------------------
@pytest.fixture
def log_db(tmp_path):
    from app.db import migrate
    from app.db.session import Database

    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate.upgrade(url)
    db = Database(url)
    with db.session() as s:
        from app.db.models import Kennel

        s.add(Kennel(name="k", admits=["dog"]))
    yield db
    db.dispose()


def _row(i: int) -> dict:
    from app.db.models import utcnow

    return dict(
        frame_id=f"f{i:05d}", kennel_id=1, created_at=utcnow(), species="other", best="dog", score=0.1, breed=None,
        accepted=False, door="closed", reason="r", error=False, health="ok", reused=True, latency_ms=0.1,
        model="m", index_version="v1", thumbnail=None,
    )


def test_concurrent_frames_share_commits_and_every_row_is_written(log_db):
    from sqlalchemy import func, select

    from app.db.models import DecisionRecord
    from app.decision_log import DecisionLog

    log = DecisionLog(log_db)
    rows = 400

    def writer(k: int) -> None:
        for i in range(k, rows, 8):
            log.write(_row(i))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    with log_db.session() as s:
        assert s.scalar(select(func.count()).select_from(DecisionRecord)) == rows
    assert log.items == rows and log.batches < rows  # group commit happened


def test_a_failed_write_raises_for_its_frame_only(log_db):
    from app.decision_log import DecisionLog

    log = DecisionLog(log_db)
    log.write(_row(1))
    with pytest.raises(Exception, match="UNIQUE|unique"):
        log.write(_row(1))  # the same frame id twice: this frame's write fails…
    log.write(_row(2))  # …and the log goes on
    log.close()
