"""MCDDL: the adversarial training of PLNLIN (multi-scale cross-content deeply discriminative learning).

Paper: Wang et al., ACM MM 2024, eqs. 8-12; open choices are recorded in ``docs/plnlin.md``.

The generator loss is ``L = L_pixel + alpha * L_hierarchical + beta * L_adversarial`` with

* ``L_pixel = 1 - SSIM(B^, B)`` on the full-scale result,
* ``L_hierarchical = sum_k lambda_k (1 - SSIM(B^_k, B_k))`` over the side outputs at scales
  1, 1/2, 1/4, 1/8 (targets reduced by area averaging, like the generator's input pyramid),
* ``L_adversarial = sum_l mu_l L_adv^l`` over the discriminator's four side logit maps, with the
  relativistic average GAN loss of eq. 8. "Real" is the clean image with the generator's features
  of the clean image; "fake" is the derained image with the generator's features of the rainy one.

``MCDDLTrainer.step(rainy, clean)`` does one generator update and, every ``d_every``-th call
(starting with the first), one discriminator update.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..models.archs.plnlin import PLNLIN, MCDDLDiscriminator, PLNLINOutput, downscale
from .losses import ssim


@dataclass(frozen=True)
class MCDDLWeights:
    """Loss weights of the paper (eq. 9, 11, 12)."""

    alpha: float = 1.0  # hierarchical supervision
    beta: float = 1.0  # adversarial
    lambdas: tuple[float, ...] = (0.1, 0.05, 0.02, 0.01)  # side outputs, full scale first
    mus: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005)  # discriminator side layers, full scale first

    def for_levels(self, levels: int) -> MCDDLWeights:
        """These weights for a generator with ``levels`` scales (the first ``levels`` of each list)."""
        if levels > min(len(self.lambdas), len(self.mus)):
            raise UsageError(f"MCDDL: loss weights are given for {len(self.lambdas)} scales, "
                             f"the generator has {levels} levels")
        return dataclasses.replace(self, lambdas=self.lambdas[:levels], mus=self.mus[:levels])


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM``; the 11x11 Gaussian window shrinks to fit images smaller than 11 pixels."""
    return 1.0 - ssim(pred, target, window=min(11, *pred.shape[-2:]))


def hierarchical_loss(images: Sequence[torch.Tensor], clean: torch.Tensor, lambdas: Sequence[float]) -> torch.Tensor:
    """``sum_k lambda_k (1 - SSIM(images[k], clean reduced 2**k times))`` (eq. 11)."""
    _check_lengths("side outputs", images, lambdas)
    total = clean.new_zeros(())
    for k, (img, lam) in enumerate(zip(images, lambdas)):
        total = total + lam * ssim_loss(img, downscale(clean, 2**k))
    return total


def _relativistic(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of ``D_ra(real; fake)`` and ``D_ra(fake; real)``: each map minus the other's mean."""
    return real - fake.mean(), fake - real.mean()


def _relativistic_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor], mus: Sequence[float],
                       sign: float) -> torch.Tensor:
    """``sum_l mu_l (softplus(sign * r_rel) + softplus(-sign * f_rel))`` over the side logit maps."""
    _check_lengths("discriminator side outputs", real, mus)
    _check_lengths("discriminator side outputs", fake, mus)
    total = real[0].new_zeros(())
    for r, f, mu in zip(real, fake, mus):
        r_rel, f_rel = _relativistic(r, f)
        total = total + mu * (F.softplus(sign * r_rel).mean() + F.softplus(-sign * f_rel).mean())
    return total


def generator_adversarial_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor],
                               mus: Sequence[float]) -> torch.Tensor:
    """``sum_l mu_l (-E[log(1 - D_ra(Z; Y))] - E[log D_ra(Y; Z)])`` over the side logit maps (eqs. 8, 12)."""
    return _relativistic_loss(real, fake, mus, sign=1.0)


def discriminator_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor],
                       mus: Sequence[float]) -> torch.Tensor:
    """``sum_l mu_l (-E[log D_ra(Z; Y)] - E[log(1 - D_ra(Y; Z))])``: eq. 8 with the roles swapped."""
    return _relativistic_loss(real, fake, mus, sign=-1.0)


def _check_lengths(what: str, items: Sequence, weights: Sequence[float]) -> None:
    if len(items) != len(weights):
        raise ValueError(f"MCDDL: {len(items)} {what} but {len(weights)} loss weights")


@contextlib.contextmanager
def _frozen(module: torch.nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` inside the block (its input still gets them)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class MCDDLTrainer:
    """Updates a PLNLIN generator and its MCDDL discriminator on (rainy, clean) batches.

    The optimizers belong to the caller (the paper: Adam, lr 1e-4, default betas, for both), as
    does everything else about the run. ``steps`` counts calls to ``step`` (save it to resume).
    """

    def __init__(self, generator: PLNLIN, discriminator: MCDDLDiscriminator,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 weights: MCDDLWeights = MCDDLWeights(), d_every: int = 5):
        if d_every < 1:
            raise ValueError(f"MCDDL: d_every must be >= 1, got {d_every}")
        if discriminator.levels != generator.levels:
            raise ValueError(
                f"MCDDL: the discriminator has {discriminator.levels} layers, the generator {generator.levels} levels"
            )
        self.generator, self.discriminator = generator, discriminator
        self.opt_g, self.opt_d = opt_g, opt_d
        self.weights, self.d_every = weights, d_every
        self.steps = 0

    def generator_loss(self, out: PLNLINOutput, clean: torch.Tensor, real_logits: Sequence[torch.Tensor]
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 9 for the generator's output ``out`` on the rainy batch; the discriminator is frozen."""
        w = self.weights
        pixel = ssim_loss(out.images[0], clean)
        hier = hierarchical_loss(out.images, clean, w.lambdas)
        with _frozen(self.discriminator):
            fake_logits = self.discriminator(out.images[0], out.features)
        adv = generator_adversarial_loss([r.detach() for r in real_logits], fake_logits, w.mus)
        total = pixel + w.alpha * hier + w.beta * adv
        parts = {"loss": total, "pixel": pixel, "hierarchical": hier, "adversarial": adv}
        return total, {k: v.detach() for k, v in parts.items()}

    def step(self, rainy: torch.Tensor, clean: torch.Tensor) -> dict[str, torch.Tensor]:
        """One training iteration on a batch (N, 3, H, W) in [0, 1], H and W multiples of 8.

        Returns the generator's ``loss`` and its parts ``pixel``, ``hierarchical``, ``adversarial``,
        and ``d_loss`` (NaN on iterations without a discriminator update), as detached 0-dim tensors:
        reading them on the host would make the CPU wait for the GPU at every step.
        """
        m = self.generator.size_multiple
        if rainy.shape != clean.shape or rainy.shape[-2] % m or rainy.shape[-1] % m:
            raise ValueError(
                f"MCDDL: rainy {tuple(rainy.shape)} and clean {tuple(clean.shape)} crops must have one shape "
                f"with height and width multiples of {m}"
            )
        update_d = self.steps % self.d_every == 0
        self.steps += 1
        # Real features: the generator's response to the clean image, a fixed target of this step.
        with torch.no_grad():
            real_features = self.generator.forward_all(clean).features
        with torch.set_grad_enabled(update_d):
            real_logits = self.discriminator(clean, real_features)

        out = self.generator.forward_all(rainy)
        loss_g, parts = self.generator_loss(out, clean, real_logits)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()

        parts["d_loss"] = torch.full((), math.nan, device=rainy.device)
        if update_d:
            fake_logits = self.discriminator(out.images[0].detach(), [f.detach() for f in out.features])
            loss_d = discriminator_loss(real_logits, fake_logits, self.weights.mus)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            parts["d_loss"] = loss_d.detach()
        return parts
