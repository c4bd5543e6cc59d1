"""PLNLIN: Progressive Local and Non-Local Interactive Network, and its MCDDL discriminator.

Wang et al., ACM MM 2024. No code or weights were published, so this is a reconstruction from the
paper alone (``../shared/reference/plnlin/SPEC.md``); every choice the paper leaves open is recorded
in ``docs/plnlin.md``.

* ``PLNLIM`` (the basic unit): a local branch of residual blocks and a non-local branch of Swin
  Transformer blocks, which modulate each other through SFT layers at every progressive stage,
  plus a fusion branch of 1x1 convolutions over both (paper eqs. 2-6).
* ``PLNLIN`` (the generator): a four-level U-shaped encoder-decoder of PLNLIMs, 32 channels
  throughout. At every level the encoder and decoder features are fused by another PLNLIM whose
  output feeds the next decoder stage and a 3x3 side head; each side head predicts the clean image
  at its scale as a residual on the rainy input. The full-scale side output is the result.
* ``MCDDLDiscriminator``: PLNLIMs over the image that, at each of four scales, also take the
  generator's fused feature of that scale and emit a one-channel logit map (the side outputs of
  multi-scale cross-content deeply discriminative learning).

Cost of the released configuration: 2,164,356 generator parameters (the paper reports 2.25 M),
about 1.24 M multiply-accumulates per pixel (attention included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import bias_of

# Added to the attention logits of keys a query must not see (padding, wrapped-around tokens).
# Finite, so a query whose keys are all blocked (a padded position, cropped later) stays finite.
_BLOCKED = -1.0e4


def downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``x`` reduced ``factor`` times by area averaging (the image pyramid of the side outputs)."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


class ResidualBlock(nn.Module):
    """The local branch: ``x + conv3x3(relu(conv3x3(x)))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _windows(t: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, ...) -> (B, H/window, W/window, window*window, ...)."""
    b, h, w = t.shape[:3]
    rest = t.shape[3:]
    t = t.reshape(b, h // window, window, w // window, window, *rest)
    return t.transpose(2, 3).reshape(b, h // window, w // window, window * window, *rest)


def _unwindows(t: torch.Tensor, window: int) -> torch.Tensor:
    """Inverse of ``_windows``: (B, gh, gw, window*window, C) -> (B, gh*window, gw*window, C)."""
    b, gh, gw, _, c = t.shape
    t = t.reshape(b, gh, gw, window, window, c).transpose(2, 3)
    return t.reshape(b, gh * window, gw * window, c)


def window_labels(height: int, width: int, grid: tuple[int, int], window: int, shift: int,
                  device: torch.device) -> tuple[torch.Tensor, int, int]:
    """Attention groups of the tokens per window, long (gh, gw, L), and where masking starts.

    ``grid`` is the padded size (a multiple of ``window``), ``height`` x ``width`` the valid part at
    its top left. The padded grid is rolled up and left by ``shift`` before being cut into windows
    (Swin's shifted windows), so a window at the bottom or right edge mixes tokens that wrapped
    around from the opposite edge with tokens that did not. A token may see only keys of its own
    label: 0 to 3 tell wrapped from unwrapped rows and columns, -1 marks padding (seen by none).
    Windows above row ``r0`` and left of column ``c0`` (the first window row and column holding a
    wrapped or padded token) hold only label 0.
    """
    rows = (torch.arange(grid[0], device=device) + shift) % grid[0]  # original row of each rolled row
    cols = (torch.arange(grid[1], device=device) + shift) % grid[1]
    labels = (rows < shift).long()[:, None] * 2 + (cols < shift).long()[None, :]
    labels = labels.masked_fill(~((rows < height)[:, None] & (cols < width)[None, :]), -1)

    def first_window(lines: torch.Tensor, valid: int) -> int:
        special = ((lines < shift) | (lines >= valid)).nonzero()
        return int(special[0]) // window if len(special) else len(lines) // window

    return _windows(labels[None], window)[0], first_window(rows, height), first_window(cols, width)


def blocked_keys(labels: torch.Tensor) -> torch.Tensor:
    """(..., L) window labels -> bool (..., L, L): True where a query must not see a key."""
    keys = labels[..., None, :]
    return (labels[..., :, None] != keys) | (keys < 0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, with relative position bias."""

    relative_position_index: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, channels: int, window: int, heads: int, shift: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"PLNLIN: {channels} channels cannot be split into {heads} attention heads")
        self.window, self.heads, self.shift = window, heads, shift
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :] + window - 1  # 2, L, L in [0, 2*window-2]
        self.register_buffer("relative_position_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_bias(self) -> torch.Tensor:
        """(heads, L, L) additive attention bias."""
        return self.relative_position_bias_table[self.relative_position_index].permute(2, 0, 1)

    def _attend(self, qkv: torch.Tensor, bias: torch.Tensor, blocked: torch.Tensor | None) -> torch.Tensor:
        """Attention over windows: qkv (B, gh, gw, L, 3C) -> (B, gh, gw, L, C)."""
        b, gh, gw, length, _ = qkv.shape
        if gh == 0 or gw == 0:
            return qkv.new_empty(b, gh, gw, length, qkv.shape[-1] // 3)
        # Four dimensions (windows of all images, heads, L, d): CPU runs its fused kernel only then.
        q, k, v = qkv.reshape(b * gh * gw, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        mask = bias[None]
        if blocked is not None:
            blocked = blocked.reshape(1, gh * gw, 1, length, length).expand(b, -1, -1, -1, -1)
            mask = mask + blocked.flatten(0, 1) * _BLOCKED
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))  # B*n, heads, L, d
        return out.transpose(1, 2).reshape(b, gh, gw, length, -1)

    def forward(self, t: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``t``: (B, Hp, Wp, C), Hp and Wp multiples of the window, valid in its top-left
        ``height`` x ``width``; returns the same shape (garbage in the padding)."""
        grid = (t.shape[1], t.shape[2])
        s = self.shift
        if s:
            t = torch.roll(t, (-s, -s), (1, 2))
        qkv = _windows(self.qkv(t), self.window)
        bias = self.relative_bias()
        labels, r0, c0 = window_labels(height, width, grid, self.window, s, t.device)
        # Masks only where needed: a mask over every window would cost memory in proportion to
        # the image.
        inner = self._attend(qkv[:, :r0, :c0], bias, None)
        right = self._attend(qkv[:, :r0, c0:], bias, blocked_keys(labels[:r0, c0:]))
        bottom = self._attend(qkv[:, r0:], bias, blocked_keys(labels[r0:]))
        out = torch.cat([torch.cat([inner, right], dim=2), bottom], dim=1)
        out = _unwindows(self.proj(out), self.window)
        return torch.roll(out, (s, s), (1, 2)) if s else out


class SwinBlock(nn.Module):
    """The non-local branch: a Swin Transformer block on (B, C, H, W) features of any size.

    LayerNorm -> (shifted) window attention -> residual; LayerNorm -> MLP (GELU) -> residual.
    Features are zero-padded after the first LayerNorm to a multiple of the window; padded keys
    are masked, so the result does not depend on the padding.
    """

    def __init__(self, channels: int, window: int, heads: int, mlp_ratio: float, shifted: bool):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(channels)
        self.attn = WindowAttention(channels, window, heads, window // 2 if shifted else 0)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        t = x.permute(0, 2, 3, 1)
        y = self.norm1(t)
        ph, pw = -h % self.window, -w % self.window
        if ph or pw:
            y = F.pad(y, (0, 0, 0, pw, 0, ph))
        t = t + self.attn(y, h, w)[:, :h, :w]
        t = t + self.mlp(self.norm2(t))
        return t.permute(0, 3, 1, 2).contiguous()


class SFT(nn.Module):
    """Spatial feature transform: ``x * (1 + gamma(cond)) + beta(cond)``, per pixel and channel.

    ``gamma`` and ``beta`` start at zero (an identity transform): a PLNLIM of depth N chains N - 1
    of these products, and with the default initialisation their compounding overflows float32 at
    depth 8 before training starts.
    """

    def __init__(self, channels: int):
        super().__init__()

        def branch() -> nn.Sequential:
            out = nn.Conv2d(channels, channels, 1)
            nn.init.zeros_(out.weight)
            nn.init.zeros_(bias_of(out))
            return nn.Sequential(nn.Conv2d(channels, channels, 1), nn.LeakyReLU(0.1, inplace=True), out)

        self.scale = branch()
        self.shift = branch()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift(cond), x, 1 + self.scale(cond))


class PLNLIM(nn.Module):
    """Progressive local and non-local interactive module of depth ``depth`` (paper eqs. 2-6).

    Stage 1: ``L = RB(X)``, ``G = STB(X)``, ``F = conv1x1([L, G])``. Stage i = 2..N:
    ``L' = RB(SFT(L | G))``, ``G' = STB(SFT(G | L))``, ``F = conv1x1([F, L', G'])``.
    Output: ``RB(L) + STB(G) + conv1x1([F, L, G])``. Stage i's STB uses shifted windows when i is
    even (the final pair counts as stage N + 1).
    """

    def __init__(self, channels: int, depth: int, window: int, heads: int, mlp_ratio: float):
        super().__init__()
        if depth < 1:
            raise ValueError(f"PLNLIN: a PLNLIM needs depth >= 1, got {depth}")
        c = channels
        self.rb = nn.ModuleList(ResidualBlock(c) for _ in range(depth + 1))
        self.stb = nn.ModuleList(SwinBlock(c, window, heads, mlp_ratio, shifted=i % 2 == 1) for i in range(depth + 1))
        self.sft_local = nn.ModuleList(SFT(c) for _ in range(depth - 1))  # local modulated by non-local
        self.sft_nonlocal = nn.ModuleList(SFT(c) for _ in range(depth - 1))  # non-local modulated by local
        self.fusion = nn.ModuleList([nn.Conv2d(2 * c, c, 1)] + [nn.Conv2d(3 * c, c, 1) for _ in range(depth - 1)])
        self.final_fusion = nn.Conv2d(3 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local, nonlocal_ = self.rb[0](x), self.stb[0](x)
        fused = self.fusion[0](torch.cat([local, nonlocal_], 1))
        for i in range(1, len(self.fusion)):
            local, nonlocal_ = (
                self.rb[i](self.sft_local[i - 1](local, nonlocal_)),
                self.stb[i](self.sft_nonlocal[i - 1](nonlocal_, local)),
            )
            fused = self.fusion[i](torch.cat([fused, local, nonlocal_], 1))
        final = self.final_fusion(torch.cat([fused, local, nonlocal_], 1))
        return self.rb[-1](local) + self.stb[-1](nonlocal_) + final


class FusedPLNLIM(nn.Module):
    """``PLNLIM(conv1x1([a, b]))``: merges two 32-channel features (skip fusion, MCDDL layers)."""

    def __init__(self, channels: int, depth: int, window: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.reduce = nn.Conv2d(2 * channels, channels, 1)
        self.block = PLNLIM(channels, depth, window, heads, mlp_ratio)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.block(self.reduce(torch.cat([a, b], 1)))


class Upsample(nn.Module):
    """Bilinear x2, then a 1x1 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


@dataclass
class PLNLINOutput:
    """Everything the generator computes for training.

    ``images[k]``: the clean-image estimate at scale 1/2**k (``images[0]`` is the result; only it is
    computed by ``forward``);
    ``features[k]``: the fused encoder-decoder feature at that scale (what MCDDL discriminates).
    """

    images: list[torch.Tensor]
    features: list[torch.Tensor]


class PLNLIN(nn.Module):
    """The generator. Input: RGB in [0, 1], H and W multiples of 2**(levels - 1). Output: RGB.

    ``encoder_depths``, ``decoder_depths`` and ``fusion_depths`` give the PLNLIM depth N per level,
    full resolution first; their length is the number of levels.
    """

    def __init__(self, channels: int = 32, encoder_depths: Sequence[int] = (8, 4, 2, 2),
                 decoder_depths: Sequence[int] = (8, 4, 2, 2), fusion_depths: Sequence[int] = (8, 4, 2, 2),
                 window: int = 7, heads: int = 2, mlp_ratio: float = 2.0):
        super().__init__()
        if not len(encoder_depths) == len(decoder_depths) == len(fusion_depths) >= 1:
            raise ValueError("PLNLIN: encoder_depths, decoder_depths and fusion_depths need one entry per level")
        self.channels, self.levels = channels, len(encoder_depths)
        self.window, self.heads, self.mlp_ratio = window, heads, mlp_ratio
        c, opts = channels, (window, heads, mlp_ratio)
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.encoders = nn.ModuleList(PLNLIM(c, n, *opts) for n in encoder_depths)
        self.downs = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for _ in range(self.levels - 1))
        self.decoders = nn.ModuleList(PLNLIM(c, n, *opts) for n in decoder_depths)
        self.ups = nn.ModuleList(Upsample(c) for _ in range(self.levels - 1))
        self.fusions = nn.ModuleList(FusedPLNLIM(c, n, *opts) for n in fusion_depths)
        self.heads_out = nn.ModuleList(nn.Conv2d(c, 3, 3, padding=1) for _ in range(self.levels))

    @property
    def size_multiple(self) -> int:
        return 2 ** (self.levels - 1)

    def _run(self, x: torch.Tensor, all_scales: bool) -> PLNLINOutput:
        m = self.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(
                f"PLNLIN: input {x.shape[-2]}x{x.shape[-1]} is not a multiple of {m} "
                "(LoadedModel pads automatically)"
            )
        f = self.stem(x)
        skips = []
        for k, encoder in enumerate(self.encoders):
            f = encoder(f if k == 0 else self.downs[k - 1](f))
            skips.append(f)
        images: dict[int, torch.Tensor] = {}
        features: list[torch.Tensor] = [f] * self.levels
        for k in reversed(range(self.levels)):
            d = self.decoders[k](f if k == self.levels - 1 else self.ups[k](f))
            f = features[k] = self.fusions[k](skips[k], d)
            if all_scales or k == 0:
                images[k] = downscale(x, 2**k) + self.heads_out[k](f)
        return PLNLINOutput([images[k] for k in sorted(images)], features)

    def forward_all(self, x: torch.Tensor) -> PLNLINOutput:
        """The side outputs at every scale and the fused features (for training)."""
        return self._run(x, all_scales=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, all_scales=False).images[0]


class MCDDLDiscriminator(nn.Module):
    """Multi-scale cross-content discriminator (paper eq. 7).

    ``F1 = PLNLIM(conv3x3(image))``; for layer j = 1..levels: ``Fj~ = PLNLIM(conv1x1([Hj, Fj]))``
    with ``Hj`` the generator's fused feature at scale 1/2**(j-1), a side head (3x3 convolution, no bias)
    turns ``Fj~`` into a one-channel logit map, and ``F(j+1) = avgpool2x2(Fj~)``.
    """

    def __init__(self, channels: int = 32, levels: int = 4, depth: int = 2, window: int = 7, heads: int = 2,
                 mlp_ratio: float = 2.0):
        super().__init__()
        opts = (window, heads, mlp_ratio)
        self.levels = levels
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), PLNLIM(channels, depth, *opts))
        self.layers = nn.ModuleList(FusedPLNLIM(channels, depth, *opts) for _ in range(levels))
        # No bias: the relativistic loss only sees differences of logits, where a bias cancels.
        self.heads_out = nn.ModuleList(nn.Conv2d(channels, 1, 3, padding=1, bias=False) for _ in range(levels))

    @classmethod
    def matching(cls, generator: PLNLIN, depth: int = 2) -> MCDDLDiscriminator:
        """The discriminator for ``generator``'s width, levels and attention settings."""
        return cls(generator.channels, generator.levels, depth, generator.window, generator.heads,
                   generator.mlp_ratio)

    def forward(self, image: torch.Tensor, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Logit maps (B, 1, H/2**j, W/2**j), j = 0..levels-1, of ``image`` with its generator features."""
        if len(features) != self.levels:
            raise ValueError(f"MCDDL discriminator: expected {self.levels} generator features, got {len(features)}")
        f = self.stem(image)
        logits = []
        for j, (layer, head) in enumerate(zip(self.layers, self.heads_out)):
            if j:
                f = F.avg_pool2d(f, 2)
            f = layer(features[j], f)
            logits.append(head(f))
        return logits


_ENCODER_DEPTHS = (8, 4, 2, 2)
_DEFAULT_CONFIG = {
    "channels": 32, "encoder_depths": _ENCODER_DEPTHS, "decoder_depths": (8, 4, 2, 2),
    "fusion_depths": (8, 4, 2, 2), "window": 7, "heads": 2, "mlp_ratio": 2.0,
}

ARCHITECTURE = Architecture(
    name="plnlin",
    title="PLNLIN",
    builder=PLNLIN,
    default_config=_DEFAULT_CONFIG,
    contract=Contract(
        channels="RGB", value_range=(0.0, 1.0), size_multiple=2 ** (len(_ENCODER_DEPTHS) - 1),
        pad_mode="reflect", pad_where="bottom_right", output=None,
        # Attention stays inside 7x7 windows and nothing pools over the whole image.
        global_context=False, tile=None,
        # Peak resident-memory growth per pixel of a float32 CPU forward at 768x768 (docs/plnlin.md).
        bytes_per_pixel=2600,
        # LayerNorm and softmax run in float32 under autocast; the masks are finite in fp16.
        half_precision=True,
    ),
    paper=(
        "Cong Wang, Liyan Wang, Jie Mu, Chengjin Yu, Wei Wang: Progressive Local and Non-Local Interactive "
        "Networks with Deeply Discriminative Training for Image Deraining. Proceedings of the 32nd ACM "
        "International Conference on Multimedia (ACM MM), 2024, doi:10.1145/3664647.3681399"
    ),
    url="https://github.com/supersupercong/PLNLIN-MCDDL",
    description=(
        "U-shaped network of interacting residual and Swin Transformer branches, trained adversarially "
        "with MCDDL (2.16 M parameters; reconstructed from the paper, no released weights)."
    ),
    default_variant=None,
    weights_note=(
        "PLNLIN: the authors published no weights, and derain's own training of it has not produced weights "
        "yet; train it with `derain train plnlin --data DIR --out RUN` (add `--config` with "
        "{\"gan\": \"mcddl\"} for the paper's adversarial losses), export it with "
        "`derain export RUN --out plnlin.safetensors` and use it with `-m plnlin.safetensors`"
    ),
)

MODELS: list[ModelEntry] = []
