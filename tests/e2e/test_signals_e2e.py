"""End-to-end: a batch stopped by SIGTERM (docker stop, systemd, `timeout`) or SIGHUP (a closed
terminal) ends like one stopped by Ctrl-C: the resume message, exit 128 + the signal's number, no
temporary file left, and the same command resumes (issue 19)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")]

M = ("-m", "testnet")
RESUME = "error: interrupted; run the same command again to resume"


def make_images(folder: Path, n: int, size=(1400, 1100)) -> None:
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")


def wait_for_first_output(folder: Path, proc, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not list(folder.glob("*.png")):
        time.sleep(0.05)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_stops_a_batch_like_ctrl_c(derain, tmp_path, name):
    sig = getattr(signal, name)
    src, dst = tmp_path / "in", tmp_path / "out"
    make_images(src, 8)
    proc = derain.popen("batch", src, "--out", dst, *M)
    wait_for_first_output(dst, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert err.splitlines()[-1] == RESUME
    done = sorted(p.name for p in dst.iterdir())
    assert done and all(name.endswith(".png") and not name.startswith(".") for name in done), done
    assert len(done) < 8
    r = derain("batch", src, "--out", dst, *M)  # and the same command finishes the job
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dst.iterdir()) == [f"img{i:02d}.png" for i in range(8)]


def test_a_kill_9_leaves_nothing_the_next_run_keeps(derain, tmp_path):
    """kill -9 cannot be caught: a temporary file may be left, and the next run removes it."""
    src, dst = tmp_path / "in", tmp_path / "out"
    make_images(src, 4)
    proc = derain.popen("batch", src, "--out", dst, *M)
    wait_for_first_output(dst, proc)
    proc.kill()
    proc.communicate(timeout=60)
    (dst / ".img03.png.0badcafe.tmp").write_bytes(b"\x89PNG what a killed writer leaves")  # for certain
    r = derain("batch", src, "--out", dst, *M)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dst.iterdir()) == [f"img{i:02d}.png" for i in range(4)]
