"""The per-model lock that makes concurrent processes fetch the same weights once.

A ``filelock.FileLock`` (``flock`` on POSIX, ``msvcrt`` locking on Windows) on
``<cache>/weights/.locks/<arch>--<variant>.lock``: the operating system drops it when its process
dies, so a crashed download never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import filelock

from ..errors import WeightsError
from ._layout import lock_path, makedirs
from ._source import ModelWeights

# How long a process waits for another one that is fetching the same weights.
LOCK_TIMEOUT = 900.0


@contextlib.contextmanager
def model_lock(model: ModelWeights, timeout: float | None = None) -> Iterator[None]:
    """Hold the per-model lock that guards fetching, importing and removing its weights."""
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    path = lock_path(model)
    makedirs(path.parent)
    lock = filelock.FileLock(str(path), timeout=timeout)
    try:
        lock.acquire(poll_interval=0.1)
    except filelock.Timeout:
        raise WeightsError(
            f"{model.name}: another derain process has been fetching these weights for over "
            f"{timeout:g} s (lock {path}); wait for it to finish and try again"
        ) from None
    try:
        yield
    finally:
        lock.release()
