"""Camera faults, drift, alerts over real MQTT (Mosquitto on loopback) and webhooks, audited thresholds.

A real ``kennelgate serve`` subprocess with the real default model; a real broker; a real HTTP
receiver for the webhook.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import DATASETS, free_port, need_datasets
from tests.test_service import ADMIN, _kennel, _upload, _zip_folder

pytestmark = pytest.mark.integration
BROKER = ("127.0.0.1", 1883)
REFERENCE, WINDOW = 20, 10


def _broker_up() -> None:
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError:
        pytest.fail(f"an MQTT broker is expected at {BROKER[0]}:{BROKER[1]} (Mosquitto; .ci/run starts one)")


class Webhook:
    """A real HTTP endpoint that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Subscriber:
    def __init__(self, prefix: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, bool(m.retain)))
        self.client.connect(*BROKER)
        self.client.subscribe([(f"{prefix}/#", 1), ("homeassistant/binary_sensor/#", 1)])
        self.client.loop_start()

    def on(self, topic: str) -> list:
        return [p for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _dark(path) -> bytes:
    arr = np.asarray(Image.open(path).convert("RGB"), np.float32)
    return _jpeg(Image.fromarray((arr * 0.12).astype(np.uint8)))


def _photos(species: str) -> list:
    return sorted((DATASETS / "catsdogs" / species).iterdir())


def _kennel_with_gallery(c: httpx.Client, name: str, admits: list[str], per_species: int):
    """A kennel, its device token, cats and dogs indexed, and a function posting one frame."""
    kid, tok = _kennel(c, name, admits)
    _upload(c, "cat", [("c.zip", _zip_folder("cat", _photos("cat")[:per_species]))])
    _upload(c, "dog", [("d.zip", _zip_folder("dog", _photos("dog")[:per_species]))])
    return kid, tok, lambda data: c.post(f"/v1/kennels/{kid}/frames", content=data, headers=tok).json()


def _wait(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.fixture
def monitored(server_env, start_server):
    need_datasets()
    _broker_up()
    prefix = f"kgtest-{uuid.uuid4().hex[:8]}"
    hook, sub = Webhook(), Subscriber(prefix)
    env = {
        **server_env,
        "KENNELGATE_MQTT_URL": f"mqtt://{BROKER[0]}:{BROKER[1]}",
        "KENNELGATE_MQTT_PREFIX": prefix,
        "KENNELGATE_WEBHOOK_URLS": hook.url,
        "KENNELGATE_DRIFT_REFERENCE_FRAMES": str(REFERENCE),
        "KENNELGATE_DRIFT_WINDOW_FRAMES": str(WINDOW),
        "KENNELGATE_FAULT_ALERT_WINDOW": "10",
        "KENNELGATE_FAULT_ALERT_COUNT": "5",
        "KENNELGATE_HEALTH__FROZEN_FRAMES": "8",
    }
    srv = start_server(env)
    yield srv, prefix, hook, sub
    sub.close()
    hook.close()


def test_dark_frames_raise_camera_fault_and_drift_on_mqtt_and_webhook(monitored):
    srv, prefix, hook, sub = monitored
    cats, dogs = _photos("cat"), _photos("dog")
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        kid, tok, post = _kennel_with_gallery(c, "dogs", ["dog"], 60)

        # Reference: ordinary traffic, dogs and cats at the door.
        for f in (dogs[500:510] + cats[500:510]):
            r = post(f.read_bytes())
            assert r["health"] == "ok", r
        # The door opened for the dogs and closed for the cats: each change is a webhook event.
        assert _wait(lambda: any(m.get("event") == "door" and m["state"] == "open" and m["species"] == "dog"
                                 and m["frame_id"] and "animals" in m for m in hook.received)), hook.received
        assert _wait(lambda: any(m.get("event") == "door" and m["state"] == "closed" for m in hook.received))
        h = c.get(f"/v1/kennels/{kid}/health", headers=tok).json()  # the kennel's own device may look
        assert h["camera"]["state"] == "ok" and h["drift"]["state"] == "ok"
        assert h["drift"]["reference"]["frames"] == REFERENCE

        # The lights go out.
        drift_after = fault_after = None
        for i, f in enumerate(dogs[520:540], start=1):
            r = post(_dark(f))
            assert r["health"] == "dark" and r["decision"] == "closed" and r["species"] == "other", r
            state = c.get(f"/v1/kennels/{kid}/health", headers=ADMIN).json()
            if fault_after is None and state["camera"]["state"] == "fault":
                fault_after = i
            if drift_after is None and state["drift"]["state"] == "drifting":
                drift_after = i
        assert fault_after == 5, fault_after  # 5 faulty of the last 10 frames
        assert drift_after is not None and drift_after <= WINDOW, drift_after
        assert state["drift"]["shifts"]["fault"] > 0.25

        fault_topic, drift_topic = f"{prefix}/kennel/{kid}/fault", f"{prefix}/kennel/{kid}/drift"
        assert _wait(lambda: sub.on(fault_topic) and sub.on(drift_topic))
        fault_msg = json.loads(sub.on(fault_topic)[-1])
        assert fault_msg["state"] == "raised" and fault_msg["fault"] == "dark"
        assert json.loads(sub.on(drift_topic)[-1])["state"] == "raised"
        assert _wait(lambda: {(m["kind"], m["state"]) for m in hook.received} >= {("camera_fault", "raised"), ("drift", "raised")})
        assert f'kennelgate_kennel_drift{{kennel="{kid}"}} 1.0' in c.get("/metrics").text

        # Lights back on: the camera fault clears. Drift may stay (these dogs are not the
        # dogs-and-cats mix of the reference) until an admin starts a new reference.
        for f in dogs[540:552]:
            assert post(f.read_bytes())["health"] == "ok"
        assert _wait(lambda: json.loads(sub.on(fault_topic)[-1])["state"] == "cleared")
        assert c.post(f"/v1/kennels/{kid}/health/reset", headers=tok).status_code == 403
        fresh = c.post(f"/v1/kennels/{kid}/health/reset", headers=ADMIN).json()["drift"]
        assert fresh["state"] == "ok" and fresh["reference"]["frames"] == 0
        assert _wait(lambda: json.loads(sub.on(drift_topic)[-1])["state"] == "cleared")

        # Everything also went to the decision log, the alert history and Prometheus.
        dark = c.get("/v1/decisions", params={"kennel_id": kid, "health": "dark"}, headers=ADMIN).json()
        assert len(dark) == 20
        kinds = [(a["kind"], a["state"]) for a in c.get("/v1/alerts", params={"kennel_id": kid}, headers=ADMIN).json()]
        assert set(kinds) == {("camera_fault", "raised"), ("camera_fault", "cleared"), ("drift", "raised"), ("drift", "cleared")}
        metrics = c.get("/metrics").text
        assert f'kennelgate_health_faults_total{{fault="dark",kennel="{kid}"}} 20.0' in metrics
        assert f'kennelgate_kennel_drift{{kennel="{kid}"}} 0.0' in metrics

    # Home-automation view: per-frame decisions, retained door state, discovery configs, availability.
    assert len(sub.on(f"{prefix}/kennel/{kid}/decision")) >= 50
    assert sub.on(f"{prefix}/kennel/{kid}/door")[-1] in (b"open", b"closed")
    assert any(t == f"homeassistant/binary_sensor/kennelgate_{kid}_door/config" for t, _, _ in sub.messages)
    assert sub.on(f"{prefix}/status")[0] == b"online"


def test_foreign_animals_raise_drift_and_a_frozen_feed_is_caught(monitored):
    srv, prefix, hook, sub = monitored
    cats, dogs, others = _photos("cat"), _photos("dog"), sorted((DATASETS / "others").iterdir())
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        kid, tok, post = _kennel_with_gallery(c, "cats", ["cat"], 60)
        for f in (cats[600:610] + dogs[600:610]):
            post(f.read_bytes())
        drift_after = None
        for i, f in enumerate(others[:WINDOW * 2], start=1):
            post(f.read_bytes())
            if drift_after is None and c.get(f"/v1/kennels/{kid}/health", headers=ADMIN).json()["drift"]["state"] == "drifting":
                drift_after = i
        assert drift_after is not None and drift_after <= WINDOW, drift_after
        shifted = next(m for m in hook.received if m["kind"] == "drift" and m["kennel_id"] == kid)["shifted"]
        assert "other" in shifted or "score_ks" in shifted, shifted

        # A camera stuck on one picture: caught after 8 identical frames (the setting), door shut.
        frame = cats[700].read_bytes()
        answers = [post(frame) for _ in range(10)]
        assert [a["health"] for a in answers[:7]] == ["ok"] * 7
        assert all(a["health"] == "frozen" and a["decision"] == "closed" for a in answers[7:]), answers[7:]


def test_manual_thresholds_change_at_run_time_and_are_audited(monitored):
    srv, _, _, _ = monitored
    dogs = _photos("dog")
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        kid, tok, _ = _kennel_with_gallery(c, "dogs", ["dog"], 40)
        frame = dogs[800].read_bytes()
        assert c.post(f"/v1/kennels/{kid}/frames", content=frame, headers=tok).json()["species"] == "dog"

        # Per kennel: an impossible threshold refuses dogs from the next frame on, no restart.
        r = c.patch(f"/v1/kennels/{kid}", json={"thresholds": {"dog": 0.99}}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["thresholds"] == {"dog": 0.99}
        res = c.post(f"/v1/kennels/{kid}/frames", content=frame, headers=tok).json()
        assert res["species"] == "other" and "below threshold 0.990" in res["reason"], res
        # Per species (every kennel), and the gate per kennel (an IR camera is darker).
        assert c.patch("/v1/species/dog", json={"threshold": 0.2}, headers=ADMIN).status_code == 200
        assert c.patch(f"/v1/kennels/{kid}", json={"health": {"dark_p95": 5}}, headers=ADMIN).status_code == 200
        assert c.patch(f"/v1/kennels/{kid}", json={"health": {"darkness": 5}}, headers=ADMIN).status_code == 422
        assert c.patch(f"/v1/kennels/{kid}", json={"health": {"dark_p95": "x"}}, headers=ADMIN).status_code == 422
        dim = _dark(dogs[801])
        assert c.post(f"/v1/kennels/{kid}/frames", content=dim, headers=tok).json()["health"] != "dark"
        assert c.get(f"/v1/kennels/{kid}/health", headers=ADMIN).json()["gate"]["dark_p95"] == 5

        trail = c.get("/v1/audit/thresholds", headers=ADMIN).json()
        assert [(t["scope"], t["target"], t["field"]) for t in trail] == [
            ("kennel", str(kid), "health"), ("species", "dog", "threshold"), ("kennel", str(kid), "thresholds"),
        ]
        assert trail[2]["old"] == {} and trail[2]["new"] == {"dog": 0.99}
        assert trail[1]["old"] is None and trail[1]["new"] == {"value": 0.2}
        assert all(t["actor"] == "bootstrap admin token" and t["created_at"] for t in trail)
        assert c.get("/v1/audit/thresholds", headers=tok).status_code == 403


def test_motion_gating_reuses_the_answer_while_the_scene_is_still(server_env, start_server):
    """A live camera on a still scene: new sensor noise every frame, one encoder run per N frames."""
    need_datasets()
    srv = start_server({**server_env, "KENNELGATE_MOTION_MAX_SKIP": "5"})
    cats, dogs = _photos("cat"), _photos("dog")
    rng = np.random.default_rng(0)
    base = np.asarray(Image.open(dogs[850]).convert("RGB"), np.float32)
    still = [_jpeg(Image.fromarray(np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8))) for _ in range(12)]
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        kid, tok, _ = _kennel_with_gallery(c, "dogs", ["dog"], 40)
        answers = [c.post(f"/v1/kennels/{kid}/frames", content=f, headers=tok).json() for f in still]
        assert [a["reused"] for a in answers] == [False] + [True] * 5 + [False] + [True] * 5
        assert {a["species"] for a in answers} == {"dog"} and all(a["health"] == "ok" for a in answers)
        assert answers[2]["decision"] == "open"  # reused votes count in the door window like fresh ones
        assert "scene unchanged since frame" in answers[1]["reason"]
        # Something moves: the full pipeline runs at once.
        moved = c.post(f"/v1/kennels/{kid}/frames", content=cats[850].read_bytes(), headers=tok).json()
        assert moved["reused"] is False and moved["decision"] == "closed"
        log = c.get("/v1/decisions", params={"kennel_id": kid, "limit": 20}, headers=ADMIN).json()
        assert sum(d["reused"] for d in log) == 10
        assert f'kennelgate_frames_reused_total{{kennel="{kid}"}} 10.0' in c.get("/metrics").text


def _noisy(path, n: int, seed: int = 0) -> list[bytes]:
    """A live camera on a still scene: the same view, new sensor noise in every frame."""
    rng = np.random.default_rng(seed)
    base = np.asarray(Image.open(path).convert("RGB"), np.float32)
    return [_jpeg(Image.fromarray(np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8))) for _ in range(n)]


def test_an_idle_doorway_is_sampled_and_an_arriving_dog_still_opens_the_door(server_env, start_server):
    """An empty doorway answered `other` goes idle: 2 of 3 frames are answered unseen, the forced
    re-check comes 3× less often, and a dog that walks in is seen within 2 frames."""
    need_datasets()
    env = {**server_env, "KENNELGATE_MOTION_MAX_SKIP": "6", "KENNELGATE_MOTION_IDLE_AFTER": "3",
           "KENNELGATE_MOTION_IDLE_EVERY": "3"}
    srv = start_server(env)
    doorway = _noisy(DATASETS / "others_objects" / "n03220513_dome.JPEG", 22)
    dog = _noisy(_photos("dog")[850], 8, seed=1)
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        kid, tok, post = _kennel_with_gallery(c, "idle", ["dog"], 40)
        answers = [post(f) for f in doorway]
        kinds = "".join("u" if "not examined" in a["reason"] else "r" if a["reused"] else "c" for a in answers)
        assert kinds == "crrr" + "uur" * 5 + "c" + "uu", kinds
        assert all(a["decision"] == "closed" and a["species"] == answers[0]["species"] != "dog" for a in answers)
        arrived = [post(f) for f in dog]
        first_seen = next(i for i, a in enumerate(arrived) if not a["reused"])
        opened = next(i for i, a in enumerate(arrived) if a["decision"] == "open")
        assert first_seen <= 2 and arrived[first_seen]["species"] == "dog"
        # The door's rule, not the sampling, sets the rest: 3 of 5 for the dog and no `other` vote left.
        assert opened == first_seen + 4
        assert not any(a["reused"] and "not examined" in a["reason"] for a in arrived[first_seen:])
        log = c.get("/v1/decisions", params={"kennel_id": kid, "limit": 100}, headers=ADMIN).json()
        assert len(log) == len(doorway) + len(dog)  # unseen frames are logged like any other


def test_websocket_stream_answers_each_frame_in_order_and_ends_on_revocation(server_env, start_server):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    need_datasets()
    srv = start_server(server_env)
    ws_url = srv.url.replace("http", "ws", 1)
    frames = [f.read_bytes() for f in _photos("dog")[860:864]] + [_photos("cat")[860].read_bytes()]
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        kid, tok, post = _kennel_with_gallery(c, "stream", ["dog"], 40)
        other_kid, other_tok = _kennel(c, "stream-other", ["cat"])
        with connect(f"{ws_url}/v1/kennels/{kid}/stream", additional_headers=tok, compression=None) as ws:
            for f in frames:  # pipelined: every frame sent before any answer is read
                ws.send(f)
            answers = [json.loads(ws.recv(timeout=60)) for _ in frames]
            assert [a["decision"] for a in answers] == ["closed", "closed", "open", "open", "closed"]
            assert [a["species"] for a in answers] == ["dog"] * 4 + ["cat"]
            assert set(answers[0]) == set(post(frames[0]))  # the same answer as POST …/frames
            from app.schemas import FrameOut

            for a in answers:  # both endpoints return it unvalidated: it must match the documented schema
                FrameOut.model_validate(a)
            ws.send("not a frame")
            assert "binary message" in json.loads(ws.recv(timeout=10))["error"]
            ws.send(b"not an image")
            bad = json.loads(ws.recv(timeout=10))
            assert bad["decision"] == "closed" and bad["reason"].startswith("bad frame")
            token_id = c.get(f"/v1/kennels/{kid}/tokens", headers=ADMIN).json()[0]["id"]
            assert c.delete(f"/v1/tokens/{token_id}", headers=ADMIN).status_code == 204
            ws.send(frames[0])
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1008
        # Another kennel's token, or none, never gets a stream.
        for headers in (other_tok, {}):
            with pytest.raises(Exception) as refused:
                with connect(f"{ws_url}/v1/kennels/{kid}/stream", additional_headers=headers) as ws:
                    ws.recv(timeout=10)
            assert "1008" in str(refused.value) or "403" in str(refused.value)
        logged = c.get("/v1/decisions", params={"kennel_id": kid, "limit": 50}, headers=ADMIN).json()
        assert len(logged) == len(frames) + 2  # the stream's frames, the bad one, and the POST


def test_websocket_stream_skips_stale_frames_when_the_device_sends_too_fast(server_env, start_server):
    from websockets.sync.client import connect

    need_datasets()
    srv = start_server({**server_env, "KENNELGATE_STREAM_BACKLOG": "1"})
    frames = [f.read_bytes() for f in _photos("dog")[870:894]]  # distinct scenes: each needs the encoder
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        kid, tok, _ = _kennel_with_gallery(c, "flood", ["dog"], 40)
        with connect(f"{srv.url.replace('http', 'ws', 1)}/v1/kennels/{kid}/stream", additional_headers=tok, compression=None) as ws:
            for f in frames:  # far faster than the server decides
                ws.send(f)
            answers = [json.loads(ws.recv(timeout=60)) for _ in frames]
        skipped = [a for a in answers if a.get("skipped")]
        decided = [a for a in answers if not a.get("skipped")]
        assert skipped and all("newer frames" in a["error"] and "decision" not in a for a in skipped)
        assert not answers[-1].get("skipped")  # the newest frame is always decided
        assert all(a["species"] == "dog" for a in decided)
        logged = c.get("/v1/decisions", params={"kennel_id": kid, "limit": 50}, headers=ADMIN).json()
        assert len(logged) == len(decided)  # skipped frames were never decided
        metrics = c.get("/metrics").text
        assert f'kennelgate_frames_skipped_total{{kennel="{kid}"}} {float(len(skipped))}' in metrics
