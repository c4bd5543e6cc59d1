"""Device and precision choice: explicit devices never fall back silently.

What the command line makes of them (a bad --device, --threads, DERAIN_THREADS) is tested in
tests/cli/test_run.py and tests/cli/test_bench_doctor.py.
"""

from __future__ import annotations

import pytest
import torch

from derain_cli import device
from derain_cli.device import choose_device, choose_dtype, configure_threads
from derain_cli.errors import DeviceError, UsageError


@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(device, "mps_available", lambda: mps)
    assert choose_device("auto") == torch.device(expected)
    assert choose_device(" AUTO ") == torch.device(expected)  # as typed on a command line
    assert choose_device("cpu") == torch.device("cpu")  # named: never another device


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_missing_cuda_is_an_error(spec):
    with pytest.raises(DeviceError, match="CUDA"):
        choose_device(spec)


def test_precision():
    cpu = torch.device("cpu")
    assert choose_dtype("auto", cpu) == torch.float32
    assert choose_dtype("fp32", cpu) == torch.float32
    with pytest.raises(UsageError):
        choose_dtype("fp16", cpu)
    with pytest.raises(UsageError):
        choose_dtype("fp8", cpu)


def test_threads_default_is_the_cores_capped_at_eight(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("DERAIN_THREADS", raising=False)
    try:
        for cores, expected in ((2, 2), (8, 8), (64, 8)):
            monkeypatch.setattr(device.os, "cpu_count", lambda c=cores: c)
            assert configure_threads() == expected and torch.get_num_threads() == expected
        monkeypatch.setenv("DERAIN_THREADS", "lots")  # not a number: the default, not a crash
        assert configure_threads() == 8
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("capability,expected", [((9, 0), torch.bfloat16), ((8, 0), torch.bfloat16),
                                                 ((7, 5), torch.float16), ((7, 0), torch.float16)])
def test_auto_precision_on_cuda_uses_bf16_only_where_the_gpu_has_it(monkeypatch, capability, expected):
    """A T4 or V100 emulates bf16 (slowly) though torch.cuda.is_bf16_supported() says yes: auto takes fp16."""
    asked = []

    def fake_capability(device=None):
        asked.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", fake_capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    gpu = torch.device("cuda", 1)
    assert choose_dtype("auto", gpu) == expected
    assert asked == [gpu]  # the chosen GPU, not the current one
    assert choose_dtype("auto", gpu, half_safe=False) == torch.float32
    assert choose_dtype("fp32", gpu) == torch.float32
