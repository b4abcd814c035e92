"""Photo folders → labelled photo lists: ROOT/<species>/[<breed>/]<image>."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
OTHER = "other"  # photos filed under this name are explicit negatives, never a species


@dataclass(frozen=True)
class LabeledPhoto:
    path: Path
    species: str
    breed: Optional[str] = None


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def normalise_species(name: str) -> str:
    name = name.strip().lower()
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid species name {name!r}")
    return name


def scan_species(folder: Path, species: str) -> list[LabeledPhoto]:
    """Photos directly in ``folder`` (no breed) and in its sub-folders (breed = sub-folder name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    species = normalise_species(species)
    photos = [LabeledPhoto(p, species) for p in _files(folder) if p.suffix.lower() in IMAGE_SUFFIXES]
    for sub in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        photos += [
            LabeledPhoto(p, species, sub.name)
            for p in sorted(sub.rglob("*"))
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        ]
    return photos


def scan_root(root: Path, only: Optional[Iterable[str]] = None) -> list[LabeledPhoto]:
    """Every species folder under ``root`` (or just ``only``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    wanted = {normalise_species(s) for s in only} if only else None
    photos: list[LabeledPhoto] = []
    for d in sorted(x for x in root.iterdir() if x.is_dir() and not x.name.startswith(".")):
        if wanted is None or normalise_species(d.name) in wanted:
            photos += scan_species(d, d.name)
    return photos
