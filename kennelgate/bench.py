"""Throughput of each pipeline stage, and of model variants side by side, against PyTorch eager
fp32 of the same encoder measured in the same run."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from embedder.batch import embed_sources
from embedder.export.recipes import torch_module
from embedder.runtime import Encoder
from index.decision import Decider

BATCHES = (1, 8)


def _rate(fn: Callable[[], int], min_seconds: float = 1.5) -> float:
    """Images per second of ``fn`` (which returns how many images it processed), after a warm-up."""
    fn()
    done, start = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def onnx_rows(enc: Encoder, decider: Decider, files: Sequence[Path], batches=BATCHES) -> list[dict]:
    """decode, encoder, search and end-to-end images/s of one encoder."""
    decoded = [enc.load(f) for f in files]
    rows: list[dict] = []

    def add(stage: str, batch: int, ips: float) -> None:
        rows.append({"stage": stage, "batch": batch, "ips": ips})

    def decode_all() -> int:
        for f in files:
            enc.preprocess([enc.load(f)])
        return len(files)

    add("decode+preprocess", 1, _rate(decode_all))
    tensors = {b: enc.preprocess(decoded[:b]) for b in batches}
    vectors = enc.run(enc.preprocess(decoded)).vectors
    for b in batches:
        add("encoder", b, _rate(lambda b=b: (enc.run(tensors[b]), b)[1]))
    for b in batches:
        add("search+decision", b, _rate(lambda b=b: (decider.decide(vectors[:b]), b)[1]))
    for b in batches:
        def end_to_end(b=b) -> int:
            for i in range(0, len(files), b):
                decider.decide(embed_sources(enc, files[i : i + b], batch_size=b, workers=1 if b == 1 else 2).vectors)
            return len(files)

        add("end to end", b, _rate(end_to_end))
    return rows


def torch_rows(module, enc: Encoder, decider: Decider, files: Sequence[Path], threads: int, batches=BATCHES) -> list[dict]:
    """The baseline: the same encoder in PyTorch eager fp32, same preprocessing and decision."""
    import torch

    torch.set_num_threads(max(1, threads or os.cpu_count() or 1))
    decoded = [enc.load(f) for f in files]
    rows = []
    for b in batches:
        x = torch.from_numpy(enc.preprocess(decoded[:b]))
        with torch.inference_mode():
            rows.append({"stage": "encoder", "batch": b, "ips": _rate(lambda x=x, b=b: (module(x), b)[1])})
    for b in batches:
        def torch_e2e(b=b) -> int:
            with torch.inference_mode():
                for i in range(0, len(files), b):
                    x = torch.from_numpy(enc.preprocess([enc.load(f) for f in files[i : i + b]]))
                    out = module(x)
                    emb = (out[0] if isinstance(out, tuple) else out).numpy()
                    decider.decide(emb / np.linalg.norm(emb, axis=1, keepdims=True))
            return len(files)

        rows.append({"stage": "end to end", "batch": b, "ips": _rate(torch_e2e)})
    return rows


def frame_rows(engine, files: Sequence[Path], frames: int = 64) -> list[dict]:
    """Frames/s of one camera through the service's frame pipeline (motion gate, health gate,
    encoder, decision, head count), on a still scene (one animal, fixed framing, sensor noise:
    the motion gate reuses answers) and on a moving one (a new animal every frame, shifted and
    re-exposed), with the head count off and, when the detector is installed, on: what the head
    count costs per frame."""
    from kennelgate.motion import MotionGate
    from kennelgate.pipeline import Camera
    from kennelgate.visits import live_frame

    s = engine.settings
    rng = np.random.default_rng(0)
    photos = [engine.encoder.load(f).convert("RGB") for f in files]
    still = np.asarray(photos[0].resize((426, 320)), np.float32)
    scenes = {"still scene": [_jpeg(still + rng.normal(0, 2.0, still.shape)) for _ in range(frames)],
              "moving scene": [live_frame(photos[i % len(photos)], rng, (426, 320)) for i in range(frames)]}
    modes = ["off"] + (["on"] if s.head_count != "off" and engine.animal_detector is not None else [])
    rows = []
    for mode in modes:
        pipeline = engine.pipeline()
        if mode == "off":
            pipeline.counter = None
        for scene, data in scenes.items():
            def run(data=data) -> int:
                camera = Camera(MotionGate(s.motion_threshold, s.motion_max_skip, s.motion_idle_after, s.motion_idle_every))
                for d in data:
                    pipeline.run([d], [camera], s.health, max_animals=s.max_animals, people_block=s.people_block)
                return len(data)

            rows.append({"stage": f"camera frames, {scene} (head count {mode})", "batch": 1, "ips": _rate(run)})
    return rows


def _jpeg(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def with_ratios(rows: list[dict], base: list[dict]) -> list[dict]:
    ref = {(r["stage"], r["batch"]): r["ips"] for r in base}
    for r in rows:
        if (r["stage"], r["batch"]) in ref:
            r["ratio"] = r["ips"] / ref[(r["stage"], r["batch"])]
    return rows


def run_bench(engine, files: Sequence[Path], baseline: bool = True, batches=BATCHES) -> list[dict]:
    """The engine's own encoder and gallery, stage by stage, plus the torch eager baseline."""
    enc, decider = engine.encoder, engine.decider
    rows = [{**r, "stage": r["stage"] + (" (onnxruntime)" if r["stage"] == "encoder" else "")}
            for r in onnx_rows(enc, decider, files, batches)]
    module = torch_module(enc.spec) if baseline else None
    if module is not None:
        base = torch_rows(module, enc, decider, files, engine.settings.threads, batches)
        ref = {(r["stage"], r["batch"]): r["ips"] for r in base}
        for r in rows:
            key = (r["stage"].replace(" (onnxruntime)", ""), r["batch"])
            if key in ref:
                r["ratio"] = r["ips"] / ref[key]
        rows += [{**r, "stage": f"{r['stage']} (torch eager fp32)"} for r in base]
    return rows + frame_rows(engine, files)


@dataclass(frozen=True)
class Variant:
    model: str
    providers: str = "cpu"

    @classmethod
    def parse(cls, text: str) -> "Variant":
        model, _, providers = text.partition("@")
        return cls(model.strip(), providers.strip() or "cpu")

    @property
    def label(self) -> str:
        return f"{self.model} @ {self.providers}"
