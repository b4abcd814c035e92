"""Whole frames kept for the field loop: which, within what budget, and never past a failed log."""

from __future__ import annotations

import os
import time

from app.kept_frames import FrameKeeper


def test_teachable_frames_are_the_ones_that_can_teach(tmp_path):
    k = FrameKeeper(tmp_path, "teachable", margin=0.05)
    assert k.teachable(accepted=False, error=False, fault=False, override=None), "kept out: staff may correct it"
    assert not k.teachable(accepted=True, error=False, fault=False, override=None, top=[("cat", 0.9), ("dog", 0.5)])
    assert k.teachable(accepted=True, error=False, fault=False, override=None, top=[("cat", 0.62), ("dog", 0.60)]), \
        "a close runner-up is a low-margin answer"
    assert k.teachable(accepted=True, error=False, fault=False, override="open_once"), "overridden"
    assert not k.teachable(accepted=False, error=True, fault=False, override=None), "a broken frame teaches nothing"
    assert not k.teachable(accepted=False, error=False, fault=True, override=None), "a camera fault is the gate's business"
    assert not FrameKeeper(tmp_path / "n", "none").teachable(accepted=False, error=False, fault=False, override=None)
    assert FrameKeeper(tmp_path / "a", "all").teachable(accepted=True, error=False, fault=False, override=None)


def test_the_budget_drops_the_oldest_frames_and_survives_a_restart(tmp_path):
    k = FrameKeeper(tmp_path, "teachable", budget_mb=0.0035)  # 3.5 kB: three 1 kB frames
    for i in range(5):
        assert k.keep(f"{i:02d}" + "f" * 30, bytes([i]) * 1000)
    kept = sorted(p.stem[:2] for p in tmp_path.glob("*/*.frame"))
    assert kept == ["02", "03", "04"] and k.used_bytes == 3000
    assert k.read("04" + "f" * 30) == bytes([4]) * 1000 and k.read("00" + "f" * 30) is None
    assert FrameKeeper(tmp_path, "teachable", budget_mb=0.0035).used_bytes == 3000, "the budget is counted from disk"
    assert not k.keep("big" + "f" * 29, b"x" * 4000), "a frame larger than the whole budget is not kept"


def test_an_unlogged_frame_is_forgotten_and_old_frames_age_out(tmp_path):
    k = FrameKeeper(tmp_path, "teachable", days=90)
    k.keep("aa" + "0" * 30, b"frame")
    k.forget("aa" + "0" * 30)
    assert k.read("aa" + "0" * 30) is None and k.used_bytes == 0
    k.keep("bb" + "0" * 30, b"old")
    k.keep("cc" + "0" * 30, b"new")
    old = k.path("bb" + "0" * 30)
    past = time.time() - 91 * 86400
    os.utime(old, (past, past))
    assert k.prune() == 1 and not old.exists() and k.read("cc" + "0" * 30) == b"new"
    (tmp_path / "cc" / ".keep-crashed").write_bytes(b"half")
    FrameKeeper(tmp_path, "teachable")
    assert not (tmp_path / "cc" / ".keep-crashed").exists(), "a crash mid-write leaves nothing behind"


def test_one_busy_kennel_keeps_at_most_its_rate_and_others_are_not_crowded_out(tmp_path):
    """A raccoon lingering at kennel 1 for a minute of frames: only ``per_minute`` of them are kept;
    kennel 2's frame and an overridden frame of kennel 1 still are; a minute later kennel 1 keeps again."""
    k = FrameKeeper(tmp_path, "teachable", per_minute=3)
    kept = [k.keep(f"a{i:02d}" + "0" * 29, b"x", kennel_id=1, now=100.0 + i) for i in range(20)]
    assert kept == [True] * 3 + [False] * 17 and k.count == 3
    assert k.keep("b00" + "0" * 29, b"x", kennel_id=2, now=110.0), "another kennel has its own rate"
    assert k.keep("a99" + "0" * 29, b"x", kennel_id=1, always=True, now=110.0), "a frame staff overrode is always kept"
    assert k.keep("a98" + "0" * 29, b"x", kennel_id=1, now=161.0), "the oldest of the minute has aged out"
    assert FrameKeeper(tmp_path / "u", "teachable", per_minute=0).keep("c" * 32, b"x", kennel_id=1), "0: no limit"
