"""Where a model's weight file comes from, and what the cache needs to know about a model.

The cache never looks at networks: a model is, for it, a name (``arch:variant``) and a
``WeightSource``. ``derain_cli.models.ResolvedModel`` is the usual such object; anything with the
four attributes of ``ModelWeights`` works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SOURCE_KINDS = ("url", "manual", "bundled", "file")


@dataclass(frozen=True)
class WeightSource:
    """Where a model's weight file comes from.

    ``url``: downloadable; ``manual``: a page a program cannot download from (the user fetches the
    file and runs ``derain models import``); ``bundled``: inside this package; ``file``: a path on
    disk.
    """

    kind: str  # one of SOURCE_KINDS
    filename: str  # the file name the registry knows it by (also the mirror name)
    url: str | None = None  # kind "url": direct download URL
    sha256: str | None = None
    size: int | None = None  # bytes, where known
    page: str | None = None  # kind "manual": the page the user downloads from
    password: str | None = None  # kind "manual": share password (Baidu)
    instructions: str | None = None  # kind "manual": what to pick on that page
    path: str | None = None  # kind "bundled": path relative to the package; "file": absolute
    # Files that must sit beside ``filename`` for it to load (e.g. a TensorFlow checkpoint's
    # ``.data-00000-of-00001`` shard next to its ``.index``); a mirror serves them under these names.
    companions: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown weight source kind {self.kind!r}")


class ModelWeights(Protocol):
    """The model whose weights the cache fetches, stores or removes."""

    @property
    def name(self) -> str:  # "arch:variant"
        ...

    @property
    def arch(self) -> str: ...

    @property
    def variant(self) -> str: ...

    @property
    def source(self) -> WeightSource: ...
