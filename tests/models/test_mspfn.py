"""MSPFN: golden outputs of the authors' TF graph, the TF checkpoint converter and the input contract."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from derain_cli import models
from derain_cli.errors import WeightsError
from derain_cli.models import LoadedModel, ResolvedModel, load_state_dict_strict
from derain_cli.models._registry import replace
from derain_cli.models.archs import mspfn
from tests.conftest import shared_path
from tests.models.golden import load_tiny, max_diff

TOL = 1e-5  # observed 1.2e-7 against the TF graph


@pytest.fixture(scope="module")
def tiny() -> dict:
    return load_tiny("mspfn")


@pytest.fixture(scope="module")
def tiny_net(tiny) -> mspfn.MSPFN:
    net = mspfn.MSPFN(**tiny["config"])
    load_state_dict_strict(net, tiny["state_dict"], source="tiny.pt")
    return net.eval()



@pytest.mark.parametrize("case", ["", "_odd"])  # 64x64; 52x44 has odd 1/4-scale maps (13x11)
def test_tiny_reproduces_the_tf_graph(tiny, tiny_net, case):
    with torch.inference_mode():
        y = tiny_net(tiny["input" + case])
    assert max_diff(y, tiny["output" + case]) < TOL
    assert max_diff(y, tiny["output" + case + "_tf"]) < TOL


def test_autograd_path_computes_the_same_and_trains(tiny, tiny_net):
    """The in-place shortcuts are inference-only: with gradients the same values come out."""
    x = tiny["input_odd"]
    net = mspfn.MSPFN(**tiny["config"])
    net.load_state_dict(tiny["state_dict"])
    out = net(x)
    assert max_diff(out.detach(), tiny["output_odd"]) < TOL
    out.square().mean().backward()
    assert torch.isfinite(net.rmm1.lstm.conv.weight.grad).all()
    assert net.rmm1.lstm.conv.weight.grad[:, :4].abs().sum() > 0  # the input part of the kernel learns


def test_banded_inplace_prelu_gives_the_same_result(tiny, tiny_net, monkeypatch):
    monkeypatch.setattr(mspfn, "_INPLACE_PRELU_MIN", 0)
    monkeypatch.setattr(mspfn, "_BAND_BYTES", 1000)  # a few rows per band
    with torch.inference_mode():
        assert max_diff(tiny_net(tiny["input_odd"]), tiny["output_odd"]) < TOL


def test_batch_of_two_equals_two_singles(tiny, tiny_net):
    x = torch.cat([tiny["input"], tiny["input"].flip(-1)])
    with torch.inference_mode():
        both = tiny_net(x)
        assert max_diff(both[:1], tiny["output"]) < TOL
        assert max_diff(both[1:], tiny_net(x[1:])) < TOL


def test_size_not_multiple_of_4_is_refused(tiny_net):
    with pytest.raises(ValueError, match="divisible by 4, got 30x32"):
        tiny_net(torch.zeros(1, 3, 30, 32))


def test_tf_same_padding_of_stride2_conv():
    assert mspfn._same_pad_stride2(64) == (0, 1)
    assert mspfn._same_pad_stride2(13) == (1, 1)


# -- the TF checkpoint ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(shared_path("reference", "mspfn", "tiny_tf", "expected.pt"), weights_only=True)


@pytest.mark.parametrize("folder", ["tiny_tf", "tiny_tf_with_adam"])
@pytest.mark.parametrize("form", ["folder", "prefix", "index"])
def test_loading_a_tf_checkpoint_reproduces_tensorflow(tiny, expected, folder, form):
    root = shared_path("reference", "mspfn", folder)
    path = {"folder": root, "prefix": root / "epoch50", "index": root / "epoch50.index"}[form]
    model = ResolvedModel(replace(mspfn.MODELS[0], config=dict(tiny["config"])), mspfn.ARCHITECTURE)
    net = models.load_model(model, path=path).module  # the importer converts, then a strict load
    assert not net.training
    with torch.inference_mode():
        assert max_diff(net(expected["input"]), expected["output"]) < TOL
        assert max_diff(net(expected["input_odd"]), expected["output_odd"]) < TOL


def test_importer_gives_tiny_state_dict_exactly(tiny):
    index = shared_path("reference", "mspfn", "tiny_tf_with_adam", "epoch50.index")
    state = mspfn.ARCHITECTURE.importer(str(index), tiny["config"])
    assert state.keys() == tiny["state_dict"].keys()
    for key, value in tiny["state_dict"].items():
        assert torch.equal(state[key], value), key


def test_importer_needs_the_data_file_beside_the_index(tiny, tmp_path):
    source = shared_path("reference", "mspfn", "tiny_tf", "epoch50.index")
    (tmp_path / "epoch50.index").write_bytes(source.read_bytes())
    with pytest.raises(WeightsError, match="epoch50.data-00000-of-00001: data file .* is missing"):
        mspfn.import_tf_checkpoint(str(tmp_path / "epoch50.index"), tiny["config"])


def test_import_command_stores_converted_weights_that_load(tiny, expected):
    """`derain models import mspfn epoch50.index`: the importer finds the data file beside the index
    and the cache keeps safetensors (the registered entry with the tiny configuration)."""
    from derain_cli.models.formats import checkpoint_format

    model = ResolvedModel(replace(mspfn.MODELS[0], config=dict(tiny["config"])), mspfn.ARCHITECTURE)
    index = shared_path("reference", "mspfn", "tiny_tf_with_adam", "epoch50.index")
    stored = models.import_weights(model, index)
    assert stored.name.endswith("-epoch50.safetensors")
    assert checkpoint_format(stored) == "safetensors"
    with torch.inference_mode():
        y = models.load_model(model).module(expected["input_odd"])
    assert max_diff(y, expected["output_odd"]) < TOL


class _Recording(Mapping):
    """A read-only mapping that remembers which keys were read."""

    def __init__(self, data: dict):
        self.data, self.read = data, set()

    def __getitem__(self, key):
        self.read.add(key)
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


@pytest.fixture(scope="module")
def released() -> dict:
    return json.loads(shared_path("reference", "mspfn", "state_dict.json").read_text())


def _fake_release(released: dict) -> dict:
    """Zeros of the released variables' TF shapes (no memory: broadcast views), plus Adam extras."""
    zeros = {row[3]: np.broadcast_to(np.float32(0), row[4]) for row in released["keys"]}
    extras = {f"{name}/{slot}": value for name, value in zeros.items() for slot in ("Adam", "Adam_1")}
    extras.update({"beta1_power": np.float32(0.9), "beta2_power": np.float32(0.999),
                   "MSPFN/global_step": np.int32(1000)})
    return {**zeros, **extras}


def test_converter_consumes_exactly_the_released_variables(released):
    variables = _Recording(_fake_release(released))
    state = mspfn.state_dict_from_tf(variables)
    assert variables.read == {row[3] for row in released["keys"]}
    assert {k: list(v.shape) for k, v in state.items()} == {row[0]: row[1] for row in released["keys"]}
    net = mspfn.MSPFN()
    assert sum(p.numel() for p in net.parameters()) == released["total_params"] == 15_823_424
    load_state_dict_strict(net, state, source="converted zeros")


def test_name_table_matches_the_released_graph(released):
    assert mspfn.tf_variables() == [(row[0], row[3], row[5]) for row in released["keys"]]


def test_converter_names_missing_and_misshapen_variables(released):
    variables = _fake_release(released)
    del variables["generator/BCM_16/up_17/alpha"]
    missing = r"lacks 1 of the 859 MSPFN variables \(first: generator/BCM_16/up_17/alpha\)"
    with pytest.raises(WeightsError, match=missing):
        mspfn.state_dict_from_tf(variables)
    variables = _fake_release(released)
    variables["generator/rnn7/weight"] = np.zeros((3, 3, 32, 3), np.float32)  # in/out swapped
    misshapen = r"generator/rnn7/weight has shape \[3, 3, 32, 3\], MSPFN needs \[3, 3, 3, 32\]"
    with pytest.raises(WeightsError, match=misshapen):
        mspfn.state_dict_from_tf(variables)


def test_converter_refuses_unknown_tf_naming():
    with pytest.raises(WeightsError, match="names='BCM'"):
        mspfn.tf_variables({"names": "URAB"})


# -- contract and registry --------------------------------------------------------------------


def test_runner_applies_the_contract(tiny, tiny_net):
    """RGB [0, 1], odd size -> BGR, [-1, 1], reflect-pad bottom/right to a multiple of 4 -> crop -> back."""
    contract = mspfn.ARCHITECTURE.contract
    rgb = torch.rand(1, 3, 37, 50, generator=torch.Generator().manual_seed(3))
    got = LoadedModel(tiny_net, contract)(rgb)

    bgr = rgb.flip(1) * 2 - 1
    padded = F.pad(bgr, (0, 2, 0, 3), mode="reflect")
    with torch.inference_mode():
        y = tiny_net(padded)[..., :37, :50]
    manual = ((y + 1) / 2).flip(1)
    assert max_diff(got, manual) < 1e-6
    assert max_diff(got, rgb) > 1e-3  # the network did change the image


def test_registry_entry():
    contract = mspfn.ARCHITECTURE.contract
    assert (contract.channels, contract.value_range, contract.size_multiple) == ("BGR", (-1.0, 1.0), 4)
    assert contract.global_context  # channel attention averages over the whole image
    (entry,) = mspfn.MODELS
    assert entry.name == mspfn.ARCHITECTURE.name + ":" + mspfn.ARCHITECTURE.default_variant == "mspfn:rain13k"
    assert entry.source.kind == "manual" and entry.source.filename == "epoch50.index"
    assert "1nrjZtNs6AJYvfHi9TeCVTs50E57Fxgsc" in entry.source.page
    assert "u5v6" in entry.source.instructions
    assert mspfn.ARCHITECTURE.importer is mspfn.import_tf_checkpoint


def test_registry_finds_mspfn():
    from derain_cli.models import REGISTRY

    model = REGISTRY.resolve("mspfn")
    assert model.name == "mspfn:rain13k"
    assert model.config == mspfn.RELEASED_CONFIG



def test_mirror_folder_serves_the_two_file_tf_checkpoint(tmp_path, monkeypatch, shared):
    """DERAIN_MIRROR pointing at a folder with epoch50.index and its data shard installs MSPFN."""
    import dataclasses
    import shutil

    from derain_cli import weights

    tiny = torch.load(shared / "reference" / "mspfn" / "tiny.pt", weights_only=True)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for f in (shared / "reference" / "mspfn" / "tiny_tf").glob("epoch50.*"):
        shutil.copy(f, mirror / f.name)
    real = models.resolve("mspfn")
    arch = dataclasses.replace(real.architecture, default_config=dict(tiny["config"]))
    model = ResolvedModel(real.entry, arch)
    monkeypatch.setenv("DERAIN_MIRROR", str(mirror))
    path = models.ensure_weights(model, progress=False)
    net = models.load_model(model, path=path).module
    expected = torch.load(shared / "reference" / "mspfn" / "tiny_tf" / "expected.pt", weights_only=True)
    assert path.suffix == ".safetensors"
    with torch.no_grad():
        out = net(expected["input"])
    assert (out - expected["output"]).abs().max().item() < 1e-4
    (mirror / "epoch50.data-00000-of-00001").unlink()
    weights.remove(model)
    with pytest.raises(Exception, match="epoch50.data"):
        models.ensure_weights(model, progress=False)
