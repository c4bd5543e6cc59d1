"""Deraining networks: build an architecture, or load a registered model with its weights.

    >>> from derain_cli import models
    >>> net = models.build("prenet")                 # released configuration, random weights
    >>> net = models.load("prenet:rain100h")         # with the authors' weights, in eval mode
"""

from __future__ import annotations

from typing import Any

from .registry import (  # noqa: F401  (re-exported)
    REGISTRY,
    Architecture,
    Contract,
    ModelEntry,
    ResolvedModel,
    WeightSource,
    default_adapter,
    default_model_name,
    strip_prefix,
)


def build(arch: str, **config: Any):
    """Construct architecture ``arch`` (its released configuration unless ``config`` is given)."""
    architecture = REGISTRY.architecture(arch)
    return architecture.builder(**{**architecture.default_config, **config})


def resolve(name: str | None) -> ResolvedModel:
    """Look up ``arch:variant`` (or ``arch``, or None for the built-in default)."""
    if not name:
        default = default_model_name()
        if default.split(":")[0] not in REGISTRY.architectures():
            from ..errors import ModelError

            raise ModelError(
                f"the built-in default model ({default}) is not part of this build yet; "
                "choose a model with -m NAME (see `derain models list`)"
            )
        return REGISTRY.resolve(default)
    return REGISTRY.resolve(name)


def load_state_dict_strict(module, state: dict, source: str = "weights") -> None:
    """Load ``state`` strictly; on mismatch raise ModelError naming the first offending keys."""
    from ..errors import ModelError

    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), first: {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), first: {', '.join(unexpected[:3])}")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} shape mismatch(es), first: {'; '.join(wrong_shape[:3])}")
        raise ModelError(f"{source} do not fit {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def load_from_file(model: ResolvedModel, path, device: str = "cpu"):
    """Build ``model``'s architecture and load the checkpoint at ``path`` into it (strictly)."""
    from ..weights import read_checkpoint

    module = build(model.arch, **model.config)
    state = model.adapter(read_checkpoint(path))
    load_state_dict_strict(module, state, source=str(path))
    return module.to(device).eval()


def load(name: str | None = None, device: str = "cpu", progress: bool = True):
    """The architecture of ``name`` with its registered weights (downloaded if needed), in eval mode."""
    from ..weights import ensure_weights

    model = resolve(name)
    path = ensure_weights(model, progress=progress)
    return load_from_file(model, path, device=device)
