"""The training loop: AdamW with warm-up and cosine decay, EMA weights, mixed precision, validation,
CSV log and progress chart, and checkpoints that resume exactly.

A run directory holds ``config.json``, ``checkpoint.pt`` (the latest state: model, EMA, optimizer,
scheduler, gradient scaler, step, numpy and torch RNG states), ``log.csv`` and ``progress.png``.
Training happens in the product's space (RGB in [0, 1]): the network is fed through
``LoadedModel.forward``, the differentiable form of the conversions inference uses, so any
registered architecture trains under its own input contract.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import models
from .._tensors import to_hwc, to_nchw
from ..errors import UsageError
from ..models import LoadedModel
from .config import TrainConfig
from .data import Sources, validation_set
from .device_data import make_sampler
from .losses import restoration_loss
from .plot import plot_progress

if TYPE_CHECKING:
    from .mcddl import MCDDLTrainer

_clock = time.monotonic  # the trainer's clock (tests substitute a simulated one)

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
LOG = "log.csv"
PLOT = "progress.png"
LOG_FIELDS = ["step", "lr", "loss", "charbonnier", "ssim_loss", "val_psnr", "val_ssim", "elapsed_s"]
MCDDL_LOG_FIELDS = ["step", "lr", "loss", "pixel", "hierarchical", "adversarial", "d_loss", "val_psnr", "val_ssim",
                    "elapsed_s"]


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    finished: bool  # reached cfg.steps (False: stopped early, resumable)
    val_psnr: float | None
    val_ssim: float | None


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to min_lr / lr at cfg.steps."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _cpu_bf16_fast() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for this run, or None for plain float32."""
    if cfg.amp == "off" or cfg.gan == "mcddl":  # MCDDL's losses compare small logit differences: fp32
        return None
    if cfg.amp == "fp16":
        return torch.float16
    if cfg.amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_bf16_fast():
        return torch.bfloat16
    return None


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """ema = d * ema + (1 - d) * model, with d ramping up over the first steps.

    One multi-tensor operation for all parameters (a per-parameter loop costs two kernel launches
    per tensor, which on a GPU takes longer than the arithmetic).
    """
    d = min(decay, (1 + step) / (10 + step))
    ema_params: list[torch.Tensor] = list(ema.parameters())
    torch._foreach_mul_(ema_params, d)
    torch._foreach_add_(ema_params, [p.detach() for p in model.parameters()], alpha=1 - d)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def configure_cuda() -> None:
    """Fast settings for training on CUDA: cuDNN picks the fastest kernels for the (fixed) crop
    shape, and float32 work (MCDDL runs without autocast) uses TF32 tensor cores."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def load_init_weights(module: torch.nn.Module, path: Path) -> None:
    """Start ``module`` from the tensors of a .safetensors file (an exported run, a bundled model)."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise UsageError(f"{path}: init_weights file not found") from None
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for a bad file
        raise UsageError(f"{path}: not a readable safetensors file ({e})") from None
    own = module.state_dict()
    wrong = sorted(set(own) ^ set(state)) or [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        raise UsageError(f"{path}: its weights do not fit this architecture and arch_config "
                         f"(first mismatch: {wrong[0]})")
    module.load_state_dict(state, strict=True)


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop stops (with a checkpoint) after the current step."""

    def __init__(self):
        self.stop = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum, frame):
            self.stop = True

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: no handlers
            pass
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def evaluate(net: LoadedModel, images, device: torch.device) -> tuple[float, float]:
    """Mean (PSNR, SSIM), restormer convention, of ``net`` on (name, rainy, clean) uint8 images."""
    from ..metrics import score, to_uint8

    net.module.eval()
    psnrs, ssims = [], []
    with torch.no_grad():
        for _name, rainy, clean in images:
            y = to_hwc(net.forward(to_nchw(rainy, device)).clamp(0, 1))
            p, s = score(to_uint8(y), clean, "restormer")
            psnrs.append(p)
            ssims.append(s)
    return float(np.mean(psnrs)), float(np.mean(ssims))


class Trainer:
    """One run: builds everything from a config, optionally restores a checkpoint, and trains."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, log: Callable[[str], None] = print):
        from ..device import choose_device

        self.cfg, self.run_dir, self.log = cfg, Path(run_dir), log
        self.clock = _clock  # for the time budget and its bookkeeping
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.device = choose_device(cfg.device)
        if self.device.type == "cuda":
            configure_cuda()
        self.contract = models.REGISTRY.architecture(cfg.arch).contract
        torch.manual_seed(cfg.seed)
        self.model = models.build(cfg.arch, **cfg.arch_config).to(self.device)
        # Module.to takes memory_format (documented, and used here), but torch's stubs for it omit it.
        self.model = self.model.to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
        self.ema = copy.deepcopy(self.model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        # The networks seen through their input contract (training and validation in product space).
        self.net = LoadedModel(self.model, self.contract)
        self.ema_net = LoadedModel(self.ema, self.contract)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     fused=self.device.type == "cuda")
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, cfg))
        self.amp = amp_dtype(cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.mcddl: MCDDLTrainer | None = None
        self.log_fields = LOG_FIELDS
        if cfg.gan == "mcddl":
            self._setup_mcddl()
        self.rng = np.random.default_rng(cfg.seed)
        self.step = 0
        self.elapsed = 0.0
        self.last_val: tuple[float | None, float | None] = (None, None)
        self.sources = Sources.from_config(cfg)
        self.sampler = make_sampler(cfg, self.sources, self.device)
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        self._seconds = {"validate": 0.0, "save": 0.0}  # the last validation and checkpoint took
        self._saved_at = -1  # the step of the last checkpoint
        self.val_images = validation_set(cfg, self.sources)

    def _setup_mcddl(self) -> None:
        """PLNLIN with its MCDDL discriminator; both optimizers follow the run's schedule."""
        from ..models.archs.plnlin import PLNLIN, MCDDLDiscriminator
        from .mcddl import MCDDLTrainer, MCDDLWeights

        cfg, model = self.cfg, self.model
        if not isinstance(model, PLNLIN):  # the config refuses other architectures before this
            raise UsageError(f"gan mcddl trains PLNLIN, not {type(model).__name__}")
        self.discriminator = MCDDLDiscriminator.matching(model).to(self.device).train()
        self.opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                       fused=self.device.type == "cuda")
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, lambda s: lr_factor(s, cfg))
        weights = MCDDLWeights().for_levels(model.levels)
        self.mcddl = MCDDLTrainer(model, self.discriminator, self.opt, self.opt_d, weights, d_every=cfg.d_every)
        self.log_fields = MCDDL_LOG_FIELDS

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict:
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed,
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
            "sources": self.sources.describe(),
            "val": {"psnr": self.last_val[0], "ssim": self.last_val[1]},
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.mcddl is not None:
            state["mcddl"] = {"discriminator": self.discriminator.state_dict(), "optimizer": self.opt_d.state_dict(),
                              "scheduler": self.sched_d.state_dict(), "steps": self.mcddl.steps}
        return state

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed_s"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        val = state.get("val") or {}
        self.last_val = (val.get("psnr"), val.get("ssim"))
        if self.mcddl is not None:
            gan = state["mcddl"]
            self.discriminator.load_state_dict(gan["discriminator"])
            self.opt_d.load_state_dict(gan["optimizer"])
            self.sched_d.load_state_dict(gan["scheduler"])
            self.mcddl.steps = int(gan["steps"])

    def save(self) -> None:
        if bool(self._nonfinite):  # never let a checkpoint keep the damage
            raise FloatingPointError(f"training diverged: the loss was not finite at a step up to {self.step}")
        t0 = self.clock()
        _save_atomic(self.state(), self.run_dir / CHECKPOINT)
        self._seconds["save"] = self.clock() - t0
        self._saved_at = self.step

    # -- training ---------------------------------------------------------------------------
    def train_step(self) -> tuple[dict[str, torch.Tensor], float]:
        """One optimisation step; returns the loss and its parts as detached 0-dim tensors, and lr."""
        if self.mcddl is not None:
            return self._mcddl_step(self.mcddl)
        rainy, clean = self.sampler.batch(self.rng)
        rainy = rainy.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        clean = clean.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            pred = self.net.forward(rainy)
        loss, parts = restoration_loss(pred.float(), clean, self.cfg.charbonnier_eps, self.cfg.ssim_weight)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        lr = self.opt.param_groups[0]["lr"]
        self.sched.step()
        update_ema(self.ema, self.model, self.cfg.ema_decay, self.step)
        self.step += 1
        return {"loss": loss.detach(), **parts}, lr

    def _mcddl_step(self, mcddl: MCDDLTrainer) -> tuple[dict[str, torch.Tensor], float]:
        rainy, clean = self.sampler.batch(self.rng)
        lr = self.opt.param_groups[0]["lr"]
        parts = mcddl.step(rainy.to(self.device), clean.to(self.device))
        self.sched.step()
        self.sched_d.step()
        update_ema(self.ema, self.model, self.cfg.ema_decay, self.step)
        self.step += 1
        return parts, lr

    def validate(self) -> tuple[float | None, float | None]:
        if not self.val_images:
            return None, None
        t0 = self.clock()
        result = evaluate(self.ema_net, self.val_images, self.device)
        self._seconds["validate"] = self.clock() - t0
        self.last_val = result
        return result

    def _write_row(self, row: dict) -> None:
        path = self.run_dir / LOG
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.log_fields)
            if new:
                writer.writeheader()
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in self.log_fields})

    def _truncate_log(self) -> None:
        """After a resume, drop log rows written after the checkpoint's step (they will be redone)."""
        path = self.run_dir / LOG
        if not path.exists():
            return
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= self.step]
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.log_fields)
            writer.writeheader()
            writer.writerows(rows)

    def _fit_steps(self, rate: float, remaining_s: float) -> None:
        """Lower ``cfg.steps`` so that the schedule ends within ``remaining_s`` at ``rate`` steps/s.

        Periodic validations and checkpoints cost time too; the final ones are reserved for.
        """
        cfg = self.cfg
        per_step = 1 / rate + self._seconds["validate"] / cfg.val_every + self._seconds["save"] / cfg.ckpt_every
        reserve = self._seconds["validate"] + self._seconds["save"]
        more = int(0.97 * max(0.0, remaining_s - reserve) / per_step)
        fitted = max(self.step + 1, min(cfg.steps, self.step + more))
        self.log(f"budget: {rate:.2f} steps/s, {remaining_s / 60:.1f} min left: the schedule ends at step "
                 f"{fitted} (was {cfg.steps})")
        cfg.steps, cfg.fit_steps_to_budget = fitted, False
        cfg.save(self.run_dir / CONFIG)

    def run(self, stop_at: int | None = None, max_minutes: float | None = None) -> TrainResult:
        """Train until cfg.steps (or ``stop_at`` steps, the time budget, or a signal); checkpoint at the end.

        The time budget is ``max_minutes`` if given, else ``cfg.max_minutes``: the invocation stops
        (validated and checkpointed, resumable) when the next step would leave too little time for
        the final validation and checkpoint. With ``cfg.fit_steps_to_budget``, ``cfg.steps`` is
        lowered once the step rate is known, so the schedule itself ends within the budget.
        """
        cfg = self.cfg
        minutes = cfg.max_minutes if max_minutes is None else max_minutes
        budget_s = None if minutes is None else minutes * 60
        flag = _StopFlag()
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, torch.Tensor] = {}
        started = self.clock()
        base_elapsed, first_step = self.elapsed, self.step
        calibration: tuple[int, float, float] | None = None  # (step, time, validate+save seconds so far)
        spent = 0.0  # seconds of this invocation spent validating and checkpointing
        stopped_by = None
        self.log(f"training {cfg.arch} on {self.device} ({'fp32' if self.amp is None else self.amp}), "
                 f"{self.sources.describe()}; step {self.step} of {cfg.steps}"
                 + (f", budget {minutes:g} min" if minutes is not None else ""))
        with flag.installed():
            while self.step < (cfg.steps if stop_at is None else min(cfg.steps, stop_at)):
                parts, lr = self._first_step() if self.step == 0 else self.train_step()
                self._nonfinite |= ~torch.isfinite(parts["loss"])
                for k, v in parts.items():
                    valid = ~torch.isnan(v)  # e.g. d_loss on steps without a discriminator update
                    sums[k] = sums.get(k, 0) + torch.where(valid, v, 0.0)
                    counts[k] = counts.get(k, 0) + valid
                now = self.clock()
                self.elapsed = base_elapsed + now - started
                # out of time when one more step would not leave enough for the last validation and save
                reserve = self._seconds["validate"] + self._seconds["save"]
                out_of_time = budget_s is not None and now - started + reserve >= budget_s
                val: tuple[float | None, float | None] = (None, None)
                # a budget stop validates too: the weights an export takes get their score, the curve its point
                if self.step % cfg.val_every == 0 or self.step == cfg.steps or out_of_time:
                    val = self.validate()
                    spent += self._seconds["validate"]
                if self.step % cfg.log_every == 0 or val[0] is not None:
                    self._log_row(sums, counts, lr, val)
                    sums, counts = {}, {}
                if cfg.fit_steps_to_budget and budget_s is not None:
                    # past cuDNN's first-step tuning, and once a process started beside this one is running too
                    if calibration is None and self.step - first_step >= 10 and now - started >= 0.05 * budget_s:
                        calibration = (self.step, self.clock(), spent)
                    elif calibration is not None:
                        s0, t0, spent0 = calibration
                        window = self.clock() - t0 - (spent - spent0)
                        if self.step - s0 >= 50 and window >= 0.1 * budget_s:
                            self._fit_steps((self.step - s0) / window, budget_s - (self.clock() - started))
                if self.step % cfg.ckpt_every == 0:
                    self.save()
                    spent += self._seconds["save"]
                if flag.stop or out_of_time:
                    stopped_by = "signal" if flag.stop else "time budget"
                    break
        if self._saved_at != self.step:
            self.save()
        if (self.run_dir / LOG).exists():
            plot_progress(self.run_dir / LOG, self.run_dir / PLOT)
        if self.device.type == "cuda":
            self.log(f"peak GPU memory {torch.cuda.max_memory_allocated(self.device) / 2**30:.1f} GiB")
        if stopped_by:
            self.log(f"stopped at step {self.step} ({stopped_by}); continue with --resume {self.run_dir}")
        return TrainResult(self.run_dir, self.step, self.step >= cfg.steps, *self.last_val)

    def _first_step(self) -> tuple[dict[str, torch.Tensor], float]:
        """The first step of a new run; on a GPU that runs out of memory, retry with half the batch.

        Nothing has been updated yet when the forward or backward pass fails, so the run simply starts
        with the smaller batch (saved in config.json).
        """
        while True:
            try:
                return self.train_step()
            except torch.cuda.OutOfMemoryError:
                if self.device.type != "cuda" or self.cfg.batch == 1 or self.step != 0:
                    raise
            self.opt.zero_grad(set_to_none=True)
            if self.mcddl is not None:
                self.mcddl.opt_d.zero_grad(set_to_none=True)
                self.mcddl.steps = 0
            torch.cuda.empty_cache()
            self.cfg.batch //= 2
            self.cfg.save(self.run_dir / CONFIG)
            self.log(f"out of GPU memory on the first step: batch lowered to {self.cfg.batch}")

    def _log_row(self, sums: dict[str, torch.Tensor], counts: dict[str, torch.Tensor], lr: float,
                 val: tuple[float | None, float | None]) -> None:
        """Write one log.csv row (mean losses since the last row), print it, and redraw the plot."""
        if bool(self._nonfinite):
            raise FloatingPointError(f"training diverged: the loss was not finite at a step up to {self.step}")
        keys = list(sums)
        values = torch.stack([torch.stack([sums[k], counts[k].to(sums[k].dtype)]) for k in keys]).tolist() \
            if keys else []
        row: dict[str, float | None] = {k: s / c for k, (s, c) in zip(keys, values) if c > 0}
        row.update(step=self.step, lr=lr, val_psnr=val[0], val_ssim=val[1], elapsed_s=round(self.elapsed, 1))
        self._write_row(row)
        msg = f"step {self.step}/{self.cfg.steps}"
        if row.get("loss") is not None:
            msg += f" loss {row['loss']:.4f}"
        msg += f" lr {lr:.2e}"
        if val[0] is not None:
            msg += f" val PSNR {val[0]:.2f} dB SSIM {val[1]:.4f}"
            plot_progress(self.run_dir / LOG, self.run_dir / PLOT)
        self.log(msg + f" ({self.elapsed / 60:.1f} min)")


def start_run(cfg: TrainConfig, run_dir: Path, stop_at: int | None = None,
              log: Callable[[str], None] = print) -> TrainResult:
    """Start a new run in ``run_dir`` (which must not hold one already).

    With ``cfg.init_weights`` the model (and its EMA) start from that file's weights.
    """
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).exists():
        raise UsageError(f"{run_dir} already holds a training run; continue it with --resume {run_dir} "
                         "or choose another --out")
    cfg.validate()
    models.REGISTRY.architecture(cfg.arch)  # unknown architecture: fail before any work
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, run_dir, log)
    if cfg.init_weights:
        load_init_weights(trainer.model, Path(cfg.init_weights))
        trainer.ema.load_state_dict(trainer.model.state_dict())
    cfg.save(run_dir / CONFIG)
    return trainer.run(stop_at)


def load_run_config(run_dir: Path) -> TrainConfig:
    """The configuration a run directory was started with."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).exists() or not (run_dir / CONFIG).exists():
        raise UsageError(f"{run_dir}: not a training run directory (no {CHECKPOINT} and {CONFIG})")
    return TrainConfig.from_file(run_dir / CONFIG)


def read_checkpoint(run_dir: Path) -> dict:
    """The latest checkpoint of a run directory (tensors and plain Python values only)."""
    path = Path(run_dir) / CHECKPOINT
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise UsageError(f"{run_dir}: not a training run directory (no {CHECKPOINT})") from e
    except (RuntimeError, OSError, EOFError) as e:
        raise UsageError(f"{path}: unreadable checkpoint ({e})") from e


def resume_run(run_dir: Path, stop_at: int | None = None, steps: int | None = None,
               log: Callable[[str], None] = print, max_minutes: float | None = None) -> TrainResult:
    """Continue the run in ``run_dir`` exactly where its checkpoint left off.

    ``steps`` raises the run's total step count (the cosine schedule is then stretched from here on,
    so the continuation is no longer identical to a run started with that many steps).
    ``max_minutes`` is this invocation's time budget (default: the run's ``max_minutes``).
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if steps is not None:
        cfg.steps = steps
        cfg.save(run_dir / CONFIG)
    trainer = Trainer(cfg, run_dir, log)
    trainer.load_state(read_checkpoint(run_dir))
    trainer._truncate_log()
    return trainer.run(stop_at, max_minutes=max_minutes)


def train(arch: str | None, out: Path | None, data: Sequence[str] = (), synth: Sequence[str] = (),
          config_file: Path | None = None, resume: Path | None = None,
          log: Callable[[str], None] = print, minutes: float | None = None) -> TrainResult:
    """What ``derain train ARCH --data ... --synth ... --out RUN_DIR [--config FILE] [--resume RUN_DIR]
    [--minutes M]`` does.

    A new run takes its options from ``config_file`` (JSON; defaults otherwise), with ``arch``,
    ``data``, ``synth`` and ``minutes`` (``max_minutes``) given here taking precedence. ``resume``
    continues an existing run with the settings it was started with; ``minutes`` is then the time
    budget of this invocation only.
    """
    if minutes is not None and not minutes > 0:
        raise UsageError(f"--minutes must be positive, got {minutes:g}")
    if resume is not None:
        if data or synth or config_file:
            raise UsageError("--resume continues a run with its own settings; drop --data, --synth and --config")
        cfg = load_run_config(Path(resume))
        if arch and arch.lower() != cfg.arch:
            raise UsageError(f"{resume} trains {cfg.arch}, not {arch}")
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise UsageError(f"--out {out} differs from --resume {resume}; a resumed run stays in its folder")
        return resume_run(Path(resume), log=log, max_minutes=minutes)
    if out is None:
        raise UsageError("--out RUN_DIR is required for a new training run")
    cfg = TrainConfig.from_file(Path(config_file)) if config_file else TrainConfig()
    if arch:
        cfg.arch = arch.lower()
    cfg.data = list(data) or cfg.data
    cfg.synth = list(synth) or cfg.synth
    if minutes is not None:
        cfg.max_minutes = minutes
    return start_run(cfg, Path(out), log=log)
