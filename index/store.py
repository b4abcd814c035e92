"""Versioned on-disk gallery.

    <dir>/versions/v000007/{vectors.npy, photos.json, manifest.json}
    <dir>/CURRENT            → "v000007"

A version directory is written under a temporary name and renamed into place; ``CURRENT`` is
then replaced atomically. A crash at any point leaves the previous version in use.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from index.calibration import Calibration
from index.gallery import Gallery, SpeciesPhotos
from kennelgate.atomic import staged_dir, write_text_atomic

FORMAT = 1


class GalleryError(RuntimeError):
    """The stored gallery cannot be used as asked (missing, other model, damaged)."""


@dataclass
class Snapshot:
    gallery: Gallery
    calibration: Calibration
    version: str


class GalleryStore:
    def __init__(self, root: Path, keep: int = 5) -> None:
        self.root = Path(root)
        self.keep = keep

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def current_version(self) -> Optional[str]:
        pointer = self.root / "CURRENT"
        return pointer.read_text().strip() if pointer.is_file() else None

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(d.name for d in self.versions_dir.iterdir() if d.is_dir() and d.name.startswith("v"))

    def save(self, gallery: Gallery, calibration: Calibration) -> str:
        """Write a new version and make it current."""
        version = self.stage(gallery, calibration)
        self.publish(version)
        return version

    def stage(self, gallery: Gallery, calibration: Calibration) -> str:
        """Write a new version without making it current (``publish`` does that)."""
        existing = self.versions()
        version = f"v{(int(existing[-1][1:]) + 1) if existing else 1:06d}"
        names = gallery.names()
        rows = [(n, i, b) for n in names for i, b in zip(gallery.species[n].ids, gallery.species[n].breeds)]
        vectors = (
            np.concatenate([gallery.species[n].vectors for n in names])
            if names
            else np.zeros((0, gallery.dim), np.float32)
        )
        manifest = {
            "format": FORMAT,
            "version": version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "fingerprint": gallery.fingerprint,
            "model_name": gallery.model_name,
            "dim": gallery.dim,
            "counts": {n: len(gallery.species[n]) for n in names},
            "calibration": calibration.model_dump(),
        }
        with staged_dir(self.versions_dir / version, replace=False) as tmp:
            np.save(tmp / "vectors.npy", vectors.astype(np.float32))
            (tmp / "photos.json").write_text(
                json.dumps({"species": [r[0] for r in rows], "ids": [r[1] for r in rows], "breeds": [r[2] for r in rows]})
            )
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return version

    def publish(self, version: str) -> None:
        """Make a staged version the one every reader loads (atomic), and prune old ones."""
        if not (self.versions_dir / version / "manifest.json").is_file():
            raise GalleryError(f"gallery version {version} does not exist")
        write_text_atomic(self.root / "CURRENT", version + "\n")
        self._prune()

    def discard(self, version: str) -> None:
        """Delete a staged version that was never published."""
        if version != self.current_version():
            shutil.rmtree(self.versions_dir / version, ignore_errors=True)

    def unpublished(self) -> list[str]:
        """Versions written after the current one (staged, never published), oldest first."""
        current = self.current_version()
        return [v for v in self.versions() if current is None or v > current]

    def clean_temporary(self) -> list[Path]:
        """Remove what an interrupted write leaves behind (temporary version dirs, pointer files)."""
        gone = []
        for pattern, base in ((".v*.tmp-*", self.versions_dir), (".v*.old-*", self.versions_dir), (".CURRENT.*", self.root)):
            for p in base.glob(pattern) if base.is_dir() else []:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                gone.append(p)
        return gone

    def _prune(self) -> None:
        current = self.current_version()
        for old in self.versions()[: -self.keep]:
            if old != current:
                shutil.rmtree(self.versions_dir / old, ignore_errors=True)

    def manifest(self, version: Optional[str] = None) -> dict:
        version = version or self.current_version()
        if version is None:
            raise GalleryError(f"no gallery in {self.root}: build one with `kennelgate gallery build ROOT`")
        path = self.versions_dir / version / "manifest.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise GalleryError(f"gallery version {version} is unreadable ({exc})") from None

    def load(self, fingerprint: Optional[str] = None, version: Optional[str] = None) -> Snapshot:
        manifest = self.manifest(version)
        version = manifest["version"]
        if fingerprint is not None and manifest["fingerprint"] != fingerprint:
            raise GalleryError(
                f"gallery {version} was built with model {manifest['model_name']!r} "
                f"(fingerprint {manifest['fingerprint']}), but the current model has fingerprint {fingerprint}; "
                "vectors of two models cannot be mixed — rebuild the gallery with the current model "
                "(`kennelgate gallery build ROOT`) or select the model it was built with"
            )
        folder = self.versions_dir / version
        try:
            vectors = np.load(folder / "vectors.npy")
            photos = json.loads((folder / "photos.json").read_text())
        except (OSError, ValueError) as exc:
            raise GalleryError(f"gallery version {version} is damaged ({exc})") from None
        species = np.array(photos["species"], dtype=object)
        gallery = Gallery(fingerprint=manifest["fingerprint"], dim=manifest["dim"], model_name=manifest["model_name"])
        for name in manifest["counts"]:
            rows = np.where(species == name)[0]
            gallery.species[name] = SpeciesPhotos(
                vectors[rows], [photos["ids"][i] for i in rows], [photos["breeds"][i] for i in rows]
            )
        return Snapshot(gallery, Calibration.model_validate(manifest["calibration"]), version)
