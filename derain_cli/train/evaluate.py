"""Score weights on paired benchmark folders (whole images, restormer convention).

    python -m derain_cli.train.evaluate [--device DEVICE] WEIGHTS.safetensors PAIRED_DIR [PAIRED_DIR ...]

prints, per folder, the mean PSNR/SSIM of the rainy input and of the network's output against the
clean targets. The weights' metadata names the architecture and its configuration. The network runs
in float32 on DEVICE (default cpu; on CUDA with TF32 off, so scores match the CPU's).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import models
from .._tensors import to_hwc, to_nchw
from .data import load_uint8, paired_files


@dataclass
class FolderScore:
    folder: str
    images: int
    input_psnr: float
    input_ssim: float
    output_psnr: float
    output_ssim: float


def score_folder(net: models.LoadedModel, folder: Path) -> FolderScore:
    """Mean input and output PSNR/SSIM (restormer convention) of ``net`` over a paired folder."""
    from ..metrics import score, to_uint8

    rows = []
    for rainy_path, clean_path in paired_files(folder):
        rainy, clean = load_uint8(rainy_path), load_uint8(clean_path)
        out = to_uint8(to_hwc(net(to_nchw(rainy)).clamp(0, 1)))
        rows.append((*score(rainy, clean, "restormer"), *score(out, clean, "restormer")))
    m = np.mean(rows, axis=0)
    return FolderScore(Path(folder).name, len(rows), *map(float, m))


def main(argv: list[str]) -> int:
    device = "cpu"
    if argv[:1] == ["--device"] and len(argv) >= 2:
        device, argv = argv[1], argv[2:]
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    # strict load, eval mode, float32
    net = models.load_model(models.from_exported_file(argv[0]), device=device, path=argv[0])
    print(f"{'folder':<22} {'n':>3} {'input PSNR/SSIM':>18} {'output PSNR/SSIM':>18}")
    for folder in argv[1:]:
        s = score_folder(net, Path(folder))
        print(f"{s.folder:<22} {s.images:>3} {s.input_psnr:>9.2f} {s.input_ssim:>8.4f} "
              f"{s.output_psnr:>9.2f} {s.output_ssim:>8.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
