"""Training data: pairing rules, held-out split, and batches."""

from __future__ import annotations

import numpy as np
import pytest

from derain_cli.errors import UsageError
from derain_cli.train import TrainConfig
from derain_cli.train.data import Sources, TrainSampler, paired_files, split
from derain_cli.train.synth import write_rgb


def _folder(root, inputs, targets, size=(20, 24)):
    for sub, names in (("input", inputs), ("target", targets)):
        (root / sub).mkdir(parents=True)
        for n in names:
            write_rgb(root / sub / n, np.full((*size, 3), 0.5, np.float32))
    return root


def test_pairs_by_name_or_by_sorted_order(tmp_path):
    same = paired_files(_folder(tmp_path / "a", ["x.png", "y.png"], ["y.png", "x.png"]))
    assert [(i.name, t.name) for i, t in same] == [("x.png", "x.png"), ("y.png", "y.png")]
    ordered = paired_files(_folder(tmp_path / "b", ["im_1_s80.png", "im_2_s80.png"], ["im_1.png", "im_2.png"]))
    assert [(i.name, t.name) for i, t in ordered] == [("im_1_s80.png", "im_1.png"), ("im_2_s80.png", "im_2.png")]
    with pytest.raises(UsageError, match="input/ has 2 images and target/ 1"):
        paired_files(_folder(tmp_path / "c", ["p.png", "q.png"], ["r.png"]))
    with pytest.raises(UsageError, match="needs input/ and target/"):
        paired_files(tmp_path)


def test_split_is_deterministic_and_disjoint():
    items = list(range(20))
    train, held = split(items, 0.15, seed=1)
    assert (train, held) == split(items, 0.15, seed=1)
    assert len(held) == 3 and sorted(train + held) == items
    assert split([1], 0.5, seed=0) == ([1], [])


def test_batches_have_the_requested_shape_and_range(tiny_config):
    sampler = TrainSampler(tiny_config, Sources.from_config(tiny_config))
    rainy, clean = sampler.batch(np.random.default_rng(0))
    assert rainy.shape == clean.shape == (2, 3, 16, 16)
    assert float(rainy.min()) >= 0 and float(rainy.max()) <= 1
    again, _ = sampler.batch(np.random.default_rng(0))
    assert np.array_equal(rainy.numpy(), again.numpy())


def test_pairs_smaller_than_the_crop_are_refused(tmp_path):
    folder = _folder(tmp_path / "small", ["a.png", "b.png"], ["a.png", "b.png"])
    cfg = TrainConfig(data=[str(folder)], crop=32, val_fraction=0.0)
    with pytest.raises(UsageError, match=r"a.png: 24x20 is smaller than the crop size 32"):
        TrainSampler(cfg, Sources.from_config(cfg))
