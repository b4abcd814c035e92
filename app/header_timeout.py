"""HTTP/1.1 connections must send a request's head within a deadline (slowloris guard).

uvicorn closes idle keep-alive connections, but a client that opens a connection and sends a
request line and headers a byte at a time holds its socket forever. This protocol (uvicorn's
httptools one, which ``uvicorn[standard]`` uses) starts a timer when a connection opens and when
a request begins, stops it when the head is complete, and answers 408 and closes when it fires.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

RESPONSE_408 = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0

    _head_timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        self._arm()  # not re-armed per byte: dribbling a head does not buy time
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.write(RESPONSE_408)
            self.transport.close()


def protocol(header_timeout: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for ``uvicorn.run(http=…)`` with this deadline in seconds."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout})
