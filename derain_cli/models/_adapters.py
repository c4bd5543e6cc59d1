"""Turning a loaded checkpoint into a plain state dict in our key names (no torch needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ModelError


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict:
    """Remove ``prefix`` from every key that has it (e.g. ``module.`` from DataParallel)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def drop_keys(state: Mapping[str, Any], prefixes: Sequence[str] = (), contains: Sequence[str] = ()) -> dict:
    """``state`` without the keys that start with any of ``prefixes`` or contain any of ``contains``."""
    return {
        k: v for k, v in state.items()
        if not k.startswith(tuple(prefixes)) and not any(s in k for s in contains)
    }


def default_adapter(checkpoint: Any) -> dict:
    """Turn a loaded checkpoint into a plain state dict.

    Unwraps the usual containers (``{'net': ...}``, ``{'params': ...}``, ``{'state_dict': ...}``,
    ``{'model': ...}``, ``{'params_ema': ...}``) and strips a ``module.`` prefix.
    """
    obj = checkpoint
    for _ in range(3):
        if not isinstance(obj, Mapping):
            break
        tensors = [v for v in obj.values() if hasattr(v, "shape")]
        if tensors and len(tensors) == len(obj):
            break
        for key in ("params_ema", "params", "state_dict", "net", "model", "generator"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
        else:
            break
    if not isinstance(obj, Mapping):
        raise ModelError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    state = {k: v for k, v in obj.items() if hasattr(v, "shape")}
    if state and all(k.startswith("module.") for k in state):
        state = strip_prefix(state, "module.")
    return state
