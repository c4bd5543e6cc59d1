"""Speed and memory of every registered architecture at its released configuration.

Prints, per architecture: parameters, MACs per pixel (from torch's FLOP counter at 256x256),
seconds per image and peak memory at each size, on the CPU with one thread and with all threads,
and on CUDA in fp32/fp16/bf16 where a GPU is present. Every measurement runs in a fresh subprocess
so that peak resident memory belongs to that one setting. Weights are random: speed and memory do
not depend on them.

    python benchmarks/models.py                       # every architecture, 256 and 512
    python benchmarks/models.py --arch prenet glgfn --sizes 256 --threads 1
    python benchmarks/models.py --json results.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(arch: str, size: int, threads: int, device: str, precision: str, repeats: int) -> dict:
    """Runs inside the child process: one architecture, one setting."""
    import time

    import torch

    from derain_cli import models
    from derain_cli._memory import PeakMemory, process_peak_rss_mb

    torch.set_num_threads(threads)
    a = models.REGISTRY.architecture(arch)
    torch.manual_seed(0)
    net = models.build(arch).eval().to(device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    runner = models.LoadedModel(net, a.contract, dtype=dtype)
    x = torch.rand(1, 3, size, size)
    params = sum(p.numel() for p in net.parameters())
    result = {"arch": arch, "size": size, "threads": threads, "device": device, "precision": precision,
              "params": params}
    if device == "cpu" and size == 256:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            runner(x)
        result["macs_per_pixel"] = counter.get_total_flops() / 2 / (size * size)
    times = []
    cuda = device.startswith("cuda")
    # CUDA: the allocator's peak over these runs; CPU: no sampling thread to disturb the timing,
    # this fresh process's whole-life peak (exact) is read afterwards.
    with PeakMemory(device) if cuda else contextlib.nullcontext() as peak:
        runner(x)  # warm-up
        if cuda:
            torch.cuda.synchronize()
        for _ in range(repeats):
            start = time.perf_counter()
            y = runner(x)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    result["seconds"] = min(times)
    result["finite"] = bool(torch.isfinite(y).all())
    result["peak_mb"] = peak.mb if cuda else process_peak_rss_mb()
    return result


def run_child(arch, size, threads, device, precision, repeats, timeout) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the derain command does
    cmd = [sys.executable, __file__, "--child", arch, str(size), str(threads), device, precision, str(repeats)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"arch": arch, "size": size, "threads": threads, "device": device, "precision": precision,
                "error": f"over {timeout} s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["failed"])[-1]
        return {"arch": arch, "size": size, "threads": threads, "device": device, "precision": precision,
                "error": last[:120]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        arch, size, threads, device, precision, repeats = sys.argv[2:8]
        sys.path.insert(0, str(REPO))
        print(json.dumps(measure(arch, int(size), int(threads), device, precision, int(repeats))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="*", help="architectures (default: all registered)")
    parser.add_argument("--sizes", default="256,512", help="square image sizes, comma-separated")
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}", help="CPU thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per setting (the best is kept)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per setting")
    parser.add_argument("--no-cuda", action="store_true", help="skip CUDA even if present")
    parser.add_argument("--json", help="also write all results to this file")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    import torch

    from derain_cli import models

    archs = args.arch or sorted(models.REGISTRY.architectures())
    sizes = [int(s) for s in args.sizes.split(",")]
    threads = sorted({int(t) for t in args.threads.split(",")})
    settings = [("cpu", "fp32", t) for t in threads]
    if torch.cuda.is_available() and not args.no_cuda:
        settings += [("cuda", p, 1) for p in ("fp32", "fp16", "bf16")]

    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    header = (f"{'arch':<12} {'params':>10} {'MACs/px':>10} {'device':<10} {'thr':>3} {'size':>5} "
              f"{'seconds':>9} {'peak MB':>9}")
    print(header)
    print("-" * len(header))
    results = []
    for arch in archs:
        macs = None
        for device, precision, t in settings:
            for size in sizes:
                r = run_child(arch, size, t, device, precision, args.repeats, args.timeout)
                results.append(r)
                macs = r.get("macs_per_pixel", macs)
                dev = device if device == "cpu" else f"{device}/{precision}"
                if "error" in r:
                    print(f"{arch:<12} {'':>10} {'':>10} {dev:<10} {t:>3} {size:>5}  error: {r['error']}")
                    continue
                m = f"{macs / 1e3:,.0f}k" if macs else "-"
                flag = "" if r.get("finite", True) else "  NON-FINITE OUTPUT"
                print(f"{arch:<12} {r['params']:>10,} {m:>10} {dev:<10} {t:>3} {size:>5} "
                      f"{r['seconds']:>9.3f} {r['peak_mb']:>9.0f}{flag}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
