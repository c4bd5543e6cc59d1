"""The model registry: names, variants, adapters and strict loading."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from derain_cli import models
from derain_cli.errors import ModelError
from derain_cli.models import REGISTRY, Contract, default_adapter, strip_prefix
from derain_cli.models._registry import Registry


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


def test_registered_test_module_is_removed_after_use():
    with REGISTRY.registered("tests.tinynet"):
        assert models.resolve("testnet").name == "testnet:random"
        assert "testnet" in REGISTRY.architectures()
    assert "testnet" not in REGISTRY.architectures()
    assert not [m for m in REGISTRY.models() if m.arch == "testnet"]
    with pytest.raises(ModelError, match="unknown model 'testnet'"):
        models.resolve("testnet")


def test_unregister_removes_an_architecture_with_its_models(testnet):
    REGISTRY.unregister("testnet")
    assert "testnet" not in REGISTRY.architectures()
    assert not [m.name for m in REGISTRY.models() if m.arch == "testnet"]


def _package(root, name: str, modules: dict[str, str]) -> str:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, text in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(text))
    return name


_ARCH_MODULE = """
    from derain_cli.models import Architecture, Contract, ModelEntry, WeightSource
    ARCHITECTURE = Architecture(name="{name}", title="{name}", builder=dict, default_config={{}}, contract=Contract())
    MODELS = [ModelEntry(arch="{name}", variant="v1", source=WeightSource(kind="file", filename="w.pt"))]
"""


def test_every_module_in_the_archs_folder_is_an_architecture(tmp_path, monkeypatch):
    """Discovery scans the folder: a new file is found with no list to edit; a helper module that
    defines no architecture is refused by name (helpers belong in layers/), private modules skipped."""
    monkeypatch.syspath_prepend(str(tmp_path))
    name = _package(tmp_path, "fake_archs_ok", {
        "alpha": _ARCH_MODULE.format(name="alpha"), "beta": _ARCH_MODULE.format(name="beta"),
        "_private": "X = 1\n"})
    registry = Registry(archs_package=name)
    assert sorted(registry.architectures()) == ["alpha", "beta"]
    assert registry.resolve("beta").name == "beta:v1"

    name = _package(tmp_path, "fake_archs_bad", {"alpha": _ARCH_MODULE.format(name="alpha"), "helpers": "X = 1\n"})
    with pytest.raises(TypeError, match="fake_archs_bad.helpers defines no ARCHITECTURE"):
        Registry(archs_package=name).architectures()
    for module in [m for m in sys.modules if m.startswith(("fake_archs_ok", "fake_archs_bad"))]:
        monkeypatch.delitem(sys.modules, module)


@pytest.mark.parametrize("contract, text", [
    (Contract(), "RGB in [0, 1]; any size"),
    (Contract(channels="BGR", value_range=(-1.0, 1.0), size_multiple=4, global_context=True),
     "BGR in [-1, 1]; size multiple 4 (reflect padding, bottom_right); uses whole-image context"),
    (Contract(value_range=(0.0, 255.0), size_multiple=32, pad_mode="constant", output=2),
     "RGB in [0, 255]; size multiple 32 (constant padding, bottom_right); result is output #2"),
])
def test_contract_describe_is_the_line_models_info_prints(contract, text):
    assert contract.describe() == text


def test_contract_describe_names_a_derived_result():
    def rain_removed(outputs, model_input):
        """input minus the predicted rain"""

    assert Contract(output=rain_removed).describe() == "RGB in [0, 1]; any size; result: input minus the predicted rain"
    assert models.resolve("glgfn").contract.describe() == (
        "BGR in [0, 1]; size multiple 32 (constant padding, bottom_right); result is output #2; "
        "uses whole-image context")
