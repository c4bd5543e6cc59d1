"""Atomic file writes: a file appears complete under its name, or not at all.

Every output the package writes (images, comparison images, JSON and CSV reports) goes through
here, so that an interrupted run never leaves a half-written file that a resumed run would take
for a finished one, and a failed write never destroys the previous file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import ImageError


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through `write(f)` to a temporary file beside it, then os.replace it in place.

    Whatever fails, no temporary file is left behind and an existing `path` is untouched.
    OSErrors become ImageError(path, ...).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ImageError(path, f"cannot write: folder {path.parent} does not exist")
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise ImageError(path, f"cannot write ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException as e:
        temp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ImageError(path, f"cannot write ({e.strerror or e})") from None
        raise
    _fsync_folder(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """atomic_write for data already in memory (reports, JSON)."""

    def write(f: BinaryIO) -> None:
        f.write(data)

    atomic_write(path, write)


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
