"""The weights cache: find, download, verify, import and remove model weight files.

Layout (``cache_dir()`` is ``$DERAIN_HOME`` or the platform's user cache folder)::

    <cache>/weights/<arch>/<variant>/<sha256[:12]>-<filename>        the weights
    <cache>/weights/<arch>/<variant>/<sha256[:12]>-<filename>.json   where it came from
    <cache>/weights/<arch>/<variant>/<filename>.part                 a download in progress
    <cache>/weights/.locks/<arch>--<variant>.lock                    held while fetching

A weights file appears under its final name only after its sha256 has been checked, by an atomic
rename, so a partial or corrupt download is never loaded. Fetching happens under a per-model lock
file, so concurrent processes asking for the same weights download them once.

Environment:

* ``DERAIN_HOME``: cache folder (overrides the platform default).
* ``DERAIN_OFFLINE=1``: never use the network; missing weights are an error saying how to get them.
* ``DERAIN_MIRROR``: a folder, ``file://`` URL or ``http(s)://`` URL holding the weights files under
  their registry file names (``WeightSource.filename``); used instead of the original URLs.

Checkpoints are read with ``torch.load(weights_only=True)`` or safetensors: a checkpoint that needs
to run Python code to load is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse
from urllib.request import url2pathname

from . import __version__, settings
from .errors import DerainError, WeightsError
from .models.registry import ResolvedModel

# HTTP time-outs in seconds: (connect, read between two packets).
TIMEOUT = (10.0, 60.0)
# How long a process waits for another one that is fetching the same weights.
LOCK_TIMEOUT = 900.0
_CHUNK = 1 << 16


class DownloadError(WeightsError):
    """A download failed (HTTP error, connection trouble, nothing at the mirror)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ChecksumError(WeightsError):
    """A file is not the registry's release (its sha256 or size differs)."""


class OfflineError(WeightsError):
    """The weights are not cached and DERAIN_OFFLINE forbids fetching them."""


class ManualDownloadRequired(WeightsError):
    """The weights must be fetched by hand and imported; str() holds the instructions."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a download is retried after a transient failure."""

    attempts: int = 5  # failed attempts in a row before giving up
    backoff: float = 1.0  # seconds before the 2nd attempt; doubled for each further one
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, failures: int) -> float:
        return min(self.backoff * 2 ** (failures - 1), self.max_backoff)


RETRY = RetryPolicy()


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
        return _metadata_path(self.path)


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of re-hashing one cached file."""

    name: str
    path: Path
    ok: bool
    problem: str = ""


# --------------------------------------------------------------------------------------------
# Cache layout
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The cache folder: ``$DERAIN_HOME`` if set, else the platform's user cache folder."""
    home = settings.home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_cache_dir("derain"))


def offline() -> bool:
    """Whether DERAIN_OFFLINE forbids network access."""
    return settings.offline()


def _weights_root() -> Path:
    return cache_dir() / "weights"


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", part) or "_"


def _model_dir(model: ResolvedModel) -> Path:
    return _weights_root() / _safe(model.arch) / _safe(model.variant)


def _metadata_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _registry_filename(model: ResolvedModel) -> str:
    return _safe(Path(model.source.filename).name)


def _part_path(model: ResolvedModel) -> Path:
    return _model_dir(model) / (_registry_filename(model) + ".part")


def _converted_path(part: Path) -> Path:
    return part.with_name(part.name + ".converted")


def _makedirs(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(
            f"cannot create the cache folder {path}: {e.strerror or e}; set DERAIN_HOME to a writable folder"
        ) from e


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def _read_record(meta: Path) -> CacheRecord:
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


def _write_record(record: CacheRecord) -> None:
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


def _records_in(folder: Path) -> list[CacheRecord]:
    out = []
    for meta in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        with contextlib.suppress(ValueError):
            out.append(_read_record(meta))
    return out


def cache_records() -> list[CacheRecord]:
    """Every readable record in the cache (for listing; see ``verify_cache`` for checking)."""
    root = _weights_root()
    return [r for folder in sorted(root.glob("*/*")) if folder.is_dir() for r in _records_in(folder)]


def cache_record(model: ResolvedModel) -> CacheRecord | None:
    """The cached weights ``model`` would load, or None.

    A record counts if its file exists with the recorded size and it is the registry's release
    (same sha256), or the registry knows no sha256, or the user imported it explicitly.
    """
    expected = (model.source.sha256 or "").lower() or None
    usable = [
        r
        for r in _records_in(_model_dir(model))
        if r.path.is_file()
        and r.path.stat().st_size == r.size
        and (expected is None or r.imported or (r.source_sha256 or "").lower() == expected)
    ]
    return max(usable, key=lambda r: r.created) if usable else None


def _package_path(model: ResolvedModel) -> Path:
    from importlib import resources

    return Path(str(resources.files("derain_cli").joinpath(model.source.path or model.source.filename)))


def _source_path(model: ResolvedModel) -> Path | None:
    """For 'bundled' and 'file' sources: where the file is (whether or not it exists)."""
    if model.source.kind == "bundled":
        return _package_path(model)
    if model.source.kind == "file":
        return Path(model.source.path or model.source.filename).expanduser().resolve()
    return None


def cached_path(model: ResolvedModel) -> Path | None:
    """The local weights file of ``model`` if there is one (bundled/file sources: their path)."""
    local = _source_path(model)
    if local is not None:
        return local if local.is_file() else None
    record = cache_record(model)
    return record.path if record else None


def installed(model: ResolvedModel) -> bool:
    """Whether ``model`` can be loaded without fetching anything."""
    return cached_path(model) is not None


# --------------------------------------------------------------------------------------------
# Locking
# --------------------------------------------------------------------------------------------


def _try_lock(fh) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        fh.seek(0)
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fh) -> None:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def model_lock(model: ResolvedModel, timeout: float | None = None) -> Iterator[None]:
    """Hold the per-model lock that guards fetching, importing and removing its weights."""
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    path = _weights_root() / ".locks" / f"{_safe(model.arch)}--{_safe(model.variant)}.lock"
    _makedirs(path.parent)
    with open(path, "a+b") as fh:
        deadline = time.monotonic() + timeout
        while not _try_lock(fh):
            if time.monotonic() >= deadline:
                raise WeightsError(
                    f"{model.name}: another derain process has been fetching these weights for over "
                    f"{timeout:g} s (lock {path}); wait for it to finish and try again"
                )
            time.sleep(0.1)
        try:
            yield
        finally:
            _unlock(fh)


# --------------------------------------------------------------------------------------------
# Hashing and checkpoint formats
# --------------------------------------------------------------------------------------------


def sha256_file(path: Path | str) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_safetensors(path: Path) -> bool:
    if path.suffix.lower() == ".safetensors":
        return True
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < n <= path.stat().st_size - 8


def checkpoint_format(path: Path | str) -> str | None:
    """'safetensors', 'torch' (zip or legacy pickle) or None for anything else."""
    path = Path(path)
    if not path.is_file():
        return None
    if _is_safetensors(path):
        return "safetensors"
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04"):
        with contextlib.suppress(zipfile.BadZipFile, OSError), zipfile.ZipFile(path) as zf:
            if any(n.endswith("data.pkl") for n in zf.namelist()):
                return "torch"
        return None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle: torch's legacy format
        return "torch"
    return None


def read_checkpoint(path: Path | str) -> Any:
    """Load a weights file without executing code: safetensors, or torch.load(weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:
            raise WeightsError(f"{path}: not a readable safetensors file ({_short(e)})") from e
    import pickle

    import torch

    try:
        return torch.load(str(path), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found is None:
            raise _unreadable(path, e) from e
        raise WeightsError(
            f"{path}: not a plain weights file: it holds Python objects besides tensors (it needs "
            f"{found.group(1)}), and derain never runs code from checkpoint files"
        ) from e
    except Exception as e:
        raise _unreadable(path, e) from e


def _unreadable(path: Path, e: BaseException) -> WeightsError:
    return WeightsError(f"{path}: not a readable PyTorch or safetensors weights file ({_torch_reason(e)})")


def _torch_reason(e: BaseException) -> str:
    """The informative part of a torch.load error (without its advice to load unsafely)."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    text = " ".join(text.split())
    first = re.split(r"(?<=[a-z0-9])\. ", text, maxsplit=1)[0].rstrip(".")
    return _short(first) if first else type(e).__name__


def _short(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Installing a verified file into the cache
# --------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _install(
    model: ResolvedModel,
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
    name = _registry_filename(model)
    if converted:
        name = Path(name).stem + ".safetensors"
    dest = _model_dir(model) / f"{sha[:12]}-{name}"
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
        _write_record(record)
    except OSError as e:
        raise WeightsError(f"cannot write {dest}: {e.strerror or e}") from e
    for old in _records_in(dest.parent):
        if old.path != dest:
            for p in (old.path, old.metadata_path):
                p.unlink(missing_ok=True)
    return dest


def _save_converted(model: ResolvedModel, state: Mapping[str, Any], out: Path) -> str:
    """Save a state dict made by the architecture's importer; returns the record's note."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(out))
    return f"converted to safetensors by the {model.arch} importer"


def _finish_fetch(model: ResolvedModel, part: Path, origin: str, source: str,
                  companions: Mapping[str, Path] | None = None) -> Path:
    """Check a fetched ``.part`` against the registry and install it (converting if needed).

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
    original = _registry_filename(model)
    if model.architecture.importer is not None and checkpoint_format(part) is None:
        with tempfile.TemporaryDirectory(dir=part.parent) as tmp:
            named = Path(tmp) / original
            os.replace(part, named)
            for name, fetched in (companions or {}).items():
                os.replace(fetched, Path(tmp) / name)
            converted_part = _converted_path(part)
            how = _save_converted(model, _run_importer(model, named), converted_part)
        return _install(model, converted_part, source=source, imported=False, original_filename=original,
                        source_sha256=got, converted=how)
    return _install(model, part, source=source, imported=False, original_filename=original, source_sha256=got)


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


class _Transient(Exception):
    """A failure worth retrying (5xx, 429, a connection closed before the end)."""


def _reason(e: BaseException) -> str:
    import requests

    if isinstance(e, requests.Timeout):
        return "timed out"
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(e))
    if found:
        return found.group(1).strip()
    if isinstance(e, requests.exceptions.ChunkedEncodingError):
        return "connection broken"
    return _short(e)


def http_download(
    url: str,
    dest: Path,
    *,
    progress: bool = True,
    desc: str = "",
    expected_size: int | None = None,
    retry: RetryPolicy | None = None,
) -> None:
    """Download ``url`` into ``dest`` (overwritten), resuming with Range requests after breaks.

    Connection errors, time-outs, 5xx and 429 are retried with exponential backoff; other HTTP
    errors fail at once. Honours the usual proxy and CA-bundle environment variables.
    """
    import requests
    from tqdm import tqdm

    retry = retry or RETRY
    failures, best = 0, 0
    dest.write_bytes(b"")
    bar = tqdm(total=expected_size, unit="B", unit_scale=True, unit_divisor=1024, desc=desc or dest.name,
               file=sys.stderr, disable=not (progress and sys.stderr.isatty()), leave=False)
    with requests.Session() as session, bar:
        session.headers.update({"User-Agent": f"derain-cli/{__version__}", "Accept-Encoding": "identity"})
        while True:
            have = dest.stat().st_size
            try:
                _http_attempt(session, url, dest, have, bar, expected_size)
                return
            except requests.exceptions.SSLError as e:
                raise DownloadError(
                    f"cannot download {url}: TLS certificate check failed ({_reason(e)}); behind a proxy "
                    "with its own certificate authority, set REQUESTS_CA_BUNDLE to its CA file"
                ) from e
            except (_Transient, requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as e:
                size = dest.stat().st_size
                if size > best:  # progress: the budget of failures starts again
                    best, failures = size, 0
                failures += 1
                if failures >= retry.attempts:
                    raise DownloadError(
                        f"cannot download {url}: {_reason(e)} (gave up after {failures} attempts in a row)"
                    ) from e
                retry.sleep(retry.delay(failures))
            except requests.RequestException as e:  # a malformed URL, too many redirects, ...
                raise DownloadError(f"cannot download {url}: {_short(e)}") from e


def _http_attempt(session, url: str, dest: Path, have: int, bar, expected_size: int | None) -> None:
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, stream=True, timeout=TIMEOUT, headers=headers) as resp:
        status = resp.status_code
        if status == 416 and have:
            total = re.search(r"/(\d+)", resp.headers.get("Content-Range", ""))
            if total and int(total.group(1)) == have:
                return  # we already have every byte
            dest.write_bytes(b"")
            raise _Transient("the server refused to resume")
        if status >= 500 or status == 429:
            raise _Transient(f"HTTP {status} {resp.reason}")
        if status not in (200, 206):
            raise DownloadError(f"cannot download {url}: HTTP {status} {resp.reason}", status=status)
        length = resp.headers.get("Content-Length")
        if status == 206:
            found = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not found or int(found.group(1)) != have:
                dest.write_bytes(b"")
                raise _Transient("the server resumed at the wrong offset")
            total = int(found.group(2)) if found.group(2) != "*" else None
            mode = "ab"
        else:
            have = 0
            total = int(length) if length else None
            mode = "wb"
        total = total or expected_size
        # Keep the bytes of a body cut short (urllib3 would drop its last partial read); the size
        # check below notices the shortfall and the next attempt resumes after those bytes.
        resp.raw.enforce_content_length = False
        bar.reset(total=total)
        bar.update(have)
        with open(dest, mode) as fh:
            for chunk in resp.iter_content(_CHUNK):
                fh.write(chunk)
                bar.update(len(chunk))
        got = dest.stat().st_size
        if total is not None and got < total:
            raise _Transient(f"connection closed after {got} of {total} bytes")


# --------------------------------------------------------------------------------------------
# Mirror
# --------------------------------------------------------------------------------------------


def mirror() -> str | None:
    """The DERAIN_MIRROR setting, or None."""
    return settings.mirror()


def _mirror_folder(location: str) -> Path | None:
    """The folder a mirror setting names, or None when it is an http(s) URL."""
    parsed = urlparse(location)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    return Path(location).expanduser()


def _mirror_url(location: str, filename: str) -> str:
    return f"{location.rstrip('/')}/{quote(filename)}"


def _fetch_from_mirror(model: ResolvedModel, location: str, part: Path, progress: bool) -> Path | None:
    """Fetch the model's file (and its companions) from the mirror; None when the mirror lacks it."""
    filename = model.source.filename
    companions = {name: part.with_name(f"{name}.part") for name in model.source.companions}
    folder = _mirror_folder(location)
    if folder is not None:
        found = folder / filename
        if not found.is_file():
            return None
        for name, dest in {filename: part, **companions}.items():
            try:
                shutil.copyfile(folder / name, dest)
            except OSError as e:
                raise DownloadError(f"{model.name}: cannot copy {folder / name}: {e.strerror or e}") from e
        return _finish_fetch(model, part, str(found), f"mirror {found}", companions)
    if offline():
        raise OfflineError(
            f"{model.name}: weights not cached, DERAIN_OFFLINE is set and DERAIN_MIRROR is a URL "
            f"({location}); point DERAIN_MIRROR at a folder holding {filename}, or unset DERAIN_OFFLINE"
        )
    url = _mirror_url(location, filename)
    try:
        http_download(url, part, progress=progress, desc=model.name, expected_size=model.source.size)
    except DownloadError as e:
        if e.status == 404:
            return None
        raise
    for name, dest in companions.items():
        http_download(_mirror_url(location, name), dest, progress=progress, desc=f"{model.name} ({name})")
    return _finish_fetch(model, part, url, f"mirror {url}", companions)


# --------------------------------------------------------------------------------------------
# Public operations
# --------------------------------------------------------------------------------------------


def manual_instructions(model: ResolvedModel) -> str:
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


def _offline_message(model: ResolvedModel) -> str:
    return (
        f"{model.name}: weights not in the cache ({cache_dir()}) and DERAIN_OFFLINE is set, so nothing is "
        f"downloaded; run `derain models download {model.name}` on a connected machine and copy its cache "
        f"folder, or set DERAIN_MIRROR to a folder holding {model.source.filename}, or run "
        f"`derain models import {model.name} /path/to/{model.source.filename}`"
    )


def _local_or_error(model: ResolvedModel) -> Path:
    path = _source_path(model)
    assert path is not None
    if not path.is_file():
        where = "inside the derain package (a broken installation?)" if model.source.kind == "bundled" else ""
        raise WeightsError(f"{model.name}: weights file {path} not found {where}".rstrip())
    return path


def download(model: ResolvedModel, progress: bool = True, force: bool = False) -> Path:
    """Fetch ``model``'s weights into the cache (from DERAIN_MIRROR or the source URL).

    Returns the cached file; with ``force`` the file is fetched again even if cached. Bundled and
    file sources need no download and return their path.
    """
    src = model.source
    if src.kind in ("bundled", "file"):
        return _local_or_error(model)
    if not force and (record := cache_record(model)) is not None:
        return record.path
    location = mirror()
    if src.kind == "url" and offline() and location is None:
        raise OfflineError(_offline_message(model))
    _makedirs(_model_dir(model))
    with model_lock(model):
        if not force and (record := cache_record(model)) is not None:
            return record.path  # another process fetched it while we waited
        part = _part_path(model)
        try:
            if location is not None:
                fetched = _fetch_from_mirror(model, location, part, progress)
                if fetched is not None:
                    return fetched
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
            return _finish_fetch(model, part, src.url, src.url)
        finally:
            part.unlink(missing_ok=True)
            _converted_path(part).unlink(missing_ok=True)


def ensure_weights(model: ResolvedModel, progress: bool = True) -> Path:
    """The local weights file of ``model``, fetching it if needed.

    Raises ManualDownloadRequired (must be imported by hand), OfflineError (DERAIN_OFFLINE and not
    cached), DownloadError or ChecksumError.
    """
    path = cached_path(model)
    if path is not None:
        return path
    return download(model, progress=progress)


def import_weights(model: ResolvedModel, file: Path | str, force: bool = False) -> Path:
    """Copy a user-supplied weights file into the cache after checking that it fits ``model``.

    The file must load strictly into the model's architecture (foreign formats go through the
    architecture's importer and are stored converted). If the registry knows the release's sha256,
    a different file is refused unless ``force``.
    """
    file = Path(file).expanduser()
    src = model.source
    if src.kind in ("bundled", "file"):
        raise WeightsError(f"{model.name} uses the file {_source_path(model)}; there is nothing to import")
    if not file.exists():
        raise WeightsError(f"{file}: no such file")
    _makedirs(_model_dir(model))
    with model_lock(model):
        part = _part_path(model)
        converted_part = _converted_path(part)
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
            has_importer = model.architecture.importer is not None
            foreign = has_importer and (got is None or checkpoint_format(file) is None)
            if got is None and not foreign:
                raise WeightsError(f"{file}: is a folder, not a weights file")
            state = _run_importer(model, file) if foreign else _adapted(model, read_checkpoint(file), file)
            _check_fits(model, state, file)
            how, stored = None, part
            if foreign:
                how, stored = _save_converted(model, state, converted_part), converted_part
            return _install(model, stored, source=f"imported from {file.resolve()}", imported=True,
                            original_filename=file.name, source_sha256=got, converted=how)
        finally:
            part.unlink(missing_ok=True)
            converted_part.unlink(missing_ok=True)


def _run_importer(model: ResolvedModel, path: Path) -> Mapping[str, Any]:
    """The architecture's importer applied to a foreign checkpoint, failures as WeightsError."""
    try:
        return model.architecture.importer(str(path), model.config)
    except Exception as e:
        raise WeightsError(f"cannot import {path} as {model.name}: {_short(e)}") from e


def _adapted(model: ResolvedModel, checkpoint: Any, file: Path) -> Mapping[str, Any]:
    try:
        return model.adapter(checkpoint)
    except DerainError as e:
        raise WeightsError(f"cannot import {file} as {model.name}: {e}") from e


def _check_fits(model: ResolvedModel, state: Mapping[str, Any], file: Path) -> None:
    """Refuse a state dict that does not load strictly into the model's architecture."""
    from .models import load_state_dict_strict

    module = model.architecture.builder(**model.config)
    try:
        load_state_dict_strict(module, dict(state), source=f"weights in {file}")
    except DerainError as e:
        raise WeightsError(f"cannot import {file} as {model.name}: {e}") from e
    if model.entry.matches is not None and not model.entry.matches(state):
        raise WeightsError(f"cannot import {file} as {model.name}: the weights belong to another variant")


def verify_cache() -> list[VerifyResult]:
    """Re-hash every cached file against its recorded sha256 (and find files without records)."""
    results = []
    root = _weights_root()
    for folder in sorted(root.glob("*/*")):
        if not folder.is_dir():
            continue
        recorded = set()
        for meta in sorted(folder.glob("*.json")):
            try:
                record = _read_record(meta)
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


def remove(model: ResolvedModel) -> list[Path]:
    """Delete ``model``'s cached files (not bundled or user files); returns what was deleted."""
    if model.source.kind in ("bundled", "file"):
        return []
    folder = _model_dir(model)
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


__all__ = [
    "CacheRecord",
    "ChecksumError",
    "DownloadError",
    "ManualDownloadRequired",
    "OfflineError",
    "RetryPolicy",
    "VerifyResult",
    "cache_dir",
    "cache_record",
    "cache_records",
    "cached_path",
    "checkpoint_format",
    "download",
    "ensure_weights",
    "http_download",
    "import_weights",
    "installed",
    "manual_instructions",
    "mirror",
    "model_lock",
    "offline",
    "read_checkpoint",
    "remove",
    "sha256_file",
    "verify_cache",
]
