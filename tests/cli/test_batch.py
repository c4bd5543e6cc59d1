"""`derain batch` in process: the mirrored tree, resuming, bad files, usage errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from derain_cli import imaging
from tests.cli.conftest import M, write_png


def make_tree(root: Path, n: int) -> list[Path]:
    """n small images, alternating between cam1/ and cam2/night/."""
    return [write_png(root / ("cam1" if i % 2 else "cam2/night") / f"img{i:02d}.png", (40, 30), seed=i)
            for i in range(n)]


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_batch_mirrors_the_tree_and_reports_bad_files(derain, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    make_tree(src, 4)
    broken = src / "cam1" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    r = derain("batch", src, "--out", dst, "-r", *M)
    assert r.code == 1
    assert files_in(dst) == ["cam1/img01.png", "cam1/img03.png", "cam2/night/img00.png", "cam2/night/img02.png"]
    assert r.err_lines[0] == "1 file(s) failed:"
    assert r.err_lines[1].startswith(f"  {broken}: ") and len(r.err_lines) == 2
    table = r.stdout
    assert "derain batch (testnet:random)" in table
    assert [cell.strip() for cell in table.splitlines()[-2].split("│")[1:4]] == ["4", "0", "1"]  # done skipped failed

    # rerun: everything good is skipped, the bad file is still reported, nothing is rewritten
    stamps = {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")}
    r = derain("batch", src, "--out", dst, "-r", *M, "--json")
    assert r.code == 1
    assert sorted(rec["status"] for rec in r.records()) == ["failed", "skipped", "skipped", "skipped", "skipped"]
    assert r.err_lines[-1].startswith(f"failed: {broken}: ")
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")} == stamps


def test_batch_without_recursive_and_with_glob(derain, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    make_tree(src, 2)
    write_png(src / "top.png")
    write_png(src / "top.jpg")
    r = derain("batch", src, "--out", dst, *M, "--glob", "*.png")
    assert r.code == 0, r.stderr
    assert files_in(dst) == ["top.png"]


def test_no_images_found_is_a_usage_error(derain, tmp_path):
    """Nothing to do is a mistake in the command (the wrong folder, a missing -r): exit 2, nothing created."""
    src = tmp_path / "in"
    write_png(src / "sub" / "a.png")
    r = derain("batch", src, "--out", tmp_path / "out", *M)
    assert (r.code, r.err_lines) == (2, [f"error: {src}: no images found (add --recursive for subfolders)"])
    r = derain("batch", src, "--out", tmp_path / "out", "-r", "--glob", "*.webp", *M)
    assert (r.code, r.err_lines) == (2, [f"error: {src}: no images match --glob '*.webp'"])
    (src / "sub" / "a.png").unlink()
    r = derain("batch", src, "--out", tmp_path / "out", "-r", *M)
    assert (r.code, r.err_lines) == (2, [f"error: {src}: no images found"])
    assert not (tmp_path / "out").exists()


HEIC_BYTES = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)


@pytest.mark.skipif(imaging.HEIF_AVAILABLE, reason="about a setup without the heif extra, which is installed here")
def test_a_heic_folder_without_the_extra_says_how_to_install_it(derain, tmp_path):
    src = tmp_path / "phone"
    for name in ("IMG_0001.HEIC", "IMG_0002.heic"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(HEIC_BYTES)
    r = derain("batch", src, "--out", tmp_path / "out", *M)
    assert (r.code, r.err_lines) == (2, [f"error: {src}: 2 HEIC file(s) and no other images; "
                                         f"{imaging.HEIF_HINT}"])
    assert not (tmp_path / "out").exists()
    write_png(src / "a.png")  # among other images, each HEIC file is a failed input with the hint
    r = derain("batch", src, "--out", tmp_path / "out", *M)
    assert r.code == 1
    assert r.err_lines == ["2 file(s) failed:"] + [f"  {src / name}: {imaging.HEIF_HINT}"
                                                   for name in ("IMG_0001.HEIC", "IMG_0002.heic")]
    assert files_in(tmp_path / "out") == ["a.png"]


def test_glob_ignores_case(derain, tmp_path):
    src = tmp_path / "in"
    write_png(src / "IMG_0001.JPG")
    write_png(src / "cam" / "IMG_0002.Jpg", seed=1)
    write_png(src / "skip.png", seed=2)
    r = derain("batch", src, "--out", tmp_path / "out", "-r", "--glob", "*.jpg", *M)
    assert r.code == 0, r.stderr
    assert files_in(tmp_path / "out") == ["IMG_0001.jpg", "cam/IMG_0002.jpg"]


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs symbolic links")
def test_symlinked_folders_are_followed_once_and_broken_links_reported(derain, tmp_path):
    src, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    write_png(src / "a.png")
    write_png(elsewhere / "b.png", seed=1)
    (src / "linked").symlink_to(elsewhere, target_is_directory=True)
    (src / "loop").symlink_to(src, target_is_directory=True)  # would never end without loop protection
    (src / "gone.png").symlink_to(tmp_path / "deleted.png")
    r = derain("batch", src, "--out", tmp_path / "out", "-r", *M)
    assert r.code == 1
    assert files_in(tmp_path / "out") == ["a.png", "linked/b.png"]
    assert r.err_lines == ["1 file(s) failed:",
                           f"  {src / 'gone.png'}: broken symbolic link (its target {tmp_path / 'deleted.png'} "
                           "does not exist)"]


def test_not_a_folder_is_a_usage_error(derain, tmp_path):
    r = derain("batch", tmp_path / "missing", "--out", tmp_path / "o", *M)
    assert (r.code, r.err_lines) == (2, [f"error: {tmp_path / 'missing'}: not a folder"])
    assert not (tmp_path / "o").exists()


def test_unknown_model_stops_before_anything_is_written(derain, tmp_path):
    make_tree(tmp_path / "in", 2)
    r = derain("batch", tmp_path / "in", "--out", tmp_path / "out", "-m", "nosuch")
    assert r.code == 2
    assert r.err_lines == ["error: unknown model 'nosuch'; run `derain models list` to see all models"]
    assert not (tmp_path / "out").exists()


def test_output_folder_is_the_input_folder(derain, tmp_path):
    make_tree(tmp_path / "in", 1)
    r = derain("batch", tmp_path / "in", "--out", tmp_path / "in", *M)
    assert r.code == 2
    assert r.err_lines == [f"error: {tmp_path / 'in'}: output folder is the input folder; "
                           "give --suffix or another --out"]


def test_interrupted_batch_says_how_to_resume(derain, tmp_path, monkeypatch):
    from derain_cli import pipeline

    make_tree(tmp_path / "in", 3)
    real = pipeline.derain_file
    calls = []

    def second_one_interrupted(engine, src, *args, **kwargs):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(engine, src, *args, **kwargs)

    monkeypatch.setattr(pipeline, "derain_file", second_one_interrupted)
    r = derain("batch", tmp_path / "in", "--out", tmp_path / "out", "-r", *M)
    assert (r.code, r.err_lines) == (130, ["error: interrupted; run the same command again to resume"])
    assert len(files_in(tmp_path / "out")) == 1
