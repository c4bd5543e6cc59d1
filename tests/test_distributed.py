"""`derain batch --engine ray`: the same files, bytes, records and report as the local batch.

The tests marked slow start one Ray instance with 2 CPUs for the module (Ray Data installed by the
`ray` or `test` extra; skipped without it). The others need no Ray: the pool arithmetic, the worker
class run in this process, and the CLI without Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from derain_cli import Derainer
from derain_cli.distributed import _Worker, pool_shape
from derain_cli.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
MODEL = "testnet:random"
TILE = 64  # smaller than most images: the tiled path runs, identically on both engines


def _subprocess_env(home: Path) -> dict:
    env = dict(os.environ, DERAIN_HOME=str(home), DERAIN_PLUGINS="tests.tinynet")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def _photo(path: Path, seed: int, size=(96, 80), exif: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if exif:
        tags = Image.Exif()
        tags[ExifTags.Base.Make] = "RainCam"
        tags[ExifTags.Base.Model] = "Drizzle 7"
        image.save(path, exif=tags)
    else:
        image.save(path)


def _files(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden ones too) by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- without Ray ------------------------------------------------------------------------------------
def test_pool_shape_follows_the_cluster(monkeypatch):
    monkeypatch.delenv("DERAIN_THREADS", raising=False)
    gpus = {"CPU": 32.0, "GPU": 4.0}
    assert pool_shape(gpus) == (4, 1.0, 1.0)  # one worker per GPU
    assert pool_shape(gpus, gpus_per_worker=0.5) == (8, 1.0, 0.5)  # two per GPU
    assert pool_shape(gpus, device="cpu") == (8, 4.0, 0.0)  # CPU workers of 4 threads
    assert pool_shape({"CPU": 2.0}) == (1, 2.0, 0.0)
    assert pool_shape({"CPU": 2.0}, workers=2) == (2, 1.0, 0.0)
    monkeypatch.setenv("DERAIN_THREADS", "2")
    assert pool_shape({"CPU": 8.0}) == (4, 2.0, 0.0)
    with pytest.raises(UsageError, match="3 x 1 CPUs"):
        pool_shape({"CPU": 2.0}, workers=3, threads=1)
    with pytest.raises(UsageError, match="GPUs"):
        pool_shape({"CPU": 2.0}, gpus_per_worker=1)


def test_worker_derains_like_derain_file_and_gives_up_on_a_file_that_kills_it(testnet, tmp_path):
    """The worker class in this process: same bytes as Derainer.derain_file; a file whose earlier
    attempts all killed their worker is reported failed without another try."""
    _photo(tmp_path / "in" / "a.jpg", 1, exif=True)
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    options = {"model": testnet, "device": "cpu", "tile": TILE, "threads": 1}
    files = {"format": None, "quality": None, "suffix": "", "compare": None, "overwrite": False,
             "attempts_folder": str(attempts)}
    worker = _Worker(options, files)
    job = [{"index": 0, "src": str(tmp_path / "in" / "a.jpg"), "dst": str(tmp_path / "out" / "a.jpg"),
            "compare_dir": None}]
    (record,) = worker({"job": [json.dumps(job)]})["record"]
    assert json.loads(record)["result"]["status"] == "ok"
    Derainer(testnet, device="cpu", tile=TILE, threads=1).derain_file(tmp_path / "in" / "a.jpg", tmp_path / "a.jpg")
    assert (tmp_path / "out" / "a.jpg").read_bytes() == (tmp_path / "a.jpg").read_bytes()

    (attempts / "1").write_bytes(b"...")  # three earlier starts, each ended by a dead worker
    job = [{"index": 1, "src": str(tmp_path / "in" / "a.jpg"), "dst": str(tmp_path / "out" / "b.jpg"),
            "compare_dir": None}]
    result = json.loads(worker({"job": [json.dumps(job)]})["record"][0])["result"]
    assert result["status"] == "failed" and "died on each of 3 attempts" in result["error"]
    assert not (tmp_path / "out" / "b.jpg").exists()


def test_worker_that_cannot_set_up_stops_the_batch_with_its_error(testnet, tmp_path):
    worker = _Worker({"model": testnet, "device": "cuda:97"}, {"attempts_folder": str(tmp_path)})
    (record,) = worker({"job": [json.dumps([{"index": 0, "src": "x", "dst": "y", "compare_dir": None}])]})["record"]
    fatal = json.loads(record)["fatal"]
    assert fatal["exit_code"] == 2 and "cuda:97" in fatal["message"]


def test_a_cluster_address_that_does_not_answer_is_a_usage_error():
    from derain_cli.distributed import _check_reachable

    with pytest.raises(UsageError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        _check_reachable("127.0.0.1:1")  # Ray itself would retry for minutes
    with pytest.raises(UsageError, match="expected auto, HOST:PORT"):
        _check_reachable("nonsense")


def test_engine_ray_without_ray_is_a_usage_error(tmp_path):
    (tmp_path / "in").mkdir()
    code = ("import sys; sys.modules['ray'] = None; from derain_cli.cli import main; "  # as if not installed
            f"sys.exit(main(['batch', {str(tmp_path / 'in')!r}, '--out', {str(tmp_path / 'out')!r}, "
            "'--engine', 'ray']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env(tmp_path))
    assert r.returncode == 2, r.stderr
    assert "pip install 'derain-cli[ray]'" in r.stderr


def test_ray_options_need_engine_ray(tmp_path, capsys):
    from derain_cli.cli import main

    (tmp_path / "in").mkdir()
    assert main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--workers", "2"]) == 2
    assert "--engine ray" in capsys.readouterr().err


def test_local_batch_never_imports_ray(tmp_path):
    _photo(tmp_path / "in" / "a.png", 2)
    code = ("import sys; from derain_cli.cli import main; "
            "assert 'ray' not in sys.modules, 'import derain_cli.cli imported ray'; "
            f"rc = main(['batch', {str(tmp_path / 'in')!r}, '--out', {str(tmp_path / 'out')!r}, '-m', {MODEL!r}, "
            "'-q']); assert 'ray' not in sys.modules, 'a local batch imported ray'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "a.png").is_file()


# -- on a Ray instance -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance with 2 CPUs for the module; its workers can import tests.tinynet."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'derain-cli[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'derain-cli[ray]')")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), saved]))  # workers inherit it
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


@pytest.fixture
def ray_env(ray_instance, monkeypatch):
    """What the driver hands to its workers: the tests-only model is a plug-in there too."""
    monkeypatch.setenv("DERAIN_PLUGINS", "tests.tinynet")
    return ray_instance


def _tree(root: Path) -> None:
    """Nested folders, two formats, EXIF, and one file that is not an image."""
    _photo(root / "a.jpg", 10, exif=True)
    _photo(root / "b.png", 11, size=(60, 100))
    _photo(root / "cam1" / "c.jpg", 12, exif=True)
    _photo(root / "cam1" / "night" / "d.png", 13)
    _photo(root / "cam2" / "e.jpg", 14, size=(64, 64))
    (root / "cam2" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")


@pytest.mark.slow
def test_ray_batch_writes_the_local_batch_bytes(ray_env, testnet, tmp_path):
    from derain_cli.distributed import RayBatch

    _tree(tmp_path / "in")
    for out in ("local", "ray"):  # an output that exists already: skipped and left alone by both
        (tmp_path / out / "cam1").mkdir(parents=True)
        (tmp_path / out / "cam1" / "c.jpg").write_bytes(b"finished earlier")
    local = Derainer(testnet, device="cpu", tile=TILE, threads=1).derain_folder(tmp_path / "in", tmp_path / "local")
    seen = []
    report = RayBatch(testnet, device="cpu", tile=TILE, workers=2).derain_folder(
        tmp_path / "in", tmp_path / "ray", on_result=seen.append)

    assert report.counts == local.counts == {"ok": 4, "skipped": 1, "failed": 1}
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")  # same names, same bytes, no leftovers
    assert [r.input for r in report.results] == [r.input for r in local.results]  # plan order
    assert sorted(r.input for r in seen) == sorted(r.input for r in local.results)  # each reported once
    (bad,) = report.failed
    assert bad.error == local.failed[0].error and bad.error.startswith(str(tmp_path / "in" / "cam2" / "broken.jpg"))
    assert {r.device for r in report.results if r.status == "ok"} == {"cpu"}


@pytest.mark.slow
def test_cli_ray_json_records_and_a_rerun_that_skips_everything(ray_env, testnet, tmp_path, capsys):
    from derain_cli.cli import main

    _tree(tmp_path / "in")
    broken = tmp_path / "in" / "cam2" / "broken.jpg"
    args = ["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "-r", "-m", testnet, "--tile", str(TILE),
            "--engine", "ray", "--workers", "2", "--json"]
    assert main(args) == 1  # the broken file
    captured = capsys.readouterr()
    first = {r["input"]: r for r in map(json.loads, captured.out.splitlines())}  # stdout: JSON records only
    assert len(first) == 6 and first[str(broken)]["status"] == "failed"
    assert f"failed: {broken}: " in captured.err
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert len(done) == 5

    broken.unlink()
    assert main(args) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in again] == ["skipped"] * 5
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file()} == done


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(ray_env, testnet, tmp_path, monkeypatch):
    from derain_cli.distributed import RayBatch

    for i in range(6):
        _photo(tmp_path / "in" / f"sub{i % 2}" / f"p{i}.jpg", 20 + i, exif=True)
    marker = tmp_path / "worker-died"
    monkeypatch.setenv("DERAIN_TEST_WORKER_EXIT", f"2:{marker}")  # TEST-ONLY hook: die after the 2nd file
    report = RayBatch(testnet, device="cpu", tile=TILE, workers=2).derain_folder(tmp_path / "in", tmp_path / "ray")
    assert marker.exists(), "the test hook did not kill a worker"
    assert report.counts == {"ok": 6, "skipped": 0, "failed": 0}
    assert len({r.input for r in report.results}) == 6

    Derainer(testnet, device="cpu", tile=TILE, threads=1).derain_folder(tmp_path / "in", tmp_path / "local")
    outputs = _files(tmp_path / "ray")
    assert outputs == _files(tmp_path / "local")  # complete, no temporary or duplicate files
    for name in outputs:
        with Image.open(tmp_path / "ray" / name) as image:
            image.load()


@pytest.mark.slow
def test_ray_batch_makes_the_local_batch_checks_before_anything_runs(ray_env, testnet, tmp_path):
    """Own outputs set aside, name collisions failed, an unwritable --out refused: as locally (issue 19)."""
    from derain_cli.distributed import RayBatch

    src = tmp_path / "in"
    _photo(src / "a.jpg", 30)
    _photo(src / "a.png", 31)  # a.jpg and a.png both want a_d.png
    _photo(src / "b.png", 32)
    _photo(src / "b_d.png", 33)  # an output of an earlier run into this folder
    options = {"format": "png", "suffix": "_d"}
    report = RayBatch(testnet, device="cpu", tile=TILE, workers=1).derain_folder(src, src, **options)
    assert report.counts == {"ok": 0, "skipped": 1, "failed": 2}  # b.png: b_d.png exists
    assert [r.input for r in report.failed] == [str(src / "a.jpg"), str(src / "a.png")]
    assert list(report.own_outputs) == [src / "b_d.png"]
    assert sorted(p.name for p in src.iterdir()) == ["a.jpg", "a.png", "b.png", "b_d.png"]
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        RayBatch(testnet, device="cpu", tile=TILE, workers=1).derain_folder(src, tmp_path / "taken")
