"""Device and precision choice: explicit devices never fall back silently."""

from __future__ import annotations

import pytest
import torch

from derain_cli.device import choose_device, choose_dtype, configure_threads
from derain_cli.errors import DeviceError, UsageError


def test_auto_and_cpu():
    assert choose_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert choose_device("auto").type == "cuda"
    else:
        assert choose_device("auto").type in ("cpu", "mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_missing_cuda_is_an_error(spec):
    with pytest.raises(DeviceError, match="CUDA"):
        choose_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu"])
def test_bad_device_text(spec):
    with pytest.raises((UsageError, DeviceError)):
        choose_device(spec)


def test_precision():
    cpu = torch.device("cpu")
    assert choose_dtype("auto", cpu) == torch.float32
    assert choose_dtype("fp32", cpu) == torch.float32
    with pytest.raises(UsageError):
        choose_dtype("fp16", cpu)
    with pytest.raises(UsageError):
        choose_dtype("fp8", cpu)


def test_threads_from_environment(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("DERAIN_THREADS", "1")
    assert configure_threads() == 1 and torch.get_num_threads() == 1
    torch.set_num_threads(before)
