"""Flicker measures and the --temporal stabiliser, on synthetic sequences with known motion."""

from __future__ import annotations

import numpy as np

from derain_cli.video.temporal import StillFlicker, TemporalStabiliser, excess_change, mean_change

RNG = np.random.default_rng(7)
H, W = 64, 96


def still_scene() -> np.ndarray:
    y = np.linspace(0.2, 0.8, W, dtype=np.float32)[None, :, None]
    return np.broadcast_to(y, (H, W, 3)).copy()


def flickering(frames: int = 12, noise: float = 0.03) -> list[np.ndarray]:
    """A still scene plus fresh noise in every frame: what a per-frame network leaves behind."""
    base = still_scene()
    return [np.clip(base + RNG.normal(0, noise, base.shape).astype(np.float32), 0, 1) for _ in range(frames)]


def moving_bar(frames: int = 12) -> list[np.ndarray]:
    out = []
    for i in range(frames):
        img = still_scene()
        img[:, 8 * i : 8 * i + 12] = 1.0
        out.append(img)
    return out


def u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_stabiliser_steadies_a_still_scene():
    outputs = flickering()
    inputs = [u8(still_scene())] * len(outputs)  # the input itself is still
    stab = TemporalStabiliser()
    steadied = [stab(i, o) for i, o in zip(inputs, outputs)]
    assert mean_change(steadied) < 0.7 * mean_change(outputs)
    assert abs(float(np.mean(steadied[-1])) - float(np.mean(still_scene()))) < 0.01  # no drift in brightness


def test_stabiliser_does_not_ghost_moving_content():
    frames = moving_bar()
    stab = TemporalStabiliser()
    steadied = [stab(u8(f), f) for f in frames]
    for i in range(1, len(frames)):
        old_bar = slice(8 * (i - 1), 8 * i)  # where the bar was a frame ago and is no longer
        assert np.abs(steadied[i][:, old_bar] - frames[i][:, old_bar]).max() < 0.05
        assert np.abs(steadied[i] - frames[i]).mean() < 0.01


def test_still_flicker_measures_the_still_parts_only():
    meter = StillFlicker()
    noisy_in = [u8(f) for f in flickering(noise=0.05)]
    steady_out = [u8(still_scene())] * len(noisy_in)
    for i, o in zip(noisy_in, steady_out):
        meter.add(i, o)
    assert meter.still_fraction > 0.95  # pixel noise is not motion
    assert meter.input_level > 3 and meter.output_level == 0.0

    moving = StillFlicker()
    for f in moving_bar():
        moving.add(u8(f), u8(f))
    assert moving.still_fraction < 0.9 and moving.output_level == 0.0  # the bar is not counted as flicker


def test_excess_change_is_zero_for_the_reference_itself():
    clean = moving_bar()
    assert excess_change(clean, clean) == 0.0
    assert excess_change(flickering(), [still_scene()] * 12) > 1.0
