"""DCSFN: golden output of the authors' code, the released checkpoint layout and the input contract."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from derain_cli import models
from derain_cli.models import LoadedModel, load_state_dict_strict
from derain_cli.models.archs import dcsfn
from tests.conftest import shared_path
from tests.models.golden import load_tiny, max_diff, tiny_model

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny() -> dict:
    return load_tiny("dcsfn")


@pytest.fixture(scope="module")
def tiny_net(tiny) -> dcsfn.DCSFN:
    return tiny_model("dcsfn", tiny)



def test_tiny_reproduces_authors_output(tiny, tiny_net):
    with torch.no_grad():
        assert max_diff(tiny_net(tiny["input"]), tiny["output"]) < TOL


def test_autograd_path_computes_the_same_and_trains(tiny, tiny_net):
    x = torch.rand(2, 3, 37, 45, generator=torch.Generator().manual_seed(5))  # odd sizes, batch 2
    with torch.no_grad():
        fast = tiny_net(x)  # preallocated dense buffers, reused by the decoders
    net = models.build("dcsfn", **tiny["config"])
    net.load_state_dict(tiny["state_dict"])
    out = net.eval()(x)  # torch.cat path
    assert max_diff(out.detach(), fast) < 1e-5
    out.square().mean().backward()
    assert torch.isfinite(net.encoder_scale1.units[0].scale8[0][0].weight.grad).all()


def _reference_unit(unit: dcsfn.InnerScaleBlock, x: torch.Tensor) -> torch.Tensor:
    """The authors' unit: every scale pooled from x itself, concatenations in their order."""

    def up(t, like):
        return F.interpolate(t, size=like.shape[-2:], mode="nearest")

    f8 = unit.scale8(F.max_pool2d(x, 8))
    f4 = F.max_pool2d(x, 4)
    f4 = unit.scale4(unit.fusion84(torch.cat([f4, up(f8, f4)], 1)))
    f2 = F.max_pool2d(x, 2)
    f2 = unit.scale2(unit.fusion42(torch.cat([f2, up(f4, f2)], 1)))
    f1 = unit.scale1(unit.fusion21(torch.cat([x, up(f2, x)], 1)))
    return x + unit.fusion_all(torch.cat([f1, up(f2, x), up(f4, x), up(f8, x)], 1))


@pytest.mark.parametrize("size", [(32, 32), (37, 45), (63, 50)])
def test_unit_matches_authors_formulation_at_odd_sizes(tiny_net, size):
    unit = tiny_net.encoder_scale1.units[1]
    x = torch.rand(1, unit.scale1[0][0].in_channels, *size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert max_diff(unit(x.contiguous(memory_format=torch.channels_last)), _reference_unit(unit, x)) < 1e-5


def test_released_configuration_matches_checkpoint_layout():
    spec = json.loads(shared_path("reference", "dcsfn", "state_dict.json").read_text())
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in dcsfn.DCSFN().state_dict().items()]
    assert ours == spec["keys"]
    assert models.REGISTRY.architecture("dcsfn").default_config == spec["config"]


def test_authors_checkpoint_wrapper_loads_strictly(tiny, tmp_path):
    path = tmp_path / "latest_net"
    wrapped = {f"module.{k}": v for k, v in tiny["state_dict"].items()}  # saved from nn.DataParallel
    torch.save({"net": wrapped, "clock_net": 41000, "opt_net": {"state": {}, "param_groups": []}}, path)
    state = models.REGISTRY.architecture("dcsfn").adapter(torch.load(path, weights_only=True))
    net = models.build("dcsfn", **tiny["config"])
    load_state_dict_strict(net, state, source=str(path))
    with torch.no_grad():
        assert max_diff(net.eval()(tiny["input"]), tiny["output"]) < TOL


def test_runner_applies_contract(tiny_net):
    contract = models.REGISTRY.architecture("dcsfn").contract
    runner = LoadedModel(tiny_net, contract)
    rgb = torch.rand(1, 3, 41, 53, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = tiny_net(rgb.flip(1)).flip(1)  # native size: the authors never pad
    assert max_diff(runner(rgb), expected) < 1e-6

    small = torch.rand(1, 3, 20, 40, generator=torch.Generator().manual_seed(4))  # below the 32 minimum
    got = runner(small)
    assert got.shape == small.shape and torch.isfinite(got).all()


def test_unsupported_structures_and_sizes_are_refused(tiny_net):
    with pytest.raises(ValueError, match="only the released DCSFN structure"):
        dcsfn.DCSFN(channel=4, Num_encoder=1, uint="LSTM")
    with pytest.raises(ValueError, match="at least 32"):
        tiny_net(torch.rand(1, 3, 31, 64))


def test_registry_entries():
    arch = models.REGISTRY.architecture("dcsfn")
    c = arch.contract
    assert (c.channels, c.value_range, c.size_multiple, c.min_size) == ("BGR", (0.0, 1.0), 1, 32)
    variants = {m.variant: m for m in models.REGISTRY.models() if m.arch == "dcsfn"}
    assert set(variants) == {"rain100h", "rain100l", "rain1200"}
    assert models.resolve("dcsfn").variant == "rain100h"
    for m in variants.values():
        assert m.source.kind == "manual" and m.source.password == "c3ri"
        assert m.source.page == "https://pan.baidu.com/s/19GO38UnOlMKcDToGJyNwvw"
        assert f"derain models import dcsfn:{m.variant}" in m.source.instructions


def test_runs_under_autocast(tiny, tiny_net):
    # bfloat16 autocast on the CPU stands in for half precision on a GPU (mixed dtypes in the products).
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_net(tiny["input"])
    assert max_diff(out.float(), tiny["output"]) < 0.05
