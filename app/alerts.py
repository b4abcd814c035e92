"""Outbound events: MQTT (per-kennel topics, Home Assistant discovery) and webhooks.

Nothing here may slow a frame down or fail it: MQTT publishing is paho's own background loop,
webhooks go through a queue to one sender thread, and every error is logged and counted.

Topics (prefix ``kennelgate`` by default):
  <prefix>/status                      online | offline (retained; the broker sends offline if we die)
  <prefix>/kennel/<id>/decision        one JSON message per frame
  <prefix>/kennel/<id>/door            open | closed (retained, on change)
  <prefix>/kennel/<id>/fault           JSON {"state": "raised"|"cleared", ...} (retained)
  <prefix>/kennel/<id>/drift           JSON {"state": "raised"|"cleared", ...} (retained)
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlparse

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertEvent:
    kennel_id: int
    kind: str  # "camera_fault" | "drift"
    state: str  # "raised" | "cleared"
    detail: dict

    def payload(self) -> dict:
        return {"kennel_id": self.kennel_id, "kind": self.kind, "state": self.state, "at": time.time(), **self.detail}


class MqttPublisher:
    """A paho-mqtt client with a last will, reconnecting on its own background loop."""

    def __init__(self, url: str, prefix: str = "kennelgate", client_id: str = "", discovery: bool = True) -> None:
        import paho.mqtt.client as mqtt

        u = urlparse(url if "://" in url else f"mqtt://{url}")
        self.prefix = prefix.rstrip("/")
        self.discovery = discovery
        self._announced: set[int] = set()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "")
        if u.username:
            self.client.username_pw_set(u.username, u.password)
        if u.scheme == "mqtts":
            self.client.tls_set()
        self.client.will_set(f"{self.prefix}/status", "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(1, 30)
        self.client.connect_async(u.hostname or "127.0.0.1", u.port or (8883 if u.scheme == "mqtts" else 1883), 30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties=None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connect refused: %s", reason)
            return
        client.publish(f"{self.prefix}/status", "online", qos=1, retain=True)

    def topic(self, kennel_id: int, leaf: str) -> str:
        return f"{self.prefix}/kennel/{kennel_id}/{leaf}"

    def publish(self, topic: str, payload, retain: bool = False, qos: int = 0) -> None:
        data = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        self.client.publish(topic, data, qos=qos, retain=retain)

    def announce(self, kennel_id: int, name: str) -> None:
        """Home Assistant MQTT discovery: the door, camera fault and drift as binary sensors."""
        if not self.discovery or kennel_id in self._announced:
            return
        self._announced.add(kennel_id)
        device = {"identifiers": [f"kennelgate_{kennel_id}"], "name": f"KennelGate {name}", "manufacturer": "KennelGate"}
        sensors = {
            "door": {"state_topic": self.topic(kennel_id, "door"), "payload_on": "open", "payload_off": "closed",
                     "device_class": "door"},
            "fault": {"state_topic": self.topic(kennel_id, "fault"), "value_template": "{{ value_json.state }}",
                      "payload_on": "raised", "payload_off": "cleared", "device_class": "problem"},
            "drift": {"state_topic": self.topic(kennel_id, "drift"), "value_template": "{{ value_json.state }}",
                      "payload_on": "raised", "payload_off": "cleared", "device_class": "problem"},
        }
        for leaf, cfg in sensors.items():
            uid = f"kennelgate_{kennel_id}_{leaf}"
            cfg.update(name=f"{name} {leaf}", unique_id=uid, device=device,
                       availability_topic=f"{self.prefix}/status")
            self.publish(f"homeassistant/binary_sensor/{uid}/config", cfg, retain=True, qos=1)

    def close(self) -> None:
        try:
            self.client.publish(f"{self.prefix}/status", "offline", qos=1, retain=True).wait_for_publish(2)
        except Exception:  # noqa: BLE001 - shutting down; the will covers us
            pass
        self.client.loop_stop()
        self.client.disconnect()


class WebhookSender:
    """POSTs alert JSON to each URL from one background thread, retrying with backoff."""

    def __init__(self, urls: list[str], timeout: float = 5.0, retries: int = 3) -> None:
        self.urls = urls
        self.retries = retries
        self._client = httpx.Client(timeout=timeout)
        self._queue: queue.Queue[Optional[dict]] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def send(self, payload: dict) -> None:
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            log.error("webhook queue full; alert dropped: %s", payload)

    def _run(self) -> None:
        while (payload := self._queue.get()) is not None:
            for url in self.urls:
                for attempt in range(self.retries):
                    try:
                        self._client.post(url, json=payload).raise_for_status()
                        break
                    except httpx.HTTPError as exc:
                        log.warning("webhook %s failed (attempt %d): %s", url, attempt + 1, exc)
                        time.sleep(0.5 * 2**attempt)
                else:
                    log.error("webhook %s: alert not delivered after %d attempts", url, self.retries)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._client.close()


DOOR_EVENT_FIELDS = ("frame_id", "species", "score", "reason", "override", "animals", "people")


class Notifier:
    """What the frame path and the monitors call; routes to MQTT and webhooks as configured."""

    def __init__(self, mqtt: Optional[MqttPublisher], webhook: Optional[WebhookSender], decisions: bool = True) -> None:
        self.mqtt = mqtt
        self.webhook = webhook
        self.decisions = decisions
        self._door: dict[int, str] = {}

    def frame(self, kennel_id: int, kennel_name: str, record: dict) -> None:
        """Every decision on MQTT (when enabled); a door that changes on MQTT (retained) and, as a
        ``door`` event with the frame that changed it (species, reason, animals and people in
        view), on the webhooks."""
        door, before = record["decision"], self._door.get(kennel_id)
        changed = before != door
        self._door[kennel_id] = door
        if changed and self.webhook is not None and (before is not None or door == "open"):  # not "closed" at start
            self.webhook.send({"event": "door", "kind": "door", "state": door, "kennel_id": kennel_id,
                               "kennel": kennel_name, **{k: record.get(k) for k in DOOR_EVENT_FIELDS}})
        if self.mqtt is None:
            return
        try:
            self.mqtt.announce(kennel_id, kennel_name)
            if self.decisions:
                self.mqtt.publish(self.mqtt.topic(kennel_id, "decision"), record)
            if changed:
                self.mqtt.publish(self.mqtt.topic(kennel_id, "door"), door, retain=True, qos=1)
        except Exception:  # noqa: BLE001 - a broker problem must never reach the frame
            log.exception("MQTT publish failed")

    def alert(self, event: AlertEvent) -> None:
        payload = event.payload()
        if self.mqtt is not None:
            leaf = "fault" if event.kind == "camera_fault" else "drift"
            try:
                self.mqtt.publish(self.mqtt.topic(event.kennel_id, leaf), payload, retain=True, qos=1)
            except Exception:  # noqa: BLE001
                log.exception("MQTT alert publish failed")
        if self.webhook is not None:
            self.webhook.send(payload)

    def staff(self, kennel_id: int, leaf: str, payload: dict, retain: bool = False) -> None:
        """A staff action (``override``, ``label``): MQTT ``<prefix>/kennel/<id>/<leaf>`` and webhooks."""
        payload = {"event": leaf, "kennel_id": kennel_id, **payload}
        if self.mqtt is not None:
            try:
                self.mqtt.publish(self.mqtt.topic(kennel_id, leaf), payload, retain=retain, qos=1)
            except Exception:  # noqa: BLE001
                log.exception("MQTT %s publish failed", leaf)
        if self.webhook is not None:
            self.webhook.send(payload)

    def close(self) -> None:
        if self.mqtt is not None:
            self.mqtt.close()
        if self.webhook is not None:
            self.webhook.close()
