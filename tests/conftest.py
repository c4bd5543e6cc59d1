"""Shared test fixtures.

`../shared` (next to the repository) holds reference material: specs, golden outputs, real weights
and real photographs. Tests that need it use the `shared` fixture, which skips with a clear reason
where it is absent (a user's clone).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DERAIN_SHARED", REPO.parent / "shared")).resolve()
SHARED_REASON = f"reference material not found at {SHARED} (set DERAIN_SHARED or put shared/ beside the repo)"

# One thread: on a busy 2-core machine OpenMP spin-waiting makes more threads much slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DERAIN_THREADS", "1")


def _limit_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


_limit_threads()


def shared_path(*parts: str) -> Path:
    """Path inside ../shared; skips the calling test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{SHARED_REASON}: missing {'/'.join(parts)}")
    return path


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(SHARED_REASON)
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own weights cache and never the user's."""
    home = tmp_path_factory.mktemp("derain_home")
    monkeypatch.setenv("DERAIN_HOME", str(home))
    yield home


@pytest.fixture
def testnet():
    """The tests-only network `testnet:random`, registered for one test (removed again afterwards)."""
    from derain_cli.models import REGISTRY

    with REGISTRY.registered("tests.tinynet"):
        yield "testnet:random"
