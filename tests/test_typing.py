"""The package stays clean under mypy with the project's configuration (``[tool.mypy]`` in pyproject.toml).

A type error is a bug a reader cannot see: an optional bias used as a tensor, a container's layer
taken for the convolution it should hold, a forward whose signature breaks its base class. mypy runs
in a fresh interpreter exactly as a developer would run it (``mypy`` from the repository root, which
reads the files and settings from pyproject.toml), so a new error fails here with mypy's own report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[dev]')")


@pytest.mark.slow
def test_package_is_clean_under_mypy():
    if not (REPO / "pyproject.toml").is_file() or not (REPO / "derain_cli").is_dir():
        pytest.skip("needs the source tree (pyproject.toml and derain_cli/ beside tests/)")
    run = subprocess.run([sys.executable, "-m", "mypy", "--no-color-output", "--no-error-summary"],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    report = (run.stdout + run.stderr).strip()
    assert run.returncode == 0, f"mypy found type errors:\n{report}"
