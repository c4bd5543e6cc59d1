"""Export a training run's EMA weights as a safetensors file the model registry can load.

safetensors metadata maps strings to strings, so structured values are stored as JSON strings:
``architecture``, ``arch_config`` (JSON), ``config`` (JSON), ``training_data`` (JSON), ``steps``,
``val_psnr``, ``val_ssim``, ``val_convention``, ``weights`` ("ema"), ``derain_version``, ``created``.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import torch

from .. import __version__
from ..errors import UsageError
from .loop import read_checkpoint


def export_run(run_dir: Path, out_file: Path) -> dict[str, str]:
    """Write the EMA weights of ``run_dir``'s latest checkpoint to ``out_file``; return the metadata."""
    from safetensors.torch import save_file

    out_file = Path(out_file)
    if out_file.suffix.lower() != ".safetensors":
        raise UsageError(f"{out_file}: the exported file must end in .safetensors")
    state = read_checkpoint(run_dir)
    cfg = state["config"]
    val = state.get("val") or {}
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state["ema"].items()}
    metadata = {
        "format": "derain-train-export/1",
        "architecture": cfg["arch"],
        "arch_config": json.dumps(cfg["arch_config"], sort_keys=True),
        "config": json.dumps(cfg, sort_keys=True),
        "training_data": json.dumps({"paired": cfg["data"], "synthetic_rain_on": cfg["synth"],
                                     "preset": cfg["synth_preset"], "summary": state.get("sources", "")}),
        "steps": str(state["step"]),
        "val_psnr": "" if val.get("psnr") is None else f"{val['psnr']:.4f}",
        "val_ssim": "" if val.get("ssim") is None else f"{val['ssim']:.6f}",
        "val_convention": "restormer",
        "weights": "ema",
        "derain_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    out_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_file(tensors, str(out_file), metadata=metadata)
    except OSError as e:
        raise UsageError(f"{out_file}: cannot write ({e.strerror or e})") from e
    return metadata


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata of an exported safetensors file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})
