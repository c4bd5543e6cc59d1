"""Atomic file writes: a file appears complete under its name, or not at all.

Every output the package writes (images, comparison images, JSON and CSV reports) goes through
here, so that an interrupted run never leaves a half-written file that a resumed run would take
for a finished one, and a failed write never destroys the previous file.

A write goes to a temporary file ``.NAME.XXXXXXXX.tmp`` (8 lower-case hex digits) beside NAME,
renamed over NAME when complete. The writer holds an exclusive lock on it (where the platform has
``flock``), so a temporary file that nobody holds is what a killed process left (kill -9, a power
cut): ``remove_stale_temps`` deletes those and never one that a live run is writing.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError

try:
    import fcntl
except ImportError:  # Windows: no flock; stale files are told by their age instead
    fcntl = None  # type: ignore[assignment]

#: ``.NAME.XXXXXXXX.tmp``: the temporary files of atomic_write and of the write check.
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")
#: Without file locks, a temporary file this old (seconds) is taken for a leftover.
UNLOCKED_STALE_AGE = 3600.0
#: The name (NAME) of the probe file check_writable writes.
PROBE_NAME = "derain-write-check"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through `write(f)` to a temporary file beside it, then os.replace it in place.

    Whatever fails, no temporary file is left behind and an existing `path` is untouched.
    OSErrors become OutputError(path, ...), with the system's errno.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(path, f"cannot write: folder {path.parent} does not exist")
    try:
        temp, fd = _create_temp(path)
    except OSError as e:
        raise OutputError.from_os_error(path, "cannot write", e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)  # the lock goes with the closed file: NAME is complete now
    except BaseException as e:
        temp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError.from_os_error(path, "cannot write", e) from None
        raise
    _fsync_folder(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """atomic_write for data already in memory (reports, JSON)."""

    def write(f: BinaryIO) -> None:
        f.write(data)

    atomic_write(path, write)


def check_writable(folder: str | os.PathLike) -> None:
    """Create `folder` if needed, then write, sync and delete a small probe file in it.

    Raises OutputError (with the system's errno) naming the folder when it cannot be created or
    written: a run calls this before any model runs, so that an unwritable output folder costs
    nothing. The probe is a temporary file of ours, so that a kill at the wrong moment leaves
    nothing that remove_stale_temps would not remove.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, "is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError.from_os_error(folder, "cannot create the output folder", e) from None
    try:
        temp, fd = _create_temp(folder / PROBE_NAME)
    except OSError as e:
        raise OutputError.from_os_error(folder, "cannot write in the output folder", e) from None
    try:
        os.write(fd, b"derain")
        os.fsync(fd)
    except OSError as e:
        raise OutputError.from_os_error(folder, "cannot write in the output folder", e) from None
    finally:
        os.close(fd)
        temp.unlink(missing_ok=True)


def remove_stale_temps(folder: str | os.PathLike, extensions: Collection[str] | None = None) -> list[Path]:
    """Delete the temporary files of ours in `folder` that no live writer holds; returns them.

    Only names of the form ``.NAME.XXXXXXXX.tmp`` are candidates, and with `extensions` (lower
    case, with the dot) only those whose NAME ends with one of them (or is the write probe's), so
    that files of other programs are left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(os.fspath(folder)))
    except OSError:
        return removed
    for entry in sorted(entries, key=lambda e: e.name):
        match = TEMP_NAME.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        name = match["name"]
        if extensions is not None and name != PROBE_NAME and Path(name).suffix.lower() not in extensions:
            continue
        path = Path(entry.path)
        if _held_by_a_writer(path):
            continue
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new temporary file beside `path`, open for writing and locked by this process."""
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            with contextlib.suppress(OSError):  # a file system without locks: the file is still ours
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return temp, fd


def _held_by_a_writer(path: Path) -> bool:
    """Whether a live process is writing `path` (it holds the lock; without locks: it is recent)."""
    if fcntl is None:
        try:
            return time.time() - path.stat().st_mtime < UNLOCKED_STALE_AGE
        except OSError:
            return True
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return True  # cannot tell: keep it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
