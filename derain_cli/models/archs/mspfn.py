"""MSPFN: Multi-Scale Progressive Fusion Network (Jiang et al., CVPR 2020), loading the authors' TF weights.

The authors released a TensorFlow 1 checkpoint (``epoch50.index`` + ``epoch50.data-00000-of-00001``)
of their smaller "M17N1" graph: 17 progressive blocks with one residual channel-attention block per
scale. This module rebuilds that graph in PyTorch, reproducing TensorFlow's operator semantics where
they differ from PyTorch's (asymmetric 'SAME' padding of stride-2 convolutions, the output cropping
of ``conv2d_transpose``), and converts the checkpoint with our own TensorFlow-free reader
(``tf_checkpoint``), so ``derain models import mspfn epoch50.index`` needs no TensorFlow.

Structure: the input and its 1/2 and 1/4 average-pooled copies each get a head (transposed conv +
PReLU); a residual memory module per scale (a single zero-state ConvLSTM step) refines them coarse
to fine; 17 progressive blocks update the three scale features, each scale's unit fed by the
up-sampled coarser results; a tail fuses the scales and predicts the rain layer, which is
subtracted from the input. Input: BGR in [-1, 1], H and W multiples of 4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import WeightsError
from ...weights import WeightSource
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..formats.tf_checkpoint import checkpoint_prefix, read_tf_checkpoint
from ..layers.conv import bias_of, channels_last, recording_grad

# The released "raw model" (TEST_MSPFN_M17N1): 15,823,424 parameters, 859 TF variables.
RELEASED_CONFIG: dict[str, Any] = {
    "n_feats": 64,
    "n_blocks": 17,
    "rcab_per_scale": (1, 1, 1),
    "reduction": 4,
    "lstm_in": 32,
    "lstm_feats": (256, 128, 64),
    "fuse_feats": 32,
    "names": "BCM",
}

TF_SCOPE = "generator/"


# --------------------------------------------------------------------------------------------
# TensorFlow-compatible convolutions
# --------------------------------------------------------------------------------------------


# Without autograd, PReLU on tensors larger than this (elements) runs in place, band by band.
_INPLACE_PRELU_MIN = 1 << 22
_BAND_BYTES = 1 << 19


def _prelu(x: Tensor, prelu: nn.PReLU) -> Tensor:
    """PReLU. Large channels-last tensors are overwritten in bands of rows when no gradient is
    recorded: a fresh full-size output would be one more large allocation, which glibc serves
    with mmap and pays for in page faults."""
    if recording_grad(x) or x.numel() < _INPLACE_PRELU_MIN or not x.is_contiguous(
        memory_format=torch.channels_last
    ):
        return prelu(x)
    rows = max(1, _BAND_BYTES // (x.element_size() * x[:, :, :1].numel()))
    for top in range(0, x.shape[2], rows):
        band = x[:, :, top:top + rows]
        band.copy_(F.prelu(band, prelu.weight))
    return x


def _same_pad_stride2(n: int) -> tuple[int, int]:
    """TF 'SAME' padding of a 3-tap stride-2 window on size n: (0, 1) when n is even, (1, 1) when odd."""
    total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
    return total // 2, total - total // 2


class TFConv(nn.Module):
    """3x3 stride-2 convolution without bias, with TF's asymmetric 'SAME' padding."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = _same_pad_stride2(x.shape[-2])
        left, right = _same_pad_stride2(x.shape[-1])
        if (top, left) == (bottom, right):  # odd sizes: symmetric, no padded copy needed
            return F.conv2d(x, self.conv.weight, stride=2, padding=(top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.conv.weight, stride=2)


class TFDeconv(nn.Module):
    """3x3 transposed convolution without bias, cropped as TF's ``conv2d_transpose`` with 'SAME'.

    TF computes the full transposed convolution ((n - 1) * s + 3 samples) and keeps ``size``
    samples from offset max(full - size, 0) // 2. At stride 1 that is a plain 3x3 convolution with
    the flipped, transposed kernel and padding 1 (faster on CPU than a transposed convolution).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.deconv = nn.ConvTranspose2d(cin, cout, 3, stride=stride, padding=0, bias=False)

    def forward(self, x: Tensor, size: Sequence[int] | None = None,
                activation: nn.PReLU | None = None) -> Tensor:
        """Output of spatial ``size`` (default: input size times stride); ``activation`` is applied
        before the crop, where the tensor is still contiguous."""
        if self.stride == 1:
            y = F.conv2d(x, self.conv_kernel(), padding=1)
            return y if activation is None else _prelu(y, activation)
        s = self.stride
        h, w = x.shape[-2:]
        oh, ow = (h * s, w * s) if size is None else size
        top, left = max((h - 1) * s + 3 - oh, 0) // 2, max((w - 1) * s + 3 - ow, 0) // 2
        y = F.conv_transpose2d(x, self.deconv.weight, stride=s)
        if activation is not None:
            y = _prelu(y, activation)
        return y[..., top:top + oh, left:left + ow]

    def conv_kernel(self) -> Tensor:
        """The kernel of the plain convolution equal to this one at stride 1: [out, in, 3, 3]."""
        return self.deconv.weight.transpose(0, 1).flip(2, 3)


class ConvPReLU(nn.Module):
    """TF ``conv_layer`` at stride 2 + PReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = TFConv(cin, cout)
        self.prelu = nn.PReLU(cout, init=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return _prelu(self.conv(x), self.prelu)


class DeconvPReLU(nn.Module):
    """TF ``deconv_layer`` + PReLU (or without activation for the last layer)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, activation: bool = True):
        super().__init__()
        self.deconv = TFDeconv(cin, cout, stride)
        if activation:
            self.prelu = nn.PReLU(cout, init=0.0)

    def forward(self, x: Tensor, size: Sequence[int] | None = None) -> Tensor:
        return self.deconv(x, size, getattr(self, "prelu", None))


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


class ZeroStateConvLSTM(nn.Module):
    """One step of a convolutional LSTM from the zero state (the only way MSPFN uses it).

    The gate convolution sees ``cat[x, h0]`` with h0 = 0 and the cell state starts at 0, so only the
    input channels of the kernel and the i, j, o gates matter (gate order i, j, f, o):
    c = sigmoid(i) * tanh(j), h = tanh(c) * sigmoid(o). The full kernel is kept so that the
    checkpoint loads unchanged.
    """

    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.cin, self.hidden = cin, hidden
        self.conv = nn.Conv2d(cin + hidden, 4 * hidden, 3, padding=1, bias=True)

    def forward(self, x: Tensor, channels: slice = slice(None)) -> Tensor:
        """The hidden state, or the hidden ``channels`` of it (computing only those)."""
        n = self.hidden
        lo, hi, _ = channels.indices(n)
        # One convolution per gate (i, j, o): contiguous outputs make the activations ~3x faster.
        rows = [slice(g * n + lo, g * n + hi) for g in (0, 1, 3)]
        i, j, o = (F.conv2d(x, self.conv.weight[r, : self.cin], bias_of(self.conv)[r], padding=1) for r in rows)
        if recording_grad(i):
            return torch.tanh(torch.sigmoid(i) * torch.tanh(j)) * torch.sigmoid(o)
        return torch.tanh_(torch.sigmoid_(i).mul_(torch.tanh_(j))).mul_(torch.sigmoid_(o))


class ResidualMemory(nn.Module):
    """Residual memory module of one scale (without its residual): deconv, ConvLSTM step, deconv.

    The hidden state is produced and consumed in groups of channels (the output convolution is a
    sum over its input channels), so the wide gate tensor never exists whole: at 512x512 that
    saves about 0.6 GB of peak memory.
    """

    CHUNK = 64  # hidden channels per group

    def __init__(self, n_feats: int, lstm_in: int, hidden: int):
        super().__init__()
        self.inp = DeconvPReLU(n_feats, lstm_in)
        self.lstm = ZeroStateConvLSTM(lstm_in, hidden)
        self.out = DeconvPReLU(hidden, n_feats)

    def forward(self, x: Tensor) -> Tensor:
        z = self.inp(x)
        kernel = self.out.deconv.conv_kernel()
        y: Tensor | None = None
        for lo in range(0, self.lstm.hidden, self.CHUNK):
            part = slice(lo, min(lo + self.CHUNK, self.lstm.hidden))
            term = F.conv2d(self.lstm(z, part), kernel[:, part], padding=1)
            y = term if y is None else y.add_(term)
        assert y is not None  # hidden > 0
        return _prelu(y, self.out.prelu)


class RCAB(nn.Module):
    """Residual channel-attention block: x + f * sigmoid(up(prelu(down(mean(f))))),
    f = conv(prelu(conv(x)))."""

    def __init__(self, n_feats: int, reduction: int):
        super().__init__()
        squeezed = n_feats // reduction
        self.conv1 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.prelu1 = nn.PReLU(n_feats, init=0.0)
        self.conv2 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.ca_down = nn.Conv2d(n_feats, squeezed, 1)
        self.ca_prelu = nn.PReLU(squeezed, init=0.0)
        self.ca_up = nn.Conv2d(squeezed, n_feats, 1)

    def forward(self, x: Tensor) -> Tensor:
        f = self.conv2(self.prelu1(self.conv1(x)))
        a = torch.sigmoid(self.ca_up(self.ca_prelu(self.ca_down(f.mean(dim=(2, 3), keepdim=True)))))
        return (f * a).add_(x)


class ScaleUnit(nn.Module):
    """One scale of a progressive block: stride-2 down, RCABs, up from cat[down, RCABs(down)]."""

    def __init__(self, n_feats: int, n_rcab: int, reduction: int):
        super().__init__()
        self.down = ConvPReLU(n_feats, n_feats)
        self.rcab = nn.Sequential(*(RCAB(n_feats, reduction) for _ in range(n_rcab)))
        self.up = DeconvPReLU(2 * n_feats, n_feats, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        d = self.down(x)
        return self.up(torch.cat([d, self.rcab(d)], dim=1), x.shape[-2:])


class ProgressiveBlock(nn.Module):
    """Updates the 1/4, 1/2 and full-scale features, feeding each scale the coarser results."""

    def __init__(self, n_feats: int, rcab_per_scale: Sequence[int], reduction: int):
        super().__init__()
        n4, n2, n1 = rcab_per_scale
        self.s4 = ScaleUnit(n_feats, n4, reduction)
        self.fuse4_2 = DeconvPReLU(n_feats, n_feats, stride=2)
        self.s2 = ScaleUnit(n_feats, n2, reduction)
        self.fuse4_1 = DeconvPReLU(n_feats, n_feats, stride=2)
        self.fuse2_1 = DeconvPReLU(n_feats, n_feats, stride=2)
        self.s1 = ScaleUnit(n_feats, n1, reduction)

    def forward(self, f1: Tensor, f2: Tensor, f4: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # Sums are accumulated in place into freshly computed layer outputs (never into inputs).
        f4 = self.s4(f4).add_(f4)
        t = self.fuse4_2(f4, f2.shape[-2:])
        f2 = self.s2(f2 + t).add_(f2)
        size = f1.shape[-2:]
        f1 = self.s1(self.fuse4_1(t, size).add_(f1).add_(self.fuse2_1(f2, size))).add_(f1)
        return f1, f2, f4


class MSPFN(nn.Module):
    """MSPFN with the released M17N1 layout by default. Input BGR in [-1, 1], H, W multiples of 4.

    ``names`` records the TF scope prefix of the blocks ("BCM" in the released graph); it does not
    change the network, only the variable names the TF converter expects.
    """

    def __init__(
        self,
        n_feats: int = 64,
        n_blocks: int = 17,
        rcab_per_scale: Sequence[int] = (1, 1, 1),
        reduction: int = 4,
        lstm_in: int = 32,
        lstm_feats: Sequence[int] = (256, 128, 64),
        fuse_feats: int = 32,
        names: str = "BCM",
    ):
        super().__init__()
        if len(rcab_per_scale) != 3 or len(lstm_feats) != 3:
            raise ValueError("rcab_per_scale and lstm_feats need one value per scale (1, 1/2, 1/4)")
        self.names = names
        c = n_feats
        self.head1 = DeconvPReLU(3, c)
        self.head2 = DeconvPReLU(3, c)
        self.head4 = DeconvPReLU(3, c)
        self.rmm4 = ResidualMemory(c, lstm_in, lstm_feats[2])
        self.rmm_up4_2 = DeconvPReLU(c, c, stride=2)
        self.rmm2 = ResidualMemory(c, lstm_in, lstm_feats[1])
        self.rmm_up4_1 = DeconvPReLU(c, c, stride=2)
        self.rmm_up2_1 = DeconvPReLU(c, c, stride=2)
        self.rmm1 = ResidualMemory(c, lstm_in, lstm_feats[0])
        self.blocks = nn.ModuleList(ProgressiveBlock(c, rcab_per_scale, reduction) for _ in range(n_blocks))
        self.recon4 = DeconvPReLU(2 * c, c)
        self.recon2 = DeconvPReLU(2 * c, c)
        self.recon1 = DeconvPReLU(2 * c, c)
        self.up4_2 = DeconvPReLU(c, c, stride=2)
        self.up2_1 = DeconvPReLU(2 * c, c, stride=2)
        self.fuse = DeconvPReLU(2 * c, fuse_feats)
        self.out = DeconvPReLU(fuse_feats, 3, activation=False)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h % 4 or w % 4:
            raise ValueError(f"MSPFN needs height and width divisible by 4, got {h}x{w}")
        # oneDNN runs these convolutions, transposed ones especially, much faster channels-last.
        x = channels_last(x)
        size1, size2 = (h, w), (h // 2, w // 2)
        r1 = self.head1(x)
        r2 = self.head2(F.avg_pool2d(x, 2))
        r4 = self.head4(F.avg_pool2d(x, 4))

        m4 = self.rmm4(r4).add_(r4)
        t42 = self.rmm_up4_2(m4, size2)
        m2 = self.rmm2(r2 + t42).add_(r2)
        m1 = self.rmm1(self.rmm_up2_1(m2, size1).add_(r1).add_(self.rmm_up4_1(t42, size1))).add_(r1)

        f1, f2, f4 = m1, m2, m4
        for block in self.blocks:
            f1, f2, f4 = block(f1, f2, f4)

        recon4 = self.recon4(torch.cat([f4, m4], dim=1))
        recon2 = self.recon2(torch.cat([f2, m2], dim=1))
        recon1 = self.recon1(torch.cat([f1, m1], dim=1))
        up2 = self.up2_1(torch.cat([self.up4_2(recon4, size2), recon2], dim=1), size1)
        rain = self.out(self.fuse(torch.cat([recon1, up2], dim=1)))
        return (x - rain).contiguous()


# --------------------------------------------------------------------------------------------
# TensorFlow checkpoint conversion
# --------------------------------------------------------------------------------------------

# (our key prefix, TF scope) of the layers outside the progressive blocks, in TF creation order.
_HEAD = [("head1", "rnn1"), ("head2", "rnn2"), ("head4", "rnn4")]
_MEMORY = "residual_memory/"
_TAIL = [("recon4", "rnn_recon4"), ("recon2", "rnn_recon2"), ("recon1", "rnn_recon"),
         ("up4_2", "up4_2"), ("up2_1", "up2_1"), ("fuse", "rnn5")]


Rows = list[tuple[str, str, str]]  # (our key, TF name without the scope, kind)

# Inside one RCAB scope: (our module, TF layer, has PReLU alpha); the alpha is the layer's activation.
_RCAB_LAYERS = [("conv1", "conv2d", "prelu1"), ("conv2", "conv2d_1", None),
                ("ca_down", "conv2d_2", "ca_prelu"), ("ca_up", "conv2d_3", None)]


def _deconv_prelu(key: str, scope: str) -> Rows:
    return [(f"{key}.deconv.deconv.weight", f"{scope}/weight", "deconv"),
            (f"{key}.prelu.weight", f"{scope}/alpha", "vec")]


def _memory(key: str, res: str, lstm: str) -> Rows:
    conv = f"{_MEMORY}{lstm}/convLSTM/LSTM_conv"
    return (_deconv_prelu(f"{key}.inp", f"{_MEMORY}{res}1")
            + [(f"{key}.lstm.conv.weight", f"{conv}/weights", "conv"),
               (f"{key}.lstm.conv.bias", f"{conv}/biases", "vec")]
            + _deconv_prelu(f"{key}.out", f"{_MEMORY}{res}2"))


def _unit(key: str, scope: str, down: str, k: int, n_rcab: int) -> Rows:
    rows = [(f"{key}.down.conv.conv.weight", f"{scope}/{down}/weight", "conv"),
            (f"{key}.down.prelu.weight", f"{scope}/{down}/alpha", "vec")]
    for m in range(n_rcab):
        group, rcab = f"{scope}/group_{k}_RCAB{m + 1}", f"{key}.rcab.{m}"
        for ours, layer, prelu in _RCAB_LAYERS:
            rows += [(f"{rcab}.{ours}.weight", f"{group}/{layer}/kernel", "conv"),
                     (f"{rcab}.{ours}.bias", f"{group}/{layer}/bias", "vec")]
            if prelu:
                rows.append((f"{rcab}.{prelu}.weight", f"{group}/{layer}/alpha", "vec"))
    return rows + _deconv_prelu(f"{key}.up", f"{scope}/up_{k}")


def tf_variables(config: Mapping[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(our state-dict key, TF variable name, kind) of every parameter, in TF creation order.

    kind is "conv" (HWIO kernel), "deconv" (``conv2d_transpose`` kernel [kh, kw, out, in]) or "vec".
    """
    cfg = {**RELEASED_CONFIG, **(config or {})}
    if cfg["names"] != "BCM":
        raise WeightsError(f"TF variable names are known only for the released graph (names='BCM'), "
                           f"not names={cfg['names']!r}")
    rows: Rows = []
    for key, scope in _HEAD:
        rows += _deconv_prelu(key, scope)
    rows += _memory("rmm4", "rain4_res", "lstm_group4") + _deconv_prelu("rmm_up4_2", f"{_MEMORY}upRMM4_2")
    rows += _memory("rmm2", "rain2_res", "lstm_group2")
    rows += _deconv_prelu("rmm_up4_1", f"{_MEMORY}upRMM4_1")
    rows += _deconv_prelu("rmm_up2_1", f"{_MEMORY}upRMM2_1")
    rows += _memory("rmm1", "rain_res", "lstm_group")
    n4, n2, n1 = cfg["rcab_per_scale"]
    for n in range(cfg["n_blocks"]):
        k, b = n + 1, f"blocks.{n}"
        rows += _unit(f"{b}.s4", f"BCM4_{n}", f"down4_{k}", k, n4)
        rows += _deconv_prelu(f"{b}.fuse4_2", f"BCM2_{n}/upBCM4_2_{n}")
        rows += _unit(f"{b}.s2", f"BCM2_{n}", f"down2_{k}", k, n2)
        rows += _deconv_prelu(f"{b}.fuse4_1", f"BCM_{n}/upBCM4to1_{n}")
        rows += _deconv_prelu(f"{b}.fuse2_1", f"BCM_{n}/upBCM2to1_{n}")
        rows += _unit(f"{b}.s1", f"BCM_{n}", f"down_{k}", k, n1)
    for key, scope in _TAIL:
        rows += _deconv_prelu(key, scope)
    rows.append(("out.deconv.deconv.weight", "rnn7/weight", "deconv"))
    return [(key, TF_SCOPE + name, kind) for key, name, kind in rows]


def state_dict_from_tf(
    variables: Mapping[str, np.ndarray], config: Mapping[str, Any] | None = None
) -> dict[str, Tensor]:
    """Convert TF checkpoint variables to our state dict for ``MSPFN(**config)`` (released config by default).

    Reads exactly the variables the network needs and ignores the rest (Adam slots, ``beta1_power``,
    ``beta2_power``, ``global_step``). Kernels go from TF layout to PyTorch's with
    ``permute(3, 2, 0, 1)`` (HWIO -> OIHW for convolutions, [kh, kw, out, in] -> [in, out, kh, kw]
    for transposed ones); PReLU alphas and biases are copied. Raises WeightsError naming missing
    variables or mismatched shapes.
    """
    cfg = {**RELEASED_CONFIG, **(config or {})}
    table = tf_variables(cfg)
    missing = [tf_name for _, tf_name, _ in table if tf_name not in variables]
    if missing:
        raise WeightsError(
            f"the TF checkpoint lacks {len(missing)} of the {len(table)} MSPFN variables "
            f"(first: {', '.join(missing[:3])}); the released M17N1 'epoch50' checkpoint is expected"
        )
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in MSPFN(**cfg).state_dict().items()}
    state: dict[str, Tensor] = {}
    for key, tf_name, kind in table:
        array = variables[tf_name]
        want = shapes[key] if kind == "vec" else tuple(shapes[key][i] for i in (2, 3, 1, 0))
        if tuple(array.shape) != want:
            raise WeightsError(
                f"TF variable {tf_name} has shape {list(array.shape)}, MSPFN needs {list(want)}"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise WeightsError(f"TF variable {tf_name} has dtype {array.dtype}, expected float32")
        tensor = torch.from_numpy(np.array(array, dtype=np.float32))
        state[key] = tensor if kind == "vec" else tensor.permute(3, 2, 0, 1).contiguous()
    return state


def import_tf_checkpoint(path: str | Path, config: Mapping[str, Any]) -> dict[str, Tensor]:
    """Importer for ``derain models import``: a TF checkpoint (its prefix, .index or data file, or
    its folder) -> our state dict."""
    cfg = {**RELEASED_CONFIG, **config}
    variables = read_tf_checkpoint(path, [tf_name for _, tf_name, _ in tf_variables(cfg)])
    try:
        return state_dict_from_tf(variables, cfg)
    except WeightsError as e:
        raise WeightsError(f"{checkpoint_prefix(path)}: {e}") from None


ARCHITECTURE = Architecture(
    name="mspfn",
    title="MSPFN",
    builder=MSPFN,
    default_config=RELEASED_CONFIG,
    contract=Contract(
        channels="BGR",
        value_range=(-1.0, 1.0),
        size_multiple=4,
        pad_mode="reflect",
        pad_where="bottom_right",
        output=None,
        min_size=4,
        global_context=True,  # channel attention averages over the whole image
        # Measured peak RSS growth of one float32 forward on CPU: 2.9 kB/pixel at 512x512,
        # 2.7 kB/pixel at 768x768 (3.6 kB at 256x256, fixed costs included).
        bytes_per_pixel=3072,
        # Measured on an H200 (benchmarks/RESULTS.md): finite in bf16 and fp16 on random, black and
        # white inputs, 73.9 dB (bf16) and 91.1 dB (fp16) from the fp32 output.
        half_precision=True,
    ),
    paper="Jiang et al., Multi-Scale Progressive Fusion Network for Single Image Deraining, CVPR 2020",
    url="https://github.com/kuijiang94/MSPFN",
    description="Multi-scale progressive fusion with recurrent residual memory; the authors' TensorFlow "
    "'raw model' (M17N1, 15.8 M parameters), converted without TensorFlow.",
    default_variant="rain13k",
    importer=import_tf_checkpoint,
)

MODELS = [
    ModelEntry(
        arch="mspfn",
        variant="rain13k",
        trained_on="Rain13K (13,712 synthetic pairs from Rain14000, Rain1800, Rain800 and Rain12)",
        source=WeightSource(
            kind="manual",
            # The TF checkpoint is two files; `derain models import` is given the .index, the importer
            # reads the .data shard beside it, and the cache keeps the converted safetensors.
            filename="epoch50.index",
            companions=("epoch50.data-00000-of-00001",),
            page="https://drive.google.com/file/d/1nrjZtNs6AJYvfHi9TeCVTs50E57Fxgsc",
            instructions=(
                "Download the authors' TensorFlow checkpoint (or from Baidu: "
                "https://pan.baidu.com/s/1vfYbkbygiR4fC1I6eNcpmQ, password u5v6) and unpack it; keep "
                "epoch50.data-00000-of-00001 in the same folder as epoch50.index (TensorFlow is not needed)"
            ),
        ),
        description="The released 'raw model' (epoch 50); the authors note it scores 0.1-0.2 dB below "
        "the paper's figures.",
    ),
]
