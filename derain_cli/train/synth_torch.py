"""Rain synthesis for a whole batch on the training device: ``synth.py``'s presets, rendered in torch.

Why: ``synth.add_rain`` renders one image at a time in numpy on one CPU core (tens of milliseconds
for a 256 x 256 crop of dense streaks), while a data-centre GPU trains a small network on thousands
of such crops per second. Here every sample of a batch still gets its own random rain (preset,
layers, density, length, width, angle, brightness, crossing layer, haze, lens drops, compositing),
but all samples are rendered together with a handful of batched tensor operations.

The model is the one of ``synth.py`` (see its docstring and docs/training.md), sample by sample:

* scalar parameters are drawn with numpy from the caller's ``numpy.random.Generator`` (the
  training run's, which a checkpoint saves), vectorised over the batch;
* the random fields (streak seeds) come from a ``torch.Generator`` on the device, seeded from that
  same numpy generator, so one numpy state decides a whole batch (``render`` is deterministic for a
  seed on a given device; CPU and CUDA draw different numbers);
* each streak layer is three groups of seeds (Bernoulli(density) with brightness U(0.5, 1)), each
  group convolved with its own kernel: an anti-aliased line of its length and angle (soft ends) with
  a Gaussian cross-section of the layer's width. Every (sample, layer, group) has its own kernel, a
  grouped convolution with per-sample kernels; it is applied as a product in the Fourier domain,
  whose cost does not grow with the kernel (streaks up to ~90 px long would need 93 x 93 kernels).
  The convolution is circular: seeds wrap around the crop's edges, so the rain field is stationary
  (the numpy renderer, which only has seeds inside the image, thins the rain near the borders).

Images are N x 3 x H x W float tensors in [0, 1], RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from .synth import NONE, PRESETS, STREAKS, parse_preset

GROUPS = 3  # seed groups per streak layer, each with its own angle jitter and length (as in synth.py)
MAX_DROPS = 5
# Preset indices: the layered presets first (their rows of _TABLE), then the special ones.
_LAYERED = ("light", "medium", "heavy")
_KINDS = (*_LAYERED, STREAKS, NONE)
_MAX_MAIN_LAYERS = max(PRESETS[name].layers[1] for name in _LAYERED)  # 4, plus one crossing layer


def _table(attr: str) -> np.ndarray:
    """One RainPreset attribute of the layered presets as an array (rows in _LAYERED order)."""
    return np.array([getattr(PRESETS[name], attr) for name in _LAYERED], dtype=np.float64)


@dataclass
class RainParams:
    """Everything random about a batch's rain except the seed fields, as numpy arrays.

    Layer slots ``(N, L)`` hold the active layers first; an inactive slot has ``post == 0``.
    A layer's value is ``clip(streaks * gain * (1 - 0.6 * depth_weight * depth), 0, 1) * post``.
    """

    density: np.ndarray  # (N, L) seeds per pixel of the whole layer (each group has a third)
    length: np.ndarray  # (N, L) streak length in pixels
    width: np.ndarray  # (N, L) Gaussian sigma of the streak cross-section (no blur at <= 0.35)
    angle: np.ndarray  # (N, L) degrees from vertical
    gain: np.ndarray  # (N, L)
    post: np.ndarray  # (N, L)
    depth_weight: np.ndarray  # (N, L)
    group_angle: np.ndarray  # (N, L, GROUPS) angle jitter of each seed group (degrees)
    group_length: np.ndarray  # (N, L, GROUPS) length factor of each seed group
    depth_slope: np.ndarray  # (N,) strength of the vertical ramp of the depth map
    depth_coarse: np.ndarray  # (N, 4, 4) low-frequency variation of the depth map
    haze: np.ndarray  # (N,) bool
    haze_beta: np.ndarray  # (N,)
    airlight: np.ndarray  # (N, 3)
    tint: np.ndarray  # (N, 3) rain colour
    screen: np.ndarray  # (N,) bool: screen blend (else additive)
    drops: np.ndarray  # (N,) bool: lens drops
    drop_centre: np.ndarray  # (N, MAX_DROPS, 2) as fractions of (height, width)
    drop_radius: np.ndarray  # (N, MAX_DROPS) pixels; 0 for unused drops
    kind: np.ndarray  # (N,) index into _KINDS


def _density_for(cover, brightness, length, width):
    """``synth._density_for`` on arrays: the seed density that gives a layer a mean intensity ``cover``."""
    spread = np.where(width > 0.35, np.maximum(1.0, 2.5 * width), 1.0)
    per_seed = 0.75 * brightness * 0.9 * np.maximum(1.0, length) * spread
    return np.minimum(0.5, cover / per_seed)


def _signs(rng: np.random.Generator, shape) -> np.ndarray:
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _layered(rng: np.random.Generator, kind: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """Parameters of the light/medium/heavy model for every sample (rows of other kinds are unused)."""
    n, slots = len(kind), _MAX_MAIN_LAYERS + 1
    row = np.minimum(kind, len(_LAYERED) - 1)

    def pick(attr: str) -> tuple[np.ndarray, np.ndarray]:
        t = _table(attr)[row]
        return t[:, 0], t[:, 1]

    angle = np.where(rng.random(n) < 0.8, rng.uniform(-25, 25, n), rng.uniform(-45, 45, n))
    lo, hi = pick("layers")
    n_layers = rng.integers(lo.astype(int), hi.astype(int) + 1)
    cover = rng.uniform(*pick("cover"))
    near_length = rng.uniform(*pick("length")) * scale
    near_width = rng.uniform(*pick("width")) * scale
    near_bright = rng.uniform(*pick("brightness"))
    spread = _table("angle_spread")[row]

    i = np.arange(_MAX_MAIN_LAYERS)[None, :]
    nl = n_layers[:, None]
    z = np.where(nl > 1, i / np.maximum(nl - 1, 1), 0.0)  # 0 nearest, 1 farthest
    active = i < nl
    length = near_length[:, None] * (1 - 0.55 * z)
    width = near_width[:, None] * (1 - 0.5 * z)
    bright = near_bright[:, None] * (1 - 0.45 * z) * rng.uniform(0.85, 1.15, (n, _MAX_MAIN_LAYERS))
    layer_cover = cover[:, None] / nl * rng.uniform(0.7, 1.3, (n, _MAX_MAIN_LAYERS))
    density = _density_for(layer_cover, bright, length, width)
    layer_angle = angle[:, None] + rng.uniform(-1, 1, (n, _MAX_MAIN_LAYERS)) * spread[:, None] * z
    jitter = rng.uniform(1, 6, (n, _MAX_MAIN_LAYERS))

    # The crossing layer: sparse, at a clearly different angle, not attenuated with depth.
    cross = rng.random(n) < _table("cross")[row]
    c_bright = rng.uniform(0.4, 0.9, n)
    c_length = near_length * rng.uniform(0.8, 1.6, n)
    c_width = near_width * 0.6
    c_density = _density_for(cover * rng.uniform(0.05, 0.5, n), c_bright, c_length, c_width)
    c_angle = angle + _signs(rng, n) * rng.uniform(15, 40, n)

    def with_cross(main: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return np.concatenate([main, extra[:, None]], axis=1)

    haze_p, haze_max = _table("haze")[row].T
    return {
        "active": with_cross(active, cross),
        "density": with_cross(density, c_density),
        "length": with_cross(length, c_length),
        "width": with_cross(width, c_width),
        "angle": with_cross(layer_angle, c_angle),
        "jitter": with_cross(jitter, np.full(n, 2.0)),
        "gain": with_cross(bright, c_bright),
        "post": np.ones((n, slots)),
        "depth_weight": with_cross(z, np.zeros(n)),
        "haze": rng.random(n) < haze_p,
        "haze_beta": rng.uniform(0.1, haze_max),
        "airlight": rng.uniform(0.7, 1.0, (n, 1)) + rng.uniform(-0.03, 0.05, (n, 3)),
        "tint": 1.0 - rng.uniform(0, 0.04, (n, 3)),
        "screen": rng.random(n) < _table("screen")[row],
        "drops": rng.random(n) < _table("drops")[row],
    }


def _streaks(rng: np.random.Generator, n: int, scale: float) -> dict[str, np.ndarray]:
    """Parameters of the benchmark-style ``streaks`` preset (``synth._dense_streaks``) for every sample."""
    slots = 3
    angle = rng.uniform(-30, 30, n)
    n_layers = rng.choice([1, 2, 3], p=[0.25, 0.45, 0.3], size=n)
    i = np.arange(slots)[None, :]
    layer_angle = np.where(i == 0, angle[:, None],
                           angle[:, None] + _signs(rng, (n, slots)) * rng.uniform(8, 35, (n, slots)))
    length = rng.uniform(20, 75, (n, slots)) * scale
    width = rng.uniform(0.3, 1.1, (n, slots)) * scale
    cover = rng.uniform(0.2, 0.7, (n, slots)) / np.sqrt(n_layers)[:, None]
    return {
        "active": i < n_layers[:, None],
        "density": cover / (length * np.maximum(1.0, 2.0 * width)),
        "length": length,
        "width": width,
        "angle": layer_angle,
        "jitter": rng.uniform(0, 4, (n, slots)),
        "gain": rng.uniform(0.9, 1.8, (n, slots)),
        "post": rng.uniform(0.55, 1.0, (n, slots)),
        "depth_weight": np.zeros((n, slots)),
        "tint": 1.0 - rng.uniform(0, 0.03, (n, 3)),
        "screen": rng.random(n) >= 0.8,  # 80 % additive
    }


def draw_params(rng: np.random.Generator, n: int, preset: str | dict[str, float] = "mixed",
                scale: float = 1.0) -> RainParams:
    """Random rain parameters for ``n`` samples of ``preset`` (a name, a mix, or a parsed mix).

    ``scale`` multiplies streak lengths and widths and lens-drop sizes, as in ``synth.add_rain``.
    """
    mix = parse_preset(preset) if isinstance(preset, str) else preset
    names = list(mix)
    chosen = rng.choice(len(names), size=n, p=list(mix.values()))
    kind = np.array([_KINDS.index(name) for name in names])[chosen]
    lay = _layered(rng, kind, scale)
    st = _streaks(rng, n, scale)
    is_layered, is_streaks = kind < len(_LAYERED), kind == _KINDS.index(STREAKS)

    slots = _MAX_MAIN_LAYERS + 1
    per_layer = {}
    for key in ("active", "density", "length", "width", "angle", "jitter", "gain", "post", "depth_weight"):
        s = np.zeros((n, slots), dtype=lay[key].dtype)
        s[:, : st[key].shape[1]] = st[key]
        nothing = np.zeros_like(s)  # the "none" preset: no layer at all
        per_layer[key] = np.where(is_layered[:, None], lay[key], np.where(is_streaks[:, None], s, nothing))
    # Active layers first (stable), and only as many slots as the batch needs.
    order = np.argsort(~per_layer["active"], axis=1, kind="stable")
    per_layer = {k: np.take_along_axis(v, order, axis=1) for k, v in per_layer.items()}
    used = max(1, int(per_layer["active"].sum(1).max()))
    per_layer = {k: v[:, :used] for k, v in per_layer.items()}
    active = per_layer.pop("active")
    per_layer["post"] = np.where(active, per_layer["post"], 0.0)
    per_layer["density"] = np.where(active, per_layer["density"], 0.0)
    jitter = per_layer.pop("jitter")

    def per_sample(key: str, default) -> np.ndarray:
        a = np.where(is_layered.reshape(-1, *[1] * (np.ndim(lay[key]) - 1)), lay[key], default)
        if key in st:
            a = np.where(is_streaks.reshape(-1, *[1] * (np.ndim(st[key]) - 1)), st[key], a)
        return a

    drops = per_sample("drops", False)
    count = rng.integers(1, MAX_DROPS + 1, n)
    radius = rng.uniform(3, 12, (n, MAX_DROPS)) * scale
    return RainParams(
        **per_layer,
        group_angle=rng.uniform(-1, 1, (n, used, GROUPS)) * jitter[..., None],
        group_length=rng.uniform(0.8, 1.2, (n, used, GROUPS)),
        depth_slope=rng.uniform(0.3, 1.0, n),
        depth_coarse=rng.random((n, 4, 4)),
        haze=per_sample("haze", False),
        haze_beta=per_sample("haze_beta", 0.0),
        airlight=per_sample("airlight", 1.0),
        tint=per_sample("tint", 1.0),
        screen=per_sample("screen", False),
        drops=drops,
        drop_centre=rng.random((n, MAX_DROPS, 2)),
        drop_radius=np.where(drops[:, None] & (np.arange(MAX_DROPS)[None] < count[:, None]), radius, 0.0),
        kind=kind,
    )


# -- rendering --------------------------------------------------------------------------------------


def to_device(params: RainParams, device: torch.device) -> dict[str, torch.Tensor]:
    """All parameters as float32 tensors on ``device``, in one host-to-device copy."""
    arrays = {f.name: np.asarray(getattr(params, f.name), dtype=np.float32) for f in fields(params)}
    flat = np.concatenate([a.ravel() for a in arrays.values()])
    packed = torch.from_numpy(flat)
    if device.type == "cuda":
        packed = packed.pin_memory().to(device, non_blocking=True)  # no wait for queued GPU work
    else:
        packed = packed.to(device)
    out, start = {}, 0
    for name, a in arrays.items():
        out[name] = packed[start : start + a.size].view(a.shape)
        start += a.size
    return out


def _wrapped_offsets(size: int, device: torch.device) -> torch.Tensor:
    """Pixel offsets 0, 1, ..., -2, -1 of a circular axis of ``size`` samples."""
    i = torch.arange(size, device=device, dtype=torch.float32)
    return torch.where(i < (size + 1) // 2, i, i - size)


def line_kernels(length: torch.Tensor, angle_deg: torch.Tensor, box: int) -> torch.Tensor:
    """``synth.line_kernel`` for every (length, angle), centred in a ``box`` x ``box`` grid (box odd)."""
    half = box // 2
    coords = torch.arange(-half, half + 1, device=length.device, dtype=torch.float32)
    ys, xs = coords[:, None], coords[None, :]
    theta = torch.deg2rad(angle_deg)[..., None, None]
    dx, dy = torch.sin(theta), torch.cos(theta)
    along = xs * dx + ys * dy
    across = (-xs * dy + ys * dx).abs()
    half_length = (length.clamp_min(1.0) / 2)[..., None, None]
    profile = (1.0 - across).clamp(0.0, 1.0)
    t = (along.abs() / half_length).clamp(0.0, 1.0)
    taper = torch.cos(t * (math.pi / 2)).clamp_min(0.0).sqrt()
    return torch.where(along.abs() > half_length + 0.5, 0.0, profile * taper)


def _gaussian_response(sigma: torch.Tensor, size: int, rfft: bool, widest: float) -> torch.Tensor:
    """Frequency response along one axis of scipy's sampled, normalised Gaussian (truncate 4 sigma).

    ``sigma``: (...,); returns (..., size) or (..., size // 2 + 1) for the last axis of an rfft.
    A sigma of 0.35 or less means no blur (response 1), as in ``synth._streak_layer``. ``widest``
    is ``sigma.max()``, given by the caller: reading it from a GPU tensor would wait for the GPU.
    """
    radius = max(1, int(4 * widest + 0.5))
    k = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    s = sigma.clamp_min(1e-3)[..., None]
    w = torch.exp(-0.5 * (k / s) ** 2) * (k.abs() <= (4 * s + 0.5).floor())
    w = w / w.sum(-1, keepdim=True)
    n_freq = size // 2 + 1 if rfft else size
    f = torch.arange(n_freq, device=sigma.device, dtype=torch.float32)
    response = (w[..., :, None] * torch.cos(2 * math.pi * k[:, None] * f[None, :] / size)).sum(-2)
    return torch.where(sigma[..., None] > 0.35, response, torch.ones_like(response))


def draw_seeds(p: dict[str, torch.Tensor], height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Streak seeds (N, L, GROUPS, H, W): Bernoulli(density / GROUPS) with brightness U(0.5, 1).

    One uniform draw per pixel does both: given u < d, u / d is uniform on [0, 1).
    """
    n, layers = p["density"].shape
    d = (p["density"] / GROUPS)[..., None, None, None].expand(n, layers, GROUPS, 1, 1)
    u = torch.rand((n, layers, GROUPS, height, width), generator=generator, device=p["density"].device)
    return torch.where(u < d, 0.5 + 0.5 * u / d.clamp_min(1e-12), 0.0)


def streak_layers(seeds: torch.Tensor, p: dict[str, torch.Tensor], longest: float, widest: float
                  ) -> torch.Tensor:
    """Each layer's streaks (N, L, H, W), >= 0: every seed group blurred to the layer's width and
    smeared along its own line, the groups added up (``synth._streak_layer``, circularly).

    ``longest`` and ``widest`` are the largest group length and layer width, known on the host.
    """
    height, width = seeds.shape[-2:]
    # Kernels: one line per (sample, layer, group), shorter than the crop (circular convolution).
    limit = float(min(height, width) - 3)
    lengths = (p["length"][..., None] * p["group_length"]).clamp(1.0, limit)
    angles = p["angle"][..., None] + p["group_angle"]
    half = min(math.ceil(min(longest, limit) / 2) + 1, (min(height, width) - 1) // 2)
    kernels = line_kernels(lengths, angles, 2 * half + 1)
    spectrum = (torch.fft.rfft2(seeds) * torch.fft.rfft2(kernels, s=(height, width))).sum(2)
    # The Gaussian width (with synth.py's amplitude factor sqrt(2 pi) sigma) is one product more.
    sigma = p["width"]
    blur = (_gaussian_response(sigma, height, rfft=False, widest=widest)[..., :, None]
            * _gaussian_response(sigma, width, rfft=True, widest=widest)[..., None, :])
    amplitude = torch.where(sigma > 0.35, math.sqrt(2 * math.pi) * sigma, torch.ones_like(sigma))
    layers = torch.fft.irfft2(spectrum * (blur * amplitude[..., None, None]), s=(height, width))
    # The kernels sat with their centre at (half, half), not at the origin: shift back.
    return torch.roll(layers, shifts=(-half, -half), dims=(-2, -1)).clamp_min(0.0)


def _depth_maps(p: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
    """``synth._depth_map`` for every sample: (N, H, W) in [0, 1], far (1) towards the top."""
    n = p["depth_slope"].shape[0]
    device = p["depth_slope"].device
    ramp = torch.linspace(1.0, 0.0, height, device=device)[None, :, None] * p["depth_slope"][:, None, None]
    noise = F.interpolate(p["depth_coarse"][:, None], size=(height, width), mode="bilinear",
                          align_corners=True)[:, 0]
    d = ramp + 0.5 * noise
    d = d - d.reshape(n, -1).min(1).values[:, None, None]
    return d / d.reshape(n, -1).max(1).values.clamp_min(1e-6)[:, None, None]


def _gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of N x C x H x W (truncate 4 sigma, reflected borders)."""
    radius = max(1, int(4 * sigma + 0.5))
    k = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    w = w / w.sum()
    c = img.shape[1]
    radius_y, radius_x = min(radius, img.shape[-2] - 1), min(radius, img.shape[-1] - 1)
    out = F.pad(img, (0, 0, radius_y, radius_y), mode="reflect")
    out = F.conv2d(out, w[radius - radius_y : radius + radius_y + 1].view(1, 1, -1, 1).expand(c, 1, -1, 1),
                   groups=c)
    out = F.pad(out, (radius_x, radius_x, 0, 0), mode="reflect")
    return F.conv2d(out, w[radius - radius_x : radius + radius_x + 1].view(1, 1, 1, -1).expand(c, 1, 1, -1),
                    groups=c)


def _lens_drops(img: torch.Tensor, p: dict[str, torch.Tensor], scale: float) -> torch.Tensor:
    """``synth._lens_drops`` for the samples with drops (the others' masks are empty)."""
    h, w = img.shape[-2:]
    blurred = _gaussian_blur(img, 3 * scale)
    ys = torch.arange(h, device=img.device, dtype=torch.float32)[None, None, :, None]
    xs = torch.arange(w, device=img.device, dtype=torch.float32)[None, None, None, :]
    cy = (p["drop_centre"][..., 0] * h)[..., None, None]
    cx = (p["drop_centre"][..., 1] * w)[..., None, None]
    r = p["drop_radius"][..., None, None]
    disc = (1.0 - torch.hypot(ys - cy, xs - cx) / r.clamp_min(1e-6)).clamp(0.0, 1.0).sqrt()
    mask = torch.where(r > 0, disc, 0.0).amax(1)[:, None]
    return img * (1 - mask) + (blurred * 1.1 + 0.05).clamp(0, 1) * mask


def render(clean: torch.Tensor, params: RainParams, generator: torch.Generator, scale: float = 1.0
           ) -> torch.Tensor:
    """``clean`` (N x 3 x H x W in [0, 1]) with the rain ``params`` describes, on ``clean``'s device."""
    n, _c, h, w = clean.shape
    if params.density.shape[0] != n:
        raise ValueError(f"rain parameters for {params.density.shape[0]} samples, batch of {n}")
    p = to_device(params, clean.device)
    img = clean.float()
    if not params.post.any():  # no sample has rain (e.g. all drawn from the "none" preset)
        return img.clamp(0.0, 1.0)
    longest = float((params.length[..., None] * params.group_length).max())
    streaks = streak_layers(draw_seeds(p, h, w, generator), p, longest, float(params.width.max()))
    depth = _depth_maps(p, h, w)
    atten = 1.0 - 0.6 * p["depth_weight"][..., None, None] * depth[:, None]
    values = (streaks * p["gain"][..., None, None] * atten).clamp(0.0, 1.0) * p["post"][..., None, None]
    rain = 1.0 - (1.0 - values).prod(1)  # layers combine like screens
    if params.haze.any():
        t = torch.exp(-p["haze_beta"][:, None, None] * 3 * depth)[:, None]
        hazy = img * t + p["airlight"][..., None, None] * (1 - t)
        img = torch.where(p["haze"][:, None, None, None] > 0, hazy, img)
    rain3 = rain[:, None] * p["tint"][..., None, None]
    img = torch.where(p["screen"][:, None, None, None] > 0, 1 - (1 - img) * (1 - rain3), img + rain3)
    if params.drops.any():
        img = img.clamp(0.0, 1.0)
        img = torch.where(p["drops"][:, None, None, None] > 0, _lens_drops(img, p, scale), img)
    return img.clamp(0.0, 1.0)


def add_rain_batch(clean: torch.Tensor, rng: np.random.Generator, preset: str | dict[str, float] = "mixed",
                   scale: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rain on every image of ``clean`` (N x 3 x H x W in [0, 1]), each drawn from ``preset``.

    The batch depends only on ``rng``'s state (and the device): the parameters are drawn from it,
    and ``generator`` (a torch generator on ``clean``'s device, made if not given) is reseeded from it.
    """
    params = draw_params(rng, clean.shape[0], preset, scale)
    if generator is None:
        generator = torch.Generator(device=clean.device)
    generator.manual_seed(int(rng.integers(2**62)))
    return render(clean, params, generator, scale)
