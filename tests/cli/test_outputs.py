"""Where outputs go and what protects them: own outputs never derained again, collisions, -o,
unwritable folders, a full disk, and temporary files of a killed run (issue 19)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from tests.cli.conftest import M, write_png


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


STOPPED = "stopped with {n} image(s) left: fix this and run the same command again to go on"
needs_permissions = pytest.mark.skipif(
    os.name == "nt" or (hasattr(os, "geteuid") and os.geteuid() == 0),
    reason="needs a file system that enforces folder permissions on this user (not root, not Windows)")


# -- 1. a run never derains its own outputs --------------------------------------------------------------
def test_derain_star_twice_does_not_derain_its_outputs(derain, tmp_path):
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", seed=1)
    assert derain(*sorted(tmp_path.glob("*.png")), *M).code == 0
    r = derain(*sorted(tmp_path.glob("*.png")), *M)  # the shell's `derain *.png`, run again
    assert r.code == 0, r.stderr
    assert files_in(tmp_path) == ["a.png", "a_derained.png", "b.png", "b_derained.png"]
    assert f"{tmp_path / 'a_derained.png'}: skipped, the output of {tmp_path / 'a.png'}" in r.err_lines
    # another output format next time: the .png outputs are still recognised by their names
    r = derain(*sorted(tmp_path.glob("*.png")), *M, "--format", "jpg", "--json")
    assert r.code == 0, r.stderr
    assert files_in(tmp_path) == ["a.png", "a_derained.jpg", "a_derained.png", "b.png", "b_derained.jpg",
                                  "b_derained.png"]
    assert [rec["status"] for rec in r.records()] == ["ok", "skipped", "ok", "skipped"]


def test_an_output_whose_input_is_gone_is_still_recognised_by_its_suffix(derain, tmp_path):
    write_png(tmp_path / "a.png")
    assert derain(tmp_path / "a.png", *M).code == 0
    (tmp_path / "a.png").unlink()
    r = derain(tmp_path / "a_derained.png", *M)
    assert r.code == 0, r.stderr
    assert r.err_lines == [f"{tmp_path / 'a_derained.png'}: skipped, its name ends with the suffix _derained "
                           "(an output of derain; give another --suffix to derain it)"]
    assert files_in(tmp_path) == ["a_derained.png"]
    r = derain(tmp_path / "a_derained.png", *M, "--suffix", "_again")
    assert r.code == 0 and files_in(tmp_path) == ["a_derained.png", "a_derained_again.png"]


def test_batch_into_its_own_folder_three_times(derain, tmp_path):
    src = tmp_path / "s"
    write_png(src / "a.png")
    write_png(src / "sub" / "b.png", seed=1)
    for run in range(3):
        r = derain("batch", src, "--out", src, "--suffix", "_d", "-r", *M)
        assert r.code == 0, (run, r.stderr)
    assert files_in(src) == ["a.png", "a_d.png", "sub/b.png", "sub/b_d.png"]
    assert r.err_lines == [f"{src}: 2 image(s) are outputs of derain and are not derained again (-v lists them)"]
    r = derain("batch", src, "--out", src, "--suffix", "_d", "-r", *M, "-v")
    assert f"{src / 'a_d.png'}: skipped, the output of {src / 'a.png'}" in r.err_lines


def test_an_input_that_is_another_inputs_output_is_not_derained(derain, tmp_path):
    """`derain a.png clean/a.png -o clean --overwrite`: clean/a.png is a.png's output, not an input."""
    a = write_png(tmp_path / "a.png", (40, 30))
    theirs = write_png(tmp_path / "clean" / "a.png", (20, 10), seed=5)
    r = derain(a, theirs, *M, "-o", tmp_path / "clean", "--overwrite", "--json")
    assert r.code == 0, r.stderr
    skipped, done = sorted(r.records(), key=lambda rec: rec["status"] == "ok")
    assert skipped == {**skipped, "input": str(theirs), "status": "skipped"}
    assert done["input"] == str(a) and Image.open(theirs).size == (40, 30)


# -- 6. two inputs, one output name -------------------------------------------------------------------------
def test_name_collisions_are_errors_before_anything_runs(derain, tmp_path):
    src = tmp_path / "in"
    write_png(src / "a.png")
    Image.new("RGB", (16, 16), (200, 10, 10)).save(src / "a.jpg")
    write_png(src / "b.png", seed=2)
    for extra in ((), ("--overwrite",)):
        r = derain("batch", src, "--out", tmp_path / "out", "--format", "png", *M, *extra)
        assert r.code == 1, r.stderr
        assert r.err_lines == [
            "2 file(s) failed:",
            f"  {src / 'a.jpg'}: its output {tmp_path / 'out' / 'a.png'} would also be the output of "
            f"{src / 'a.png'}; rename one of them (neither is derained)",
            f"  {src / 'a.png'}: its output {tmp_path / 'out' / 'a.png'} would also be the output of "
            f"{src / 'a.jpg'}; rename one of them (neither is derained)",
        ]
        assert files_in(tmp_path / "out") == ["b.png"]


def test_name_collisions_of_files(derain, tmp_path):
    a, b = write_png(tmp_path / "x" / "a.png"), write_png(tmp_path / "y" / "a.png", seed=1)
    c = write_png(tmp_path / "c.png", seed=2)
    r = derain(a, b, c, *M, "-o", tmp_path / "out")
    assert r.code == 1
    assert r.err_lines == [
        f"error: {a}: its output {tmp_path / 'out' / 'a.png'} would also be the output of {b}; "
        "rename one of them (neither is derained)",
        f"error: {b}: its output {tmp_path / 'out' / 'a.png'} would also be the output of {a}; "
        "rename one of them (neither is derained)",
        "error: 2 of 3 file(s) failed",
    ]
    assert files_in(tmp_path / "out") == ["c.png"]


# -- 9. -o and --tile-overlap -------------------------------------------------------------------------------
def test_an_image_file_name_with_several_inputs_is_a_usage_error(derain, tmp_path):
    a, b = write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png", seed=1)
    r = derain(a, b, *M, "-o", tmp_path / "new.jpg")
    assert r.code == 2
    assert r.err_lines[-1] == (f"Error: Invalid value for -o: {tmp_path / 'new.jpg'} is a file name "
                               "(.jpg), but there are 2 inputs: give a folder")
    assert files_in(tmp_path) == ["a.png", "b.png"]


def test_output_folder_dot_uses_the_suffix(derain, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "a.png")
    r = derain("a.png", *M, "-o", ".")
    assert r.code == 0, r.stderr
    assert files_in(tmp_path) == ["a.png", "a_derained.png"]
    r = derain("a.png", *M, "-o", "clean", "--suffix", "_v2")  # a given --suffix counts in any folder
    assert r.code == 0, r.stderr
    assert files_in(tmp_path / "clean") == ["a_v2.png"]


def test_single_input_into_a_folder_with_a_dot_in_its_name(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    r = derain(src, *M, "-o", f"{tmp_path / 'run.v2'}/")
    assert r.code == 0, r.stderr
    assert files_in(tmp_path / "run.v2") == ["a.png"]
    (tmp_path / "plain").write_text("a file")
    r = derain(src, *M, "-o", f"{tmp_path / 'plain'}/")
    assert r.code == 2
    assert r.err_lines[-1] == f"Error: Invalid value for -o: {tmp_path / 'plain'} is a file, not a folder"


def test_tile_overlap_must_be_less_than_half_the_tile(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    r = derain(src, *M, "--tile", "128", "--tile-overlap", "200")
    assert (r.code, r.err_lines) == (2, ["error: --tile-overlap 200 must be less than half of --tile 128 "
                                         "(at most 63)"])
    assert files_in(tmp_path) == ["a.png"]
    assert derain(src, *M, "--tile", "128", "--tile-overlap", "63").code == 0


# -- 3. unwritable outputs ----------------------------------------------------------------------------------
def test_an_unwritable_output_folder_stops_before_the_model_loads(derain, tmp_path, monkeypatch):
    from derain_cli import engine

    loaded = []
    monkeypatch.setattr(engine.Engine, "load", lambda self: loaded.append(self) or pytest.fail("model loaded"))
    write_png(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "out").write_text("a file where the output folder should be")
    r = derain("batch", tmp_path / "in", "--out", tmp_path / "in" / "out" / "new", *M)
    assert r.code == 2
    assert r.err_lines == [f"error: {tmp_path / 'in' / 'out' / 'new'}: cannot create the output folder "
                           "(Not a directory)"]
    assert not loaded


@needs_permissions
def test_a_read_only_output_folder_is_found_before_anything_runs(derain, tmp_path):
    write_png(tmp_path / "in" / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        r = derain("batch", tmp_path / "in", "--out", locked / "new", *M)
        assert (r.code, r.err_lines) == (2, [f"error: {locked / 'new'}: cannot create the output folder "
                                             "(Permission denied)"])
        r = derain("batch", tmp_path / "in", "--out", locked, *M)
        assert (r.code, r.err_lines) == (2, [f"error: {locked}: cannot write in the output folder "
                                             "(Permission denied)"])
        r = derain(tmp_path / "in" / "a.png", *M, "-o", locked / "a.png")
        assert r.code == 2 and r.err_lines[0].startswith(f"error: {locked}: cannot write in the output folder")
    finally:
        locked.chmod(stat.S_IRWXU)
    assert files_in(locked) == []


def test_a_read_only_file_system_is_found_before_the_model_loads(derain, tmp_path, monkeypatch):
    from derain_cli import _atomic, engine

    monkeypatch.setattr(engine.Engine, "load", lambda self: pytest.fail("model loaded"))
    write_png(tmp_path / "in" / "a.png")
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(_atomic.os, "open", read_only)
    r = derain("batch", tmp_path / "in", "--out", tmp_path / "out", *M)
    assert (r.code, r.err_lines) == (2, [f"error: {tmp_path / 'out'}: cannot write in the output folder "
                                         "(Read-only file system)"])


def test_a_sub_folder_that_cannot_be_created_names_the_output(derain, tmp_path, monkeypatch):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_png(src / "a.png")
    write_png(src / "cam1" / "b.png", seed=1)
    write_png(src / "cam2" / "c.png", seed=2)
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == dst / "cam1":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    r = derain("batch", src, "--out", dst, "-r", *M)
    assert r.code == 1
    assert r.err_lines == [f"error: {dst / 'cam1' / 'b.png'}: cannot create the folder {dst / 'cam1'} "
                           f"(Permission denied); {STOPPED.format(n=1)}"]
    assert files_in(dst) == ["a.png"]


def test_a_full_disk_stops_the_batch(derain, tmp_path, monkeypatch):
    from derain_cli import _atomic, engine

    src, dst = tmp_path / "in", tmp_path / "out"
    for i in range(5):
        write_png(src / f"img{i}.png", seed=i)
    computed = []
    real = engine.Engine.derain_rgb
    monkeypatch.setattr(engine.Engine, "derain_rgb",
                        lambda self, rgb, **kw: computed.append(1) or real(self, rgb, **kw))
    writes = []

    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            writes.append(fd)
            if len(writes) > 2:  # the write probe and img0 fit, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(_atomic.os, "fsync", fsync)
    r = derain("batch", src, "--out", dst, *M)
    assert r.code == 1
    assert r.err_lines == [f"error: {dst / 'img1.png'}: cannot write (No space left on device); "
                           f"{STOPPED.format(n=3)}"]
    assert len(computed) == 2
    assert files_in(dst) == ["img0.png"]  # nor any temporary file


def test_a_full_disk_stops_a_run_of_files(derain, tmp_path, monkeypatch):
    from derain_cli import imaging

    files = [write_png(tmp_path / f"img{i}.png", seed=i) for i in range(3)]

    def disk_full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imaging, "write_image", disk_full)
    r = derain(*files, *M)
    assert r.code == 1
    assert r.err_lines == [f"error: {tmp_path / 'img0_derained.png'}: cannot write (No space left on device); "
                           f"{STOPPED.format(n=2)}"]


# -- 2. temporary files of a killed run ----------------------------------------------------------------------
def test_a_run_removes_temporary_files_a_killed_run_left(derain, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_png(src / "a.png")
    write_png(src / "sub" / "b.png", seed=1)
    (dst / "sub").mkdir(parents=True)
    left = [dst / ".a.png.0a1b2c3d.tmp", dst / "sub" / ".b.png.ffff0000.tmp"]
    for path in left:
        path.write_bytes(b"\x89PNG half of a file")
    kept = [dst / ".a.png.notours.tmp", dst / ".hidden", dst / "sub" / ".b.png.0A1B2C3D.tmp",
            dst / ".notes.txt.0a1b2c3d.tmp"]  # not a name of ours, or not a file we write
    for path in kept:
        path.write_bytes(b"not ours")
    r = derain("batch", src, "--out", dst, "-r", *M)
    assert r.code == 0, r.stderr
    assert files_in(dst) == sorted([p.relative_to(dst).as_posix() for p in kept] + ["a.png", "sub/b.png"])
    beside = tmp_path / "in" / ".a_derained.png.12345678.tmp"
    beside.write_bytes(b"")
    assert derain(src / "a.png", *M).code == 0
    assert not beside.exists()


# -- 8. exit codes: what the command line asks for is checked before anything runs ---------------------------
def test_a_missing_ground_truth_is_a_usage_error(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    r = derain(src, *M, "--gt", tmp_path / "missing.png")
    assert r.code == 2
    assert r.err_lines[-1] == f"Error: Invalid value for --gt: {tmp_path / 'missing.png'}: no such file"
    assert files_in(tmp_path) == ["a.png"]


def test_an_output_folder_that_is_a_file_is_a_usage_error(derain, tmp_path):
    src = write_png(tmp_path / "in" / "a.png")
    taken = tmp_path / "taken"
    taken.write_text("a file")
    r = derain("batch", src.parent, "--out", taken, *M)
    assert (r.code, r.err_lines) == (2, [f"error: {taken}: is a file, not a folder"])


def test_an_unknown_model_creates_no_output_folder(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    r = derain(src, "-m", "nosuch", "-o", f"{tmp_path / 'new'}/")
    assert r.code == 2 and not (tmp_path / "new").exists()
