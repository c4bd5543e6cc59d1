"""GLGFN: Global-Local Grafting Fusion Network for high-resolution image deraining (TCSVT 2024).

A Transformer encoder (Restormer blocks) sees the image at a quarter of its resolution and a CNN
encoder (NAFNet blocks) sees it at full resolution. A staggered decoder grafts the global features
into the local ones with Grafting Fusion Modules (cross sparse attention plus selective-kernel
fusion), and a small U-Net refines the result. Parameter names follow the authors' release so that
their checkpoints load unchanged.

``GLGFN.forward`` returns the authors' three outputs ``(g_derain, derain, refine)``; the deraining
result is the third. The network expects BGR input in [0, 1] with H and W multiples of 32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...weights import WeightSource
from .._adapters import default_adapter
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import bias_of
from ..layers.pointwise import Pointwise, mix_channels
from ..layers.restormer import Downsample, TransformerBlock, Upsample, attention_output, channel_layer_norm, cosine_gram
from ..layers.sparse_attention import sparse_attention_mix

# The network runs on channels-last tensors (N x C x H x W shaped, stored N x H x W x C): there a
# per-pixel LayerNorm and a 1x1 convolution are row operations on an (H*W) x C matrix, and the
# depthwise convolutions and pixel (un)shuffles are many times faster than on NCHW storage.
CHANNELS_LAST = torch.channels_last


class LayerNorm2d(nn.Module):
    """NAFNet's per-pixel LayerNorm over channels, eps 1e-6 (keys ``weight``, ``bias``)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_layer_norm(x, self.weight, self.bias, self.eps)


def _transformer_stage(dim: int, blocks: int, heads: int, expansion: float) -> nn.Sequential:
    """Restormer blocks (MDTA attention + gated-dconv feed-forward, 'WithBias' LayerNorms)."""
    return nn.Sequential(*[TransformerBlock(dim, heads, expansion) for _ in range(blocks)])


# ---------------------------------------------------------------------------------------------
# CNN blocks
# ---------------------------------------------------------------------------------------------


class NAFBlock(nn.Module):
    """NAFNet block: LayerNorm, gated depthwise conv with channel attention, gated 1x1 MLP."""

    def __init__(self, c: int):
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.conv1 = Pointwise(c, 2 * c)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.conv3 = Pointwise(c, c)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), Pointwise(c, c))
        self.conv4 = Pointwise(c, 2 * c)
        self.conv5 = Pointwise(c, c)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        a, b = self.conv2(self.conv1(self.norm1(inp))).chunk(2, dim=1)
        x = a * b
        # inp + beta * conv3(x * sca(x)): the channel attention and beta scale conv3's matrix.
        n, c = x.shape[:2]
        beta = self.beta.view(c, 1)
        matrix = (beta * self.conv3.matrix) * self.sca(x).view(n, 1, c)
        y = mix_channels(x, matrix, bias_of(self.conv3) * beta.view(c), inp)
        a, b = self.conv4(self.norm2(y)).chunk(2, dim=1)
        gamma = self.gamma.view(c, 1)
        return mix_channels(a * b, gamma * self.conv5.matrix, bias_of(self.conv5) * gamma.view(c), y)


def _naf_stage(c: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[NAFBlock(c) for _ in range(blocks)])


class SKFusion(nn.Module):
    """Selective-kernel fusion of two maps: per-channel softmax weights from their pooled sum."""

    def __init__(self, dim: int, reduction: int = 8):
        super().__init__()
        d = max(int(dim / reduction), 4)
        self.mlp = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            Pointwise(dim, d, bias=False),
            nn.ReLU(),
            Pointwise(d, dim * 2, bias=False),
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n, c = a.shape[:2]
        w = torch.softmax(self.mlp(a + b).view(n, 2, c, 1, 1), dim=1)
        return (a * w[:, 0]).addcmul_(b, w[:, 1])


class RefineBlock(nn.Module):
    """Refinement block: 1x1 gate times (depthwise 3x3 + depthwise 5x5), GELU, 1x1, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.input_conv = Pointwise(dim, dim)
        self.conv1x1 = Pointwise(dim, dim)
        self.conv3x3 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.conv5x5 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.out_conv = Pointwise(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.input_conv(self.norm(x))
        # conv3x3(f) + conv5x5(f) as one depthwise 5x5 convolution with the summed kernels.
        kernel = self.conv5x5.weight + F.pad(self.conv3x3.weight, (1, 1, 1, 1))
        local = F.conv2d(f, kernel, bias_of(self.conv5x5) + bias_of(self.conv3x3), padding=2, groups=f.shape[1])
        return self.out_conv(F.gelu(self.conv1x1(f).mul_(local)), x)


class BasicLayer(nn.Module):
    """A sequence of refinement blocks (key ``blocks``)."""

    def __init__(self, dim: int, depth: int):
        super().__init__()
        self.blocks = nn.Sequential(*[RefineBlock(dim) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


# ---------------------------------------------------------------------------------------------
# Cross sparse attention and the grafting fusion module
# ---------------------------------------------------------------------------------------------

class _CrossSparseAttend(nn.Module):
    """Queries from one map (T), keys/values and the residual from another (C); top-k channel attention.

    The parameters and ``attend``, shared by ``CrossSparseAttention`` and ``GraftingFusion``, whose
    forwards take different inputs.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(1, 1, 1))
        self.attn1 = nn.Parameter(torch.tensor([0.2]))
        self.attn2 = nn.Parameter(torch.tensor([0.2]))
        self.attn3 = nn.Parameter(torch.tensor([0.2]))
        self.attn4 = nn.Parameter(torch.tensor([0.2]))
        self.T_norm = LayerNorm2d(dim)
        self.C_norm = LayerNorm2d(dim)
        self.T_q_conv = Pointwise(dim, dim)
        self.T_q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.C_k_conv = Pointwise(dim, dim)
        self.C_k_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.C_v_conv = Pointwise(dim, dim)
        self.C_v_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.project_out = Pointwise(dim, dim)

    def attend(self, t_in: torch.Tensor, c_in: torch.Tensor) -> torch.Tensor:
        tn = self.T_norm(t_in)
        cn = self.C_norm(c_in)
        q = self.T_q_dwconv(self.T_q_conv(tn))
        k = self.C_k_dwconv(self.C_k_conv(cn))
        v = self.C_v_dwconv(self.C_v_conv(cn))
        attn = cosine_gram(q, k, self.heads) * self.temperature
        mix = sparse_attention_mix(attn, (self.attn1, self.attn2, self.attn3, self.attn4))
        return attention_output(mix, self.project_out, v, c_in)


class CrossSparseAttention(_CrossSparseAttend):
    """``attend(t_in, c_in)`` as a module (the refinement's input fusion)."""

    def forward(self, t_in: torch.Tensor, c_in: torch.Tensor) -> torch.Tensor:
        return self.attend(t_in, c_in)


class GraftingFusion(_CrossSparseAttend):
    """GFM: cross sparse attention of (T encoder, C encoder), SK-fused with the decoder stream."""

    def __init__(self, dim: int, heads: int):
        super().__init__(dim, heads)
        self.SK_fusion = SKFusion(dim)

    def forward(self, t_enc: torch.Tensor, c_enc: torch.Tensor, t_dec: torch.Tensor) -> torch.Tensor:
        return self.SK_fusion(self.attend(t_enc, c_enc), t_dec)


# ---------------------------------------------------------------------------------------------
# Encoders, decoder, refinement
# ---------------------------------------------------------------------------------------------


class TransformerEncoder(nn.Module):
    """Restormer encoder on the quarter-resolution image: four levels, 1/4 to 1/32 of the input."""

    def __init__(self, dim: int, blocks: Sequence[int], heads: Sequence[int], expansion: float):
        super().__init__()
        self.conv_g_inp = nn.Conv2d(3, dim, 3, padding=1)
        self.encoder_T3 = _transformer_stage(dim, blocks[0], heads[0], expansion)
        self.down3_4 = Downsample(dim)
        self.encoder_T4 = _transformer_stage(dim * 2, blocks[1], heads[1], expansion)
        self.down4_5 = Downsample(dim * 2)
        self.encoder_T5 = _transformer_stage(dim * 4, blocks[2], heads[2], expansion)
        self.down5_6 = Downsample(dim * 4)
        self.encoder_T6 = _transformer_stage(dim * 8, blocks[3], heads[3], expansion)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t3 = self.encoder_T3(self.conv_g_inp(x))
        t4 = self.encoder_T4(self.down3_4(t3))
        t5 = self.encoder_T5(self.down4_5(t4))
        t6 = self.encoder_T6(self.down5_6(t5))
        return t3, t4, t5, t6


class CNNEncoder(nn.Module):
    """NAFNet encoder on the full-resolution image: four levels, 1 to 1/8 of the input."""

    def __init__(self, dim: int, blocks: Sequence[int]):
        super().__init__()
        self.conv_inp = nn.Conv2d(3, dim, 3, padding=1)
        self.encoder_C1 = _naf_stage(dim, blocks[0])
        self.down1_2 = Downsample(dim)
        self.encoder_C2 = _naf_stage(dim * 2, blocks[1])
        self.down2_3 = Downsample(dim * 2)
        self.encoder_C3 = _naf_stage(dim * 4, blocks[2])
        self.down3_4 = Downsample(dim * 4)
        self.encoder_C4 = _naf_stage(dim * 8, blocks[3])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c1 = self.encoder_C1(self.conv_inp(x))
        c2 = self.encoder_C2(self.down1_2(c1))
        c3 = self.encoder_C3(self.down2_3(c2))
        c4 = self.encoder_C4(self.down3_4(c3))
        return c1, c2, c3, c4


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class StaggeredDecoder(nn.Module):
    """Decoder: Transformer levels 1/32 and 1/16, grafting fusion at 1/8 and 1/4, CNN up to full size."""

    def __init__(self, t_dim: int, c_dim: int, blocks: Sequence[int], heads: Sequence[int], expansion: float):
        super().__init__()
        self.decoder_T6 = _transformer_stage(t_dim * 8, blocks[0], heads[0], expansion)
        self.up6_5 = Upsample(t_dim * 8)
        self.fusion5 = SKFusion(t_dim * 4)
        self.decoder_T5 = _transformer_stage(t_dim * 4, blocks[1], heads[1], expansion)
        self.up5_4 = Upsample(t_dim * 4)
        self.conv_T4 = _conv_bn_relu(t_dim * 2, c_dim * 8)
        self.conv_up5_4 = _conv_bn_relu(t_dim * 2, c_dim * 8)
        self.fusion4 = GraftingFusion(c_dim * 8, heads[2])
        self.decoder_C4 = _naf_stage(c_dim * 8, blocks[2])
        self.up4_3 = Upsample(c_dim * 8)
        self.conv_T3 = _conv_bn_relu(t_dim, c_dim * 4)
        self.fusion3 = GraftingFusion(c_dim * 4, heads[3])
        self.decoder_C3 = _naf_stage(c_dim * 4, blocks[3])
        self.up3_2 = Upsample(c_dim * 4)
        self.fusion2 = SKFusion(c_dim * 2)
        self.decoder_C2 = _naf_stage(c_dim * 2, blocks[4])
        self.up2_1 = Upsample(c_dim * 2)
        self.fusion1 = SKFusion(c_dim)
        self.decoder_C1 = _naf_stage(c_dim, blocks[5])

    def forward(self, *features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features`` = (T3, T4, T5, T6, C1, C2, C3, C4); returns (D3, D1)."""
        t3, t4, t5, t6, c1, c2, c3, c4 = features
        d5 = self.decoder_T5(self.fusion5(self.up6_5(self.decoder_T6(t6)), t5))
        d4 = self.decoder_C4(self.fusion4(self.conv_T4(t4), c4, self.conv_up5_4(self.up5_4(d5))))
        d3 = self.decoder_C3(self.fusion3(self.conv_T3(t3), c3, self.up4_3(d4)))
        d2 = self.decoder_C2(self.fusion2(self.up3_2(d3), c2))
        d1 = self.decoder_C1(self.fusion1(self.up2_1(d2), c1))
        return d3, d1


class Refinement(nn.Module):
    """Refinement U-Net over the fused decoder features; returns the derained image."""

    def __init__(self, base_dim: int, depths: Sequence[int]):
        super().__init__()
        dims = [base_dim, base_dim * 2, base_dim * 4, base_dim * 8, base_dim * 4, base_dim * 2, base_dim]
        self.levels = len(depths) // 2  # down (= up) steps; ``half`` would shadow ``nn.Module.half``
        self.layers = nn.ModuleList(BasicLayer(d, n) for d, n in zip(dims, depths))
        self.downs = nn.ModuleList(Downsample(dims[i]) for i in range(self.levels))
        self.ups = nn.ModuleList(Upsample(dims[i + 1]) for i in range(self.levels))
        self.skips = nn.ModuleList(Pointwise(dims[i], dims[i]) for i in range(self.levels))
        # The release declares one fusion more than it uses (fusions[levels], never called).
        self.fusions = nn.ModuleList(SKFusion(dims[i]) for i in range(self.levels + 1))
        self.inp_conv = nn.Conv2d(6, base_dim, 3, padding=1)  # declared by the release, never used
        self.four_up = nn.Sequential(Upsample(base_dim * 4), Upsample(base_dim * 2))
        self.inp_fusion = CrossSparseAttention(base_dim, 1)
        self.outconv = nn.Conv2d(base_dim, 3, 3, padding=1)

    def forward(self, d3: torch.Tensor, d1: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        f = self.inp_fusion(self.four_up(d3), d1)
        skips = []
        for i in range(self.levels):
            f = self.layers[i](f)
            skips.append(self.skips[i](f))
            f = self.downs[i](f)
        f = self.layers[self.levels](f)
        for i in reversed(range(self.levels)):
            f = self.fusions[i](self.ups[i](f), skips[i])
            f = self.layers[2 * self.levels - i](f)
        return self.outconv(f) + inp


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


class GLGFN(nn.Module):
    """GLGFN (the authors' ``Baseline``). The keyword arguments default to the released network.

    ``forward(x)`` takes BGR in [0, 1], N x 3 x H x W with H, W multiples of 32, and returns
    ``(g_derain, derain, refine)``: a quarter-resolution auxiliary output, an intermediate
    full-resolution output, and the refined deraining result.
    """

    def __init__(
        self,
        T_dim: int = 48,
        C_dim: int = 32,
        enc_T_blocks: Sequence[int] = (2, 2, 2, 2),
        enc_T_heads: Sequence[int] = (1, 2, 4, 8),
        enc_C_blocks: Sequence[int] = (1, 1, 1, 12),
        dec_blocks: Sequence[int] = (2, 2, 14, 1, 1, 1),
        dec_heads: Sequence[int] = (8, 4, 2, 1),
        ffn_expansion_factor: float = 2.66,
        refine_base_dim: int = 32,
        refine_depths: Sequence[int] = (1, 1, 1, 8, 1, 1, 1),
    ):
        super().__init__()
        if refine_base_dim != C_dim:
            raise ValueError(f"GLGFN needs refine_base_dim == C_dim, got {refine_base_dim} and {C_dim}")
        if len(refine_depths) != 7:
            raise ValueError(f"GLGFN's refinement has 7 stages, got refine_depths of length {len(refine_depths)}")
        self.Restormer_E = TransformerEncoder(T_dim, enc_T_blocks, enc_T_heads, ffn_expansion_factor)
        self.Gunet_E = CNNEncoder(C_dim, enc_C_blocks)
        self.Decoder = StaggeredDecoder(T_dim, C_dim, dec_blocks, dec_heads, ffn_expansion_factor)
        self.g_output = nn.Conv2d(C_dim * 4, 3, 3, padding=1)
        self.output = nn.Conv2d(C_dim, 3, 3, padding=1)
        self.refine = Refinement(refine_base_dim, refine_depths)

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, w = inp.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"GLGFN needs H and W to be multiples of 32, got {h}x{w}")
        inp = inp.contiguous(memory_format=CHANNELS_LAST)
        c1, c2, c3, c4 = self.Gunet_E(inp)
        g_inp = F.interpolate(inp, size=(h // 4, w // 4), mode="bilinear", align_corners=True)
        g_inp = g_inp.contiguous(memory_format=CHANNELS_LAST)
        t3, t4, t5, t6 = self.Restormer_E(g_inp)
        d3, d1 = self.Decoder(t3, t4, t5, t6, c1, c2, c3, c4)
        g_derain = g_inp + self.g_output(d3)
        derain = inp + self.output(d1)
        refine = self.refine(d3, d1, inp)
        return tuple(y.contiguous() for y in (g_derain, derain, refine))


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

_DRIVE = "https://drive.google.com/drive/folders/1RyCR3BKSyzn9wNio8gfYVcm_0ZyM3lnk"

ARCHITECTURE = Architecture(
    name="glgfn",
    title="GLGFN",
    builder=GLGFN,
    default_config={
        "T_dim": 48, "C_dim": 32, "enc_T_blocks": (2, 2, 2, 2), "enc_T_heads": (1, 2, 4, 8),
        "enc_C_blocks": (1, 1, 1, 12), "dec_blocks": (2, 2, 14, 1, 1, 1), "dec_heads": (8, 4, 2, 1),
        "ffn_expansion_factor": 2.66, "refine_base_dim": 32, "refine_depths": (1, 1, 1, 8, 1, 1, 1),
    },
    contract=Contract(
        channels="BGR", value_range=(0.0, 1.0), size_multiple=32, pad_mode="constant",
        pad_where="bottom_right", output=2, min_size=32, global_context=True,
        # Every output pixel depends on image-wide attention and pooling statistics, so tiles change
        # the result; a large tile keeps that effect small.
        tile=1024, bytes_per_pixel=1800, half_precision=True,
    ),
    paper=(
        "Tao Yan, Xiangjie Zhu, Xianglong Chen, Weijiang He, Chenglong Wang, Yang Yang, Yinghui Wang, "
        "Xiaojun Chang: GLGFN: Global-Local Grafting Fusion Network for High-Resolution Image Deraining. "
        "IEEE Transactions on Circuits and Systems for Video Technology (TCSVT), 2024, "
        "doi:10.1109/TCSVT.2024.3411655"
    ),
    url="https://github.com/AirCL30/GLGFN",
    licence="unstated",
    description=(
        "Transformer (1/4 scale) and NAFNet (full scale) encoders grafted by cross sparse attention, "
        "for high-resolution real rain; all four releases share one layout (31.7 M parameters)."
    ),
    default_variant="realrain1k-h",
    adapter=default_adapter,
)

# (variant, folder entry in the authors' Drive folder, training set)
_RELEASES = [
    ("realrain1k-h", "RealRain-1k-H", "RealRain-1k-H (real high-resolution rain, heavy)"),
    ("realrain1k-l", "RealRain-1k-L", "RealRain-1k-L (real high-resolution rain, light)"),
    ("lhp", "LHP-Rain", "LHP-Rain (large-scale high-resolution paired real rain)"),
    ("raindirection", "RainDirection", "RainDirection (real high-resolution rain)"),
]

MODELS = [
    ModelEntry(
        arch="glgfn",
        variant=variant,
        trained_on=trained_on,
        description=f"The authors' {folder} checkpoint. All GLGFN releases share one layout, so the "
        "variant is taken from the name you import under, not from the file.",
        source=WeightSource(
            kind="manual",
            filename=f"glgfn-{variant}.pth",
            page=_DRIVE,
            instructions=(
                f"In the authors' Google Drive folder 'Inference results and pre-training models', open the "
                f"{folder} entry and download its pre-trained model (a PyTorch checkpoint, usually named "
                f"'best' or 'model_latest.pth', not the result images); then run "
                f"`derain models import glgfn:{variant} FILE`."
            ),
        ),
    )
    for variant, folder, trained_on in _RELEASES
]
