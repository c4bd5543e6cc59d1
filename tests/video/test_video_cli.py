"""`derain video` on short clips made in the test: what comes out must play like what went in.

The commands run in-process (``derain_cli.cli.main``) with the tests-only ``testnet`` image model,
except where the default video model (S2VD with its real weights, through a local mirror) is the
point of the test.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from derain_cli.cli import main
from tests.conftest import shared_path
from tests.video.clips import SRT, make_clip, probe

pytest.importorskip("av", reason="PyAV is not installed (pip install 'derain-cli[video]')")

M = ("-m", "testnet")


@pytest.fixture(autouse=True)
def _testnet(testnet):
    return testnet


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders a job may have left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_output_plays_like_the_input(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=12, rotation=90)
    dst = tmp_path / "out.mp4"
    code, out, err = run(capsys, "video", src, "-o", dst, *M, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "ok" and record["frames"] == 12
    assert record["copied_streams"] == ["audio aac"]
    a, b = probe(src), probe(dst)
    assert b.frames == a.frames == 12
    assert b.rate == a.rate == 25
    assert abs(b.duration - a.duration) <= 1 / 25
    assert b.pts_seconds == pytest.approx(a.pts_seconds, abs=1e-6)
    assert b.rotation == a.rotation == 90
    assert (b.width, b.height) == (a.width, a.height) == (64, 48)  # stored as the input stores it
    assert b.packets["audio"] == a.packets["audio"]  # the audio packets are copied bit for bit
    assert b.packet_times["audio"] == pytest.approx(a.packet_times["audio"])
    assert leftovers(tmp_path) == []


def test_frames_are_derained_upright(tmp_path, capsys):
    """A sideways-stored video is turned upright for the network and stored sideways again."""
    src = make_clip(tmp_path / "in.mp4", frames=3, rotation=90)
    frames = tmp_path / "frames"
    code, _, err = run(capsys, "video", src, "-o", frames, *M)
    assert code == 0, err
    names = sorted(p.name for p in frames.iterdir())
    assert names == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    first = np.asarray(Image.open(frames / names[0]))
    assert first.shape == (64, 48, 3)  # upright: as a player shows the 64x48 stored frames
    # the marked corner (top-left when stored) is bottom-left after a 90-degree counter-clockwise turn
    blue = first[..., 2].astype(int) - first[..., 0]
    assert blue[-8:, :8].mean() > 80 and blue[:8, :8].mean() < 20 and blue[-8:, -8:].mean() < 20


@pytest.mark.parametrize("full_range_bt709", [False, True])
def test_colours_survive_the_round_trip(tmp_path, capsys, full_range_bt709):
    """The encoded output decodes to what the network produced (same colour matrix and range)."""
    import av

    src = make_clip(tmp_path / "in.mp4", frames=3, audio=False, full_range_bt709=full_range_bt709)
    with av.open(str(src)) as c:
        assert c.streams.video[0].codec_context.color_range == (2 if full_range_bt709 else 0)
    for target in ("frames", "out.mp4"):
        code, _, err = run(capsys, "video", src, "-o", tmp_path / target, *M, "--crf", "0")
        assert code == 0, err
    with av.open(str(tmp_path / "out.mp4")) as c:
        decoded = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
        assert c.streams.video[0].codec_context.color_range == (2 if full_range_bt709 else 0)
    written = [np.asarray(Image.open(p)).astype(int) for p in sorted((tmp_path / "frames").iterdir())]
    for a, b in zip(decoded, written):
        assert np.abs(a - b).mean() < 2.0  # chroma subsampling only; a range or matrix mix-up costs ~10


def test_frame_folders_in_and_out(tmp_path, capsys):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(7):
        Image.fromarray(np.full((40, 56, 3), 20 * i, np.uint8)).save(folder / f"shot{i + 1}.png")
    Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(folder / "shot10.png")  # sorted after shot7
    video = tmp_path / "shots.mp4"
    code, _out, err = run(capsys, "video", folder, "-o", video, *M, "--fps", "12", "--json")
    assert code == 0, err
    p = probe(video)
    assert p.frames == 8 and p.rate == 12 and (p.width, p.height) == (56, 40)
    back = tmp_path / "back"
    code, _, err = run(capsys, "video", folder, "-o", back, *M)
    assert code == 0, err
    assert sorted(x.name for x in back.iterdir()) == sorted(f"shot{i}.png" for i in (1, 2, 3, 4, 5, 6, 7, 10))


def test_variable_frame_rate_and_subtitles_survive_in_mkv(tmp_path, capsys):
    srt = tmp_path / "subs.srt"
    srt.write_text(SRT)
    pts = [0, 40, 80, 200, 210, 300, 420, 433]
    src = make_clip(tmp_path / "in.mkv", pts=pts, time_base=Fraction(1, 1000), subtitles=srt)
    dst = tmp_path / "out.mkv"
    code, _, err = run(capsys, "video", src, "-o", dst, *M)
    assert code == 0, err
    a, b = probe(src), probe(dst)
    assert b.pts_seconds == pytest.approx([t / 1000 for t in pts], abs=1e-6)
    assert b.streams == a.streams == ["video h264", "audio aac", "subtitle srt"]
    assert b.packets["subtitle"] == a.packets["subtitle"] and b.packets["audio"] == a.packets["audio"]


def test_start_and_duration_cut_every_stream(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=25)
    dst = tmp_path / "part.mp4"
    code, _out, err = run(capsys, "video", src, "-o", dst, *M, "--start", "0.2", "--duration", "0.4", "--json")
    assert code == 0, err
    a, b = probe(src), probe(dst)
    assert b.frames == 10  # frames at 0.20 .. 0.56 s
    assert b.pts_seconds[0] == pytest.approx(0.0) and b.duration == pytest.approx(0.4)
    audio = b.packets["audio"]
    assert 0 < len(audio) < len(a.packets["audio"])
    first = a.packets["audio"].index(audio[0])
    assert a.packets["audio"][first : first + len(audio)] == audio  # a run of the input's packets, unchanged
    assert all(-1e-6 <= t < 0.4 for t in b.packet_times["audio"])


def test_compare_writes_a_before_after_video(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=4, audio=False)
    code, out, err = run(capsys, "video", src, "-o", tmp_path / "out.mp4", *M, "--compare", "side", "--json")
    assert code == 0, err
    path = Path(json.loads(out)["compare"])
    assert path == tmp_path / "out_compare_side.mp4"
    p = probe(path)
    assert p.frames == 4 and (p.width, p.height) == (2 * 64 + 8, 48)


def test_temporal_runs_and_reports_flicker(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=6, audio=False)
    code, out, err = run(capsys, "video", src, "-o", tmp_path / "out.mp4", *M, "--temporal", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["temporal"] is True and record["frames"] == 6
    assert 0 < record["still_fraction"] <= 1 and record["flicker_output"] >= 0


def test_odd_sizes_are_cropped_to_even_with_a_warning(tmp_path, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((33, 45, 3), 60 * i, np.uint8)).save(folder / f"{i}.png")
    code, _out, err = run(capsys, "video", folder, "-o", tmp_path / "odd.mp4", *M)
    assert code == 0, err
    assert "44x32" in err
    p = probe(tmp_path / "odd.mp4")
    assert (p.width, p.height, p.frames) == (44, 32, 3)


def test_unreadable_input_is_one_line_and_exit_1(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    dst = tmp_path / "out.mp4"
    code, _out, err = run(capsys, "video", bad, "-o", dst, *M)
    assert code == 1
    assert err.strip().count("\n") == 0 and "broken.mp4" in err and err.startswith("error:")
    assert not dst.exists() and leftovers(tmp_path) == []
    code, _, err = run(capsys, "video", tmp_path / "missing.mp4", "-o", dst, *M)
    assert code == 1 and "missing.mp4: no such file" in err


def test_a_stream_the_container_cannot_hold_is_a_usage_error(tmp_path, capsys):
    srt = tmp_path / "subs.srt"
    srt.write_text(SRT)
    src = make_clip(tmp_path / "in.mkv", frames=4, subtitles=srt)
    dst = tmp_path / "out.mp4"
    code, _, err = run(capsys, "video", src, "-o", dst, *M)
    assert code == 2 and "subtitle" in err and ".mkv" in err
    assert not dst.exists() and leftovers(tmp_path) == []


def test_an_existing_output_is_left_alone(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=2, audio=False)
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"keep me")
    code, out, err = run(capsys, "video", src, "-o", dst, *M, "--json")
    assert code == 0 and json.loads(out)["status"] == "skipped"
    assert dst.read_bytes() == b"keep me"
    code, _, err = run(capsys, "video", src, "-o", dst, *M, "--overwrite")
    assert code == 0, err
    assert probe(dst).frames == 2


def test_without_pyav_it_says_how_to_install(tmp_path, capsys, monkeypatch):
    src = make_clip(tmp_path / "in.mp4", frames=2, audio=False)
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    code, _, err = run(capsys, "video", src, "-o", tmp_path / "out.mp4", *M)
    assert code == 2
    assert "pip install 'derain-cli[video]'" in err


def test_default_model_is_s2vd_fetched_through_the_registry(tmp_path, capsys, monkeypatch):
    """No -m: S2VD, installed from a mirror like any peer (sha256 checked), chunks over the clip."""
    weights = shared_path("weights", "S2VD", "derainer_rho05.pt")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "s2vd-ntu.pt").symlink_to(weights)
    monkeypatch.setenv("DERAIN_MIRROR", str(mirror))
    src = make_clip(tmp_path / "in.mp4", frames=5, size=(32, 24))
    code, out, err = run(capsys, "video", src, "-o", tmp_path / "out.mp4", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["model"] == "s2vd:ntu" and record["frames"] == 5
    assert probe(tmp_path / "out.mp4").packets["audio"] == probe(src).packets["audio"]
