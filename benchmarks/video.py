"""Video deraining: quality, flicker and speed of `derain video` on the NTURain clips in ../shared.

* Synthetic clip (ntu-synthetic-a1, 48 frames 640x480 with clean frames): the rainy frames are
  encoded into a lossless RGB H.264 file here, every model runs on it through ``derain_video``
  (the code behind `derain video`) into an H.264 file at ``--crf 0`` (lossless in yuv420p: the
  scores are the network's, give or take 0.1 dB of chroma subsampling, not the encoder's), and
  the decoded output is scored against the clean frames:
  PSNR/SSIM on Y (``derain_cli.metrics``, restormer convention, mean over frames) and the excess
  frame-to-frame change (luma levels; the output's minus the clean clip's, 0 is ideal).
* Real clip (ntu-real-ra1, 61 frames 640x480, no reference): flicker on the still parts of the
  picture (``StillFlicker``: mean luma change per frame where the coarse input does not move),
  input -> output.
* Speed: frames per second of the whole job (decode, model, encode; model loading excluded).

Rows are model specs: ``NAME[+temporal][@PRECISION]``. Peer weights come from ../shared/weights
through DERAIN_MIRROR (a folder holding the files under their registry names), as a user's machine
would download them.

    python benchmarks/video.py                                  # every row, both clips
    python benchmarks/video.py --device cpu --threads 2 --frames 8 --rows s2vd:ntu derainlite
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROWS = ("s2vd:ntu", "derainlite", "derainlite+temporal", "prenet:rain100h", "prenet:rain100h+temporal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=os.environ.get("DERAIN_SHARED", str(REPO.parent / "shared")))
    parser.add_argument("--rows", nargs="*", default=list(ROWS), help="model specs NAME[+temporal][@PRECISION]")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None, help="use only the first N frames of each clip")
    parser.add_argument("--clips", nargs="*", default=["synthetic", "real"])
    parser.add_argument("--markdown", help="also write the table here")
    parser.add_argument("--json", help="also write every figure here")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    shared = Path(args.shared).resolve()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["DERAIN_HOME"] = str(tmp / "home")
        os.environ["DERAIN_MIRROR"] = str(_mirror(shared, tmp / "mirror", args.rows))
        clips = {}
        if "synthetic" in args.clips:
            folder = shared / "data" / "video" / "ntu-synthetic-a1"
            clips["synthetic"] = (_encode(_frames(folder / "rain", args.frames), tmp / "synthetic.mp4"),
                                  _frames(folder / "clean", args.frames))
        if "real" in args.clips:
            clips["real"] = (_encode(_frames(shared / "data" / "video" / "ntu-real-ra1", args.frames),
                                     tmp / "real.mp4"), None)
        results = {"device": None, "rows": {}}
        if "synthetic" in clips:
            src, clean = clips["synthetic"]
            results["input"] = _score(_decode(src), clean)
        for spec in args.rows:
            results["rows"][spec] = row = _run_row(spec, clips, tmp, args)
            results["device"] = row.pop("device_name")
            print(f"{spec}: {json.dumps(row)}", file=sys.stderr, flush=True)
        lines = _table(results, args)
        print("\n".join(lines))
        if args.markdown:
            Path(args.markdown).write_text("\n".join(lines) + "\n")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))


def _mirror(shared: Path, folder: Path, specs) -> Path:
    """A folder with the real weight files of the rows' peer models, under their registry names."""
    from derain_cli import models

    folder.mkdir(parents=True)
    manifest = json.loads((shared / "weights" / "manifest.json").read_text())
    by_sha = {item["sha256"]: shared / "weights" / item["file"] for item in manifest}
    for spec in specs:
        model = models.resolve(_parse(spec)[0])
        link = folder / model.source.filename
        if model.source.kind == "url" and model.source.sha256 in by_sha and not link.exists():
            link.symlink_to(by_sha[model.source.sha256])
    return folder


def _parse(spec: str) -> tuple[str, bool, str]:
    name, _, precision = spec.partition("@")
    temporal = name.endswith("+temporal")
    return name.removesuffix("+temporal"), temporal, precision or "auto"


def _frames(folder: Path, limit: int | None) -> list[np.ndarray]:
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))[:limit]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def _encode(frames: list[np.ndarray], path: Path, fps: int = 25) -> Path:
    """Lossless RGB H.264 at ``fps``: decodes to exactly the frames given.

    Exactness matters: some networks react strongly to invisible changes (PReNet loses 0.3 dB on a
    crop whose input moved by at most 2 levels through a YUV round trip), and the table should
    score the networks, not the input's encoding.
    """
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = "bgr24", {"qp": "0", "preset": "veryfast"}
        for i, rgb in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    return path


def _decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _score(frames: list[np.ndarray], clean: list[np.ndarray]) -> dict:
    from derain_cli.metrics import score
    from derain_cli.video.temporal import excess_change

    pairs = [score(f, c, "restormer") for f, c in zip(frames, clean)]
    return {"psnr": float(np.mean([p for p, _ in pairs])), "ssim": float(np.mean([s for _, s in pairs])),
            "excess_change": excess_change(frames, clean), "frames": len(frames)}


def _run_row(spec: str, clips: dict, tmp: Path, args) -> dict:
    from derain_cli.engine import Engine
    from derain_cli.video import derain_video

    name, temporal, precision = _parse(spec)
    engine = Engine(name, device=args.device, precision=precision, threads=args.threads)
    started = time.perf_counter()
    engine.load()
    row = {"model": engine.name, "precision": str(engine.dtype).removeprefix("torch."),
           "device_name": _device_name(engine.device), "load_seconds": round(time.perf_counter() - started, 2)}
    if engine.device.type != "cpu":  # the first kernels of a GPU process are slow: not what a video costs
        src = next(iter(clips.values()))[0]
        derain_video(src, tmp / "warm-up.mp4", engine=engine, duration=1.2, overwrite=True)
    for clip, (src, clean) in clips.items():
        out = tmp / f"{clip}-{spec.replace(':', '_').replace('+', '_').replace('@', '_')}.mp4"
        result = derain_video(src, out, engine=engine, temporal=temporal, crf=0, overwrite=True)
        row[clip] = {"fps": result.frames_per_second, "frames": result.frames,
                     "still_flicker_input": result.flicker_input, "still_flicker_output": result.flicker_output,
                     "still_fraction": result.still_fraction}
        if clean is not None:
            row[clip].update(_score(_decode(out), clean))
    return row


def _device_name(device) -> str:
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _f(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(results: dict, args) -> list[str]:
    lines = [f"Device: {results['device']}" + (f"; first {args.frames} frames of each clip" if args.frames else ""),
             "",
             "| model | synthetic PSNR (Y) | SSIM | excess change | fps | real: still flicker in -> out | fps |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    inp = results.get("input")
    if inp:
        lines.append(f"| input (rainy) | {_f(inp['psnr'])} | {_f(inp['ssim'], 4)} | {_f(inp['excess_change'])} "
                     "| - | - | - |")
    for spec, row in results["rows"].items():
        syn, real = row.get("synthetic", {}), row.get("real", {})
        flicker = (f"{_f(real.get('still_flicker_input'))} -> {_f(real.get('still_flicker_output'))}"
                   if real else "-")
        label = f"{row['model']}{' +temporal' if '+temporal' in spec else ''} ({row['precision']})"
        lines.append(f"| {label} | {_f(syn.get('psnr'))} | {_f(syn.get('ssim'), 4)} | "
                     f"{_f(syn.get('excess_change'))} | {_f(syn.get('fps'))} | {flicker} | {_f(real.get('fps'))} |")
    return lines


if __name__ == "__main__":
    main()
