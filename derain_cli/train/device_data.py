"""Training batches made on the training device: images held there, crops, flips and rain in torch.

Why: a GPU consumes training crops far faster than numpy can make them on CPU cores (decode,
resize, rain, copy). Here the training images are decoded once and kept on the device as uint8
tensors; each batch is cropped, rescaled, flipped and rained on there (``synth_torch``), so the
only traffic per batch is a few hundred bytes of random parameters.

Sampling follows ``data.TrainSampler``: each sample is synthetic (a random rescale of a clean
image to a short side in ``synth_short_side``, a random crop, fresh rain from ``synth_preset``) with
probability ``synth_fraction`` when both kinds of data are given, else a random crop of a random
training pair; then the same random flips (and, with ``rot90``, 90-degree turns) for both images.
All randomness comes from the numpy generator handed to ``batch`` (the random fields of the rain from
a torch generator reseeded from it), so restoring that generator's state redraws the same batches
on the same device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import Sources, load_training_images
from .synth import parse_preset
from .synth_torch import add_rain_batch


def _to_device_uint8(img: np.ndarray, device: torch.device) -> torch.Tensor:
    """H x W x C uint8 -> C x H x W uint8 tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(device)


class DeviceSampler:
    """Draws training batches (rainy, clean) as N x 3 x crop x crop float32 tensors on ``device``."""

    def __init__(self, cfg: TrainConfig, sources: Sources, device: torch.device):
        self.cfg, self.device = cfg, torch.device(device)
        pairs, clean = load_training_images(cfg, sources)
        # rainy and clean stacked: 6 x H x W, so one slice crops both
        self.pairs = [_to_device_uint8(np.concatenate([a, b], axis=2), self.device) for a, b in pairs]
        self.clean = [_to_device_uint8(img, self.device) for img in clean]
        self.clean_sizes = np.array([img.shape[1:] for img in self.clean], dtype=np.int64).reshape(-1, 2)
        self.pair_sizes = np.array([p.shape[1:] for p in self.pairs], dtype=np.int64).reshape(-1, 2)
        self.mix = parse_preset(cfg.synth_preset)
        self.generator = torch.Generator(device=self.device)

    def memory_bytes(self) -> int:
        """Device memory the training images take."""
        return sum(t.numel() for t in self.pairs + self.clean)

    def _synth_crops(self, k: int, rng: np.random.Generator) -> torch.Tensor:
        """``k`` clean crops: a random image, rescaled to a random short side, cropped (k x 3 x c x c)."""
        crop = self.cfg.crop
        lo, hi = self.cfg.synth_short_side
        idx = rng.integers(len(self.clean), size=k)
        h, w = self.clean_sizes[idx, 0], self.clean_sizes[idx, 1]
        short = np.minimum(h, w)
        factor = np.maximum(rng.uniform(lo, hi, k) / short, crop / short)
        size = np.minimum(short, np.maximum(1, np.rint(crop / factor).astype(np.int64)))
        ys, xs = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        crops = []
        for i, s, y, x in zip(idx.tolist(), size.tolist(), ys.tolist(), xs.tolist()):
            window = self.clean[i][:, y : y + s, x : x + s].float()[None]
            if s != crop:  # bicubic with antialiasing when shrinking, like Pillow's resize
                window = F.interpolate(window, size=(crop, crop), mode="bicubic", antialias=True,
                                       align_corners=False)
            crops.append(window)
        return (torch.cat(crops) / 255.0).clamp_(0.0, 1.0)

    def _pair_crops(self, k: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` random crops of random training pairs: (rainy, clean), each k x 3 x c x c in [0, 1]."""
        crop = self.cfg.crop
        idx = rng.integers(len(self.pairs), size=k)
        h, w = self.pair_sizes[idx, 0], self.pair_sizes[idx, 1]
        ys, xs = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        both = torch.stack([self.pairs[i][:, y : y + crop, x : x + crop]
                            for i, y, x in zip(idx.tolist(), ys.tolist(), xs.tolist())]).float() / 255.0
        return both[:, :3], both[:, 3:]

    def _augment(self, rainy: torch.Tensor, clean: torch.Tensor, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same random flips (and 90-degree turns if allowed) for both tensors, per sample."""
        n = rainy.shape[0]
        masks = rng.random((3, n)) < 0.5
        if not self.cfg.rot90:
            masks[2] = False
        both = torch.cat([rainy, clean], dim=1)
        flags = torch.from_numpy(np.ascontiguousarray(masks[:, :, None, None, None]))
        flags = flags.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" \
            else flags.to(self.device)
        if masks[0].any():
            both = torch.where(flags[0], both.flip(-1), both)
        if masks[1].any():
            both = torch.where(flags[1], both.flip(-2), both)  # with the flip above: a 180-degree turn
        if masks[2].any():
            both = torch.where(flags[2], both.transpose(-1, -2), both)
        return both[:, :3].contiguous(), both[:, 3:].contiguous()

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.cfg.batch
        if self.clean and self.pairs:
            use_synth = rng.random(n) < self.cfg.synth_fraction
        else:
            use_synth = np.full(n, bool(self.clean))
        k = int(use_synth.sum())
        rainy_parts, clean_parts = [], []
        if k:
            clean = self._synth_crops(k, rng)
            rainy_parts.append(add_rain_batch(clean, rng, self.mix, generator=self.generator))
            clean_parts.append(clean)
        if k < n:
            rainy, clean = self._pair_crops(n - k, rng)
            rainy_parts.append(rainy)
            clean_parts.append(clean)
        # synthetic samples first: the batch's order does not matter to the loss
        return self._augment(torch.cat(rainy_parts), torch.cat(clean_parts), rng)


def make_sampler(cfg: TrainConfig, sources: Sources, device: torch.device):
    """The sampler ``synth_device`` asks for: numpy on the CPU, or batched torch on ``device``."""
    from .data import TrainSampler

    on_device = cfg.synth_device == "device" or (cfg.synth_device == "auto" and device.type == "cuda")
    return DeviceSampler(cfg, sources, device) if on_device else TrainSampler(cfg, sources)
