"""The metadata file beside every cached weights file: reading, writing, listing and verifying."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ._layout import metadata_path, model_dir, sha256_file, weights_root
from ._source import ModelWeights


@dataclass(frozen=True)
class CacheRecord:
    """One weights file in the cache and the metadata stored beside it."""

    name: str  # the model, "arch:variant"
    path: Path  # the weights file
    sha256: str  # of the stored file
    size: int
    source: str  # the URL, "mirror <location>" or "imported from <path>"
    created: str  # ISO 8601, UTC
    original_filename: str
    imported: bool  # put there by import_weights (accepted even if it is not the registry's file)
    source_sha256: str | None = None  # of the file as fetched/imported (differs when converted)
    converted: str | None = None  # how a foreign format was converted, if it was

    @property
    def metadata_path(self) -> Path:
        return metadata_path(self.path)


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of re-hashing one cached file."""

    name: str
    path: Path
    ok: bool
    problem: str = ""


def read_record(meta: Path) -> CacheRecord:
    """Parse a metadata file; raises ValueError if it is not one of ours."""
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        return CacheRecord(
            name=str(data["model"]),
            path=meta.with_name(str(data["file"])),
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            source=str(data["source"]),
            created=str(data["created"]),
            original_filename=str(data["original_filename"]),
            imported=bool(data.get("imported", False)),
            source_sha256=data.get("source_sha256"),
            converted=data.get("converted"),
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"unreadable metadata {meta}: {e}") from e


def write_record(record: CacheRecord) -> None:
    """Write ``record``'s metadata file atomically (a reader sees the old one or the new one)."""
    data = {
        "model": record.name,
        "file": record.path.name,
        "original_filename": record.original_filename,
        "source": record.source,
        "imported": record.imported,
        "sha256": record.sha256,
        "source_sha256": record.source_sha256,
        "size": record.size,
        "created": record.created,
        "converted": record.converted,
        "derain_version": __version__,
    }
    meta = record.metadata_path
    tmp = meta.with_name(meta.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, meta)


def records_in(folder: Path) -> list[CacheRecord]:
    out = []
    for meta in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        with contextlib.suppress(ValueError):
            out.append(read_record(meta))
    return out


def cache_records() -> list[CacheRecord]:
    """Every readable record in the cache (for listing; see ``verify_cache`` for checking)."""
    root = weights_root()
    return [r for folder in sorted(root.glob("*/*")) if folder.is_dir() for r in records_in(folder)]


def cache_record(model: ModelWeights) -> CacheRecord | None:
    """The cached weights ``model`` would load, or None.

    A record counts if its file exists with the recorded size and it is the registry's release
    (same sha256), or the registry knows no sha256, or the user imported it explicitly.
    """
    expected = (model.source.sha256 or "").lower() or None
    usable = [
        r
        for r in records_in(model_dir(model))
        if r.path.is_file()
        and r.path.stat().st_size == r.size
        and (expected is None or r.imported or (r.source_sha256 or "").lower() == expected)
    ]
    return max(usable, key=lambda r: r.created) if usable else None


def verify_cache() -> list[VerifyResult]:
    """Re-hash every cached file against its recorded sha256 (and find files without records)."""
    results = []
    root = weights_root()
    for folder in sorted(root.glob("*/*")):
        if not folder.is_dir():
            continue
        recorded = set()
        for meta in sorted(folder.glob("*.json")):
            try:
                record = read_record(meta)
            except ValueError as e:
                results.append(VerifyResult(f"{folder.parent.name}:{folder.name}", meta, False, str(e)))
                continue
            recorded.add(record.path.name)
            results.append(_verify_record(record))
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix not in (".json", ".part", ".tmp") and path.name not in recorded:
                results.append(VerifyResult(f"{folder.parent.name}:{folder.name}", path, False,
                                            "no metadata file beside it (not written by derain)"))
    return results


def _verify_record(record: CacheRecord) -> VerifyResult:
    if not record.path.is_file():
        return VerifyResult(record.name, record.path, False, "the file is missing")
    size = record.path.stat().st_size
    if size != record.size:
        return VerifyResult(record.name, record.path, False, f"size {size} bytes, recorded {record.size}")
    got = sha256_file(record.path)
    if got != record.sha256:
        problem = f"sha256 {got}, recorded {record.sha256} (the file is corrupted)"
        return VerifyResult(record.name, record.path, False, problem)
    return VerifyResult(record.name, record.path, True)
