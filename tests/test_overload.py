"""Overload and oversized frames through a real server: refused at once or answered late-and-closed,
never queued into a stale answer; the decision log says what the device was told."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.conftest import DATASETS, need_datasets
from tests.test_service import ADMIN, _kennel

pytestmark = pytest.mark.integration


def _frame() -> bytes:
    return sorted((DATASETS / "catsdogs" / "cat").iterdir())[0].read_bytes()


def test_a_frame_past_its_deadline_is_answered_503_and_logged_closed(server_env, start_server):
    need_datasets()
    srv = start_server({**server_env, "KENNELGATE_FRAME_DEADLINE_MS": "0.001"})
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        kid, token = _kennel(c, "late", ["cat"])
        r = c.post(f"/v1/kennels/{kid}/frames", content=_frame(), headers={**token, "Content-Type": "image/jpeg"})
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        body = r.json()
        assert body["decision"] == "closed" and body["error"] == "late" and "not decided within" in body["reason"]
        rows = c.get("/v1/decisions", params={"kennel_id": kid}, headers=ADMIN).json()
        assert [(x["frame_id"], x["door"], x["error"]) for x in rows] == [(body["frame_id"], "closed", True)]


def test_frames_beyond_the_in_flight_bound_are_refused_at_once_and_health_answers(server_env, start_server):
    need_datasets()
    srv = start_server({**server_env, "KENNELGATE_FRAMES_IN_FLIGHT_PER_KENNEL": "1"})
    data = _frame()
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        kid, token = _kennel(c, "busy", ["cat"])
        answers: list[tuple[int, str, float]] = []

        def send() -> None:
            t0 = time.monotonic()
            r = httpx.post(f"{srv.url}/v1/kennels/{kid}/frames", content=data,
                           headers={**token, "Content-Type": "image/jpeg"}, timeout=30)
            answers.append((r.status_code, r.headers.get("Retry-After", ""), time.monotonic() - t0))

        threads = [threading.Thread(target=send) for _ in range(12)]
        [t.start() for t in threads]
        t0 = time.monotonic()
        assert c.get("/healthz", timeout=5).status_code == 200
        health_s = time.monotonic() - t0
        [t.join() for t in threads]
    codes = sorted(code for code, _, _ in answers)
    # No index yet: admitted frames are answered 503 "no_index"; the excess is refused with 429.
    assert set(codes) <= {429, 503} and 503 in codes and 429 in codes, codes
    assert all(retry == "1" for code, retry, _ in answers if code == 429)
    assert health_s < 1.0


def test_oversized_frames_are_refused_before_they_are_parsed_or_spooled(server_env, start_server):
    need_datasets()
    srv = start_server({**server_env, "KENNELGATE_MAX_BYTES": "50000"})
    big = b"\xff\xd8" + b"\0" * 200_000
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        kid, token = _kennel(c, "small", ["cat"])
        url = f"/v1/kennels/{kid}/frames"
        r = c.post(url, files={"file": ("f.jpg", big, "image/jpeg")}, headers=token)
        assert r.status_code == 413, r.text
        r = c.post(url, content=iter([big[:100_000], big[100_000:]]), headers={**token, "Content-Type": "image/jpeg"})
        assert r.status_code == 413, r.text  # chunked, no Content-Length: stopped while reading
        r = c.post(url, files={"file": ("f.jpg", _frame()[:40_000], "image/jpeg")}, headers=token)
        assert r.status_code in (422, 503) and r.json()["error"] in ("bad_frame", "no_index"), r.text


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off_with_408(server_env, start_server):
    """Slow headers: the head must be complete within header_timeout_s however it is dribbled;
    a connection that sends nothing is closed too, and other clients are served meanwhile."""
    import socket

    srv = start_server({**server_env, "KENNELGATE_HEADER_TIMEOUT_S": "1"})
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Pad-%d: y\r\n" % i for i in range(40))
    slow = socket.create_connection(("127.0.0.1", srv.port))
    silent = socket.create_connection(("127.0.0.1", srv.port))
    slow.settimeout(0.05)
    start, got = time.monotonic(), b""
    try:
        for byte in head:  # 3 bytes a second would take > 2 min; the server cuts it off at ~1 s
            try:
                slow.send(bytes([byte]))
            except OSError:
                break
            try:
                chunk = slow.recv(1024)
            except socket.timeout:
                chunk = None
            if chunk is not None:
                got += chunk
                break
            assert httpx.get(srv.url + "/healthz", timeout=2).status_code == 200 if byte == ord("\n") else True
            time.sleep(0.3)
        elapsed = time.monotonic() - start
        assert got.startswith(b"HTTP/1.1 408"), got
        assert 0.9 <= elapsed <= 3.0
        silent.settimeout(3)
        assert silent.recv(1024).startswith(b"HTTP/1.1 408")
    finally:
        slow.close()
        silent.close()
    # A whole head in time is served, on the same server, after all that.
    with socket.create_connection(("127.0.0.1", srv.port)) as ok:
        ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ok.settimeout(5)
        assert ok.recv(1024).startswith(b"HTTP/1.1 200")


def _read_response(sock) -> bytes:
    """Head and body of one HTTP response: they may come in separate segments."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_frame_body_dribbled_past_the_deadline_is_refused_and_frees_its_slot(server_env, start_server):
    import socket

    srv = start_server({**server_env, "KENNELGATE_FRAMES_IN_FLIGHT_PER_KENNEL": "1"})
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        kid, token = _kennel(c, "slow body", ["cat"])
        head = (f"POST /v1/kennels/{kid}/frames HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                f"Authorization: {token['Authorization']}\r\nContent-Length: 100000\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", srv.port)) as slow:
            slow.sendall(head + b"\xff\xd8")
            start = time.monotonic()
            slow.settimeout(5)
            answer = _read_response(slow)
            assert answer.startswith(b"HTTP/1.1 503") and b'"error":"late"' in answer, answer
            assert time.monotonic() - start <= 2.0
        # The kennel's one slot is free again: the next frame is taken (this server has no index yet).
        r = c.post(f"/v1/kennels/{kid}/frames", content=_frame(), headers={**token, "Content-Type": "image/jpeg"})
        assert r.status_code != 429 and r.json()["error"] == "no_index", r.text
