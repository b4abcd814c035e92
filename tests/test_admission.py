"""Deadlines, not queues: bounded frames in flight, withdrawn late work, bounded stream inboxes."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from app.admission import Admission
from app.api.frames import _Inbox
from app.batching import BatchingWorker


def test_admission_bounds_frames_per_kennel_and_in_total():
    a = Admission(total=3, per_kennel=2)
    assert a.enter(1) is None and a.enter(1) is None
    refused = a.enter(1)
    assert refused is not None and refused.status == 429 and "kennel 1" in refused.reason
    assert a.enter(2) is None
    full = a.enter(3)
    assert full is not None and full.status == 503 and full.retry_after_s >= 1
    a.leave(1)
    assert a.enter(3) is None and a.in_flight == 3


class _Slow(BatchingWorker):
    def __init__(self) -> None:
        super().__init__("slow", max_batch=1)
        self.handled: list = []

    def handle(self, items: list) -> list:
        time.sleep(0.3)
        self.handled += items
        return items


def test_an_item_past_its_deadline_is_withdrawn_and_never_handled():
    w = _Slow()
    first = threading.Thread(target=w.submit, args=("first",))
    first.start()
    time.sleep(0.05)  # "first" is being handled: "late" has to wait behind it
    with pytest.raises(TimeoutError):
        w.submit("late", deadline=time.monotonic() + 0.05)
    first.join()
    assert w.submit("next", deadline=time.monotonic() + 5) == "next"
    w.close()
    assert w.handled == ["first", "next"]  # the withdrawn item cost the worker nothing


def test_stream_inbox_keeps_the_newest_frames_and_counts_the_dropped():
    async def scenario():
        box = _Inbox(3)
        for i in range(10):
            box.put((float(i), {"type": "websocket.receive", "bytes": b"x" * i}))
        box.put((10.0, {"type": "websocket.disconnect"}))  # never dropped, whatever the backlog
        assert box.qsize() == 4 and box.take_dropped() == 7 and box.take_dropped() == 0
        first = await box.get()
        return first[0]

    assert asyncio.run(scenario()) == 7.0
