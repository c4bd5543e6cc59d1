"""Peer networks with the authors' real weights: golden outputs, registration and input contracts.

For every file of every family's ``golden.pt`` (made by the authors' code with the real checkpoint),
the registry entry with that file's sha256 is resolved, the real file is loaded through its adapter
(``models.load_model(model, path=...)``) and the golden input must give the golden output.
"""

from __future__ import annotations

import json

import pytest
import torch

from derain_cli import models
from derain_cli.models import REGISTRY, LoadedModel
from derain_cli.models._runner import select_output
from tests.conftest import shared_path
from tests.models.golden import max_diff

# golden.pt folder under reference/peers -> registry architectures of that family
FAMILIES = {
    "prenet": {"prenet", "prenet_r", "prn", "prn_r"},
    "brn": {"brn"},
    "drn": {"drn"},
    "rescan": {"rescan"},
    "sapnet": {"sapnet"},
    "vrgnet": {"vrgnet"},
    "jorder-e": {"jorder-e"},
    "hct-ffn": {"hct-ffn"},
}
IMPLEMENTED = set().union(*FAMILIES.values())

# weights/manifest.json path prefixes of the implemented families (SPANet is not: its recurrent
# layer is a compiled CUDA operator).
MANIFEST_PREFIXES = ("PReNet/", "DRN/", "HCT-FFN/", "JORDER-E/", "SAPNet/", "VRGNet_DerainNet/",
                     "RecDerain/")
NOT_IMPLEMENTED = ("/SPANet/",)

# Extra golden tensors: which forward output holds them, and the tolerance. BRN's rain layer is
# ill-conditioned (a 1e-7 input perturbation moves it by ~6e-5), so it gets a looser bound than
# the image, which matches to ~2e-6.
EXTRAS = {
    "output_rain_r": (1, 5e-4),
    "rain_last_stage": (None, 1e-4),
    "output_stage2": (1, 1e-3),
    "output_stage1": (2, 1e-3),
}


def _golden(family: str) -> list[dict]:
    return torch.load(shared_path("reference", "peers", family, "golden.pt"), weights_only=True)


def _entry_for(sha256: str) -> models.ResolvedModel:
    found = [m for m in REGISTRY.models() if m.source.sha256 == sha256]
    assert len(found) == 1, f"{len(found)} registry entries have sha256 {sha256}"
    return found[0]



SLOW = {"prenet", "brn", "hct-ffn"}  # several seconds each on one thread


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f
                                    for f in sorted(FAMILIES)])
def test_real_weights_reproduce_the_authors_outputs(family):
    failures = []
    for case in _golden(family):
        model = _entry_for(case["sha256"])
        assert model.arch in FAMILIES[family], f"{case['file']} is registered as {model.name}"
        for key, value in case["config"].items():  # the authors' arguments that we share
            if key in model.config:
                assert model.config[key] == value, f"{model.name}: {key}={model.config[key]}, authors use {value}"
        net = models.load_model(model, path=shared_path("weights", case["file"])).module
        scale = case.get("input_scale", 1.0)
        assert model.contract.value_range == (0.0, scale)
        x = case["input"] * scale
        with torch.inference_mode():
            outputs = net(x)
        tol = 1e-4 if scale == 1.0 else 1e-3
        diff = max_diff(select_output(outputs, model.contract, x), case["output"])
        if diff > tol:
            failures.append(f"{model.name} ({case['file']}, {tuple(x.shape)}): max diff {diff:.3g} > {tol}")
        for key, (index, extra_tol) in EXTRAS.items():
            if key in case:
                diff = max_diff(outputs if index is None else outputs[index], case[key])
                if diff > extra_tol:
                    failures.append(f"{model.name} {key}: max diff {diff:.3g} > {extra_tol}")
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("family", ["rescan", "jorder-e"])
def test_runner_applies_the_contract(family):
    """RGB [0,1] in through LoadedModel: BGR order (RESCAN), input minus rain, and the 0..255 scale."""
    case = _golden(family)[0]
    model = _entry_for(case["sha256"])
    scale = case.get("input_scale", 1.0)
    bgr = model.contract.channels == "BGR"
    rgb_input = case["input"].flip(1) if bgr else case["input"]
    expected = case["output"] / scale
    if bgr:
        expected = expected.flip(1)
    runner = models.load_model(model, path=shared_path("weights", case["file"]))
    assert max_diff(runner(rgb_input), expected) < 1e-5


def test_every_manifest_file_of_an_implemented_family_is_registered():
    manifest = json.loads(shared_path("weights", "manifest.json").read_text())
    by_sha = {m.source.sha256: m for m in REGISTRY.models() if m.source.sha256}
    expected = [f for f in manifest if f["file"].startswith(MANIFEST_PREFIXES)
                and not any(s in f["file"] for s in NOT_IMPLEMENTED)]
    assert len(expected) == 33  # 3 SPANet files are left out
    for f in expected:
        model = by_sha.get(f["sha256"])
        assert model is not None, f"{f['file']} is not registered"
        assert model.arch in IMPLEMENTED
        assert model.source.kind == "url"
        assert model.source.url == f["url"], f"{model.name}: url differs from the manifest's"
        assert model.source.size == f["bytes"], f"{model.name}: size differs from the manifest's"
    peers = [m for m in REGISTRY.models() if m.arch in IMPLEMENTED]
    assert len(peers) == len(expected)  # nothing registered that the manifest does not list


def test_registry_file_names_are_unique():
    names = [m.source.filename for m in REGISTRY.models()]
    assert len(names) == len(set(names))


def test_the_real_prenet_files_select_the_generator_lstm_forward():
    """Their keys fit plain PReNet too; only the config tells the two forwards apart."""
    for variant in ("real", "real2"):
        config = models.resolve(f"prenet:{variant}").config
        assert config["recurrent_iter"] == 4
        assert config["blocks_before_lstm"] and not config["input_residual"]
    assert not models.resolve("prenet:rain100h").config.get("blocks_before_lstm", False)


def test_default_variants():
    assert {a: models.resolve(a).variant for a in ("prenet", "brn", "rescan", "vrgnet", "jorder-e")} == {
        "prenet": "rain100h", "brn": "rain200h", "rescan": "rain200h", "vrgnet": "spa", "jorder-e": "practical"}


@pytest.mark.parametrize("name", ["prenet:rain100h", "prenet:real", "prn_r:rain100h", "brn:rain200h",
                                  "drn:rain100h", "rescan:rain200h", "sapnet:rain100h", "vrgnet:spa",
                                  "jorder-e:practical", "hct-ffn:rain100h"])
def test_training_path_matches_inference_and_backpropagates(name):
    """The in-place inference path and the autograd path compute the same result."""
    model = models.resolve(name)
    torch.manual_seed(0)
    net = models.build(model.arch, **model.config)
    x = torch.rand(1, 3, 20, 24) * model.contract.value_range[1]
    with torch.inference_mode():
        expected = select_output(net(x), model.contract, x)
    x.requires_grad_(True)
    got = select_output(net(x), model.contract, x)
    got.sum().backward()
    assert max_diff(got.detach(), expected) <= 1e-5 * model.contract.value_range[1]
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_hct_ffn_small_images():
    """Attention blocks need 16 pixels: the contract's min_size pads, a bare forward says why it fails."""
    model = models.resolve("hct-ffn")
    torch.manual_seed(0)
    net = models.build("hct-ffn").eval()
    y = LoadedModel(net, model.contract)(torch.rand(1, 3, 3, 5))
    assert y.shape == (1, 3, 3, 5) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="at least 16 pixels"), torch.inference_mode():
        net(torch.rand(1, 3, 3, 5) * 255)
