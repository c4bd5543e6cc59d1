"""The model registry: architectures, their released variants and where their weights come from.

Vocabulary
----------
* An *architecture* (``Architecture``) is a network family: how to build it (``builder`` plus
  ``default_config``, the released configuration), the input contract of its forward pass
  (``Contract``), and how to turn a checkpoint file into a state dict (``adapter``, or ``importer``
  for a foreign format).
* A *model* (``ModelEntry``) is one set of released weights for an architecture, named
  ``arch:variant`` (``prenet:rain100h``). ``arch`` alone means the architecture's default variant.
* A *weight source* (``derain_cli.weights.WeightSource``) says where the file comes from: ``url``
  (downloadable), ``manual`` (a page a program cannot download from: the user fetches the file and
  runs ``derain models import``), ``bundled`` (inside this package) or ``file`` (a path on disk).

Every module in ``derain_cli/models/archs/`` is an architecture module: it defines a module-level
``ARCHITECTURE = Architecture(...)`` (or a list ``ARCHITECTURES``) and ``MODELS = [ModelEntry(...),
...]``. The registry finds them by scanning that folder, so adding an architecture means adding one
file there (CONTRIBUTING.md has the checklist). Extra modules (tests, plug-ins) can be registered
with ``register_module`` (``registered`` undoes it on exit) or listed in the environment variable
``DERAIN_PLUGINS`` (comma-separated importable module names).

This module does not import torch; importing an architecture module does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import settings
from ..errors import ModelError
from ..weights import WeightSource
from ._adapters import default_adapter
from ._contract import Contract

# The package whose modules are the built-in architectures.
ARCHS_PACKAGE = f"{__package__}.archs"


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

    def __init__(self, archs_package: str = ARCHS_PACKAGE):
        self._archs_package = archs_package
        self._architectures: dict[str, Architecture] = {}
        self._models: dict[str, ModelEntry] = {}
        self._scanned = False
        # module name -> (architecture names, model names) it added, for unregistering
        self._extra_modules: dict[str, tuple[list[str], list[str]]] = {}

    # -- registration -----------------------------------------------------------------------
    def add_architecture(self, arch: Architecture) -> None:
        self._architectures[arch.name] = arch

    def add_model(self, entry: ModelEntry) -> None:
        self._models[entry.name] = entry

    def add_module(self, module) -> tuple[list[str], list[str]]:
        """Register what ``module`` defines; returns (architecture names, model names) added."""
        arch = getattr(module, "ARCHITECTURE", None)
        archs = getattr(module, "ARCHITECTURES", None) or ([arch] if arch is not None else [])
        for a in archs:
            self.add_architecture(a)
        entries = list(getattr(module, "MODELS", ()))
        for entry in entries:
            self.add_model(entry)
        return [a.name for a in archs], [e.name for e in entries]

    def register_module(self, module_name: str) -> None:
        """Import ``module_name`` and register what it defines (used by tests and plug-ins)."""
        added = self.add_module(importlib.import_module(module_name))
        self._extra_modules.setdefault(module_name, added)

    def unregister_module(self, module_name: str) -> None:
        """Remove what ``register_module(module_name)`` added (nothing if it was not registered)."""
        archs, entries = self._extra_modules.pop(module_name, ([], []))
        for name in entries:
            self._models.pop(name, None)
        for name in archs:
            self.unregister(name)

    def unregister(self, arch: str) -> None:
        """Remove architecture ``arch`` and every model of it."""
        self._architectures.pop(arch, None)
        for name in [n for n, e in self._models.items() if e.arch == arch]:
            del self._models[name]

    @contextlib.contextmanager
    def registered(self, module_name: str) -> Iterator[None]:
        """``register_module(module_name)`` for the duration of a ``with`` block."""
        self._scan()
        self.register_module(module_name)
        try:
            yield
        finally:
            self.unregister_module(module_name)

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        archs = importlib.import_module(self._archs_package)
        for info in sorted(pkgutil.iter_modules(archs.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{self._archs_package}.{info.name}")
            if not (getattr(module, "ARCHITECTURE", None) or getattr(module, "ARCHITECTURES", None)):
                raise TypeError(f"{module.__name__} defines no ARCHITECTURE: every module in "
                                f"{self._archs_package} is an architecture (see CONTRIBUTING.md)")
            self.add_module(module)
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

# The built-in default model (trained by this project, shipped in the wheel).
DEFAULT_MODEL = "derainlite"


def default_model_name() -> str:
    """The model used when none is named: DERAIN_DEFAULT_MODEL, else the one shipped inside the package."""
    return settings.default_model() or DEFAULT_MODEL


def replace(entry: ModelEntry, **changes) -> ModelEntry:
    """A copy of ``entry`` with some fields changed (e.g. ``config`` for a small test configuration)."""
    return dataclasses.replace(entry, **changes)
