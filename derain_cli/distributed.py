"""Folder batches on Ray: the same files, names, metadata, resume and report as the local batch.

    from derain_cli.distributed import RayBatch
    batch = RayBatch("derainlite", address="auto", gpus_per_worker=0.5)
    report = batch.derain_folder("rainy/", "clean/", recursive=True)

``RayBatch.derain_folder`` takes the options of ``Derainer.derain_folder`` and returns the same
FolderReport. This process (the driver) plans the (input, output) pairs as the local batch does and
answers "skipped" itself for outputs that exist, so a finished batch reruns without starting Ray.
It hands the other files to Ray Data: every worker builds one Derainer when it starts and runs
``Derainer.derain_file`` on its files, reading and writing them itself, so formats, EXIF/ICC/XMP
and atomic writes are those of the local batch; only small result records travel back. Inputs and
outputs must therefore be paths that every worker reaches under the same name: a local disk for a
one-machine instance, a shared filesystem on a cluster (no s3:// or gs:// URIs).

A worker that dies is restarted by Ray, and its unfinished files run again. The driver sends only
files whose outputs did not exist when it planned, so a worker rewrites (atomically, whole) any
output it finds: one finished by a worker that died before reporting it. A file gets one record
however often it ran. Workers count the attempts at each file in a hidden folder of the output
tree (removed at the end), so a file that kills its worker every time (a decoder crash, the
kernel's out-of-memory killer) is reported failed after ``ATTEMPTS`` tries and fails alone.

Ray is an optional dependency (``pip install 'derain-cli[ray]'``), imported only when a batch runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

from . import imaging, settings
from .errors import DerainError, UsageError

INSTALL_HINT = "--engine ray needs Ray Data: pip install 'derain-cli[ray]'"
#: Threads (and Ray CPUs) of one CPU worker when neither --threads nor DERAIN_THREADS says: a
#: network's speed grows little beyond 4 threads, so more, narrower workers use a node better.
CPU_THREADS_PER_WORKER = 4
#: At most this many files in one Ray Data block: a worker that dies repeats at most one block,
#: and small blocks spread the files evenly over the workers.
FILES_PER_BLOCK = 16
#: Starts of one file (the first included) that may end in a dead worker before it counts as failed.
ATTEMPTS = 3
#: Hidden folder in the output tree where workers count attempts; hidden folders are never inputs.
ATTEMPTS_FOLDER_PREFIX = ".derain-ray-attempts-"
SKIPPED_MESSAGE = "output exists (use --overwrite to replace it)"  # the local batch's words


class WorkerSetupError(DerainError):
    """A worker could not build its Derainer (unknown device, missing weights...): the batch stops."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class PoolShape(NamedTuple):
    """How many Ray workers run, and what each one reserves."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float


class RayBatch:
    """Derain folders with a pool of Ray workers; the options are those of ``Derainer``.

    address: None starts a Ray instance on this machine with all its CPUs and GPUs; ``auto`` joins
        the cluster started here with ``ray start``; ``ray://HOST:PORT`` or ``HOST:PORT`` join
        another. When this process has already called ``ray.init``, that connection is used as is.
    workers: size of the worker pool (default: one per GPU, or one per CPU_THREADS_PER_WORKER CPUs).
    gpus_per_worker: GPUs each worker reserves; fractions share a GPU (0.5 = two workers per GPU).
        Default: 1 when the cluster has GPUs and ``device`` is not ``cpu``, else 0.
    threads: CPU threads of each CPU worker (default: DERAIN_THREADS, else the cluster's CPUs
        divided among the workers, at most 8); a CPU worker reserves that many Ray CPUs.

    ``name`` is the model's registry name (``arch:variant``), as ``Derainer.name``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "auto",
        precision: str = "auto",
        tile: str | int | None = "auto",
        tile_overlap: int | None = None,
        threads: int | None = None,
        max_pixels: int | None = imaging.DEFAULT_MAX_PIXELS,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float | None = None,
    ):
        _import_ray()
        if workers is not None and workers < 1:
            raise UsageError("--workers must be at least 1")
        if gpus_per_worker is not None and gpus_per_worker < 0:
            raise UsageError("--gpus-per-worker must be 0 or more")
        if gpus_per_worker and device.lower() == "cpu":
            raise UsageError("--gpus-per-worker reserves GPUs that --device cpu would not use")
        if threads is not None and threads < 1:
            raise UsageError("--threads must be at least 1")
        from .api import Derainer

        # The driver never runs the network. Building a Derainer (without loading its weights)
        # checks the model name and the tile options with the local batch's messages; device and
        # precision are the workers' business: a worker that cannot honour them stops the batch.
        self.name = Derainer(model, device="cpu", tile=tile, tile_overlap=tile_overlap, threads=threads,
                             max_pixels=max_pixels).name
        self._derainer_options = {"model": model, "device": device, "precision": precision, "tile": tile,
                                  "tile_overlap": tile_overlap, "max_pixels": max_pixels}
        self.device = device
        self.threads = threads
        self.address = address
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker

    def derain_folder(
        self,
        src_dir: str | Path,
        dst_dir: str | Path,
        *,
        recursive: bool = True,
        glob: str | None = None,
        overwrite: bool = False,
        format: str | None = None,
        quality: int | None = None,
        suffix: str = "",
        compare: str | None = None,
        compare_dir: str | Path | None = None,
        progress: bool = False,
        on_result: Callable[[Any], None] | None = None,
    ):
        """Derain every image under ``src_dir`` into ``dst_dir`` (same tree) on Ray workers.

        Same arguments and FolderReport as ``Derainer.derain_folder``; ``on_result`` is called on
        this process, in the order files finish. The report lists files in plan order.
        """
        from .pipeline import FileResult, FolderReport, prepare_folder

        # the local batch's checks before any model runs (own outputs, collisions, writable --out)
        plan = prepare_folder(src_dir, dst_dir, recursive=recursive, glob=glob, format=format, suffix=suffix,
                              compare=compare, compare_dir=compare_dir)
        for collision in plan.collisions.values():
            if on_result:
                on_result(collision)
        pairs = plan.todo
        results: dict[int, FileResult] = {}
        bar = _progress_bar(len(pairs), enabled=progress)

        def record(index: int, result: FileResult) -> None:
            if index in results:  # a retried block may report a file again: keep the first record
                return
            results[index] = result
            if on_result:
                on_result(result)
            bar.update(1)

        try:
            jobs: list[list[dict[str, Any]]] = []  # files sharing an output name travel together
            for group in _group_by_output(pairs):
                dst = pairs[group[0]][1]
                if dst.exists() and not overwrite:
                    for index in group:
                        src = pairs[index][0]
                        record(index, FileResult(input=str(src), output=str(dst), status="skipped",
                                                 model=self.name, error=SKIPPED_MESSAGE))
                    continue
                jobs.append([{"index": index, "src": str(pairs[index][0]), "dst": str(dst),
                              "compare_dir": _compare_folder(pairs[index][0], src_dir, dst_dir, compare, compare_dir)}
                             for index in group])
            if jobs:
                with _ray_connection(self.address), _attempts_folder(Path(dst_dir)) as attempts:
                    file_options = {"format": format, "quality": quality, "suffix": suffix, "compare": compare,
                                    "overwrite": overwrite, "attempts_folder": str(attempts)}
                    for index, fields in self._run(jobs, file_options):
                        record(index, FileResult(**fields))
                for item in (item for job in jobs for item in job if item["index"] not in results):
                    lost = f"{item['src']}: no Ray worker reported it"
                    record(item["index"], FileResult(input=item["src"], output=item["dst"], status="failed",
                                                     model=self.name, error=lost))
        finally:
            bar.close()
        return FolderReport([*plan.collisions.values(), *(results[i] for i in range(len(pairs)))],
                            own_outputs=plan.own_outputs)

    # -- driver internals -----------------------------------------------------------------------
    def _run(self, jobs: list[list[dict]], file_options: dict) -> Iterator[tuple[int, dict]]:
        """(index, FileResult fields) for every file the workers finished, as they finish."""
        import ray
        import ray.data

        shape = pool_shape(ray.cluster_resources(), device=self.device, workers=self.workers,
                           gpus_per_worker=self.gpus_per_worker, threads=self.threads)
        options = dict(self._derainer_options)
        if shape.gpus_per_worker == 0:
            options["threads"] = int(shape.cpus_per_worker)
        blocks = min(len(jobs), max(4 * shape.workers, math.ceil(len(jobs) / FILES_PER_BLOCK)))
        with _quiet_ray_data():
            items = ray.data.from_items([{"job": json.dumps(job)} for job in jobs], override_num_blocks=blocks)
            records = items.map_batches(
                _Worker,
                fn_constructor_kwargs={"derainer_options": options, "file_options": file_options},
                batch_size=None,  # a whole block per call: the worker loops over its files
                compute=ray.data.ActorPoolStrategy(size=shape.workers),
                num_cpus=shape.cpus_per_worker,
                num_gpus=shape.gpus_per_worker,
                runtime_env={"env_vars": settings.worker_environment()},
            )
            for row in records.iter_rows():
                message = json.loads(row["record"])
                if "fatal" in message:
                    raise WorkerSetupError(message["fatal"]["message"], message["fatal"]["exit_code"])
                yield message["index"], message["result"]


def pool_shape(resources: dict[str, float], *, device: str = "auto", workers: int | None = None,
               gpus_per_worker: float | None = None, threads: int | None = None) -> PoolShape:
    """The worker pool for a cluster with these ``ray.cluster_resources()`` (see RayBatch for the defaults).

    Raises UsageError when the pool cannot fit the cluster as it is now: Ray would otherwise wait
    for resources that never come.
    """
    cluster_cpus = float(resources.get("CPU", 0))
    cluster_gpus = float(resources.get("GPU", 0))
    gpus = gpus_per_worker
    if gpus is None:
        gpus = 1.0 if cluster_gpus >= 1 and device.lower() != "cpu" else 0.0
    if gpus > 0:
        count = workers or int(cluster_gpus // gpus)
        cpus = float(threads or 1)  # decoding and encoding; the network runs on the GPU
        return _checked(PoolShape(max(count, 1), cpus, gpus), cluster_cpus, cluster_gpus)
    threads = threads or settings.threads()
    if workers:
        count = workers
        cpus = float(threads or max(1, min(8, int(cluster_cpus // workers))))
    else:
        cpus = float(threads or max(1, min(CPU_THREADS_PER_WORKER, int(cluster_cpus))))
        count = int(cluster_cpus // cpus)
    return _checked(PoolShape(max(count, 1), cpus, 0.0), cluster_cpus, cluster_gpus)


def _checked(shape: PoolShape, cluster_cpus: float, cluster_gpus: float) -> PoolShape:
    cpus, gpus = shape.cpus_per_worker, shape.gpus_per_worker
    needs = []
    if shape.workers * cpus > cluster_cpus:
        needs.append(f"{shape.workers} x {cpus:g} CPUs (it has {cluster_cpus:g})")
    if shape.workers * gpus > cluster_gpus + 1e-9:
        needs.append(f"{shape.workers} x {gpus:g} GPUs (it has {cluster_gpus:g})")
    if needs:
        raise UsageError("the Ray cluster cannot hold the workers: they need " + " and ".join(needs)
                         + "; lower --workers, --threads or --gpus-per-worker")
    return shape


class _Worker:
    """One Ray worker: builds its Derainer once, then derains the files of each batch it is given.

    Ray Data creates it from its class (``map_batches(_Worker, ...)``), so the model loads once per
    worker, not once per file. A setup failure is returned as a record rather than raised, so that
    the driver stops with the same one-line error (and exit code) a local batch would print.
    """

    def __init__(self, derainer_options: dict, file_options: dict):
        self._options = file_options
        self._files_done = 0
        self._setup_error: dict | None = None
        try:
            from .api import Derainer

            self._derainer = Derainer(**derainer_options)
            self._derainer.load()
        except DerainError as exc:
            self._setup_error = {"message": str(exc), "exit_code": exc.exit_code}
        except Exception as exc:  # noqa: BLE001 - e.g. a plug-in module missing on this node
            self._setup_error = {"message": f"a Ray worker could not load the model: {type(exc).__name__}: {exc}",
                                 "exit_code": 1}

    def __call__(self, batch: dict) -> dict:
        records = []
        for job in batch["job"]:
            for position, item in enumerate(json.loads(str(job))):
                records.append(json.dumps(self._derain(item, first_of_output=position == 0)))
        return {"record": records}

    def _derain(self, item: dict, first_of_output: bool) -> dict:
        if self._setup_error:
            return {"fatal": self._setup_error}
        opts = self._options
        if _count_attempt(Path(opts["attempts_folder"]), item["index"]) > ATTEMPTS:
            from .pipeline import FileResult

            result = FileResult(input=item["src"], output=item["dst"], status="failed", model=self._derainer.name,
                                device=str(self._derainer.device),
                                error=f"{item['src']}: its Ray worker died on each of {ATTEMPTS} attempts "
                                      "(a crash, or out of memory?)")
            return {"index": item["index"], "result": asdict(result)}
        # The driver sent this file because its output did not exist (or --overwrite): an output
        # here now was written by an earlier attempt that died before reporting, so write it
        # again. Later inputs with the same output name follow the user's choice, as locally.
        overwrite = first_of_output or opts["overwrite"]
        try:
            result = self._derainer.derain_file(item["src"], item["dst"], format=opts["format"],
                                                quality=opts["quality"], overwrite=overwrite,
                                                compare=opts["compare"], compare_dir=item["compare_dir"],
                                                suffix=opts["suffix"])
        except DerainError as exc:  # a usage error: the local batch stops on it too
            return {"fatal": {"message": str(exc), "exit_code": exc.exit_code}}
        self._files_done += 1
        _exit_if_a_test_asks(self._files_done)
        return {"index": item["index"], "result": asdict(result)}


def _count_attempt(folder: Path, index: int) -> int:
    """Record one more start of file ``index`` and return how many there have been, this one included.

    Appending one byte per start survives the worker's death, so a restarted worker knows how
    often the file was tried before; every worker of the pool sees the same folder.
    """
    fd = os.open(folder / str(index), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b".")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _exit_if_a_test_asks(files_done: int) -> None:
    """TEST-ONLY: die like a killed worker when DERAIN_TEST_WORKER_EXIT asks (see settings)."""
    hook = settings.test_worker_exit()
    if hook is None or files_done != hook[0]:
        return
    try:
        os.close(os.open(hook[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # it died once already
    os._exit(70)


# -- helpers ---------------------------------------------------------------------------------------
def _import_ray() -> None:
    """UsageError with the install command unless Ray Data can be imported."""
    try:
        import ray.data  # noqa: F401 - needs pyarrow and pandas, which plain `pip install ray` lacks
    except ImportError:
        raise UsageError(INSTALL_HINT) from None


def _group_by_output(pairs: list[tuple[Path, Path]]) -> list[list[int]]:
    """Indices of pairs grouped by output path, in plan order.

    Two inputs that map to one output (photo.jpg and photo.png with --format png) go to the same
    worker in plan order, so the first writes it and the next finds it, as in a local batch.
    """
    groups: dict[str, list[int]] = {}
    for index, (_, dst) in enumerate(pairs):
        groups.setdefault(str(dst), []).append(index)
    return list(groups.values())


def _compare_folder(src: Path, src_dir, dst_dir, compare: str | None, compare_dir) -> str | None:
    """Where a file's comparison image goes: the local batch's rule (an ``_compare`` tree beside the outputs)."""
    if not compare or compare == "none":
        return None
    base = Path(compare_dir) if compare_dir else Path(dst_dir) / "_compare"
    return str(base / src.relative_to(src_dir).parent)


@contextlib.contextmanager
def _attempts_folder(dst_dir: Path) -> Iterator[Path]:
    """A fresh hidden folder in the output tree for the workers' attempt counts, removed afterwards."""
    import secrets
    import shutil

    folder = dst_dir / f"{ATTEMPTS_FOLDER_PREFIX}{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"{dst_dir}: cannot create the output folder ({exc.strerror or exc})") from None
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _ray_connection(address: str | None) -> Iterator[None]:
    """Ray for the length of a batch: this process's connection if any, else one made and closed here."""
    import ray

    if ray.is_initialized():
        yield
        return
    # Ray's C++ side of this process logs an error-level line for every Ray Data actor pool
    # (ray-project/ray#53727, harmless here); real failures reach us as Python exceptions anyway.
    # (Ray then prints one info line saying that it read this variable.)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    # "local": a new instance with the CPUs and GPUs Ray detects here (it honours container limits),
    # even where RAY_ADDRESS is set or a `ray start` cluster runs on this machine.
    kwargs["address"] = address or "local"
    if address:
        _check_reachable(address)
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise UsageError(f"cannot join the Ray cluster at {address}: {exc}".splitlines()[0]) from None
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """UsageError unless HOST:PORT (or ray://HOST:PORT) answers: Ray itself would retry for minutes."""
    import socket

    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """No Ray Data progress bars or execution chatter (derain draws its own bar); restored afterwards."""
    import ray.data

    context = ray.data.DataContext.get_current()
    wanted = {"enable_progress_bars": False, "print_on_execution_start": False, "enable_auto_log_stats": False}
    saved = {name: getattr(context, name) for name in wanted if hasattr(context, name)}
    logger = logging.getLogger("ray.data")
    level = logger.level
    for name in saved:
        setattr(context, name, wanted[name])
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        logger.setLevel(level)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="derain (ray)", unit="img", disable=not (enabled and sys.stderr.isatty()),
                file=sys.stderr, leave=False)
