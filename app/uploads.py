"""Uploaded files → candidate photos. Archives are opened in memory and never extracted to disk.

Every file that cannot be used gets a reason a person can act on; the rest go on. A zip is
untrusted: entry names are not trusted as paths (traversal), declared sizes are not trusted
(bombs: the read is capped), links, encrypted entries and nested archives are refused.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Iterable, Optional

_ZIP_MAGIC = b"PK\x03\x04"
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar")
_MAX_RATIO = 200  # JPEG/PNG hardly compress; a far higher ratio is a bomb, not a photo
MAX_BREED = 100  # the database column's length: a longer folder name is cut, not an error
_METADATA = ("__MACOSX/", ".DS_Store", "Thumbs.db")


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = 2 * 1024**3
    max_files: int = 5000


@dataclass
class Candidate:
    name: str  # as the user will recognise it: "photos.zip:raccoon/r1.jpg"
    data: bytes
    breed: Optional[str] = None


@dataclass
class Unpacked:
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    total_bytes: int = 0

    def reject(self, name: str, reason: str) -> None:
        self.rejected.append((name, reason))


def is_zip(name: str, data: bytes) -> bool:
    return name.lower().endswith(".zip") or data[:4] == _ZIP_MAGIC


def _unsafe_reason(name: str) -> Optional[str]:
    if "\\" in name:
        return "unsafe path in archive (backslash); refused"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "unsafe path in archive (absolute path); refused"
    if ".." in PurePosixPath(name).parts:
        return "unsafe path in archive ('..' path traversal); refused"
    if "\x00" in name:
        return "unsafe path in archive (NUL byte); refused"
    return None


def _common_top(names: list[str]) -> Optional[str]:
    """The single top-level folder every entry is in (a zipped folder), if there is one."""
    tops = {PurePosixPath(n).parts[0] for n in names if len(PurePosixPath(n).parts) > 1}
    flat = [n for n in names if len(PurePosixPath(n).parts) == 1]
    return next(iter(tops)) if len(tops) == 1 and not flat else None


def _expand_zip(archive: str, data: bytes, limits: UploadLimits, out: Unpacked, breed: Optional[str]) -> None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        out.reject(archive, f"not a valid zip archive ({exc})")
        return
    entries = []
    for info in infos:
        label = f"{archive}:{info.filename}"
        if any(m in info.filename for m in _METADATA) or PurePosixPath(info.filename).name.startswith("._"):
            out.reject(label, "operating-system metadata file, skipped")
            continue
        reason = _unsafe_reason(info.filename)
        if reason is None and stat.S_ISLNK(info.external_attr >> 16):
            reason = "symbolic link in archive; refused"
        if reason is None and info.flag_bits & 0x1:
            reason = "encrypted entry; refused"
        if reason is None and info.filename.lower().endswith(_ARCHIVE_SUFFIXES):
            reason = "archive inside an archive; upload it separately"
        if reason is None and info.file_size > limits.max_file_bytes:
            reason = f"file too large ({info.file_size / 1e6:.1f} MB > {limits.max_file_bytes / 1e6:.0f} MB)"
        if reason is None and info.file_size > 1_000_000 and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
            reason = f"compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 looks like a zip bomb; refused"
        if reason:
            out.reject(label, reason)
        else:
            entries.append(info)
    # Many entries each under the per-entry floor can still add up to a bomb: judge the total too,
    # and refuse the entries that inflate it (the ordinary photos beside them go on).
    declared, packed = sum(i.file_size for i in entries), sum(i.compress_size for i in entries)
    if declared > 1_000_000 and declared > _MAX_RATIO * max(packed, 1):
        total = f"the archive expands {declared / max(packed, 1):.0f}:1 in total; refused as a zip bomb"
        for info in [i for i in entries if i.file_size > _MAX_RATIO * max(i.compress_size, 1)]:
            out.reject(f"{archive}:{info.filename}", total)
            entries.remove(info)
    top = _common_top([i.filename for i in entries])
    for info in entries:
        label = f"{archive}:{info.filename}"
        if len(out.candidates) >= limits.max_files:
            out.reject(label, f"too many files in one upload (limit {limits.max_files})")
            continue
        try:
            with zf.open(info) as fh:
                payload = fh.read(limits.max_file_bytes + 1)  # the declared size may lie
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            out.reject(label, f"corrupt archive entry ({exc})")
            continue
        if len(payload) > limits.max_file_bytes:
            out.reject(label, "file larger than its declared size and the limit; refused as a zip bomb")
            continue
        if out.total_bytes + len(payload) > limits.max_total_bytes:
            out.reject(label, f"upload exceeds {limits.max_total_bytes / 1e9:.1f} GB in total")
            continue
        parts = PurePosixPath(info.filename).parts
        if top is not None:
            parts = parts[1:]
        folder_breed = parts[0] if len(parts) > 1 else None  # <species folder>/<breed>/<photo>
        out.total_bytes += len(payload)
        out.candidates.append(Candidate(label, payload, (folder_breed or breed or '')[:MAX_BREED] or None))


def unpack(files: Iterable[tuple[str, bytes]], limits: UploadLimits = UploadLimits(), breed: Optional[str] = None) -> Unpacked:
    """Plain files pass through; each zip contributes its entries (breed = sub-folder name)."""
    out = Unpacked()
    for name, data in files:
        if is_zip(name, data):
            _expand_zip(name, data, limits, out, breed)
        elif name.lower().endswith(_ARCHIVE_SUFFIXES):
            out.reject(name, "only .zip archives are accepted")
        elif len(data) > limits.max_file_bytes:
            out.reject(name, f"file too large ({len(data) / 1e6:.1f} MB > {limits.max_file_bytes / 1e6:.0f} MB)")
        elif len(out.candidates) >= limits.max_files:
            out.reject(name, f"too many files in one upload (limit {limits.max_files})")
        elif out.total_bytes + len(data) > limits.max_total_bytes:
            out.reject(name, f"upload exceeds {limits.max_total_bytes / 1e9:.1f} GB in total")
        else:
            out.total_bytes += len(data)
            out.candidates.append(Candidate(name, data, breed))
    return out
