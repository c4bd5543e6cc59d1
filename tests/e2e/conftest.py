"""Helpers for running the installed `derain` executable in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def derain_executable() -> str:
    exe = Path(sys.executable).with_name("derain")
    if exe.exists():
        return str(exe)
    found = shutil.which("derain")
    if not found:
        pytest.skip("the `derain` executable is not installed (pip install -e .)")
    return found


class DerainRunner:
    def __init__(self, home: Path):
        self.env = dict(os.environ)
        self.env.update({
            "DERAIN_HOME": str(home),
            "DERAIN_PLUGINS": "tests.tinynet",
            "DERAIN_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        })
        self.exe = derain_executable()

    def __call__(self, *args, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([self.exe, *map(str, args)], capture_output=True, text=True, env=self.env,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([self.exe, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env, stdin=subprocess.DEVNULL, **kwargs)


@pytest.fixture
def derain(tmp_path_factory) -> DerainRunner:
    return DerainRunner(tmp_path_factory.mktemp("e2e_home"))
