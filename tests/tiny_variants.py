"""Tests-only twins of the main architectures at the small configurations of ../shared's tiny.pt.

Each twin `<arch>-tiny:test` has a manual weight source, so the end-to-end tests can write the tiny
weights in the authors' own file formats, `derain models import` them, and run `derain` with them.
Registered through DERAIN_PLUGINS=tests.tiny_variants; never offered to users.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from derain_cli.models import REGISTRY, ModelEntry, WeightSource

SHARED = Path(os.environ.get("DERAIN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
MAIN = ("glgfn", "drsformer", "dcsfn", "mspfn")


def tiny_reference(arch: str) -> dict:
    return torch.load(SHARED / "reference" / arch / "tiny.pt", weights_only=True)


ARCHITECTURES = []
MODELS = []
for _arch in MAIN:
    _file = SHARED / "reference" / _arch / "tiny.pt"
    if not _file.exists():
        continue
    _real = REGISTRY.architecture(_arch)
    ARCHITECTURES.append(dataclasses.replace(
        _real, name=f"{_arch}-tiny", title=f"{_real.title} (tiny test config)",
        default_config=dict(tiny_reference(_arch)["config"]), default_variant="test"))
    MODELS.append(ModelEntry(
        arch=f"{_arch}-tiny", variant="test", trained_on="nothing: golden test weights",
        source=WeightSource(kind="manual", filename=f"{_arch}-tiny.pth", page=f"https://example.org/{_arch}")))
