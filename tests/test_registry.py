"""The model registry: names, variants, adapters and strict loading."""

from __future__ import annotations

import pytest
import torch

from derain_cli import models
from derain_cli.errors import ModelError
from derain_cli.models.registry import Contract, default_adapter, strip_prefix


def test_resolve_default_variant_and_explicit(testnet):
    assert models.resolve("testnet").name == "testnet:random"
    assert models.resolve("TestNet:Random").name == "testnet:random"


@pytest.mark.parametrize("name, words", [
    ("nosuch", ["unknown model", "derain models list"]),
    ("testnet:nosuch", ["unknown variant", "random"]),
])
def test_unknown_names_are_clear(testnet, name, words):
    with pytest.raises(ModelError) as err:
        models.resolve(name)
    assert all(w in str(err.value) for w in words)


def test_every_registered_model_is_consistent(testnet):
    names = set()
    filenames = set()
    for m in models.REGISTRY.models():
        assert m.name not in names
        names.add(m.name)
        assert m.source.filename not in filenames, f"duplicate file name {m.source.filename}"
        filenames.add(m.source.filename)
        assert m.contract.channels in ("RGB", "BGR")
        assert m.contract.pad_mode in ("reflect", "replicate", "constant")
        if m.source.kind == "url":
            assert m.source.url.startswith("https://") and m.source.sha256 and len(m.source.sha256) == 64
        if m.source.kind == "manual":
            assert m.source.page and m.source.page.startswith("https://")
    for arch in models.REGISTRY.architectures().values():
        if arch.default_variant:
            models.resolve(arch.name)  # the default variant exists


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"net": sd, "epoch": 3},
    lambda sd: {"params": sd},
    lambda sd: {"state_dict": strip_prefix(sd, "") | {}},
    lambda sd: {"net": {f"module.{k}": v for k, v in sd.items()}},
])
def test_default_adapter_unwraps_authors_formats(wrap):
    sd = {"a.weight": torch.zeros(2), "b.bias": torch.ones(1)}
    assert set(default_adapter(wrap(sd))) == set(sd)


def test_default_adapter_rejects_non_state_dicts():
    with pytest.raises(ModelError):
        default_adapter([1, 2, 3])


def test_build_and_strict_load_names_mismatching_keys(testnet):
    net = models.build("testnet")
    state = net.state_dict()
    state.pop("head.weight")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ModelError) as err:
        models.load_state_dict_strict(models.build("testnet"), state, source="x.pt")
    assert "head.weight" in str(err.value) and "extra.weight" in str(err.value) and "x.pt" in str(err.value)


def test_contract_describe():
    text = Contract(channels="BGR", value_range=(-1.0, 1.0), size_multiple=4, pad_mode="reflect").describe()
    assert "BGR" in text and "[-1, 1]" in text and "4" in text
