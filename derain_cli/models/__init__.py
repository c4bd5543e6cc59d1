"""Deraining networks: build an architecture, or load a registered model with its weights.

    >>> from derain_cli import models
    >>> net = models.build("prenet")                 # released configuration, random weights
    >>> net = models.load("prenet:rain100h")         # with the authors' weights, in eval mode
    >>> m = models.load_model("prenet:rain100h")     # the network with its input contract
    >>> clean = m(rainy)                             # RGB N x 3 x H x W in [0, 1] in and out

Layout: ``_registry`` (names, variants, weight sources; no torch), ``_contract`` (what a network's
forward expects), ``_loading`` (the one owner of loading: file -> state dict -> strict load ->
``LoadedModel``), ``_runner`` (product space <-> a network's contract), ``formats`` (reading
checkpoints), ``layers`` (shared building blocks), ``archs`` (one module per architecture).

Importing this package does not import torch: the names that need it (``build``, ``load``,
``load_model``, ``LoadedModel``, ...) are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..weights import WeightSource
from ._adapters import default_adapter, drop_keys, strip_prefix
from ._contract import Contract
from ._registry import REGISTRY, Architecture, ModelEntry, ResolvedModel, default_model_name

if TYPE_CHECKING:
    from ._loading import (
        LoadedModel,
        build,
        download_weights,
        ensure_weights,
        from_exported_file,
        import_weights,
        load,
        load_model,
        load_state_dict_strict,
        read_state_dict,
        resolve,
    )

# Names defined in ``_loading`` (it imports torch), resolved on first access.
_LOADING = frozenset({
    "LoadedModel", "build", "download_weights", "ensure_weights", "from_exported_file", "import_weights",
    "load", "load_model", "load_state_dict_strict", "read_state_dict", "resolve",
})


def __getattr__(name: str) -> Any:
    if name in _LOADING:
        value = getattr(importlib.import_module("._loading", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "REGISTRY",
    "Architecture",
    "Contract",
    "LoadedModel",
    "ModelEntry",
    "ResolvedModel",
    "WeightSource",
    "build",
    "default_adapter",
    "default_model_name",
    "download_weights",
    "drop_keys",
    "ensure_weights",
    "from_exported_file",
    "import_weights",
    "load",
    "load_model",
    "load_state_dict_strict",
    "read_state_dict",
    "resolve",
    "strip_prefix",
]
