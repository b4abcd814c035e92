"""A background worker that serves many callers in batches: each caller waits for its own result.

Used where one operation on N items costs far less than N operations on one item: the decision
log's commits (``app.decision_log``) and the encoder's runs (``app.batcher``).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Optional

_STOP = object()


class BatchingWorker:
    """Items wait at most ``linger_s`` for company, then go together (up to ``max_batch``);
    while the worker is busy they pile up anyway. Subclasses implement ``handle``."""

    def __init__(self, name: str, max_batch: int, linger_s: float = 0.0, timeout_s: float = 30.0) -> None:
        self.name = name
        self.max_batch = max(1, max_batch)
        self.linger_s = max(0.0, linger_s)
        self.timeout_s = timeout_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self.batches = 0  # handled batches and items, for tests and metrics
        self.items = 0

    def handle(self, items: list) -> list:
        """One result per item, in order; raising fails the whole batch (see ``handle_failed``)."""
        raise NotImplementedError

    def handle_failed(self, items: list, error: Exception) -> list:
        """Results (or exceptions) per item after ``handle`` raised ``error``: by default, all fail."""
        return [error] * len(items)

    def submit(self, item: Any, deadline: Optional[float] = None) -> Any:
        """``item``'s result once its batch is handled; raises what handling it raised.

        With a ``deadline`` (monotonic time), an item still waiting then is withdrawn (it costs
        the worker nothing) and ``TimeoutError`` is raised."""
        self._ensure_thread()
        done: Future = Future()
        self._queue.put((item, done))
        wait = self.timeout_s if deadline is None else max(0.0, min(self.timeout_s, deadline - time.monotonic()))
        try:
            return done.result(timeout=wait)
        except FutureTimeout:
            if done.cancel():
                raise TimeoutError(f"{self.name}: not handled before the deadline") from None
            return done.result(timeout=self.timeout_s)  # already running: it will not be long

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(_STOP)
                self._thread.join(timeout=self.timeout_s)
                self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()

    def _collect(self, first) -> tuple[list, bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.max_batch:
            wait = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._collect(first)
            batch = [(item, done) for item, done in batch if done.set_running_or_notify_cancel()]  # withdrawn: skip
            if not batch:
                if stop:
                    return
                continue
            items = [item for item, _ in batch]
            try:
                results = self.handle(items)
                self.batches += 1
                self.items += len(items)
            except Exception as exc:  # noqa: BLE001 - every waiting caller gets an answer
                results = self.handle_failed(items, exc)
            for (_, done), result in zip(batch, results):
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)
            if stop:
                return
