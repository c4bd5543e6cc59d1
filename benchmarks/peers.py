"""Score every downloadable model on the paired sample sets, end to end through the CLI.

The real weight files in ../shared/weights are served by an HTTP server on 127.0.0.1 under their
registry file names, and `derain bench` runs with DERAIN_MIRROR pointing at it, so the whole path a
user's machine takes is exercised: download, sha256 check, cache, load, inference, scoring.

    python benchmarks/peers.py                         # all url models, three sample sets
    python benchmarks/peers.py --sets rain200h-samples --models prenet:rain100h brn:rain200h
    python benchmarks/peers.py --markdown table.md     # also write the table as Markdown
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETS = ("rain200h-samples", "rain100l-samples", "spa-samples")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=os.environ.get("DERAIN_SHARED", str(REPO.parent / "shared")))
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    parser.add_argument("--models", nargs="*", help="default: every model with a url source")
    parser.add_argument("--exclude", nargs="*", default=[], help="architectures to leave out, e.g. hct-ffn")
    parser.add_argument("--markdown", help="write the table here too")
    parser.add_argument("--threads", default="2")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from derain_cli import models

    shared = Path(args.shared)
    manifest = json.loads((shared / "weights" / "manifest.json").read_text())
    by_sha = {item["sha256"]: shared / "weights" / item["file"] for item in manifest}
    names = args.models or [m.name for m in models.REGISTRY.models()
                            if m.source.kind == "url" and m.arch not in args.exclude]

    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        mirror.mkdir()
        for name in names:
            m = models.resolve(name)
            if m.source.sha256 in by_sha:
                shutil.copy(by_sha[m.source.sha256], mirror / m.source.filename)
        handler = functools.partial(_QuietHandler, directory=str(mirror))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = dict(os.environ, DERAIN_HOME=str(Path(tmp) / "home"), DERAIN_THREADS=args.threads,
                   DERAIN_MIRROR=f"http://127.0.0.1:{server.server_address[1]}")
        exe = shutil.which("derain", path=str(Path(sys.executable).parent)) or "derain"
        results = {}
        for set_name in args.sets:
            folder = shared / "data" / "paired" / set_name
            out = Path(tmp) / f"{set_name}.json"
            cmd = [exe, "bench", str(folder / "input"), "--gt", str(folder / "target"), "--json", str(out), "-q"]
            for name in names:
                cmd += ["-m", name]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{set_name}: derain bench failed:\n{proc.stderr}", file=sys.stderr)
                continue
            results[set_name] = json.loads(out.read_text())
            # print (and save) as each set finishes, so a long run never loses what it measured
            lines = _table(names, [s for s in args.sets if s in results], results)
            print(f"after {set_name}:", "\n".join(lines), sep="\n", flush=True)
            if args.markdown:
                Path(args.markdown).write_text("\n".join(lines) + "\n")
        server.shutdown()


def _table(names, sets, results) -> list[str]:
    header = "| model | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + f" | s/image ({sets[0]}) |"
    lines = [header, "|" + "---|" * (len(sets) + 2)]

    def cell(entry):
        return "-" if entry is None else f"{entry['psnr']:.2f} / {entry['ssim']:.4f}"

    row = ["input (rainy)"] + [cell(results.get(s, {}).get("input")) for s in sets] + ["-"]
    lines.append("| " + " | ".join(row) + " |")
    for name in names:
        cells, speed = [], "-"
        for s in sets:
            entry = next((m for m in results.get(s, {}).get("models", []) if m["model"] == name), None)
            cells.append(cell(entry))
            if s == sets[0] and entry:
                speed = f"{entry['seconds_per_image']:.2f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {speed} |")
    return lines


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the table readable
        pass


if __name__ == "__main__":
    main()
