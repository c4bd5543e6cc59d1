"""Exceptions that the CLI turns into one-line messages and exit codes."""

from __future__ import annotations

import errno as _errno
import os


class DerainError(Exception):
    """Base class: an error the user can act on. str(e) is a complete one-line message."""

    exit_code = 1


class UsageError(DerainError):
    """The command line or API call asks for something impossible."""

    exit_code = 2


class ImageError(DerainError):
    """An input image cannot be read or an output image cannot be written."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class OutputError(ImageError):
    """An output file or folder cannot be written.

    `errno` is the operating system's reason where there is one. When it is a reason that every
    other output would meet too (no permission, a full disk or quota, a read-only file system),
    `repeats` is True and a run stops there instead of deraining the rest only to fail their writes.
    """

    REPEATING = frozenset(code for code in (_errno.EACCES, _errno.ENOSPC, _errno.EROFS,
                                            getattr(_errno, "EDQUOT", None)) if code is not None)

    def __init__(self, path: str | os.PathLike[str], problem: str, errno: int | None = None):
        super().__init__(path, problem)
        self.errno = errno

    @classmethod
    def from_os_error(cls, path: str | os.PathLike[str], what: str, exc: OSError) -> OutputError:
        """`path: <what> (<the system's reason>)`, keeping its errno."""
        return cls(path, f"{what} ({exc.strerror or exc})", exc.errno)

    @property
    def repeats(self) -> bool:
        return self.errno in self.REPEATING


class ModelError(DerainError):
    """A model name is unknown, or its weights cannot be loaded into its architecture."""


class WeightsError(DerainError):
    """Weights are missing, corrupt or cannot be downloaded."""


class DeviceError(DerainError):
    """An explicitly requested device is not available."""

    exit_code = 2


class VideoError(DerainError):
    """A video (or frame folder) cannot be read or written; str(e) names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def one_line(error: BaseException | str, limit: int = 160) -> str:
    """An error's text on one line (whitespace collapsed), cut to ``limit`` characters: for
    quoting a library's exception inside our own one-line messages."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
