"""Peak memory: what `derain bench` reports in its `peak MB` column."""

from __future__ import annotations

import mmap
import time

import numpy as np
import pytest
import torch

from derain_cli._memory import PeakMemory, current_rss_bytes, process_peak_rss_mb

pytestmark = pytest.mark.skipif(current_rss_bytes() == 0, reason="no /proc/self/statm on this platform")


def test_a_short_lived_allocation_on_the_cpu_is_seen():
    before = current_rss_bytes() / 2**20
    with PeakMemory("cpu") as peak:
        block = mmap.mmap(-1, 96 * 2**20)  # fresh pages, never memory the allocator already holds
        np.frombuffer(block, np.uint8)[:] = 1  # touched: 96 MiB more resident
        deadline = time.monotonic() + 10  # the sampling thread may be slow to run on a busy machine
        while peak.mb - before < 80 and time.monotonic() < deadline:
            time.sleep(0.01)
        block.close()  # gone before the block ends: only the sampling can have seen it
    assert peak.kind == "rss"
    assert peak.mb - before > 80
    assert process_peak_rss_mb() >= peak.mb - 1


def test_without_an_allocation_the_peak_stays_near_the_start():
    block = np.ones(64 * 2**20, np.uint8)  # resident before the block starts
    with PeakMemory(torch.device("cpu")) as peak:
        time.sleep(0.03)
    assert abs(peak.mb - current_rss_bytes() / 2**20) < 32
    del block


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_allocator_peak_of_the_block():
    device = torch.device("cuda")
    before = torch.cuda.memory_allocated(device) / 2**20
    with PeakMemory(device) as peak:
        x = torch.empty(64 * 2**20, dtype=torch.uint8, device=device)
        del x
    assert peak.kind == "cuda" and 64 <= peak.mb - before < 66
