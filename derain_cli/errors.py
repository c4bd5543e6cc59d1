"""Exceptions that the CLI turns into one-line messages and exit codes."""

from __future__ import annotations

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


class ModelError(DerainError):
    """A model name is unknown, or its weights cannot be loaded into its architecture."""


class WeightsError(DerainError):
    """Weights are missing, corrupt or cannot be downloaded."""


class DeviceError(DerainError):
    """An explicitly requested device is not available."""

    exit_code = 2


class VideoError(DerainError):
    """A video (or frame folder) cannot be read or written; str(e) names the file and the problem."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def one_line(error: BaseException | str, limit: int = 160) -> str:
    """An error's text on one line (whitespace collapsed), cut to ``limit`` characters: for
    quoting a library's exception inside our own one-line messages."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
