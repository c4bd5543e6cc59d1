"""PLNLIN (reconstructed from the paper) and its MCDDL training: size, contract, attention masks, losses."""

from __future__ import annotations

import math

import pytest
import torch

from derain_cli import models
from derain_cli.errors import ModelError
from derain_cli.models import LoadedModel
from derain_cli.models.archs import plnlin
from derain_cli.models.archs.plnlin import PLNLIN, MCDDLDiscriminator, WindowAttention, downscale
from derain_cli.train import mcddl

# A few-thousand-parameter configuration with every kind of layer (depth 2 has SFT layers).
SMALL = {"channels": 8, "encoder_depths": (2, 1, 1, 1), "decoder_depths": (1, 1, 1, 2),
         "fusion_depths": (1, 2, 1, 1), "window": 7, "heads": 2, "mlp_ratio": 2.0}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_released_configuration_has_the_papers_size():
    net = models.build("plnlin")
    assert isinstance(net, PLNLIN)
    assert _count(net) == 2_164_356  # the number docs/plnlin.md reports
    assert abs(_count(net) / 2.25e6 - 1) < 0.05  # the paper's Table 2: 2.25 M
    assert _count(MCDDLDiscriminator.matching(net)) == 504_718


def test_resolve_explains_that_no_weights_exist():
    note = models.REGISTRY.architecture("plnlin").weights_note
    assert "published no weights" in note and "derain train plnlin" in note
    with pytest.raises(ModelError) as err:
        models.resolve("plnlin")
    assert note in str(err.value)
    assert plnlin.MODELS == []


@pytest.mark.parametrize("shape", [(1, 3, 13, 21), (2, 3, 9, 17)])
def test_runner_returns_the_input_size(shape):
    torch.manual_seed(0)
    arch = models.REGISTRY.architecture("plnlin")
    assert arch.contract.size_multiple == 8 and arch.contract.pad_mode == "reflect"
    runner = LoadedModel(models.build("plnlin").eval(), arch.contract)
    x = torch.rand(shape)
    y = runner(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    assert not torch.allclose(y, x, atol=1e-3)  # the network does something


def test_generator_rejects_sizes_off_the_multiple():
    with pytest.raises(ValueError, match="not a multiple of 8"):
        PLNLIN(**SMALL)(torch.rand(1, 3, 12, 16))


def test_side_outputs_features_and_discriminator_shapes():
    torch.manual_seed(0)
    net = PLNLIN(**SMALL)
    disc = MCDDLDiscriminator.matching(net)
    x = torch.rand(2, 3, 16, 24)
    out = net.forward_all(x)
    for k in range(4):
        size = (16 >> k, 24 >> k)
        assert out.images[k].shape == (2, 3, *size)
        assert out.features[k].shape == (2, 8, *size)
    torch.testing.assert_close(net(x), out.images[0])
    logits = disc(out.images[0], out.features)
    assert [t.shape for t in logits] == [(2, 1, 16 >> j, 24 >> j) for j in range(4)]
    with pytest.raises(ValueError, match="expected 4 generator features"):
        disc(out.images[0], out.features[:3])


def _reference_window_attention(att: WindowAttention, t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Token by token: each valid token attends to the valid tokens of its (shifted) window that
    did not wrap around differently; output (B, h, w, C)."""
    b, hp, wp, c = t.shape
    ws, s, heads = att.window, att.shift, att.heads
    qkv = att.qkv(t)
    table = att.relative_position_bias_table

    def place(y: int, x: int) -> tuple:
        ry, rx = (y - s) % hp, (x - s) % wp  # position after rolling by -s
        return (ry // ws, rx // ws, y < s, x < s), (ry % ws, rx % ws)

    out = torch.zeros(b, h, w, c)
    for y in range(h):
        for x in range(w):
            group, (iy, ix) = place(y, x)
            keys = [(y2, x2) for y2 in range(h) for x2 in range(w) if place(y2, x2)[0] == group]
            q = qkv[:, y, x, :c].reshape(b, heads, -1)
            k = torch.stack([qkv[:, y2, x2, c:2 * c] for y2, x2 in keys], 1).reshape(b, len(keys), heads, -1)
            v = torch.stack([qkv[:, y2, x2, 2 * c:] for y2, x2 in keys], 1).reshape(b, len(keys), heads, -1)
            bias = torch.stack([
                table[(iy - place(y2, x2)[1][0] + ws - 1) * (2 * ws - 1) + ix - place(y2, x2)[1][1] + ws - 1]
                for y2, x2 in keys
            ])  # keys, heads
            logits = torch.einsum("bhd,bnhd->bhn", q, k) / math.sqrt(c // heads) + bias.T
            out[:, y, x] = att.proj(torch.einsum("bhn,bnhd->bhd", logits.softmax(-1), v).reshape(b, c))
    return out


@pytest.mark.parametrize("shift", [0, 3])
@pytest.mark.parametrize("size", [(16, 9), (10, 12)])
def test_window_attention_sees_only_its_window_and_never_the_padding(shift, size):
    torch.manual_seed(0)
    h, w = size
    att = WindowAttention(8, 7, 2, shift)
    t = torch.randn(2, -(-h // 7) * 7, -(-w // 7) * 7, 8)
    other_padding = t.clone()
    other_padding[:, h:] = 5.0
    other_padding[:, :, w:] = -3.0
    with torch.no_grad():
        ours = att(t, h, w)[:, :h, :w]
        torch.testing.assert_close(att(other_padding, h, w)[:, :h, :w], ours, rtol=0, atol=1e-6)
        torch.testing.assert_close(ours, _reference_window_attention(att, t, h, w), rtol=1e-5, atol=1e-5)


def test_relativistic_losses_mirror_each_other():
    torch.manual_seed(0)
    real = [torch.randn(2, 1, 8 >> j, 8 >> j) + 2 for j in range(4)]
    fake = [torch.randn(2, 1, 8 >> j, 8 >> j) - 2 for j in range(4)]
    mus = mcddl.MCDDLWeights().mus
    d_loss = mcddl.discriminator_loss(real, fake, mus)
    g_loss = mcddl.generator_adversarial_loss(real, fake, mus)
    assert d_loss < g_loss  # the discriminator tells them apart: good for it, bad for the generator
    torch.testing.assert_close(mcddl.generator_adversarial_loss(fake, real, mus), d_loss)
    with pytest.raises(ValueError, match="3 discriminator side outputs but 4 loss weights"):
        mcddl.discriminator_loss(real[:3], fake[:3], mus)


def test_hierarchical_loss_vanishes_only_for_the_right_pyramid():
    torch.manual_seed(0)
    clean = torch.rand(1, 3, 32, 32)
    lambdas = mcddl.MCDDLWeights().lambdas
    exact = [downscale(clean, 2**k) for k in range(4)]
    assert float(mcddl.hierarchical_loss(exact, clean, lambdas)) == pytest.approx(0.0, abs=1e-5)
    noisy = [img + 0.1 * torch.randn_like(img) for img in exact]
    assert float(mcddl.hierarchical_loss(noisy, clean, lambdas)) > 0.01


def _trainer(d_every: int) -> mcddl.MCDDLTrainer:
    torch.manual_seed(0)
    gen = PLNLIN(**SMALL)
    disc = MCDDLDiscriminator.matching(gen)
    return mcddl.MCDDLTrainer(gen, disc, torch.optim.Adam(gen.parameters(), lr=1e-4),
                              torch.optim.Adam(disc.parameters(), lr=1e-4), d_every=d_every)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    clean = torch.rand(2, 3, 16, 16)
    return (clean + 0.3 * torch.rand_like(clean)).clamp(0, 1), clean


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _unchanged(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in module.named_parameters() if torch.equal(v, before[k])]


def test_mcddl_steps_train_every_parameter_of_both_networks():
    trainer = _trainer(d_every=1)
    g0, d0 = _snapshot(trainer.generator), _snapshot(trainer.discriminator)
    rainy, clean = _batch()
    # SFT layers start as identities, so their inner convolutions move from the second step on.
    for _ in range(2):
        losses = trainer.step(rainy, clean)
        assert set(losses) == {"loss", "pixel", "hierarchical", "adversarial", "d_loss"}
        assert all(math.isfinite(v) for v in losses.values()), losses
    assert _unchanged(trainer.generator, g0) == []
    assert _unchanged(trainer.discriminator, d0) == []
    assert trainer.steps == 2


def test_mcddl_updates_the_discriminator_every_d_every_steps():
    trainer = _trainer(d_every=5)
    rainy, clean = _batch()
    d0 = _snapshot(trainer.discriminator)
    first = trainer.step(rainy, clean)
    assert math.isfinite(first["d_loss"])
    d1, g1 = _snapshot(trainer.discriminator), _snapshot(trainer.generator)
    assert len(_unchanged(trainer.discriminator, d0)) < len(d0) // 2
    second = trainer.step(rainy, clean)
    assert math.isnan(second["d_loss"]) and math.isfinite(second["loss"])
    assert _unchanged(trainer.discriminator, d1) == list(d1)
    assert len(_unchanged(trainer.generator, g1)) < len(g1) // 2
    assert all(p.requires_grad for p in trainer.discriminator.parameters())


def test_mcddl_rejects_crops_off_the_multiple():
    trainer = _trainer(d_every=5)
    with pytest.raises(ValueError, match="multiples of 8"):
        trainer.step(torch.rand(1, 3, 12, 16), torch.rand(1, 3, 12, 16))
