"""DERAIN_MIRROR: a folder or an HTTP server holding weights files under their registry names."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse
from urllib.request import url2pathname

from .. import settings
from ._errors import DownloadError, OfflineError
from ._http import http_download
from ._source import ModelWeights


@dataclass(frozen=True)
class Fetched:
    """Files copied or downloaded from a mirror into ``.part`` files, not yet checked."""

    origin: str  # the file's location, for messages
    source: str  # what the cache record says it came from
    companions: dict[str, Path]  # companion name -> where it was fetched to


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


def fetch_from_mirror(model: ModelWeights, location: str, part: Path, progress: bool) -> Fetched | None:
    """Fetch the model's file to ``part`` (and its companions beside it); None when the mirror lacks it."""
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
        return Fetched(str(found), f"mirror {found}", companions)
    if settings.offline():
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
    return Fetched(url, f"mirror {url}", companions)
