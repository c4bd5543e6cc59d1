"""End-to-end: the real `derain video` executable, interrupted with Ctrl-C (SIGINT) mid-way."""

from __future__ import annotations

import signal
import time

import pytest

from tests.video.clips import make_clip, probe

pytest.importorskip("av", reason="PyAV is not installed (pip install 'derain-cli[video]')")

pytestmark = pytest.mark.e2e


def test_ctrl_c_leaves_nothing_at_the_target(derain, tmp_path):
    src = make_clip(tmp_path / "long.mp4", frames=600, size=(96, 64))
    dst = tmp_path / "out.mp4"
    proc = derain.popen("video", src, "-o", dst, "-m", "testnet")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(tmp_path.glob(".out.partial-*")):
        time.sleep(0.02)
    assert list(tmp_path.glob(".out.partial-*")), "the job never started writing"
    time.sleep(0.2)  # some frames in
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]  # no temporary file left either


def test_the_executable_writes_a_playable_video(derain, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, rotation=-90)
    r = derain("video", src, "-o", tmp_path / "out.mkv", "-m", "testnet")
    assert r.returncode == 0, r.stderr
    out = probe(tmp_path / "out.mkv")
    assert out.frames == 6 and out.rotation == -90
    assert out.packets["audio"] == probe(src).packets["audio"]
