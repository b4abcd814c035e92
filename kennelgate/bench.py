"""Throughput of each pipeline stage, against PyTorch eager fp32 of the same encoder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from embedder.batch import embed_sources


def _rate(fn: Callable[[], int], min_seconds: float = 1.5) -> float:
    """Images per second of ``fn`` (which returns how many images it processed), after a warm-up."""
    fn()
    done, start = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def torch_eager_module(spec):
    """The torch module the ONNX model was exported from, or None if torch or the recipe is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    if spec.name == "efficientnet-lite0":
        from embedder.export import efficientnet_lite

        return efficientnet_lite.build()[0].eval()
    if "open_clip_model" in spec.extra:
        from embedder.export import open_clip_tower

        tag = spec.extra.get("pretrained")
        return open_clip_tower.build(spec.extra["open_clip_model"], None if tag == "random-init" else tag)[0].eval()
    return None


def run_bench(engine, files: Sequence[Path], baseline: bool = True, batches=(1, 8)) -> list[dict]:
    enc = engine.encoder
    decider = engine.decider
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
        add("encoder (onnxruntime)", b, _rate(lambda b=b: (enc.run(tensors[b]), b)[1]))
    for b in batches:
        add("search+decision", b, _rate(lambda b=b: (decider.decide(vectors[:b]), b)[1]))
    for b in batches:
        def end_to_end(b=b) -> int:
            for i in range(0, len(files), b):
                decider.decide(embed_sources(enc, files[i : i + b], batch_size=b, workers=1 if b == 1 else 2).vectors)
            return len(files)

        add("end to end", b, _rate(end_to_end))

    module = torch_eager_module(enc.spec) if baseline else None
    if module is not None:
        import torch

        torch.set_num_threads(max(1, engine.settings.threads or __import__("os").cpu_count() or 1))
        for b in batches:
            x = torch.from_numpy(tensors[b])
            with torch.inference_mode():
                ips = _rate(lambda x=x, b=b: (module(x), b)[1])
            add("encoder (torch eager fp32)", b, ips)
        for b in batches:
            def torch_e2e(b=b) -> int:
                with torch.inference_mode():
                    for i in range(0, len(files), b):
                        x = torch.from_numpy(enc.preprocess([enc.load(f) for f in files[i : i + b]]))
                        out = module(x)
                        emb = (out[0] if isinstance(out, tuple) else out).numpy()
                        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
                        decider.decide(emb)
                return len(files)

            add("end to end (torch eager fp32)", b, _rate(torch_e2e))
        base = {(r["stage"].replace(" (torch eager fp32)", ""), r["batch"]): r["ips"] for r in rows if "torch eager" in r["stage"]}
        for r in rows:
            key = (r["stage"].replace(" (onnxruntime)", ""), r["batch"])
            if key in base and "torch" not in r["stage"]:
                r["ratio"] = r["ips"] / base[key]
    return rows
