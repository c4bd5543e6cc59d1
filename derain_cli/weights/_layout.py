"""Where the cache keeps things (see the package docstring for the layout), and file helpers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .. import settings
from ..errors import WeightsError
from ._source import ModelWeights


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


def weights_root() -> Path:
    return cache_dir() / "weights"


def safe(part: str) -> str:
    """``part`` with every character that is unsafe in a file name replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", part) or "_"


def model_dir(model: ModelWeights) -> Path:
    return weights_root() / safe(model.arch) / safe(model.variant)


def lock_path(model: ModelWeights) -> Path:
    return weights_root() / ".locks" / f"{safe(model.arch)}--{safe(model.variant)}.lock"


def metadata_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def registry_filename(model: ModelWeights) -> str:
    return safe(Path(model.source.filename).name)


def part_path(model: ModelWeights) -> Path:
    """Where a download or import of ``model`` is written before it is checked."""
    return model_dir(model) / (registry_filename(model) + ".part")


def converted_path(part: Path) -> Path:
    """Where the conversion of a fetched foreign-format file is written before it is installed."""
    return part.with_name(part.name + ".converted")


def makedirs(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(
            f"cannot create the cache folder {path}: {e.strerror or e}; set DERAIN_HOME to a writable folder"
        ) from e


def sha256_file(path: Path | str) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
