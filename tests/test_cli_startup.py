"""`derain --help` and `--version` must not import torch (they answer in well under a second)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e  # a fresh interpreter: the only way to see what an import pulls in


def test_cli_module_does_not_import_torch():
    code = ("import sys; import derain_cli.cli as c; c.main(['--version']);"
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("derain ")


def test_help_does_not_import_torch():
    code = ("import sys; import derain_cli.cli as c; rc = c.main(['--help']);"
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout
