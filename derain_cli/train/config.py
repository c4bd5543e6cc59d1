"""Training configuration: one dataclass, read from and written to JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError


@dataclass
class TrainConfig:
    """Everything that decides a training run. Unknown keys in a config file are an error."""

    arch: str = "derainlite"
    arch_config: dict[str, Any] = field(default_factory=dict)  # overrides of the released config
    data: list[str] = field(default_factory=list)  # paired folders (input/ and target/)
    synth: list[str] = field(default_factory=list)  # clean-image folders: rain made on the fly
    synth_preset: str = "mixed"
    synth_fraction: float = 0.7  # share of synthetic samples when both kinds of data are given
    steps: int = 20000
    batch: int = 8
    crop: int = 128
    # synthetic sources: images are resized so that their short side lies in this range (pixels)
    synth_short_side: tuple[int, int] = (320, 720)
    rot90: bool = False  # 90-degree turns make horizontal rain, which real photos never show
    # where batches are made: "cpu" (numpy, one sample at a time: synth.add_rain), "device" (images
    # held on the training device, crops and rain in batched torch: synth_torch), "auto" (device on
    # CUDA, else cpu)
    synth_device: str = "cpu"
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    warmup: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    charbonnier_eps: float = 1e-3
    ssim_weight: float = 0.2
    # adversarial training: "none", or "mcddl" (PLNLIN only: the paper's SSIM + hierarchical +
    # relativistic adversarial losses with the MCDDL discriminator; charbonnier/ssim_weight unused)
    gan: str = "none"
    d_every: int = 5  # with gan: one discriminator update every d_every generator steps
    amp: str = "auto"  # auto (CUDA fp16, CPU bf16 where supported), off, fp16, bf16
    device: str = "auto"
    threads: int = 0  # CPU threads for torch (0: leave torch's default)
    seed: int = 0
    val_fraction: float = 0.15  # share of each paired folder held out for validation
    val_synth: int = 4  # synthetic validation pairs (fixed seed) when synth sources are given
    val_size: int = 256  # validation images are centre-cropped to at most this size
    val_every: int = 500
    ckpt_every: int = 250
    log_every: int = 50
    max_minutes: float | None = None  # stop (with a checkpoint) after this much wall time per invocation
    # with a time budget (max_minutes or --minutes): measure the step rate early on and lower
    # ``steps`` so that the learning-rate schedule ends inside the budget (the fitted value is saved
    # in config.json); without a budget it does nothing
    fit_steps_to_budget: bool = False
    init_weights: str | None = None  # a .safetensors file (e.g. an exported run) to start the model from

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"{source}: unknown training option(s) {', '.join(unknown)}")
        cfg = cls(**values)
        side = tuple(cfg.synth_short_side)  # JSON gives a list
        if len(side) != 2:
            raise UsageError(f"{source}: synth_short_side must be (low, high), got {list(side)}")
        cfg.synth_short_side = (side[0], side[1])
        cfg.validate(source)
        return cfg

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        try:
            values = json.loads(Path(path).read_text())
        except OSError as e:
            raise UsageError(f"{path}: cannot read config ({e.strerror or e})") from e
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(values, dict):
            raise UsageError(f"{path}: expected a JSON object of training options")
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def validate(self, source: str = "config") -> None:
        """Raise UsageError for values that cannot work."""
        checks = [
            (self.steps >= 1, "steps must be at least 1"),
            (self.batch >= 1, "batch must be at least 1"),
            (self.crop >= 8, "crop must be at least 8"),
            (0.0 <= self.synth_fraction <= 1.0, "synth_fraction must lie in [0, 1]"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must lie in [0, 1)"),
            (0.0 <= self.ema_decay < 1.0, "ema_decay must lie in [0, 1)"),
            (self.lr > 0, "lr must be positive"),
            (self.amp in ("auto", "off", "fp16", "bf16"), "amp must be auto, off, fp16 or bf16"),
            (self.synth_short_side[0] <= self.synth_short_side[1], "synth_short_side must be (low, high)"),
            (min(self.val_every, self.ckpt_every, self.log_every) >= 1, "val/ckpt/log intervals must be >= 1"),
            (self.gan in ("none", "mcddl"), f"gan must be none or mcddl, got {self.gan!r}"),
            (self.gan != "mcddl" or self.arch == "plnlin",
             f"gan mcddl trains PLNLIN (its discriminator reads PLNLIN's features), not {self.arch}"),
            (self.gan != "mcddl" or self.crop % 8 == 0, "gan mcddl needs a crop that is a multiple of 8"),
            (self.d_every >= 1, "d_every must be at least 1"),
            (self.synth_device in ("cpu", "device", "auto"), "synth_device must be cpu, device or auto"),
            (self.max_minutes is None or self.max_minutes > 0, "max_minutes must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(f"{source}: {message}")
        from .synth import parse_preset

        try:
            parse_preset(self.synth_preset)
        except UsageError as e:
            raise UsageError(f"{source}: synth_preset: {e}") from None
