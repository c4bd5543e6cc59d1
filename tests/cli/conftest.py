"""In-process `derain` runs: the real Typer app through Typer's CliRunner.

Runs take a few milliseconds instead of the seconds a subprocess needs to import torch, so every
command's argument handling and exit codes are tested here; tests/e2e keeps a few runs of the
installed executable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from derain_cli.cli import app


@dataclass
class Run:
    """What a user sees of one `derain` run."""

    code: int
    stdout: str
    stderr: str
    exception: BaseException | None
    torch_threads: int  # torch's CPU thread count when the run ended

    @property
    def err_lines(self) -> list[str]:
        return self.stderr.splitlines()

    @property
    def out_lines(self) -> list[str]:
        return self.stdout.splitlines()

    def records(self) -> list[dict]:
        """The --json records: every stdout line must be one JSON object."""
        return [json.loads(line) for line in self.out_lines]


class Derain:
    """`derain(*args)` runs the command line in this process and returns a `Run`."""

    def __init__(self) -> None:
        self.runner = CliRunner()
        self.env: dict[str, str | None] = {}

    def __call__(self, *args: object) -> Run:
        threads = torch.get_num_threads()
        try:
            result = self.runner.invoke(app, [str(a) for a in args], env=self.env, prog_name="derain")
            after = torch.get_num_threads()
        finally:
            torch.set_num_threads(threads)  # a run may set it (--threads); tests stay on one thread
        exc = result.exception
        if exc is not None and not isinstance(exc, SystemExit):
            raise exc  # a crash is a bug: show its traceback, never pass it off as an exit code
        return Run(result.exit_code, result.stdout, result.stderr, exc, after)


@pytest.fixture
def derain(testnet) -> Derain:
    """The command line, with the tests-only model `testnet` registered."""
    return Derain()


M = ("-m", "testnet")


def write_png(path: Path, size: tuple[int, int] = (32, 24), seed: int = 0) -> Path:
    """A small random RGB PNG (size is width, height)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path
