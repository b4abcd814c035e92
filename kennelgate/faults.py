"""Fault injection for crash tests: ``KENNELGATE_CRASH_AT=<point>`` kills the process at that point.

A crash test runs a real command with the variable set and checks that what the crash left
behind is consistent after a restart. Unset (always, outside tests) it costs one dict lookup.
"""

from __future__ import annotations

import os

CRASH_EXIT = 70  # the exit status of an injected crash, so a test can tell it from a failure


def crash_point(name: str) -> None:
    if os.environ.get("KENNELGATE_CRASH_AT") == name:
        os._exit(CRASH_EXIT)  # no cleanup, no finally blocks: as kill -9 would leave it
