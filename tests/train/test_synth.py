"""Rain synthesis: deterministic, streaky (not salt noise), and the promised folder layout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from derain_cli.errors import UsageError
from derain_cli.train.synth import PRESET_NAMES, add_rain, line_kernel, parse_preset, synth_folder, write_rgb


def _grey(size: int = 96) -> np.ndarray:
    return np.full((size, size, 3), 0.3, np.float32)


def test_add_rain_is_deterministic_for_a_seed():
    a = add_rain(_grey(), np.random.default_rng(7), "mixed")
    b = add_rain(_grey(), np.random.default_rng(7), "mixed")
    c = add_rain(_grey(), np.random.default_rng(8), "mixed")
    assert a.dtype == np.float32 and a.shape == (96, 96, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("preset", sorted(set(PRESET_NAMES) - {"none"}))
def test_rain_forms_streaks_not_noise(preset):
    clean = _grey()
    rainy = add_rain(clean, np.random.default_rng(1), preset)
    rain = (rainy - clean).mean(-1)
    assert rain.mean() > 0.003  # rain brightens the image
    assert rainy.min() >= 0.0 and rainy.max() <= 1.0
    # streaks: a pixel's rain is strongly correlated with its neighbours along the streak;
    # independent salt noise would give about 0
    r = rain - rain.mean()
    best = max(
        float((r[1:, :] * r[:-1, :]).mean() / r.var()),
        float((r[1:, 1:] * r[:-1, :-1]).mean() / r.var()),
        float((r[1:, :-1] * r[:-1, 1:]).mean() / r.var()),
    )
    assert best > 0.5


def test_preset_none_leaves_the_image_clean_and_mixes_with_rain():
    clean = _grey()
    assert np.array_equal(add_rain(clean, np.random.default_rng(0), "none"), clean)
    # in a mix, some draws are clean and the others rainy
    outs = [add_rain(clean, np.random.default_rng(s), "none:0.5,heavy:0.5") for s in range(12)]
    untouched = sum(np.array_equal(o, clean) for o in outs)
    assert 0 < untouched < len(outs)


def test_heavy_rain_covers_more_than_light_rain():
    clean = _grey(128)
    amount = {p: np.mean([np.abs(add_rain(clean, np.random.default_rng(s), p) - clean).mean() for s in range(3)])
              for p in ("light", "heavy")}
    assert amount["heavy"] > 2 * amount["light"]


def _principal_angle(k: np.ndarray) -> float:
    """Angle from vertical (degrees, x to the right, y down) of the kernel's main axis."""
    ys, xs = np.mgrid[0 : k.shape[0], 0 : k.shape[1]].astype(np.float64)
    w = k / k.sum()
    my, mx = (w * ys).sum(), (w * xs).sum()
    cov = np.cov(np.stack([(xs - mx).ravel(), (ys - my).ravel()]), aweights=w.ravel())
    _, vecs = np.linalg.eigh(cov)
    vx, vy = vecs[:, -1]
    angle = np.degrees(np.arctan2(vx, vy))
    return float((angle + 90) % 180 - 90)


@pytest.mark.parametrize("angle", [0.0, 20.0, -35.0])
def test_line_kernel_follows_the_angle(angle):
    k = line_kernel(21, angle)
    assert abs(_principal_angle(k) - angle) < 3
    assert 0.6 * 21 < k.sum() < 1.1 * 21  # about one unit per pixel of length (soft ends)


def test_unknown_preset_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown rain preset 'drizzle'"):
        add_rain(_grey(), np.random.default_rng(0), "drizzle")


def test_synth_folder_layout_and_determinism(tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        write_rgb(clean / name, rng.uniform(0.2, 0.6, size=(40, 56, 3)))
    (clean / "notes.txt").write_text("not an image")

    n = synth_folder(clean, tmp_path / "out1", preset="medium", per_image=2, seed=5)
    synth_folder(clean, tmp_path / "out2", preset="medium", per_image=2, seed=5)
    synth_folder(clean, tmp_path / "out3", preset="medium", per_image=2, seed=6)
    names = sorted(p.name for p in (tmp_path / "out1" / "input").iterdir())
    assert n == 4
    assert names == ["a_0.png", "a_1.png", "b_0.png", "b_1.png"]
    assert names == sorted(p.name for p in (tmp_path / "out1" / "target").iterdir())
    for name in names:
        rainy = np.asarray(Image.open(tmp_path / "out1" / "input" / name))
        target = np.asarray(Image.open(tmp_path / "out1" / "target" / name))
        assert rainy.shape == target.shape == (40, 56, 3)
        assert (tmp_path / "out1" / "input" / name).read_bytes() == (tmp_path / "out2" / "input" / name).read_bytes()
    assert any((tmp_path / "out1" / "input" / n).read_bytes() != (tmp_path / "out3" / "input" / n).read_bytes()
               for n in names)
    # the two copies of one image get different rain, the same target
    a0 = np.asarray(Image.open(tmp_path / "out1" / "input" / "a_0.png"))
    a1 = np.asarray(Image.open(tmp_path / "out1" / "input" / "a_1.png"))
    assert not np.array_equal(a0, a1)


def test_synth_folder_rejects_empty_folder(tmp_path):
    with pytest.raises(UsageError, match="no images"):
        synth_folder(tmp_path, tmp_path / "out")


def test_streaks_preset_is_dense_bright_and_haze_free():
    """Benchmark-style heavy rain: most pixels touched, many near-saturated, and only ever brightened."""
    clean = _grey(160)
    rainy = add_rain(clean, np.random.default_rng(3), "streaks")
    rain = (rainy - clean).mean(-1)
    assert (rain > 0.05).mean() > 0.3
    assert (rain > 0.3).mean() > 0.05
    assert rain.min() >= -1e-6  # no haze darkening or colour shift below the clean image


def test_weighted_mix_draws_only_the_named_presets():
    clean = _grey(64)
    mix = "light:1,streaks:3"
    for seed in range(4):
        a = add_rain(clean, np.random.default_rng(seed), mix)
        assert np.array_equal(a, add_rain(clean, np.random.default_rng(seed), mix))
    assert parse_preset(mix) == {"light": 0.25, "streaks": 0.75}
    assert parse_preset("mixed") == {"light": 0.2, "medium": 0.3, "heavy": 0.5}


@pytest.mark.parametrize("spec, message", [
    ("drizzle", "unknown rain preset 'drizzle'"),
    ("light:abc", "must be a number"),
    ("light:0,heavy:1", "must be positive"),
])
def test_bad_preset_is_a_usage_error(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_preset(spec)

