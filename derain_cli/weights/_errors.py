"""The errors of the weights cache: all are ``WeightsError``, so the CLI reports them in one line."""

from __future__ import annotations

from ..errors import WeightsError


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

