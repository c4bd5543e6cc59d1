"""End-to-end: the main networks' weights, written in each author's own file format, go through
`derain models import` and `derain IMAGE -m ...`, and the result equals our golden-tested model
run through the registry's pre/post-processing (channel order, range, padding, output choice)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import shared_path

pytestmark = pytest.mark.e2e


def authors_format(arch: str, state: dict, folder):
    """Write `state` the way each author's code saved it; returns the path to import."""
    if arch == "glgfn":
        path = folder / "model_latest.pth"
        torch.save({"net": state, "epoch": 10}, path)
    elif arch == "dcsfn":
        path = folder / "latest_net"
        torch.save({"net": {f"module.{k}": v for k, v in state.items()}, "optimizer": {}}, path)
    elif arch == "drsformer":
        path = folder / "net_g_latest.pth"
        torch.save({"params": state}, path)
    else:  # mspfn: the real two-file TensorFlow checkpoint
        path = shared_path("reference", "mspfn", "tiny_tf", "epoch50.index")
    return path


def expected_output(arch: str, rgb8: np.ndarray) -> np.ndarray:
    from derain_cli import models
    from derain_cli.metrics import to_uint8

    tiny = torch.load(shared_path("reference", arch, "tiny.pt"), weights_only=True)
    net = models.build(arch, **tiny["config"]).eval()
    net.load_state_dict(tiny["state_dict"], strict=True)
    runner = models.LoadedModel(net, models.REGISTRY.architecture(arch).contract)
    x = torch.from_numpy(rgb8.astype(np.float32) / 255).permute(2, 0, 1)[None]
    y = runner(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    return to_uint8(y)


@pytest.mark.parametrize("arch", ["glgfn", "drsformer", "dcsfn", "mspfn"])
def test_import_authors_checkpoint_and_derain(derain, tmp_path, arch):
    tiny = torch.load(shared_path("reference", arch, "tiny.pt"), weights_only=True)
    derain.env["DERAIN_PLUGINS"] = "tests.tiny_variants"
    name = f"{arch}-tiny:test"
    path = authors_format(arch, tiny["state_dict"], tmp_path)

    r = derain("models", "import", name, path)
    assert r.returncode == 0, r.stderr
    rgb8 = np.asarray(Image.open(shared_path("data", "paired", "rain100l-samples", "input", "norain-1.png"))
                      .convert("RGB"))[:70, :90].copy()
    Image.fromarray(rgb8).save(tmp_path / "in.png")
    # on the CPU: the expected output is a CPU fp32 run (a GPU would pick half precision for these)
    r = derain(tmp_path / "in.png", "-m", name, "-o", tmp_path / "out.png", "--tile", "0", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    got = np.asarray(Image.open(tmp_path / "out.png").convert("RGB")).astype(int)
    want = expected_output(arch, rgb8).astype(int)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1  # identical up to float rounding at the 8-bit boundary


def test_import_into_the_wrong_architecture_names_keys(derain, tmp_path):
    tiny = torch.load(shared_path("reference", "glgfn", "tiny.pt"), weights_only=True)
    derain.env["DERAIN_PLUGINS"] = "tests.tiny_variants"
    path = authors_format("glgfn", tiny["state_dict"], tmp_path)
    r = derain("models", "import", "dcsfn-tiny:test", path)
    assert r.returncode == 1
    assert "missing" in r.stderr or "unexpected" in r.stderr
