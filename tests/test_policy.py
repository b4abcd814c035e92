"""The door window: K of N frames within T seconds must agree; anything else keeps it shut."""

import pytest

from kennelgate.door import DoorWindow, WindowPolicy

DOG = frozenset({"dog"})


def feed(window, votes, dt=0.05, t0=0.0):
    out = []
    for i, v in enumerate(votes):
        out.append(window.add(t0 + i * dt, v)[0])
    return out


def test_opens_on_the_kth_agreeing_frame():
    w = DoorWindow(WindowPolicy(3, 5, 2.0), DOG)
    assert feed(w, ["dog"] * 4) == [False, False, True, True]


def test_one_wrong_frame_never_opens():
    w = DoorWindow(WindowPolicy(3, 5, 2.0), DOG)
    assert feed(w, ["dog", None, "dog", "dog"]) == [False, False, False, False]  # the 'other' is still in the window


def test_non_admitted_species_in_window_keeps_door_shut_until_it_leaves():
    w = DoorWindow(WindowPolicy(3, 5, 2.0), DOG)
    got = feed(w, ["cat", "dog", "dog", "dog", "dog", "dog", "dog"])
    assert got == [False, False, False, False, False, True, True]  # opens once the cat frame left the last 5
    opened, reason = DoorWindow(WindowPolicy(3, 5, 2.0), DOG).add(0.0, "cat")
    assert not opened and "not admitted" in reason


def test_old_frames_leave_the_window_by_time():
    w = DoorWindow(WindowPolicy(3, 5, 1.0), DOG)
    assert feed(w, ["dog", "dog"], dt=0.1) == [False, False]
    assert w.add(5.0, "dog")[0] is False  # the two earlier frames are too old to count
    blocked = DoorWindow(WindowPolicy(2, 5, 1.0), DOG)
    blocked.add(0.0, None)
    assert feed(blocked, ["dog", "dog"], t0=3.0) == [False, True]  # an old 'other' no longer blocks


def test_a_kennel_admitting_two_species_needs_agreement_on_one():
    w = DoorWindow(WindowPolicy(3, 5, 2.0), frozenset({"dog", "cat"}))
    assert feed(w, ["dog", "cat", "dog", "cat", "dog"]) == [False, False, False, False, True]


def test_invalid_policy_is_refused():
    with pytest.raises(ValueError):
        WindowPolicy(6, 5, 2.0)
    with pytest.raises(ValueError):
        WindowPolicy(1, 5, 0)
