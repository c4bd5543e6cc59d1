"""The weights cache: find, download, verify, import and remove model weight files.

Layout (``cache_dir()`` is ``$DERAIN_HOME`` or the platform's user cache folder)::

    <cache>/weights/<arch>/<variant>/<sha256[:12]>-<filename>        the weights
    <cache>/weights/<arch>/<variant>/<sha256[:12]>-<filename>.json   where it came from
    <cache>/weights/<arch>/<variant>/<filename>.part                 a download in progress
    <cache>/weights/.locks/<arch>--<variant>.lock                    held while fetching

A weights file appears under its final name only after its sha256 has been checked, by an atomic
rename, so a partial or corrupt download is never loaded. Fetching happens under a per-model lock
file, so concurrent processes asking for the same weights download them once.

Environment (read through ``derain_cli.settings``):

* ``DERAIN_HOME``: cache folder (overrides the platform default).
* ``DERAIN_OFFLINE=1``: never use the network; missing weights are an error saying how to get them.
* ``DERAIN_MIRROR``: a folder, ``file://`` URL or ``http(s)://`` URL holding the weights files under
  their registry file names (``WeightSource.filename``); used instead of the original URLs.

This package moves files; it imports neither torch nor ``derain_cli.models``. A model is, for it,
anything with ``name``, ``arch``, ``variant`` and ``source`` (``ModelWeights``). Converting a
foreign checkpoint format and checking that a file fits an architecture need the networks: the
caller passes them in (``Converter``, ``FitCheck``). ``derain_cli.models.download_weights`` and
``derain_cli.models.import_weights`` do, and are what the CLI calls; reading checkpoints is
``derain_cli.models.formats``.
"""

from __future__ import annotations

from ._cache import (
    Converter,
    FitCheck,
    cached_path,
    download,
    ensure_weights,
    import_weights,
    installed,
    manual_instructions,
    remove,
)
from ._errors import ChecksumError, DownloadError, ManualDownloadRequired, OfflineError
from ._http import RetryPolicy, http_download
from ._layout import cache_dir, offline, sha256_file
from ._lock import model_lock
from ._mirror import mirror
from ._records import CacheRecord, VerifyResult, cache_record, cache_records, verify_cache
from ._source import ModelWeights, WeightSource

__all__ = [
    "CacheRecord",
    "ChecksumError",
    "Converter",
    "DownloadError",
    "FitCheck",
    "ManualDownloadRequired",
    "ModelWeights",
    "OfflineError",
    "RetryPolicy",
    "VerifyResult",
    "WeightSource",
    "cache_dir",
    "cache_record",
    "cache_records",
    "cached_path",
    "download",
    "ensure_weights",
    "http_download",
    "import_weights",
    "installed",
    "manual_instructions",
    "mirror",
    "model_lock",
    "offline",
    "remove",
    "sha256_file",
    "verify_cache",
]
