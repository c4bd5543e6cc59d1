"""Training losses on RGB images in [0, 1]: Charbonnier (a smooth L1) and 1 - SSIM."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(sqrt((pred - target)^2 + eps^2)): L1 away from zero, differentiable at zero."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM over channels and 'valid' positions (Gaussian window, K1 = 0.01, K2 = 0.03, peak 1)."""
    c = pred.shape[1]
    w = _gaussian_window(window, sigma, c, pred)
    pred, target = pred.float(), target.float()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, groups=c)

    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return s.mean()


def restoration_loss(pred: torch.Tensor, target: torch.Tensor, eps: float, ssim_weight: float
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Charbonnier + ``ssim_weight`` * (1 - SSIM); returns the loss and its parts.

    The parts are detached 0-dim tensors (NaN for a part not computed), not floats: reading a value
    on the host waits for the GPU, so the training loop reads them only when it logs.
    """
    pred = pred.float()
    l_char = charbonnier(pred, target, eps)
    loss = l_char
    parts = {"charbonnier": l_char.detach()}
    if ssim_weight > 0:
        l_ssim = 1.0 - ssim(pred, target)
        loss = loss + ssim_weight * l_ssim
        parts["ssim_loss"] = l_ssim.detach()
    else:
        parts["ssim_loss"] = torch.full((), float("nan"), device=pred.device)
    return loss, parts
