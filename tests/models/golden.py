"""Helpers shared by the golden-output tests: the reference tiny.pt files and tensor comparison."""

from __future__ import annotations

import torch

from derain_cli import models
from derain_cli.models import load_state_dict_strict
from tests.conftest import shared_path


def load_tiny(arch: str) -> dict:
    """``../shared/reference/ARCH/tiny.pt`` (the test skips where the reference data is absent)."""
    return torch.load(shared_path("reference", arch, "tiny.pt"), weights_only=True)


def tiny_model(arch: str, golden: dict, **extra) -> torch.nn.Module:
    """``models.build(arch, **golden["config"], **extra)`` with the golden weights loaded strictly, in eval mode."""
    net = models.build(arch, **golden["config"], **extra)
    load_state_dict_strict(net, golden["state_dict"], source="tiny.pt")
    return net.eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference of two tensors of one shape."""
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    return (a - b).abs().max().item()
