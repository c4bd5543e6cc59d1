"""Time a DerainLite configuration on a 12 MP image on this machine's CPU (random weights).

The built-in model must derain a 12 MP photograph on the project's 2-core CPU in under 60 s in its
default precision (float32 on a CPU). Run time does not depend on the weights, so a candidate
configuration can be timed before it is trained:

    .venv/bin/python scripts/time_derainlite.py [--config '{"channels": 32, "max_channels": 128}']
                                                [--size 4000x3000] [--tile 1024] [--threads 2] [--repeat 1]

It runs the network the way ``derain`` does (LoadedModel + run_tiled with the model's suggested
tile) and prints the parameters, the float32/float16 weight sizes and the wall and CPU time of each
repeat (on a shared machine, compare CPU times, or wall times measured back to back).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="{}", help="JSON overrides of DerainLite's default config")
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT")
    parser.add_argument("--tile", type=int, default=None, help="tile size (default: the model's suggestion)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does, before torch is imported
    import torch

    from derain_cli import models
    from derain_cli.tiling import run_tiled

    torch.set_num_threads(args.threads)
    overrides = json.loads(args.config)
    architecture = models.REGISTRY.architecture("derainlite")
    config = {**architecture.default_config, **overrides}
    torch.manual_seed(0)
    module = models.build("derainlite", **overrides).eval()
    params = sum(p.numel() for p in module.parameters())
    tile = args.tile if args.tile is not None else architecture.contract.tile
    w, h = (int(v) for v in args.size.lower().split("x"))
    x = torch.rand(1, 3, h, w)
    runner = models.LoadedModel(module, architecture.contract)
    print(f"derainlite {json.dumps(config)}: {params:,} parameters, {params * 4 / 1e6:.2f} MB float32, "
          f"{params * 2 / 1e6:.2f} MB float16; {w}x{h}, tile {tile}, {args.threads} thread(s)", flush=True)
    for i in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        run_tiled(runner, x, tile=tile)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        # CPU time (all threads) is steadier than wall time on a machine shared with other jobs
        print(f"run {i + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU, load average {os.getloadavg()[0]:.1f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
