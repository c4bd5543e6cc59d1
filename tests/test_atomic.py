"""Atomic writes: a file appears complete or not at all, and a failed write keeps the old file."""

from __future__ import annotations

import os

import pytest

from derain_cli._atomic import atomic_write, atomic_write_bytes
from derain_cli.errors import ImageError


def test_atomic_write_cleans_up_after_an_encoder_failure(tmp_path):
    destination = tmp_path / "out.jpg"

    def half_then_crash(f):
        f.write(b"\xff\xd8\xff partial")
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        atomic_write(destination, half_then_crash)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_bytes_replaces_a_file(tmp_path):
    report = tmp_path / "report.json"
    report.write_text("old")
    atomic_write_bytes(report, b'{"psnr": 31.2}')
    assert report.read_bytes() == b'{"psnr": 31.2}'
    assert list(tmp_path.iterdir()) == [report]


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    report = tmp_path / "report.json"
    report.write_text("the previous report")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ImageError, match=r"report\.json: cannot write \(No space left on device\)"):
        atomic_write_bytes(report, b"new")
    assert report.read_text() == "the previous report"
    assert list(tmp_path.iterdir()) == [report]


def test_writing_into_a_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(ImageError, match=r"cannot write: folder .*missing does not exist"):
        atomic_write_bytes(tmp_path / "missing" / "report.json", b"{}")


@pytest.mark.skipif(os.name == "nt", reason="POSIX file locks")
def test_stale_temporary_files_are_removed_but_not_those_being_written(tmp_path):
    """A temporary file of a killed writer goes; one that a live writer holds stays."""
    from derain_cli._atomic import remove_stale_temps

    stale = tmp_path / ".a.png.0a1b2c3d.tmp"
    stale.write_bytes(b"half")
    other = [tmp_path / ".a.png.tmp", tmp_path / "a.png.0a1b2c3d.tmp", tmp_path / ".a.txt.0a1b2c3d.tmp"]
    for path in other:
        path.write_bytes(b"not ours")
    seen = []

    def write_slowly(f):
        (live,) = [p for p in tmp_path.iterdir() if p.name.startswith(".b.png.")]
        seen.append(live)
        assert remove_stale_temps(tmp_path, {".png"}) == [stale]  # not the one this writer holds
        assert live.exists()
        f.write(b"done")

    atomic_write(tmp_path / "b.png", write_slowly)
    assert (tmp_path / "b.png").read_bytes() == b"done" and len(seen) == 1
    assert remove_stale_temps(tmp_path, {".png"}) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in other] + ["b.png"])
