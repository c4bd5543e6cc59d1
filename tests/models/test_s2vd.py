"""S2VD, the video deraining network: the authors' real weights reproduce their outputs.

``reference/peers/s2vd/golden.pt`` holds two cases made by the authors' code with the released
file: the raw forward of an 8-frame clip, and their chunked procedure for long clips (chunks of 24
frames, 2 frames of context on inner sides, clamped) on 30 frames. The first goes straight
through the network; the second through the video engine that `derain video` uses.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from derain_cli import models
from derain_cli.errors import ModelError, UsageError
from derain_cli.models import REGISTRY, LoadedModel
from derain_cli.video.engines import ClipEngine, iter_chunks
from tests.conftest import shared_path
from tests.models.golden import max_diff


@pytest.fixture(scope="module")
def golden() -> dict:
    (case,) = torch.load(shared_path("reference", "peers", "s2vd", "golden.pt"), weights_only=True)
    return case


@pytest.fixture(scope="module")
def s2vd(golden):
    """The registered model, with the real file loaded strictly through the registry's adapter."""
    model = REGISTRY.resolve("s2vd:ntu")
    assert model.source.sha256 == golden["sha256"]
    return model, models.load_model(model, path=shared_path("weights", golden["file"])).module


def test_registered_like_the_other_peers(golden):
    model = REGISTRY.resolve("s2vd")  # the architecture name alone means this variant
    assert model.name == "s2vd:ntu"
    manifest = json.loads(shared_path("weights", "manifest.json").read_text())
    (entry,) = [f for f in manifest if f["file"] == golden["file"]]
    assert (model.source.kind, model.source.url, model.source.size) == ("url", entry["url"], entry["bytes"])
    assert model.source.sha256 == entry["sha256"]
    for key, value in golden["config"].items():
        assert model.config[key] == value
    contract = model.contract
    assert contract.is_video and (contract.frames, contract.frame_overlap) == (24, 2)
    assert contract.size_multiple == 2
    assert "video model" in contract.describe()


def test_real_weights_load_strictly(s2vd):
    _model, net = s2vd
    state = net.state_dict()
    assert len(state) == 126  # every tensor of the release, no more
    with pytest.raises(ModelError, match="missing"):
        models.load_state_dict_strict(models.build("s2vd"), dict(list(state.items())[1:]))


def test_raw_forward_matches_the_authors(golden, s2vd):
    _, net = s2vd
    with torch.inference_mode():
        out = net(golden["input"])
    assert max_diff(out, golden["output"]) < 1e-4


@pytest.mark.slow
def test_chunked_procedure_matches_the_authors(golden, s2vd):
    model, net = s2vd
    engine = ClipEngine(LoadedModel(net, model.contract), tile=0)
    clip = golden["clip_input"][0].permute(1, 2, 3, 0).numpy()  # T x H x W x 3
    outputs = []
    for window, keep_from, keep_to in iter_chunks(list(clip), engine.chunk, engine.overlap):
        outputs.extend(engine.derain_clip(np.stack(window))[keep_from:keep_to])
    ours = torch.from_numpy(np.stack(outputs)).permute(3, 0, 1, 2)[None]
    assert max_diff(ours, golden["clip_output_chunked"]) < 1e-4


def test_spatial_tiles_agree_with_the_whole_frame(golden, s2vd):
    """Tiling a clip in space (every tile carrying all frames) changes the result only slightly."""
    model, net = s2vd
    clip = golden["input"][0, :, :3].permute(1, 2, 3, 0).numpy()  # 3 frames of 96 x 128
    whole = ClipEngine(LoadedModel(net, model.contract), tile=0).derain_clip(clip)
    tiled_engine = ClipEngine(LoadedModel(net, model.contract), tile=96, tile_overlap=32)
    tiled = tiled_engine.derain_clip(clip)
    assert tiled_engine.tile == 96 and tiled.shape == whole.shape
    mse = float(np.mean((whole - tiled) ** 2))
    assert 10 * np.log10(1 / mse) > 50, 10 * np.log10(1 / mse)


def test_image_commands_refuse_a_video_model(monkeypatch, tmp_path, golden):
    from derain_cli.engine import Engine

    d = Engine("s2vd:ntu", device="cpu")
    with pytest.raises(UsageError, match="video model"):
        d.derain_rgb(np.zeros((8, 8, 3), np.float32))


# -- chunking (no network) ---------------------------------------------------------------------
def _plan(n: int, chunk: int = 24, overlap: int = 2) -> list[tuple[int, int, int, int]]:
    """(first, last + 1) of each window and the kept range, in stream indices."""
    plan = []
    for window, keep_from, keep_to in iter_chunks(range(n), chunk, overlap):
        plan.append((window[0], window[-1] + 1, window[keep_from], window[keep_to - 1] + 1))
    return plan


def test_chunks_follow_the_authors_procedure():
    assert _plan(30) == [(0, 26, 0, 24), (22, 30, 24, 30)]
    assert _plan(24) == [(0, 24, 0, 24)]
    assert _plan(25) == [(0, 25, 0, 24), (22, 25, 24, 25)]
    assert _plan(60) == [(0, 26, 0, 24), (22, 50, 24, 48), (46, 60, 48, 60)]
    assert _plan(1) == [(0, 1, 0, 1)]


@pytest.mark.parametrize("n", [0, 1, 5, 23, 24, 25, 26, 27, 48, 49, 100])
def test_every_frame_is_kept_once_in_order(n):
    kept = []
    for window, keep_from, keep_to in iter_chunks(range(n), 24, 2):
        kept.extend(window[keep_from:keep_to])
        assert len(window) <= 24 + 2 * 2
    assert kept == list(range(n))


def test_chunks_are_yielded_before_the_stream_ends():
    seen = []

    def stream():
        for i in range(100):
            seen.append(i)
            yield i

    window, _, _ = next(iter_chunks(stream(), 24, 2))
    assert window[-1] == 25 and len(seen) == 26  # the first chunk needs only its forward context
