"""The weights cache without a network: layout, reading checkpoints safely, import, verify, remove.

Downloads (HTTP, mirrors, offline mode, concurrency) are in test_download.py, which reuses the
helpers defined here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from derain_cli import weights
from derain_cli.errors import WeightsError
from derain_cli.models import load_state_dict_strict
from derain_cli.models.registry import Architecture, Contract, ModelEntry, ResolvedModel, WeightSource
from tests.conftest import shared_path
from tests.tinynet import WEIGHTS as TESTNET_WEIGHTS
from tests.tinynet import TinyNet

DRN_FILES = {
    "rain100h": "DRN/Rain100H_inter7_intra7/net_latest.pth",
    "rain100l": "DRN/Rain100L_inter7_intra7/net_latest.pth",
}


class DRNLike(nn.Module):
    """A module with exactly the parameter names and shapes of the DRN release files."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Sequential(nn.Conv2d(6, 16, 3, padding=1), nn.ReLU())
        self.res_conv1 = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                                       nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.res_conv2 = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                                       nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.conv = nn.Sequential(nn.Conv2d(16, 3, 3, padding=1))

    def forward(self, x):
        h = self.conv0(torch.cat([x, x], 1))
        h = h + self.res_conv1(h)
        return x - self.conv(h + self.res_conv2(h))


def drn_file(variant: str = "rain100h") -> tuple[Path, str]:
    """A real DRN checkpoint from ../shared and its sha256 from the manifest."""
    rel = DRN_FILES[variant]
    path = shared_path("weights", *rel.split("/"))
    manifest = json.loads(shared_path("weights", "manifest.json").read_text())
    return path, next(e["sha256"] for e in manifest if e["file"] == rel)


def make_model(kind: str = "url", *, variant: str = "rain100h", filename: str = "drn_rain100h.pth",
               builder=DRNLike, importer=None, arch: str = "drnlike", **source) -> ResolvedModel:
    """A throwaway model (not registered anywhere) with the given weight source."""
    architecture = Architecture(name=arch, title="DRN-like", builder=builder, default_config={},
                                contract=Contract(), importer=importer)
    source = WeightSource(kind=kind, filename=filename, **source)
    entry = ModelEntry(arch=arch, variant=variant, source=source)
    return ResolvedModel(entry, architecture)


def model_files(model: ResolvedModel) -> list[str]:
    folder = weights.cache_dir() / "weights" / model.arch / model.variant
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# -- cache location ---------------------------------------------------------------------------


def test_cache_dir_is_derain_home_or_the_platform_cache(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.setenv("DERAIN_HOME", str(tmp_path / "home"))
    assert weights.cache_dir() == (tmp_path / "home").resolve()
    monkeypatch.delenv("DERAIN_HOME")
    assert weights.cache_dir() == Path(platformdirs.user_cache_dir("derain"))


def test_unwritable_cache_is_a_clear_error(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("DERAIN_HOME", str(blocker))
    with pytest.raises(WeightsError, match="cannot create the cache folder .*DERAIN_HOME"):
        weights.import_weights(make_model(), TESTNET_WEIGHTS)


# -- reading checkpoints ------------------------------------------------------------------------


def test_read_checkpoint_reads_torch_and_safetensors_by_content(tmp_path):
    from safetensors.torch import save_file

    state = weights.read_checkpoint(TESTNET_WEIGHTS)
    assert set(state) == set(TinyNet().state_dict())
    disguised = tmp_path / "model.pth"  # safetensors content under a .pth name
    save_file(dict(state), str(disguised))
    assert weights.checkpoint_format(disguised) == "safetensors"
    again = weights.read_checkpoint(disguised)
    assert all(torch.equal(again[k], state[k]) for k in state)


class _Trap:
    """Unpickling this would create a file: proof that code from a checkpoint ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_needs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "trap": _Trap(marker)}, evil)
    with pytest.raises(WeightsError, match=r"evil.pth: not a plain weights file.*never runs code"):
        weights.read_checkpoint(evil)
    with pytest.raises(WeightsError, match="not a plain weights file"):
        weights.import_weights(make_model(builder=TinyNet), evil)
    assert not marker.exists()


def test_garbage_is_not_a_weights_file(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"<html>404 not found</html>" * 10)
    with pytest.raises(WeightsError, match="junk.pth: not a readable PyTorch or safetensors"):
        weights.read_checkpoint(junk)
    with pytest.raises(WeightsError, match="no such weights file"):
        weights.read_checkpoint(tmp_path / "missing.pth")


# -- import -----------------------------------------------------------------------------------


def test_import_copies_a_fitting_file_and_records_where_it_came_from():
    path, sha = drn_file("rain100h")
    model = make_model(url="https://example.invalid/net_latest.pth", sha256=sha)
    stored = weights.import_weights(model, path)

    assert stored.parent == weights.cache_dir() / "weights" / "drnlike" / "rain100h"
    assert stored.name == f"{sha[:12]}-drn_rain100h.pth"
    assert weights.sha256_file(stored) == sha
    meta = json.loads(stored.with_name(stored.name + ".json").read_text())
    assert meta["model"] == "drnlike:rain100h"
    assert meta["source"] == f"imported from {path.resolve()}"
    assert (meta["sha256"], meta["size"]) == (sha, path.stat().st_size)
    assert meta["original_filename"] == "net_latest.pth"
    assert meta["created"]
    assert weights.installed(model) and weights.ensure_weights(model) == stored
    assert model_files(model) == sorted([stored.name, stored.name + ".json"])  # no .part left

    net = DRNLike()
    load_state_dict_strict(net, model.adapter(weights.read_checkpoint(weights.ensure_weights(model))))
    original = torch.load(path, weights_only=True, map_location="cpu")
    assert torch.equal(net.conv0[0].weight, original["conv0.0.weight"])


def test_import_of_another_architecture_is_refused_naming_the_keys():
    model = make_model()
    with pytest.raises(WeightsError) as info:
        weights.import_weights(model, TESTNET_WEIGHTS)
    message = str(info.value)
    assert "testnet.pt" in message and "drnlike:rain100h" in message
    assert "missing key(s), first: conv0.0.weight" in message
    assert "unexpected key(s), first: head.weight" in message
    assert not weights.installed(model) and model_files(model) == []


def test_import_of_a_file_that_is_not_the_release_needs_force():
    _, sha_h = drn_file("rain100h")
    path_l, sha_l = drn_file("rain100l")  # same architecture, other training set
    model = make_model(url="https://example.invalid/net_latest.pth", sha256=sha_h)
    with pytest.raises(weights.ChecksumError, match=rf"differs from the authors' release.*{sha_l}.*{sha_h}"):
        weights.import_weights(model, path_l)
    assert not weights.installed(model)

    stored = weights.import_weights(model, path_l, force=True)
    assert weights.cached_path(model) == stored and weights.sha256_file(stored) == sha_l


def test_reimport_replaces_the_older_file():
    model = make_model()  # no sha256 known: any fitting file is accepted
    first = weights.import_weights(model, drn_file("rain100h")[0])
    second = weights.import_weights(model, drn_file("rain100l")[0])
    assert first != second and not first.exists()
    assert weights.cached_path(model) == second
    assert model_files(model) == sorted([second.name, second.name + ".json"])


def _json_importer(path: str, config) -> dict:
    """A stand-in for a foreign-format importer: tensors as nested lists in a JSON file."""
    data = json.loads(Path(path).read_text())
    return {k: torch.tensor(v) for k, v in data.items()}


def test_import_of_a_foreign_format_goes_through_the_importer(tmp_path):
    state = torch.load(TESTNET_WEIGHTS, weights_only=True)
    foreign = tmp_path / "checkpoint.json"
    foreign.write_text(json.dumps({k: v.tolist() for k, v in state.items()}))
    model = make_model(builder=TinyNet, importer=_json_importer, filename="checkpoint.json")

    stored = weights.import_weights(model, foreign)
    assert stored.suffix == ".safetensors"
    record = weights.cache_record(model)
    assert "importer" in record.converted and record.source_sha256 == weights.sha256_file(foreign)
    loaded = weights.read_checkpoint(stored)
    assert all(torch.allclose(loaded[k], state[k]) for k in state)

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(WeightsError, match="cannot import .*bad.json as drnlike:rain100h"):
        weights.import_weights(model, bad)


def test_import_is_refused_for_a_variant_that_does_not_match():
    model = make_model(builder=TinyNet)
    other = ResolvedModel(
        ModelEntry(arch="drnlike", variant="rain100h", source=model.source, matches=lambda state: False),
        model.architecture,
    )
    with pytest.raises(WeightsError, match="belong to another variant"):
        weights.import_weights(other, TESTNET_WEIGHTS)


# -- manual sources ---------------------------------------------------------------------------


def test_manual_source_explains_how_to_get_the_file_until_it_is_imported():
    model = make_model(
        "manual", filename="model_best.pt", page="https://pan.baidu.com/s/1example", password="u5v6",
        instructions="Open the folder 'Rain100H' and download model_best.pt",
    )
    with pytest.raises(weights.ManualDownloadRequired) as info:
        weights.ensure_weights(model)
    text = str(info.value)
    for part in ("https://pan.baidu.com/s/1example", "password: u5v6", "Open the folder 'Rain100H'",
                 "model_best.pt", "derain models import drnlike:rain100h /path/to/model_best.pt"):
        assert part in text
    assert text == weights.manual_instructions(model)

    stored = weights.import_weights(model, drn_file()[0])
    assert weights.ensure_weights(model) == stored


# -- bundled and file sources -----------------------------------------------------------------


def test_bundled_and_file_sources_resolve_in_place(tmp_path):
    import derain_cli

    bundled = make_model("bundled", filename="errors.py", path="errors.py")
    assert weights.ensure_weights(bundled) == Path(derain_cli.__file__).parent / "errors.py"
    assert weights.remove(bundled) == []
    missing = make_model("bundled", filename="nothing.pt", path="weights/nothing.pt")
    assert not weights.installed(missing)
    with pytest.raises(WeightsError, match="nothing.pt not found inside the derain package"):
        weights.ensure_weights(missing)

    file_model = make_model("file", filename="testnet.pt", path=str(TESTNET_WEIGHTS))
    assert weights.ensure_weights(file_model) == TESTNET_WEIGHTS
    with pytest.raises(WeightsError, match="nothing to import"):
        weights.import_weights(file_model, TESTNET_WEIGHTS)
    assert not (weights.cache_dir() / "weights" / "drnlike").exists()


# -- cache integrity ---------------------------------------------------------------------------


def test_a_truncated_cached_file_is_not_used():
    model = make_model(builder=TinyNet)
    stored = weights.import_weights(model, TESTNET_WEIGHTS)
    stored.write_bytes(stored.read_bytes()[:100])
    assert weights.cached_path(model) is None and not weights.installed(model)


def test_verify_cache_rehashes_every_file():
    model = make_model(builder=TinyNet)
    stored = weights.import_weights(model, TESTNET_WEIGHTS)
    assert [(r.name, r.path, r.ok) for r in weights.verify_cache()] == [("drnlike:rain100h", stored, True)]

    data = bytearray(stored.read_bytes())
    data[-10] ^= 0xFF  # same size, different content
    stored.write_bytes(bytes(data))
    orphan = stored.with_name("stray.pth")
    shutil.copyfile(TESTNET_WEIGHTS, orphan)
    results = {r.path: r for r in weights.verify_cache()}
    assert not results[stored].ok and "sha256" in results[stored].problem
    assert not results[orphan].ok and "no metadata" in results[orphan].problem


def test_remove_deletes_the_files_of_one_model():
    model = make_model(builder=TinyNet)
    keep = make_model(builder=TinyNet, variant="other")
    stored = weights.import_weights(model, TESTNET_WEIGHTS)
    kept = weights.import_weights(keep, TESTNET_WEIGHTS)
    assert sorted(weights.remove(model)) == sorted([stored, stored.with_name(stored.name + ".json")])
    assert not weights.installed(model) and not stored.parent.exists()
    assert weights.cached_path(keep) == kept
    assert weights.remove(model) == []
    assert [r.name for r in weights.cache_records()] == ["drnlike:other"]


def test_a_held_lock_times_out_with_a_clear_message(monkeypatch):
    model = make_model(builder=TinyNet)
    monkeypatch.setattr(weights, "LOCK_TIMEOUT", 0.2)
    busy = pytest.raises(WeightsError, match="another derain process .*drnlike--rain100h.lock")
    with weights.model_lock(model), busy:  # as if another process were fetching
        weights.import_weights(model, TESTNET_WEIGHTS)
    assert weights.import_weights(model, TESTNET_WEIGHTS).exists()
