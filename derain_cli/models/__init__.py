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
    """Look up ``arch:variant`` (or ``arch``, or None for the built-in default).

    A path to a ``.safetensors`` file written by ``derain export`` is accepted too: its metadata
    names the architecture and configuration.
    """
    if name and name.lower().endswith(".safetensors"):
        return from_exported_file(name)
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


def from_exported_file(path) -> ResolvedModel:
    """A model for a file written by ``derain export`` (architecture and config from its metadata)."""
    import json
    from pathlib import Path

    from ..errors import ModelError

    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: no such weights file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad file
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    arch_name = meta.get("architecture")
    if not arch_name:
        raise ModelError(f"{path}: no architecture in its metadata (was it written by `derain export`?)")
    architecture = REGISTRY.architecture(arch_name)
    try:
        config = json.loads(meta.get("arch_config") or "{}")
    except json.JSONDecodeError:
        raise ModelError(f"{path}: its arch_config metadata is not valid JSON") from None
    entry = ModelEntry(
        arch=architecture.name, variant=path.stem, config=config,
        source=WeightSource(kind="file", filename=path.name, path=str(path.resolve())),
        trained_on=f"your training run ({meta.get('steps', '?')} steps)",
        description=f"exported by derain {meta.get('derain_version', '?')} on {meta.get('created', '?')}",
    )
    return ResolvedModel(entry, architecture)


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
