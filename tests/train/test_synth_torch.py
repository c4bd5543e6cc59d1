"""Rain synthesis on the training device (run here on CPU tensors): same rain model as the numpy
synth, per-sample parameters, deterministic for a seed, and batches made on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from derain_cli.train import TrainConfig
from derain_cli.train.data import Sources
from derain_cli.train.device_data import DeviceSampler, make_sampler
from derain_cli.train.synth import add_rain, line_kernel
from derain_cli.train.synth_torch import (
    GROUPS,
    add_rain_batch,
    draw_params,
    line_kernels,
    streak_layers,
    to_device,
)


def _grey_batch(n: int, size: int = 96) -> torch.Tensor:
    return torch.full((n, 3, size, size), 0.3)


def test_same_seed_same_rain_other_seed_other_rain():
    clean = _grey_batch(3)
    a = add_rain_batch(clean, np.random.default_rng(5), "light:1,medium:1,streaks:2")
    b = add_rain_batch(clean, np.random.default_rng(5), "light:1,medium:1,streaks:2")
    c = add_rain_batch(clean, np.random.default_rng(6), "light:1,medium:1,streaks:2")
    assert a.shape == clean.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_every_sample_gets_its_own_rain_and_none_stays_clean():
    clean = _grey_batch(12, 64)
    rng = np.random.default_rng(0)
    params = draw_params(np.random.default_rng(0), 12, "none:1,streaks:1")
    out = add_rain_batch(clean, rng, "none:1,streaks:1")
    is_none = params.kind == 4
    assert 0 < is_none.sum() < 12
    for i in range(12):
        if is_none[i]:
            assert torch.equal(out[i], clean[i])
        else:
            assert float((out[i] - clean[i]).mean()) > 0.02
    rainy = [out[i] for i in range(12) if not is_none[i]]
    assert not any(torch.equal(rainy[0], r) for r in rainy[1:])  # no two samples share their rain


def test_line_kernels_match_the_numpy_line_kernel():
    for length, angle in [(21.0, 0.0), (33.5, 20.0), (9.0, -35.0)]:
        ref = line_kernel(length, angle)
        box = ref.shape[0]
        ours = line_kernels(torch.tensor([length]), torch.tensor([angle]), box)[0].numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_streak_layers_are_per_sample_kernels_applied_circularly():
    """The Fourier product equals, for every (sample, layer, group), a wrapped Gaussian blur of the
    seeds followed by a wrapped convolution with that group's own line kernel."""
    params = draw_params(np.random.default_rng(3), 2, "medium")
    p = to_device(params, torch.device("cpu"))
    n, layers = params.density.shape
    rng = np.random.default_rng(4)
    seeds = (rng.random((n, layers, GROUPS, 72, 80)) < 0.01) * rng.uniform(0.5, 1.0, (n, layers, GROUPS, 72, 80))
    longest = float((params.length[..., None] * params.group_length).max())
    got = streak_layers(torch.from_numpy(seeds.astype(np.float32)), p, longest, float(params.width.max())).numpy()
    for i in range(n):
        for j in range(layers):
            width = params.width[i, j]
            ref = np.zeros((72, 80))
            for g in range(GROUPS):
                s = seeds[i, j, g]
                if width > 0.35:
                    s = ndimage.gaussian_filter(s, width, mode="wrap") * (2 * np.pi * width**2) ** 0.5
                k = line_kernel(params.length[i, j] * params.group_length[i, j, g],
                                params.angle[i, j] + params.group_angle[i, j, g])
                ref += ndimage.convolve(s, k, mode="wrap")
            np.testing.assert_allclose(got[i, j], np.clip(ref, 0, None), atol=2e-4)


def _figures(rainy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    rain = (rainy - clean).mean(-1)
    return np.array([rain.mean(), (rain > 0.05).mean(), (rain > 0.3).mean()])


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["streaks", "light", "medium"])
def test_device_rain_matches_numpy_rain_statistically(preset):
    """Mean added intensity and the shares of pixels brightened by > 0.05 and > 0.3 (the figures
    docs/training.md compares with Rain200H), averaged over many draws on the same image.

    Single draws vary a lot (cover ranges over 3-5x, haze and lens drops are occasional), hence
    192 draws; the device renderer also keeps the streaks that numpy loses at the borders, so it
    may add a little more rain.
    """
    size, draws, batch = 128, 192, 64
    ys, xs = np.mgrid[0:size, 0:size] / size
    clean = np.stack([0.2 + 0.3 * ys, 0.3 + 0.2 * xs, 0.25 + 0.1 * ys * xs], -1).astype(np.float32)
    ref = np.mean([_figures(add_rain(clean, np.random.default_rng([9, k]), preset), clean)
                   for k in range(draws)], axis=0)
    rng = np.random.default_rng(9)
    images = torch.from_numpy(clean).permute(2, 0, 1)[None].repeat(batch, 1, 1, 1)
    out = torch.cat([add_rain_batch(images, rng, preset) for _ in range(draws // batch)])
    ours = np.mean([_figures(o, clean) for o in out.permute(0, 2, 3, 1).numpy()], axis=0)
    ratio = ours / ref
    assert 0.75 < ratio[0] < 1.4 and 0.75 < ratio[1] < 1.4, (preset, ours, ref)
    assert 0.7 < ratio[2] < 1.5, (preset, ours, ref)


def _sampler_config(tiny_config: TrainConfig, **changes) -> TrainConfig:
    cfg = TrainConfig.from_dict({**tiny_config.to_dict(), "synth_device": "device", "batch": 6,
                                 "synth_preset": "light:1,streaks:2,none:1", **changes})
    return cfg


def test_device_sampler_is_deterministic_and_mixes_both_kinds(tiny_config):
    cfg = _sampler_config(tiny_config, synth_fraction=0.5)
    sources = Sources.from_config(cfg)
    sampler = make_sampler(cfg, sources, torch.device("cpu"))
    assert isinstance(sampler, DeviceSampler)
    a = sampler.batch(np.random.default_rng(1))
    b = sampler.batch(np.random.default_rng(1))
    c = sampler.batch(np.random.default_rng(2))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])
    rainy, clean = a
    assert rainy.shape == clean.shape == (6, 3, cfg.crop, cfg.crop)
    assert float(rainy.min()) >= 0 and float(rainy.max()) <= 1
    # paired crops come from the rainy inputs: their rain is not made here, but they differ from clean
    assert all(not torch.equal(r, k) or float(r.mean()) > 0 for r, k in zip(rainy, clean))


def test_device_sampler_crops_pairs_where_they_are(tiny_config):
    """Pairs only: each rainy crop is a window of a training input (maybe flipped), and its clean
    crop is the same window of that input's target, flipped the same way."""
    from derain_cli.train.data import load_uint8

    cfg = _sampler_config(tiny_config, synth=[])
    sources = Sources.from_config(cfg)
    rainy, clean = DeviceSampler(cfg, sources, torch.device("cpu")).batch(np.random.default_rng(0))

    def tensor(path):
        return torch.from_numpy(load_uint8(path)).permute(2, 0, 1).float() / 255

    pairs = [(tensor(i), tensor(t)) for i, t in sources.train_pairs]
    flips = [lambda t: t, lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.flip(-1).flip(-2)]
    crop = cfg.crop
    for r, k in zip(rainy, clean):
        matches = []
        for a, b in pairs:
            for flip in flips:
                windows = flip(a).unfold(1, crop, 1).unfold(2, crop, 1)  # 3 x Y x X x crop x crop
                ys, xs = torch.nonzero((windows - r[:, None, None]).abs().amax(dim=(0, 3, 4)) < 1e-6, as_tuple=True)
                matches += [flip(b)[:, y : y + crop, x : x + crop] for y, x in zip(ys.tolist(), xs.tolist())]
        assert matches, "a rainy crop is not a window of any training input"
        assert any(torch.allclose(m, k, atol=1e-6) for m in matches), "the clean crop is not the same window"


def test_auto_uses_the_device_sampler_only_on_cuda(tiny_config):
    from derain_cli.train.data import TrainSampler

    cfg = _sampler_config(tiny_config, synth_device="auto")
    assert isinstance(make_sampler(cfg, Sources.from_config(cfg), torch.device("cpu")), TrainSampler)
