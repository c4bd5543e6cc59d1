"""Export: EMA weights with metadata, loadable strictly through the model registry."""

from __future__ import annotations

import json

import pytest
import torch

from derain_cli import models
from derain_cli.errors import UsageError
from derain_cli.models import ModelEntry, ResolvedModel, WeightSource
from derain_cli.train import export_run, read_metadata, start_run
from derain_cli.train.loop import read_checkpoint

from .conftest import TINY_ARCH


def test_export_round_trip_through_the_registry(tiny_config, tmp_path):
    start_run(tiny_config, tmp_path / "run", log=lambda m: None)
    out = tmp_path / "tiny.safetensors"
    meta = export_run(tmp_path / "run", out)

    stored = read_metadata(out)
    assert stored == meta
    assert stored["architecture"] == "derainlite" and stored["weights"] == "ema"
    assert stored["steps"] == "6"
    assert json.loads(stored["arch_config"]) == TINY_ARCH
    assert json.loads(stored["config"])["batch"] == 2
    assert json.loads(stored["training_data"])["paired"] == tiny_config.data
    assert float(stored["val_psnr"]) > 0

    arch = models.REGISTRY.architecture("derainlite")
    entry = ModelEntry(arch="derainlite", variant="tiny-test", config=TINY_ARCH,
                       source=WeightSource(kind="file", filename=out.name, path=str(out)))
    net = models.load_model(ResolvedModel(entry, arch), path=out).module  # strict load
    ema = models.build("derainlite", **TINY_ARCH)
    ema.load_state_dict(read_checkpoint(tmp_path / "run")["ema"])
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), ema.eval()(x))


def test_export_needs_safetensors_suffix(tiny_config, tmp_path):
    with pytest.raises(UsageError, match="must end in .safetensors"):
        export_run(tmp_path, tmp_path / "weights.pt")
