"""GLGFN: golden outputs of the authors' code, the released checkpoint layout and the input contract."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from derain_cli import models
from derain_cli.models import LoadedModel, load_state_dict_strict
from derain_cli.models.archs import glgfn
from tests.conftest import shared_path
from tests.models.golden import load_tiny, max_diff, tiny_model

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny() -> dict:
    return load_tiny("glgfn")


@pytest.fixture(scope="module")
def tiny_net(tiny) -> glgfn.GLGFN:
    return tiny_model("glgfn", tiny)



def test_tiny_reproduces_all_three_outputs(tiny, tiny_net):
    with torch.no_grad():
        outputs = tiny_net(tiny["input"])
    assert len(outputs) == 3
    for ours, theirs in zip(outputs, tiny["output_all"]):
        assert max_diff(ours, theirs) < TOL
    assert max_diff(outputs[2], tiny["output"]) < TOL


def test_tiny_reproduces_extra_cases(tiny, tiny_net):
    assert len(tiny["extra_cases"]) >= 2  # non-square and batch 2
    for case in tiny["extra_cases"]:
        with torch.no_grad():
            refine = tiny_net(case["input"])[2]
        assert max_diff(refine, case["output"]) < TOL, case["name"]


def test_released_configuration_matches_checkpoint_layout():
    spec = json.loads(shared_path("reference", "glgfn", "state_dict.json").read_text())
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in glgfn.GLGFN().state_dict().items()]
    assert ours == [entry[:3] for entry in spec["state_dict"]]
    assert models.REGISTRY.architecture("glgfn").default_config == {
        k: tuple(v) if isinstance(v, list) else v for k, v in spec["config"].items()
    }


def test_runner_applies_contract(tiny_net):
    contract = models.REGISTRY.architecture("glgfn").contract
    rgb = torch.rand(1, 3, 45, 70, generator=torch.Generator().manual_seed(3))
    got = LoadedModel(tiny_net, contract)(rgb)

    bgr = rgb.flip(1)
    padded = F.pad(bgr, (0, 96 - 70, 0, 64 - 45), mode="constant", value=0.0)  # bottom/right zeros
    with torch.no_grad():
        expected = tiny_net(padded)[2][..., :45, :70].flip(1)
    assert got.shape == rgb.shape
    assert max_diff(got, expected) < 1e-6


def test_authors_checkpoint_wrapper_loads_strictly(tiny, tiny_net, tmp_path):
    path = tmp_path / "best"
    torch.save({"net": tiny["state_dict"], "optimizer": {"state": {}, "param_groups": []},
                "scheduler": {"last_epoch": 7}, "initial_epoch": 8}, path)
    state = models.REGISTRY.architecture("glgfn").adapter(torch.load(path, weights_only=True))
    net = models.build("glgfn", **tiny["config"])
    load_state_dict_strict(net, state, source=str(path))
    with torch.no_grad():
        assert max_diff(net.eval()(tiny["input"])[2], tiny["output"]) < TOL


def test_size_that_is_not_a_multiple_of_32_is_refused(tiny_net):
    with pytest.raises(ValueError, match="multiples of 32"):
        tiny_net(torch.rand(1, 3, 48, 64))


def test_gradients_flow_for_training(tiny, tiny_net):
    net = models.build("glgfn", **tiny["config"])
    net.load_state_dict(tiny["state_dict"])
    net.eval()
    refine = net(tiny["input"])[2]
    assert max_diff(refine.detach(), tiny["output"]) < TOL  # the autograd path computes the same
    refine.square().mean().backward()
    grads = [p.grad for n, p in net.named_parameters() if n.startswith("Decoder.fusion4.")]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_registry_entries():
    arch = models.REGISTRY.architecture("glgfn")
    c = arch.contract
    assert (c.channels, c.value_range, c.size_multiple, c.pad_mode, c.pad_where, c.output) == (
        "BGR", (0.0, 1.0), 32, "constant", "bottom_right", 2)
    assert c.global_context and c.tile % 32 == 0
    variants = {m.variant: m for m in models.REGISTRY.models() if m.arch == "glgfn"}
    assert set(variants) == {"realrain1k-h", "realrain1k-l", "lhp", "raindirection"}
    assert models.resolve("glgfn").variant == "realrain1k-h"
    for m in variants.values():
        assert m.source.kind == "manual"
        assert m.source.page == "https://drive.google.com/drive/folders/1RyCR3BKSyzn9wNio8gfYVcm_0ZyM3lnk"
        assert f"derain models import glgfn:{m.variant}" in m.source.instructions


def test_runs_under_autocast(tiny, tiny_net):
    # bfloat16 autocast on the CPU stands in for half precision on a GPU: every product must accept
    # the mixed dtypes autocast produces, and the result must stay close to float32.
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        refine = tiny_net(tiny["input"])[2]
    assert max_diff(refine.float(), tiny["output"]) < 0.05
