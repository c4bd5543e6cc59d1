"""Every registered architecture, driven by the registry: its contract is sane and honoured.

A new architecture is covered here without new test code: it is built from its default
configuration (random weights, fixed seed), an odd-sized random image (for a video model: a clip
of three such frames) goes through ``LoadedModel`` in float32, and the result must have the
input's size, finite values, and agree between the inference path (in-place shortcuts, no
autograd) and the training path (autograd).
"""

from __future__ import annotations

import pytest
import torch

from derain_cli import models
from derain_cli.models import REGISTRY, LoadedModel

ARCHITECTURES = sorted(REGISTRY.architectures())

# An odd size that is a multiple of no network's size multiple, so every contract pads and crops.
HEIGHT, WIDTH = 37, 45


def test_the_registry_holds_every_builtin_architecture():
    assert {"derainlite", "prenet", "brn", "drn", "rescan", "sapnet", "vrgnet", "jorder-e", "hct-ffn",
            "glgfn", "drsformer", "dcsfn", "mspfn", "plnlin", "s2vd"} <= set(ARCHITECTURES)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_contract_fields_are_sane(arch):
    a = REGISTRY.architecture(arch)
    c = a.contract
    assert c.channels in ("RGB", "BGR")
    lo, hi = c.value_range
    assert lo < hi and hi > 0
    assert isinstance(c.size_multiple, int) and c.size_multiple > 0
    assert isinstance(c.min_size, int) and c.min_size >= 1
    assert c.pad_mode in ("reflect", "replicate", "constant")
    assert c.pad_where in ("bottom_right", "symmetric")
    assert c.output is None or isinstance(c.output, int) or callable(c.output)
    assert c.tile is None or (isinstance(c.tile, int) and c.tile >= 64), "a tile hint below 64 px is all border"
    if c.tile is not None:
        assert c.tile % c.size_multiple == 0, "tiles should not need padding"
    assert isinstance(c.half_precision, bool) and isinstance(c.global_context, bool)
    assert isinstance(c.bytes_per_pixel, int) and c.bytes_per_pixel > 0
    if c.is_video:  # chunks must keep some frames after dropping the context on both sides
        assert isinstance(c.frames, int) and c.frame_overlap >= 0 and c.frames > 2 * c.frame_overlap
    else:
        assert c.frame_overlap == 0
    assert a.name == arch and a.name == a.name.lower() and a.title
    assert a.default_variant is None or models.resolve(arch).variant == a.default_variant


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_product_image_goes_through_the_contract(arch):
    a = REGISTRY.architecture(arch)
    torch.manual_seed(0)
    net = LoadedModel(models.build(arch).eval(), a.contract)
    shape = (1, 3, 3, HEIGHT, WIDTH) if a.contract.is_video else (1, 3, HEIGHT, WIDTH)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))

    y = net(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert (y - x).abs().max() > 1e-6, "the network left the image untouched"

    trainable = x.clone().requires_grad_(True)
    y_train = net.forward(trainable)
    assert y_train.shape == x.shape
    assert torch.allclose(y_train.detach(), y, atol=1e-4, rtol=1e-4), \
        f"inference and training paths differ by {(y_train.detach() - y).abs().max().item():.3g}"
