"""The model registry: architectures, their released variants, weight sources and input contracts.

Vocabulary
----------
* An *architecture* (``Architecture``) is a network family: how to build it (``builder`` plus
  ``default_config``, the released configuration), the input contract of its forward pass, and how
  to turn a checkpoint file into a state dict (``adapter``).
* A *model* (``ModelEntry``) is one set of released weights for an architecture, named
  ``arch:variant`` (``prenet:rain100h``). ``arch`` alone means the architecture's default variant.
* A *weight source* (``WeightSource``) says where the file comes from: ``url`` (downloadable),
  ``manual`` (a page a program cannot download from: the user fetches the file and runs
  ``derain models import``), ``bundled`` (inside this package) or ``file`` (a path on disk).

Architecture modules live in ``derain_cli/models/<arch>.py``. Each defines a module-level
``ARCHITECTURE = Architecture(...)`` and ``MODELS = [ModelEntry(...), ...]``; they are found by
scanning this package, so adding an architecture means adding one module and nothing else.
Extra modules (tests, plug-ins) can be registered with ``register_module`` or listed in the
environment variable ``DERAIN_PLUGINS`` (comma-separated importable module names).

This module does not import torch; importing an architecture module does.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import settings
from ..errors import ModelError

# Modules of this package that are infrastructure, not architectures.
_NOT_ARCHITECTURES = {"registry", "runner", "common", "layers", "tf_checkpoint"}


@dataclass(frozen=True)
class Contract:
    """How the authors' forward pass expects its input and what it returns.

    The product always works in RGB float32 in [0, 1]; ``runner.ModelRunner`` converts to and
    from this contract.
    """

    channels: str = "RGB"  # "RGB" or "BGR"
    value_range: tuple[float, float] = (0.0, 1.0)  # what 0 and 1 of the product's range map to
    size_multiple: int = 1  # H and W must be multiples of this
    pad_mode: str = "reflect"  # "reflect", "replicate" or "constant" (zeros)
    pad_where: str = "bottom_right"  # "bottom_right" or "symmetric"
    # Which part of the forward's return value is the derained image: an index into a tuple or
    # list, None for a plain tensor, or a callable (outputs, model_input) -> tensor.
    output: int | Callable[[Any, Any], Any] | None = None
    min_size: int = 1  # smallest H or W the network accepts (after padding)
    # True where the output at a pixel depends on statistics of the whole image (global attention,
    # normalisation over the image). Tiling then changes the result; see ``tile``.
    global_context: bool = False
    # Suggested tile size for tiled inference (None: the tiler decides from free memory).
    tile: int | None = None
    # Rough peak bytes of activation memory per input pixel in float32, used to pick tile sizes.
    bytes_per_pixel: int = 4096
    # Whether the network is safe to run in fp16/bf16 as a whole.
    half_precision: bool = True
    # -- video models ------------------------------------------------------------------------
    # None: an image model (N x 3 x H x W), which video runs frame by frame. A number: a video
    # model whose forward takes a clip N x 3 x T x H x W; long videos are cut into chunks of this
    # many frames, each run with ``frame_overlap`` extra frames of context on every inner side
    # (their outputs are dropped). ``bytes_per_pixel`` is then per pixel of one frame.
    frames: int | None = None
    frame_overlap: int = 0

    @property
    def is_video(self) -> bool:
        """Whether the forward takes clips (N x 3 x T x H x W) rather than images."""
        return self.frames is not None

    def describe(self) -> str:
        lo, hi = self.value_range
        parts = [f"{self.channels} in [{lo:g}, {hi:g}]"]
        if self.size_multiple > 1:
            parts.append(f"size multiple {self.size_multiple} ({self.pad_mode} padding, {self.pad_where})")
        else:
            parts.append("any size")
        if isinstance(self.output, int):
            parts.append(f"result is output #{self.output}")
        elif callable(self.output):
            parts.append(f"result: {getattr(self.output, '__doc__', None) or 'derived from the outputs'}".strip())
        if self.global_context:
            parts.append("uses whole-image context")
        if self.is_video:
            parts.append(f"video model: clips of {self.frames} frames, {self.frame_overlap} frames of context")
        return "; ".join(parts)


@dataclass(frozen=True)
class WeightSource:
    """Where a model's weight file comes from."""

    kind: str  # "url", "manual", "bundled" or "file"
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
        if self.kind not in {"url", "manual", "bundled", "file"}:
            raise ValueError(f"unknown weight source kind {self.kind!r}")


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict:
    """Remove ``prefix`` from every key that has it (e.g. ``module.`` from DataParallel)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


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


@dataclass(frozen=True)
class Architecture:
    """A network family: how to build it and how to feed it."""

    name: str  # registry name, lower case: "glgfn"
    title: str  # human name: "GLGFN"
    builder: Callable[..., Any]  # constructor of the torch.nn.Module
    default_config: Mapping[str, Any]  # the released configuration
    contract: Contract
    paper: str = ""
    url: str = ""  # the authors' project/code page
    licence: str = "unstated"
    description: str = ""
    default_variant: str | None = None
    adapter: Callable[[Any], dict] = default_adapter
    # Optional custom importer for foreign checkpoint formats:
    # (path, config) -> state dict in our key names (e.g. MSPFN's TensorFlow checkpoint).
    importer: Callable[[str, Mapping[str, Any]], dict] | None = None
    # Whether users are offered this architecture (False for test-only networks is not needed:
    # those live in tests/ and are never registered outside them).
    trainable: bool = True
    # Shown when the architecture has no weights registered (e.g. PLNLIN, whose authors published none).
    weights_note: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """One set of weights for an architecture: what ``-m arch:variant`` names."""

    arch: str
    variant: str
    source: WeightSource
    trained_on: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)  # overrides of default_config
    contract: Contract | None = None  # overrides the architecture's contract
    adapter: Callable[[Any], dict] | None = None  # overrides the architecture's adapter
    description: str = ""
    licence: str | None = None
    paper: str | None = None
    # For ``derain models import``: a function (state_dict) -> bool that tells whether a state
    # dict belongs to this variant (e.g. DRSformer with/without MEFC blocks).
    matches: Callable[[Mapping[str, Any]], bool] | None = None

    @property
    def name(self) -> str:
        return f"{self.arch}:{self.variant}"


@dataclass(frozen=True)
class ResolvedModel:
    """A model entry joined with its architecture: everything needed to build and run it."""

    entry: ModelEntry
    architecture: Architecture

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def arch(self) -> str:
        return self.entry.arch

    @property
    def variant(self) -> str:
        return self.entry.variant

    @property
    def source(self) -> WeightSource:
        return self.entry.source

    @property
    def config(self) -> dict:
        return {**self.architecture.default_config, **self.entry.config}

    @property
    def contract(self) -> Contract:
        return self.entry.contract or self.architecture.contract

    @property
    def adapter(self) -> Callable[[Any], dict]:
        return self.entry.adapter or self.architecture.adapter

    @property
    def licence(self) -> str:
        return self.entry.licence or self.architecture.licence

    @property
    def paper(self) -> str:
        return self.entry.paper or self.architecture.paper

    @property
    def is_default_variant(self) -> bool:
        return self.architecture.default_variant == self.entry.variant


class Registry:
    """Architectures and models, discovered lazily from the architecture modules."""

    def __init__(self):
        self._architectures: dict[str, Architecture] = {}
        self._models: dict[str, ModelEntry] = {}
        self._scanned = False
        self._extra_modules: list[str] = []

    # -- registration -----------------------------------------------------------------------
    def add_architecture(self, arch: Architecture) -> None:
        self._architectures[arch.name] = arch

    def add_model(self, entry: ModelEntry) -> None:
        self._models[entry.name] = entry

    def add_module(self, module) -> None:
        arch = getattr(module, "ARCHITECTURE", None)
        archs = getattr(module, "ARCHITECTURES", None) or ([arch] if arch is not None else [])
        for a in archs:
            self.add_architecture(a)
        for entry in getattr(module, "MODELS", ()):
            self.add_model(entry)

    def register_module(self, module_name: str) -> None:
        """Import ``module_name`` and register what it defines (used by tests and plug-ins)."""
        self.add_module(importlib.import_module(module_name))
        if module_name not in self._extra_modules:
            self._extra_modules.append(module_name)

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        from . import __path__ as package_path

        for info in sorted(pkgutil.iter_modules(package_path), key=lambda i: i.name):
            if info.name.startswith("_") or info.name in _NOT_ARCHITECTURES:
                continue
            self.add_module(importlib.import_module(f"{__package__}.{info.name}"))
        for name in settings.plugins():
            self.register_module(name)

    # -- queries ----------------------------------------------------------------------------
    def architectures(self) -> dict[str, Architecture]:
        self._scan()
        return dict(self._architectures)

    def architecture(self, name: str) -> Architecture:
        self._scan()
        key = name.lower()
        if key not in self._architectures:
            raise ModelError(
                f"unknown architecture {name!r}; known: {', '.join(sorted(self._architectures)) or 'none'}"
            )
        return self._architectures[key]

    def models(self) -> list[ResolvedModel]:
        self._scan()
        out = []
        for entry in self._models.values():
            arch = self._architectures.get(entry.arch)
            if arch is not None:
                out.append(ResolvedModel(entry, arch))
        return sorted(out, key=lambda m: (m.arch, not m.is_default_variant, m.variant))

    def resolve(self, name: str) -> ResolvedModel:
        """``arch:variant`` or ``arch`` (its default variant) -> ResolvedModel."""
        self._scan()
        key = name.strip().lower()
        arch_name, _, variant = key.partition(":")
        arch = self._architectures.get(arch_name)
        if arch is None:
            close = [a for a in self._architectures if a.startswith(arch_name[:3])] if arch_name else []
            hint = f" (did you mean {', '.join(sorted(close))}?)" if close else ""
            raise ModelError(f"unknown model {name!r}{hint}; run `derain models list` to see all models")
        if not variant:
            variant = arch.default_variant or ""
            if not variant:
                variants = [e.variant for e in self._models.values() if e.arch == arch.name]
                if len(variants) == 1:
                    variant = variants[0]
                else:
                    raise ModelError(
                        (arch.weights_note or f"model {name!r} has no released weights registered")
                        if not variants
                        else f"model {name!r} needs a variant: {', '.join(sorted(variants))}"
                    )
        entry = self._models.get(f"{arch.name}:{variant}")
        if entry is None:
            variants = sorted(e.variant for e in self._models.values() if e.arch == arch.name)
            raise ModelError(
                f"unknown variant {variant!r} of {arch.name}; known variants: {', '.join(variants) or 'none'}"
            )
        return ResolvedModel(entry, arch)


REGISTRY = Registry()


def default_model_name() -> str:
    """The model used when none is named: the one that ships inside the package."""
    return settings.default_model() or DEFAULT_MODEL


# The built-in default model (trained by this project, shipped in the wheel).
DEFAULT_MODEL = "derainlite"


def replace(entry: ModelEntry, **changes) -> ModelEntry:
    return dataclasses.replace(entry, **changes)


def variants_of(arch: str) -> Sequence[ModelEntry]:
    return [m.entry for m in REGISTRY.models() if m.arch == arch]
