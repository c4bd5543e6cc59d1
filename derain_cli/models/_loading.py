"""Loading a model: the one place where a weights file becomes a network ready to run.

    file -> checkpoint (``formats``) -> state dict (the architecture's adapter, or its importer
    for a foreign format such as MSPFN's TensorFlow checkpoint) -> strict load into the built
    architecture -> device, eval mode -> ``LoadedModel``

A ``LoadedModel`` pairs the network with its input contract: calling it runs inference on
product-space images (RGB float N x 3 x H x W in [0, 1]), ``forward`` is the same computation with
autograd for training. Fetching weights is ``derain_cli.weights``; what that package needs from a
network (converting a foreign format, checking that a file fits) is passed to it from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import weights
from ..errors import DerainError, ModelError, WeightsError, one_line
from ._contract import Contract
from ._registry import REGISTRY, ModelEntry, ResolvedModel, default_model_name
from ._runner import product_forward
from .formats import checkpoint_format, read_checkpoint
from .formats.safetensors_io import read_metadata, save_state_dict

# --------------------------------------------------------------------------------------------
# Names -> models
# --------------------------------------------------------------------------------------------


def build(arch: str, **config: Any) -> torch.nn.Module:
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
            raise ModelError(
                f"the built-in default model ({default}) is not part of this build yet; "
                "choose a model with -m NAME (see `derain models list`)"
            )
        return REGISTRY.resolve(default)
    return REGISTRY.resolve(name)


def from_exported_file(path: str | Path) -> ResolvedModel:
    """A model for a file written by ``derain export`` (architecture and config from its metadata)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: no such weights file")
    meta = read_metadata(path)
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
        source=weights.WeightSource(kind="file", filename=path.name, path=str(path.resolve())),
        trained_on=f"your training run ({meta.get('steps', '?')} steps)",
        description=f"exported by derain {meta.get('derain_version', '?')} on {meta.get('created', '?')}",
    )
    return ResolvedModel(entry, architecture)


def _as_resolved(model: str | ResolvedModel | None) -> ResolvedModel:
    return model if isinstance(model, ResolvedModel) else resolve(model)


# --------------------------------------------------------------------------------------------
# Files -> state dicts -> modules
# --------------------------------------------------------------------------------------------


def load_state_dict_strict(module: torch.nn.Module, state: Mapping[str, Any], source: str = "weights") -> None:
    """Load ``state`` strictly; on mismatch raise ModelError naming the first offending keys."""
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
    module.load_state_dict(dict(state), strict=True)


def _is_foreign(model: ResolvedModel, path: Path) -> bool:
    """Whether ``path`` needs the architecture's importer (a folder, a TensorFlow checkpoint, ...)."""
    return model.architecture.importer is not None and checkpoint_format(path) is None


def _run_importer(model: ResolvedModel, path: Path) -> dict:
    importer = model.architecture.importer
    assert importer is not None
    return dict(importer(str(path), model.config))


def read_state_dict(model: ResolvedModel, path: str | Path) -> dict:
    """The state dict in ``path`` in ``model``'s key names: through the architecture's importer
    for a foreign format, else read safely and passed through the model's adapter."""
    path = Path(path)
    if _is_foreign(model, path):
        try:
            return _run_importer(model, path)
        except DerainError:
            raise
        except Exception as e:
            raise WeightsError(f"{path}: cannot convert it for {model.name}: {one_line(e)}") from e
    return model.adapter(read_checkpoint(path))


def _module_with(model: ResolvedModel, state: Mapping[str, Any], source: str) -> torch.nn.Module:
    """``model``'s architecture built in its configuration, with ``state`` loaded strictly."""
    module = model.architecture.builder(**model.config)
    load_state_dict_strict(module, state, source=source)
    return module


# --------------------------------------------------------------------------------------------
# The loaded model
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class LoadedModel:
    """A network with its input contract, callable on product-space images.

    ``model(x)``: inference. ``x`` is RGB float N x 3 x H x W in [0, 1] on any device; it is moved
    to the network's device, converted to the contract (channel order, value range, padding to the
    size multiple), run (under autocast when ``dtype`` is half precision on a GPU), and the result
    comes back as float32 RGB on the [0, 1] scale, same size, unclamped (the caller clamps once,
    after tiles are blended).

    ``model.forward(x)``: the same conversions with autograd and without autocast, for training
    (the trainer decides about autocast).

    ``model`` (the ``ResolvedModel``) is None for a network that is being trained rather than
    loaded from registered weights.
    """

    module: torch.nn.Module
    contract: Contract
    model: ResolvedModel | None = None
    dtype: torch.dtype = torch.float32

    @property
    def device(self) -> torch.device:
        """Where the network's weights are."""
        for p in self.module.parameters():
            return p.device
        for b in self.module.buffers():
            return b.device
        return torch.device("cpu")

    @property
    def name(self) -> str:
        return self.model.name if self.model is not None else type(self.module).__name__

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        device = self.device
        half = self.dtype != torch.float32 and device.type in ("cuda", "mps")
        return product_forward(self.module, self.contract, x.to(device=device, dtype=torch.float32),
                               autocast=self.dtype if half else None, float_result=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable: RGB [0, 1] in, RGB [0, 1]-scale out, same size."""
        return product_forward(self.module, self.contract, x)


def load_model(
    model: str | ResolvedModel | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    path: str | Path | None = None,
    progress: bool = True,
) -> LoadedModel:
    """``model`` (a name, a ResolvedModel, or None for the default) ready to run.

    The weights are ``path`` if given, else the registered file (fetched if needed, see
    ``ensure_weights``). The network is loaded strictly, moved to ``device`` and put in eval mode.
    """
    resolved = _as_resolved(model)
    if path is None:
        path = ensure_weights(resolved, progress=progress)
    module = _module_with(resolved, read_state_dict(resolved, path), source=str(path))
    return LoadedModel(module.to(device).eval(), resolved.contract, resolved, dtype)


def load(name: str | None = None, device: str | torch.device = "cpu", progress: bool = True) -> torch.nn.Module:
    """The architecture of ``name`` with its registered weights (downloaded if needed), in eval mode."""
    return load_model(name, device=device, progress=progress).module


# --------------------------------------------------------------------------------------------
# Fetching and importing weights with the network's help
# --------------------------------------------------------------------------------------------


def _converter(model: ResolvedModel) -> weights.Converter | None:
    """What the weights cache calls to store a foreign format as safetensors (None: no importer)."""
    if model.architecture.importer is None:
        return None

    def convert(file: Path, out: Path) -> str | None:
        if not _is_foreign(model, file):
            return None
        try:
            state = _run_importer(model, file)
        except Exception as e:
            raise WeightsError(f"cannot import {file} as {model.name}: {one_line(e)}") from e
        save_state_dict(state, out)
        return f"converted to safetensors by the {model.arch} importer"

    return convert


def _fit_check(model: ResolvedModel) -> weights.FitCheck:
    """What the weights cache calls to refuse a file that does not load strictly into ``model``."""

    def check(path: Path, origin: Path) -> None:
        try:
            state = model.adapter(read_checkpoint(path, name=origin))
            _module_with(model, state, source=f"weights in {origin}")
        except WeightsError:
            raise
        except DerainError as e:
            raise WeightsError(f"cannot import {origin} as {model.name}: {e}") from e
        if model.entry.matches is not None and not model.entry.matches(state):
            raise WeightsError(f"cannot import {origin} as {model.name}: the weights belong to another variant")

    return check


def ensure_weights(model: ResolvedModel, progress: bool = True) -> Path:
    """The local weights file of ``model``, fetched (and converted) if needed."""
    return weights.ensure_weights(model, progress=progress, convert=_converter(model))


def download_weights(model: ResolvedModel, progress: bool = True, force: bool = False) -> Path:
    """``derain models download``: fetch ``model``'s weights into the cache (converted if foreign)."""
    return weights.download(model, progress=progress, force=force, convert=_converter(model))


def import_weights(model: ResolvedModel, file: str | Path, force: bool = False) -> Path:
    """``derain models import``: copy a user's file into the cache after checking that it loads
    strictly into ``model`` (foreign formats go through the importer and are stored converted)."""
    return weights.import_weights(model, file, force=force, convert=_converter(model), check=_fit_check(model))
