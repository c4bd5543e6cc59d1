"""DRSformer: golden outputs of the authors' code, both released layouts, checkpoints and the contract."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F

from derain_cli import models
from derain_cli.errors import ModelError
from derain_cli.models import LoadedModel, load_state_dict_strict
from derain_cli.models.archs import drsformer
from derain_cli.models.layers.sparse_attention import topk_sizes
from tests.conftest import shared_path
from tests.models.golden import load_tiny, max_diff, tiny_model

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny() -> dict:
    return load_tiny("drsformer")


def _net(golden: dict, mefc: bool) -> drsformer.DRSformer:
    return tiny_model("drsformer", golden, mefc=mefc)


@pytest.fixture(scope="module")
def tiny_net(tiny) -> drsformer.DRSformer:
    return _net(tiny, mefc=True)


@pytest.fixture(scope="module")
def tiny_no_mefc(tiny) -> drsformer.DRSformer:
    return _net(tiny["no_mefc"], mefc=False)



def _cases(golden: dict) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    return [("main", golden["input"], golden["output"])] + [
        (c["name"], c["input"], c["output"]) for c in golden["extra_cases"]
    ]


@pytest.mark.parametrize("layout", ["mefc", "no_mefc"])
def test_tiny_reproduces_authors_outputs(tiny, tiny_net, tiny_no_mefc, layout):
    golden, net = (tiny, tiny_net) if layout == "mefc" else (tiny["no_mefc"], tiny_no_mefc)
    cases = _cases(golden)
    assert len(cases) == 3  # 64x64, non-square, batch 2
    for name, x, expected in cases:
        with torch.no_grad():
            assert max_diff(net(x), expected) < TOL, name


def test_stripes_give_the_whole_image_result(tiny, tiny_net):
    """Force the stripe path (odd stripe heights, batch 2) that real image sizes take."""
    for module in tiny_net.modules():
        if isinstance(module, drsformer.StripedLayer):
            module.STRIPE_PIXELS, module.MIN_STRIPE_ROWS = 1, 5
    try:
        for name, x, expected in _cases(tiny):
            with torch.no_grad():
                assert max_diff(tiny_net(x), expected) < TOL, name
    finally:
        for module in tiny_net.modules():
            if isinstance(module, drsformer.StripedLayer):
                del module.STRIPE_PIXELS, module.MIN_STRIPE_ROWS


def test_stripe_plan_covers_the_image_on_cpu_only():
    layer = drsformer.FeedForward(8, 2.66)
    rows = layer.stripes(torch.empty(1, 8, 100, 256))
    assert rows[0].start == 0 and rows[-1].stop == 100 and len(rows) == 4
    assert all(a.stop == b.start for a, b in itertools.pairwise(rows))
    assert layer.stripes(torch.empty(1, 8, 100, 256, device="meta")) == [slice(0, 100)]


@pytest.mark.parametrize("name", ["Attention_dim48_heads1", "Attention_dim96_heads1", "Attention_dim20_heads2"])
def test_attention_unit_cases(tiny, name):
    case = tiny["unit_cases"][name]
    attn = drsformer.Attention(**case["args"]).eval()
    load_state_dict_strict(attn, case["state_dict"], source=name)
    with torch.no_grad():
        assert max_diff(attn(case["input"]), case["output"]) < TOL
    channels = case["args"]["dim"] // case["args"]["num_heads"]
    assert [(channels, k) for k in topk_sizes(channels)] == [tuple(p) for p in case["topk_(n,k)"]]


def test_topk_sizes_of_tiny_and_release(tiny):
    assert {(c, k) for c in (8, 16) for k in topk_sizes(c)} == {tuple(p) for p in tiny["topk_(n,k)"]}
    assert topk_sizes(48) == [24, 32, 36, 38]
    assert topk_sizes(96) == [48, 64, 72, 76]


@pytest.mark.parametrize("layout, mefc", [("mefc", True), ("no_mefc", False)])
def test_released_configuration_matches_checkpoint_layout(layout, mefc):
    spec = json.loads(shared_path("reference", "drsformer", "state_dict.json").read_text())
    with torch.device("meta"):
        net = models.build("drsformer", mefc=mefc)
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in net.state_dict().items()]
    variant = spec["variants"][layout]
    assert ours == [entry[:3] for entry in variant["state_dict"]]
    assert sum(v.numel() for v in net.state_dict().values()) == variant["num_params"]
    released = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["config"].items()}
    assert released == drsformer.RELEASED_CONFIG


def test_config_for_state_dict_and_matches_tell_the_layouts_apart(tiny):
    with_mefc, without = tiny["state_dict"], tiny["no_mefc"]["state_dict"]
    assert drsformer.config_for_state_dict(with_mefc)["mefc"] is True
    assert drsformer.config_for_state_dict(without) == {**drsformer.RELEASED_CONFIG, "mefc": False}
    for model in models.REGISTRY.models():
        if model.arch == "drsformer":
            wants_mefc = model.config.get("mefc", True)
            assert model.entry.matches(with_mefc) is wants_mefc
            assert model.entry.matches(without) is not wants_mefc


def test_registry_entries():
    entries = {m.variant: m for m in models.REGISTRY.models() if m.arch == "drsformer"}
    assert set(entries) == {"rain200h", "rain200l", "did", "ddn", "spa"}
    assert models.resolve("drsformer").variant == "rain200h"
    assert {v for v, m in entries.items() if m.config["mefc"] is False} == {"rain200l", "spa"}
    for variant, m in entries.items():
        assert m.source.kind == "manual" and m.source.page.startswith("https://pan.baidu.com/")
        assert m.source.page.endswith(f"pwd={m.source.password}")
        assert variant in m.source.instructions and m.entry.trained_on
    contract = models.REGISTRY.architecture("drsformer").contract
    assert (contract.channels, contract.size_multiple, contract.pad_mode, contract.pad_where) == (
        "RGB", 8, "reflect", "bottom_right")
    assert contract.global_context and contract.tile % 8 == 0


def test_runner_pads_bottom_right_with_reflection_and_crops(tiny, tiny_net):
    contract = models.REGISTRY.architecture("drsformer").contract
    x = torch.rand(1, 3, 37, 45, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        manual = tiny_net(F.pad(x, (0, 3, 0, 3), mode="reflect"))[..., :37, :45]
        ours = LoadedModel(tiny_net, contract)(x)
    assert max_diff(ours, manual) < 1e-6


@pytest.mark.parametrize("variant, golden_key", [("rain200h", None), ("rain200l", "no_mefc")])
def test_authors_checkpoint_wrapper_loads_strictly(tiny, tmp_path, variant, golden_key):
    """The released {'params': ...} file, via the registry's adapter, into the released configuration."""
    model = models.resolve(f"drsformer:{variant}")
    torch.manual_seed(0)
    reference = drsformer.DRSformer(**model.config)
    path = tmp_path / "net_g_latest.pth"
    torch.save({"params": reference.state_dict()}, path)
    net = models.load_model(model, path=path).module
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), reference.state_dict().values()))
    # the tiny weights in the same wrapper, through the same adapter
    golden = tiny if golden_key is None else tiny[golden_key]
    small = models.build("drsformer", **golden["config"], mefc=golden_key is None)
    load_state_dict_strict(small, model.adapter({"params": golden["state_dict"]}), source="wrapped tiny")


def test_adapter_unwrapping_and_refusals(tiny):
    state = tiny["state_dict"]
    adapt = models.REGISTRY.architecture("drsformer").adapter
    assert set(adapt({"module." + k: v for k, v in state.items()})) == set(state)
    decoy = {k: torch.zeros_like(v) for k, v in state.items()}
    chosen = adapt({"params": state, "params_ema": decoy})
    assert all(chosen[k] is state[k] for k in state)  # 'params' wins over 'params_ema'
    assert set(adapt({"params_ema": state})) == set(state)
    old_version = {k: v for k, v in state.items() if not k.split(".")[-1].startswith("attn")}
    with pytest.raises(ModelError, match="attn1..attn4"):
        adapt({"params": old_version})
    with pytest.raises(ModelError, match="not a state dict"):
        adapt([1, 2])
    assert set(adapt({"state_dict": state, "epoch": 3})) == set(state)
    with pytest.raises(ModelError, match="drsformer:rain200l or drsformer:spa"):
        models.resolve("drsformer:rain200h").adapter({"params": tiny["no_mefc"]["state_dict"]})
    with pytest.raises(ModelError, match="drsformer:rain200h or drsformer:did or drsformer:ddn"):
        models.resolve("drsformer:spa").adapter({"params": state})


def test_sizes_that_are_not_multiples_of_8_are_refused(tiny_net):
    with pytest.raises(ValueError, match="divisible by 8"):
        tiny_net(torch.rand(1, 3, 20, 24))


def test_autocast_keeps_attention_in_float32_and_runs(tiny, tiny_net):
    """bfloat16 autocast on the CPU takes the same mixed-precision paths as fp16 on a GPU."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_net(tiny["input"])
    assert out.dtype in (torch.float32, torch.bfloat16)
    assert max_diff(out.float(), tiny["output"]) < 0.1


def test_gradients_flow_through_the_in_place_paths(tiny):
    net = _net(tiny, mefc=True).train()
    x = tiny["extra_cases"][1]["input"]
    net(x).square().mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
