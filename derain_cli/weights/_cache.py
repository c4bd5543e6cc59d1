"""Fetching, importing, installing and removing weights files: the cache's operations.

What needs a network (converting a foreign checkpoint format, checking that a file fits an
architecture) is not done here: the caller passes it in as a ``Converter`` or a ``FitCheck``
(``derain_cli.models`` does), so this package imports neither torch nor the models.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from ..errors import WeightsError
from ._errors import ChecksumError, DownloadError, ManualDownloadRequired, OfflineError
from ._http import http_download
from ._layout import (
    cache_dir,
    converted_path,
    makedirs,
    model_dir,
    offline,
    part_path,
    registry_filename,
    sha256_file,
)
from ._lock import model_lock
from ._mirror import fetch_from_mirror, mirror
from ._records import CacheRecord, cache_record, records_in, write_record
from ._source import ModelWeights

#: ``convert(file, out)``: for a file in a foreign format (``file`` keeps its original name and
#: has its companions beside it), write it as safetensors to ``out`` and return a note on how it
#: was converted; return None for a file that loads as it is. Raises WeightsError for a file it
#: cannot read.
Converter = Callable[[Path, Path], str | None]

#: ``check(path, origin)``: raise WeightsError when the weights file ``path`` does not load into
#: the model, naming ``origin`` (the file the user gave) in the message.
FitCheck = Callable[[Path, Path], None]


# --------------------------------------------------------------------------------------------
# Where the weights are
# --------------------------------------------------------------------------------------------


def _package_path(model: ModelWeights) -> Path:
    from importlib import resources

    return Path(str(resources.files("derain_cli").joinpath(model.source.path or model.source.filename)))


def _source_path(model: ModelWeights) -> Path | None:
    """For 'bundled' and 'file' sources: where the file is (whether or not it exists)."""
    if model.source.kind == "bundled":
        return _package_path(model)
    if model.source.kind == "file":
        return Path(model.source.path or model.source.filename).expanduser().resolve()
    return None


def cached_path(model: ModelWeights) -> Path | None:
    """The local weights file of ``model`` if there is one (bundled/file sources: their path)."""
    local = _source_path(model)
    if local is not None:
        return local if local.is_file() else None
    record = cache_record(model)
    return record.path if record else None


def installed(model: ModelWeights) -> bool:
    """Whether ``model`` can be loaded without fetching anything."""
    return cached_path(model) is not None


def _local_or_error(model: ModelWeights) -> Path:
    path = _source_path(model)
    assert path is not None
    if not path.is_file():
        where = "inside the derain package (a broken installation?)" if model.source.kind == "bundled" else ""
        raise WeightsError(f"{model.name}: weights file {path} not found {where}".rstrip())
    return path


# --------------------------------------------------------------------------------------------
# How to get them by hand
# --------------------------------------------------------------------------------------------


def manual_instructions(model: ModelWeights) -> str:
    """How a user gets ``model``'s weights by hand (multi-line)."""
    src = model.source
    import_cmd = f"derain models import {model.name} /path/to/{src.filename}"
    if src.kind in ("bundled", "file"):
        return f"{model.name}: the weights ship with derain ({_source_path(model)}); nothing to fetch."
    checksum = f" (sha256 {src.sha256.lower()})" if src.sha256 else ""
    if src.kind == "manual":
        page = src.page or src.url or "the authors' page"
        lines = [
            f"{model.name}: the weights must be downloaded by hand (the site does not allow programs).",
            f"  1. Open {page}" + (f"  (password: {src.password})" if src.password else ""),
            f"  2. {(src.instructions or 'Download the weights').rstrip('.')}; the file is {src.filename}"
            + checksum,
            f"  3. Run: {import_cmd}",
        ]
    else:
        lines = [
            f"{model.name}: to install the weights by hand:",
            f"  1. Download {src.url}{checksum}",
            f"  2. Run: {import_cmd}",
        ]
    files = " and ".join((src.filename, *src.companions))
    lines.append(f"  Offline machines: put {files} in a folder and set DERAIN_MIRROR to that folder.")
    return "\n".join(lines)


def _offline_message(model: ModelWeights) -> str:
    return (
        f"{model.name}: weights not in the cache ({cache_dir()}) and DERAIN_OFFLINE is set, so nothing is "
        f"downloaded; run `derain models download {model.name}` on a connected machine and copy its cache "
        f"folder, or set DERAIN_MIRROR to a folder holding {model.source.filename}, or run "
        f"`derain models import {model.name} /path/to/{model.source.filename}`"
    )


# --------------------------------------------------------------------------------------------
# Installing a checked file
# --------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _install(
    model: ModelWeights,
    file: Path,
    *,
    source: str,
    imported: bool,
    original_filename: str,
    source_sha256: str | None,
    converted: str | None = None,
) -> Path:
    """Move ``file`` (already checked, inside the model's folder) into place; drop older versions.

    Must be called with the model's lock held.
    """
    sha = sha256_file(file)
    name = registry_filename(model)
    if converted:
        name = Path(name).stem + ".safetensors"
    dest = model_dir(model) / f"{sha[:12]}-{name}"
    record = CacheRecord(
        name=model.name,
        path=dest,
        sha256=sha,
        size=file.stat().st_size,
        source=source,
        created=_now(),
        original_filename=original_filename,
        imported=imported,
        source_sha256=source_sha256,
        converted=converted,
    )
    try:
        os.replace(file, dest)
        write_record(record)
    except OSError as e:
        raise WeightsError(f"cannot write {dest}: {e.strerror or e}") from e
    for old in records_in(dest.parent):
        if old.path != dest:
            for p in (old.path, old.metadata_path):
                p.unlink(missing_ok=True)
    return dest


def _finish_fetch(model: ModelWeights, part: Path, origin: str, source: str,
                  companions: dict[str, Path] | None = None, convert: Converter | None = None) -> Path:
    """Check a fetched ``.part`` against the registry and install it (converted if ``convert`` says so).

    ``companions`` maps the names of files that must sit beside the main one (TensorFlow data
    shards) to where they were fetched; they are only needed for the conversion.
    """
    src = model.source
    got = sha256_file(part)
    if src.sha256 and got != src.sha256.lower():
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{model.name}: checksum mismatch for {origin}: expected sha256 {src.sha256.lower()}, "
            f"got {got}; the file was discarded"
        )
    if not src.sha256 and src.size is not None and part.stat().st_size != src.size:
        size = part.stat().st_size
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{model.name}: size mismatch for {origin}: expected {src.size} bytes, got {size}; "
            "the file was discarded"
        )
    original = registry_filename(model)
    how = None
    if convert is not None:
        converted_part = converted_path(part)
        # The converter sees the file under its own name with its companions beside it.
        with tempfile.TemporaryDirectory(dir=part.parent) as tmp:
            named = Path(tmp) / original
            os.replace(part, named)
            for name, fetched in (companions or {}).items():
                os.replace(fetched, Path(tmp) / name)
            how = convert(named, converted_part)
            if how is None:
                os.replace(named, part)
        if how is not None:
            return _install(model, converted_part, source=source, imported=False, original_filename=original,
                            source_sha256=got, converted=how)
    return _install(model, part, source=source, imported=False, original_filename=original, source_sha256=got)


# --------------------------------------------------------------------------------------------
# Public operations
# --------------------------------------------------------------------------------------------


def download(model: ModelWeights, progress: bool = True, force: bool = False, *,
             convert: Converter | None = None) -> Path:
    """Fetch ``model``'s weights into the cache (from DERAIN_MIRROR or the source URL).

    Returns the cached file; with ``force`` the file is fetched again even if cached. Bundled and
    file sources need no download and return their path. ``convert`` turns a file in a foreign
    format into safetensors before it is stored (``derain_cli.models.download_weights`` passes the
    architecture's).
    """
    src = model.source
    if src.kind in ("bundled", "file"):
        return _local_or_error(model)
    if not force and (record := cache_record(model)) is not None:
        return record.path
    location = mirror()
    if src.kind == "url" and offline() and location is None:
        raise OfflineError(_offline_message(model))
    makedirs(model_dir(model))
    with model_lock(model):
        if not force and (record := cache_record(model)) is not None:
            return record.path  # another process fetched it while we waited
        part = part_path(model)
        try:
            if location is not None:
                fetched = fetch_from_mirror(model, location, part, progress)
                if fetched is not None:
                    return _finish_fetch(model, part, fetched.origin, fetched.source, fetched.companions, convert)
                if src.kind == "url":
                    raise DownloadError(
                        f"{model.name}: {src.filename} not found on the mirror {location} (DERAIN_MIRROR)",
                        status=404,
                    )
            if src.kind == "manual":
                note = f"\n  ({src.filename} is not on the mirror {location} either.)" if location else ""
                raise ManualDownloadRequired(manual_instructions(model) + note)
            if not src.url:
                raise WeightsError(f"{model.name}: the registry gives no download URL")
            http_download(src.url, part, progress=progress, desc=model.name, expected_size=src.size)
            return _finish_fetch(model, part, src.url, src.url, convert=convert)
        finally:
            part.unlink(missing_ok=True)
            converted_path(part).unlink(missing_ok=True)
            for name in src.companions:
                part.with_name(f"{name}.part").unlink(missing_ok=True)


def ensure_weights(model: ModelWeights, progress: bool = True, *, convert: Converter | None = None) -> Path:
    """The local weights file of ``model``, fetching it if needed.

    Raises ManualDownloadRequired (must be imported by hand), OfflineError (DERAIN_OFFLINE and not
    cached), DownloadError or ChecksumError.
    """
    path = cached_path(model)
    if path is not None:
        return path
    return download(model, progress=progress, convert=convert)


def import_weights(model: ModelWeights, file: Path | str, force: bool = False, *,
                   convert: Converter | None = None, check: FitCheck | None = None) -> Path:
    """Copy a user-supplied weights file (or, with ``convert``, a folder) into the cache.

    If the registry knows the release's sha256, a different file is refused unless ``force``.
    ``convert`` turns a foreign format into safetensors, which is stored instead; ``check`` refuses
    a file that does not fit the model (``derain_cli.models.import_weights`` passes both).
    """
    file = Path(file).expanduser()
    src = model.source
    if src.kind in ("bundled", "file"):
        raise WeightsError(f"{model.name} uses the file {_source_path(model)}; there is nothing to import")
    if not file.exists():
        raise WeightsError(f"{file}: no such file")
    makedirs(model_dir(model))
    with model_lock(model):
        part = part_path(model)
        converted_part = converted_path(part)
        try:
            got: str | None = None
            if file.is_file():
                try:
                    shutil.copyfile(file, part)
                except OSError as e:
                    raise WeightsError(f"cannot copy {file} into the cache: {e.strerror or e}") from e
                got = sha256_file(part)
                if src.sha256 and got != src.sha256.lower() and not force:
                    raise ChecksumError(
                        f"{file} differs from the authors' release of {model.name} (sha256 {got}, expected "
                        f"{src.sha256.lower()}); check that it is the right file, or import it with --force"
                    )
            how = convert(file, converted_part) if convert is not None else None
            if how is None and got is None:
                raise WeightsError(f"{file}: is a folder, not a weights file")
            stored = converted_part if how is not None else part
            if check is not None:
                check(stored, file)
            return _install(model, stored, source=f"imported from {file.resolve()}", imported=True,
                            original_filename=file.name, source_sha256=got, converted=how)
        finally:
            part.unlink(missing_ok=True)
            converted_part.unlink(missing_ok=True)


def remove(model: ModelWeights) -> list[Path]:
    """Delete ``model``'s cached files (not bundled or user files); returns what was deleted."""
    if model.source.kind in ("bundled", "file"):
        return []
    folder = model_dir(model)
    if not folder.is_dir():
        return []
    removed = []
    with model_lock(model):
        for path in sorted(folder.iterdir()):
            if path.is_file():
                path.unlink()
                removed.append(path)
        with contextlib.suppress(OSError):
            folder.rmdir()
            folder.parent.rmdir()
    return removed

