"""The cascade's big tier on another KennelGate server: a frame this model is unsure of goes, as
bytes, to that server's ``POST /v1/classify`` (e.g. an open_clip model on a GPU box)."""

from __future__ import annotations

from index.decision import Decision
from kennelgate.pipeline import TierError


class RemoteTier:
    """Another KennelGate server as the big tier: the frame's bytes go to its ``POST /v1/classify``."""

    def __init__(self, url: str, token: str, timeout_s: float = 2.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url, timeout=timeout_s, headers={"Authorization": f"Bearer {token}"} if token else {}
        )

    def classify(self, data: bytes) -> Decision:
        import httpx

        try:
            r = self._client.post("/v1/classify", content=data, headers={"Content-Type": "application/octet-stream"})
        except httpx.HTTPError as exc:
            raise TierError(f"{type(exc).__name__} from {self.url}") from exc
        if r.status_code != 200:
            raise TierError(f"{self.url} answered {r.status_code}: {r.text[:200]}")
        try:
            return Decision.from_json(r.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise TierError(f"{self.url} answered something that is not a decision ({exc})") from exc

    def close(self) -> None:
        self._client.close()
