"""Export a training run's EMA weights as a safetensors file the model registry can load.

safetensors metadata maps strings to strings, so structured values are stored as JSON strings:
``architecture``, ``arch_config`` (JSON), ``config`` (JSON), ``training_data`` (JSON), ``steps``,
``val_psnr``, ``val_ssim``, ``val_convention``, ``weights`` ("ema"), ``dtype``, ``derain_version``,
``created``. Weights are float32 unless ``dtype="float16"`` is asked for: half the size (a bundled model
must stay under 8 MB), and loading converts them back to the network's float32.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import torch

from .. import __version__
from ..errors import UsageError
from .loop import read_checkpoint

_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def export_run(run_dir: Path, out_file: Path, dtype: str = "float32") -> dict[str, str]:
    """Write the EMA weights of ``run_dir``'s latest checkpoint to ``out_file``; return the metadata.

    ``dtype`` is ``float32`` or ``float16`` (floating-point tensors only; others keep their type).
    """
    from safetensors.torch import save_file

    out_file = Path(out_file)
    if out_file.suffix.lower() != ".safetensors":
        raise UsageError(f"{out_file}: the exported file must end in .safetensors")
    if dtype not in _DTYPES:
        raise UsageError(f"export dtype must be {' or '.join(_DTYPES)}, got {dtype!r}")
    state = read_checkpoint(run_dir)
    cfg = state["config"]
    val = state.get("val") or {}
    tensors = {k: v.detach().to("cpu", _DTYPES[dtype] if v.is_floating_point() else v.dtype).contiguous()
               for k, v in state["ema"].items()}
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
        "dtype": dtype,
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


def main(argv: list[str]) -> int:
    """Export from a script: ``main([RUN_DIR, OUT.safetensors, "float16"])`` (dtype optional).

    (``derain export`` writes float32; scripts/train_gpu.sh calls this for float16 files.)
    """
    import sys

    if len(argv) not in (2, 3):
        print("usage: export RUN_DIR OUT.safetensors [float32|float16]", file=sys.stderr)
        return 2
    try:
        meta = export_run(Path(argv[0]), Path(argv[1]), *argv[2:])
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {argv[1]} ({meta['architecture']}, {meta['steps']} steps, {meta['dtype']}, "
          f"validation PSNR {meta['val_psnr'] or '-'} dB)")
    return 0
