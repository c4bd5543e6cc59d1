"""Tiled inference: agreement with whole-image runs, blending, OOM fallback, tile choice, parsing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from derain_cli import tiling
from derain_cli.errors import DerainError
from derain_cli.models import LoadedModel
from derain_cli.tiling import choose_tile, parse_tile, run_tiled
from tests.tinynet import ARCHITECTURE, TinyNet

GiB = 1024**3


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


class WideNet(nn.Module):
    """Dilated convolutions: receptive field radius 12 (vs TinyNet's 3), zero padding everywhere."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.convs = nn.ModuleList([
            nn.Conv2d(3, 12, 3, padding=1),
            nn.Conv2d(12, 12, 3, padding=2, dilation=2),
            nn.Conv2d(12, 12, 3, padding=4, dilation=4),
            nn.Conv2d(12, 12, 3, padding=4, dilation=4),
            nn.Conv2d(12, 3, 3, padding=1),
        ])

    def forward(self, x):
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        return x + torch.tanh(h)


@pytest.fixture(scope="module")
def tiny_runner() -> LoadedModel:
    torch.manual_seed(1234)
    return LoadedModel(TinyNet().eval(), ARCHITECTURE.contract)


@pytest.fixture(scope="module")
def wide_runner() -> LoadedModel:
    return LoadedModel(WideNet().eval(), ARCHITECTURE.contract)


# -- agreement with the whole-image output ---------------------------------------------------


@pytest.mark.parametrize("tile", [64, 100, 128])
@pytest.mark.parametrize("size", [(200, 312), (173, 251)])  # multiple of the size multiple; odd
def test_tinynet_tiled_matches_whole(tiny_runner, tile, size):
    x = _image(*size)
    whole = run_tiled(tiny_runner, x, tile=None)
    tiled = run_tiled(tiny_runner, x, tile=tile)
    assert tiled.shape == x.shape and tiled.dtype == torch.float32
    assert _psnr(tiled, whole) >= 50


@pytest.mark.parametrize("tile", [96, 160])
def test_wide_receptive_field_tiled_matches_whole(wide_runner, tile):
    x = _image(241, 330, seed=1)
    whole = run_tiled(wide_runner, x, tile=0)
    tiled = run_tiled(wide_runner, x, tile=tile, overlap=32)
    assert _psnr(tiled, whole) >= 50


def test_overlap_and_border_alignment_matter(wide_runner):
    # Both halves of the design are needed: without overlap the tile seams show, and without
    # matching the network's padding at the bottom/right border (size_multiple=1) the border does.
    x = _image(241, 330, seed=1)
    whole = run_tiled(wide_runner, x, tile=0)
    good = _psnr(run_tiled(wide_runner, x, tile=96, overlap=32), whole)
    assert good > _psnr(run_tiled(wide_runner, x, tile=96, overlap=0), whole) + 15
    assert good > _psnr(run_tiled(wide_runner, x, tile=96, overlap=32, size_multiple=1), whole) + 15


def test_tile_sides_follow_the_size_multiple(tiny_runner):
    shapes = []

    def fn(t):
        shapes.append(tuple(t.shape[-2:]))
        return tiny_runner(t)

    fn.contract = tiny_runner.contract  # size multiple 4: 241 = 1 (mod 4), 330 = 2 (mod 4)
    run_tiled(fn, _image(241, 330), tile=96)
    assert set(shapes) == {(93, 94)}


def test_tile_larger_than_image_is_one_call():
    calls = []

    def fn(t):
        calls.append(tuple(t.shape))
        return t * 2

    x = _image(50, 70)
    y = run_tiled(fn, x, tile=512)
    assert calls == [(1, 3, 50, 70)]
    assert torch.equal(y, x * 2)


def test_tiles_are_full_size_and_cover_the_image():
    shapes = []

    def fn(t):
        shapes.append(tuple(t.shape[-2:]))
        return t

    run_tiled(fn, _image(150, 333), tile=128, overlap=32)
    assert set(shapes) == {(128, 128)}  # no slivers: the last tile moves inward
    assert len(shapes) == 2 * 4  # rows: 150 = 2 tiles; columns: 333 = 4 tiles (overlaps >= 32)


@pytest.mark.parametrize("tile,overlap", [(64, 32), (100, 16), (128, 0), (90, 50)])
def test_blending_weights_sum_to_one(tile, overlap):
    x = _image(173, 251)
    ident = run_tiled(lambda t: t.clone(), x, tile=tile, overlap=overlap)
    assert torch.allclose(ident, x, atol=1e-6, rtol=0)
    const = run_tiled(lambda t: torch.full_like(t, 0.37), x, tile=tile, overlap=overlap)
    assert torch.allclose(const, torch.full_like(x, 0.37), atol=1e-6, rtol=0)


def test_output_is_a_normal_writable_tensor(tiny_runner):
    # LoadedModel returns inference tensors; callers clamp the result in place.
    for tile in (None, 64):
        y = run_tiled(tiny_runner, _image(80, 90), tile=tile)
        y.clamp_(0, 1)
        assert y.device.type == "cpu"
    x = _image(40, 50)
    kept = x.clone()
    run_tiled(lambda t: t, x, tile=None).add_(1)  # an identity fn must not expose the input
    assert torch.equal(x, kept)


def test_progress_counts_every_tile():
    seen = []
    run_tiled(lambda t: t, _image(100, 150), tile=64, overlap=16, progress=lambda d, n: seen.append((d, n)))
    assert seen == [(i, 6) for i in range(1, 7)]


def test_wrong_output_size_is_reported():
    with pytest.raises(ValueError, match="same size"):
        run_tiled(lambda t: t[..., :-1, :], _image(100, 100), tile=64)


# -- out of memory ---------------------------------------------------------------------------


class _Limited:
    """Identity-like fn that raises the given error for tiles with more than `limit` pixels."""

    def __init__(self, limit: int, error: Exception | None = None):
        self.limit, self.sizes = limit, []
        self.error = error or torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def __call__(self, t):
        self.sizes.append(tuple(t.shape[-2:]))
        if t.shape[-2] * t.shape[-1] > self.limit:
            raise self.error
        return 1 - t


def test_oom_halves_the_tile_and_retries():
    x = _image(200, 300)
    fn = _Limited(100 * 100)
    seen = []
    y = run_tiled(fn, x, tile=256, overlap=16, progress=lambda d, n: seen.append((d, n)))
    assert fn.sizes[0] == (200, 256)  # the first attempt
    assert fn.sizes[1] == (128, 128)  # halved twice: 128x128 also fails
    assert set(fn.sizes[2:]) == {(64, 64)}  # then 64 holds for all remaining tiles
    assert torch.allclose(y, 1 - x, atol=1e-6)
    assert seen[-1][0] == seen[-1][1] == len(fn.sizes) - 2


def test_oom_after_some_tiles_keeps_their_work():
    x = _image(130, 400)

    class FailOnce:
        calls = 0

        def __call__(self, t):
            self.calls += 1
            if self.calls == 3 and t.shape[-1] > 64:
                raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                                   "can't allocate memory: you tried to allocate 52428800 bytes")
            return t * 0.5

    y = run_tiled(FailOnce(), x, tile=128, overlap=16)
    assert torch.allclose(y, x * 0.5, atol=1e-6)


def test_whole_image_oom_falls_back_to_tiles():
    x = _image(120, 200)
    fn = _Limited(150 * 150, RuntimeError("not enough memory: you tried to allocate 1 GB"))
    y = run_tiled(fn, x, tile=None)
    assert fn.sizes[:2] == [(120, 200), (100, 100)]  # half the longer side
    assert torch.allclose(y, 1 - x, atol=1e-6)


def test_oom_with_tile_beyond_the_image_starts_from_half_the_image():
    fn = _Limited(100 * 100)
    run_tiled(fn, _image(120, 180), tile=4096, overlap=8)
    assert fn.sizes[:2] == [(120, 180), (90, 90)]


def test_oom_below_min_tile_raises_clear_error():
    fn = _Limited(10)
    with pytest.raises(DerainError, match="out of memory even with 64x64 tiles"):
        run_tiled(fn, _image(100, 100), tile=64, min_tile=64)


def test_other_errors_are_not_taken_for_oom():
    def fn(t):
        raise RuntimeError("Given groups=1, weight of size [8, 3, 3, 3], expected input to have 3 channels")

    with pytest.raises(RuntimeError, match="groups=1"):
        run_tiled(fn, _image(100, 100), tile=64)


# -- choosing a tile size --------------------------------------------------------------------


def _fake_free(monkeypatch, nbytes: int):
    monkeypatch.setattr(tiling, "free_memory_bytes", lambda device: nbytes)


CUDA = torch.device("cuda")  # only a name here: free memory is faked


def test_choose_tile_whole_image_when_it_fits(monkeypatch):
    _fake_free(monkeypatch, 3 * 4096 * 512 * 512)  # a third covers 512x512 pixels at 4096 B/px
    assert choose_tile(400, 600, 4096, CUDA) is None
    assert choose_tile(2000, 1000, 4096, CUDA) == 512


def test_choose_tile_half_precision_doubles_the_area(monkeypatch):
    _fake_free(monkeypatch, 3 * 4096 * 512 * 512)
    assert choose_tile(2000, 2000, 4096, CUDA, dtype_bytes=2) == 720  # floor(512 * sqrt 2 / 8) * 8


def test_choose_tile_respects_suggested(monkeypatch):
    _fake_free(monkeypatch, 256 * GiB)
    assert choose_tile(3000, 4000, 4096, CUDA) is None  # fits whole
    assert choose_tile(3000, 4000, 4096, CUDA, suggested=512) == 512
    assert choose_tile(500, 512, 4096, CUDA, suggested=512) is None  # no larger than the tile
    _fake_free(monkeypatch, 3 * 4096 * 256 * 256)
    assert choose_tile(3000, 4000, 4096, CUDA, suggested=512) == 256  # memory is the tighter bound


def test_choose_tile_clamps_to_range(monkeypatch):
    _fake_free(monkeypatch, 10 * 1024**2)
    assert choose_tile(1000, 1000, 4096, CUDA) == 128
    _fake_free(monkeypatch, 3 * 4096 * 6000 * 6000)
    assert choose_tile(10000, 10000, 4096, CUDA) == 4096


def test_choose_tile_cpu_leaves_room_for_the_image(monkeypatch):
    h, w = 3000, 3000
    _fake_free(monkeypatch, 3 * 4096 * 512 * 512 + h * w * 28)  # 28 B/px: input, output, weights
    assert choose_tile(h, w, 4096, "cpu") == 512
    assert choose_tile(h, w, 4096, CUDA) == 528  # no image-sized buffers on the device


GIB = 1024**3


def _fake_system_files(monkeypatch, tmp_path, files: dict[str, str]):
    """Make tiling read /proc/meminfo and /sys/fs/cgroup/* from ``files`` (absent ones do not exist)."""
    real_open = open

    def fake_open(path, *args, **kwargs):
        if str(path) in files:
            fake = tmp_path / str(path).strip("/").replace("/", "_")
            fake.write_text(files[str(path)])
            return real_open(fake, *args, **kwargs)
        if str(path).startswith(("/proc/", "/sys/")):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(tiling, "open", fake_open, raising=False)


MEMINFO_8G = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8388608 kB\n"


def test_free_memory_is_memavailable_without_a_cgroup_limit(monkeypatch, tmp_path):
    _fake_system_files(monkeypatch, tmp_path, {"/proc/meminfo": MEMINFO_8G, "/sys/fs/cgroup/memory.max": "max\n",
                                               "/sys/fs/cgroup/memory.current": str(GIB)})
    assert tiling.free_memory_bytes("cpu") == 8 * GIB
    assert choose_tile(1000, 1000, 4096, "cpu") == 832


def test_free_memory_is_capped_by_the_cgroup_limit(monkeypatch, tmp_path):
    """In a container limited to 2 GiB with 0.5 GiB in use, 1.5 GiB is free, whatever the host has."""
    _fake_system_files(monkeypatch, tmp_path, {"/proc/meminfo": MEMINFO_8G,
                                               "/sys/fs/cgroup/memory.max": f"{2 * GIB}\n",
                                               "/sys/fs/cgroup/memory.current": f"{GIB // 2}\n"})
    assert tiling.free_memory_bytes("cpu") == 3 * GIB // 2
    # and the automatic tile follows: a third of (1.5 GiB - the tiler's 28 MB of image buffers) at
    # 4096 B/px is a 358-px square, rounded down to a multiple of 8 (832 px without the limit)
    assert choose_tile(1000, 1000, 4096, "cpu") == 352


def test_a_cgroup_limit_above_the_host_memory_changes_nothing(monkeypatch, tmp_path):
    _fake_system_files(monkeypatch, tmp_path, {"/proc/meminfo": MEMINFO_8G,
                                               "/sys/fs/cgroup/memory.max": f"{64 * GIB}\n",
                                               "/sys/fs/cgroup/memory.current": f"{GIB}\n"})
    assert tiling.free_memory_bytes("cpu") == 8 * GIB


def test_a_full_cgroup_leaves_no_memory(monkeypatch, tmp_path):
    _fake_system_files(monkeypatch, tmp_path, {"/proc/meminfo": MEMINFO_8G,
                                               "/sys/fs/cgroup/memory.max": f"{GIB}\n",
                                               "/sys/fs/cgroup/memory.current": f"{GIB + 4096}\n"})
    assert tiling.free_memory_bytes("cpu") == 0


def test_without_meminfo_the_os_is_asked(monkeypatch, tmp_path):
    _fake_system_files(monkeypatch, tmp_path, {})
    pages = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(tiling.os, "sysconf", lambda name: pages[name])
    assert tiling.free_memory_bytes("cpu") == 1000 * 4096


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text,value", [("auto", "auto"), (" AUTO ", "auto"), ("0", 0), ("512", 512),
                                        ("64", 64)])
def test_parse_tile(text, value):
    assert parse_tile(text) == value


@pytest.mark.parametrize("text", ["", "big", "-1", "12", "512px", "1.5"])
def test_parse_tile_rejects(text):
    with pytest.raises(ValueError, match="use 'auto', 0 \\(whole image\\)"):
        parse_tile(text)


# -- free memory on CUDA (torch.cuda faked: runs without a GPU) ------------------------------


def _fake_cuda(monkeypatch, free: int, total: int, reserved: int, allocated: int, fraction: float | None):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=None: (free, total))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index=None: reserved)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda index=None: allocated)
    if fraction is None:
        monkeypatch.delattr(torch.cuda, "get_per_process_memory_fraction", raising=False)
    else:
        monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda index=None: fraction)


def test_free_memory_cuda_counts_the_allocators_unused_cache(monkeypatch):
    _fake_cuda(monkeypatch, free=100 * GiB, total=140 * GiB, reserved=6 * GiB, allocated=2 * GiB, fraction=1.0)
    assert tiling.free_memory_bytes("cuda") == 104 * GiB
    assert tiling.free_memory_bytes(torch.device("cuda", 0)) == 104 * GiB
    _fake_cuda(monkeypatch, free=100 * GiB, total=140 * GiB, reserved=6 * GiB, allocated=2 * GiB, fraction=None)
    assert tiling.free_memory_bytes("cuda") == 104 * GiB  # an older torch that cannot report a cap


def test_free_memory_cuda_respects_the_process_memory_fraction(monkeypatch):
    """Under set_per_process_memory_fraction the card looks empty to cudaMemGetInfo, but the
    allocator stops at fraction * total: the tile must be chosen for that, not for the card."""
    _fake_cuda(monkeypatch, free=130 * GiB, total=140 * GiB, reserved=1 * GiB, allocated=GiB // 2,
               fraction=3 / 140)
    cap = int(140 * GiB * (3 / 140))
    assert abs(cap - 3 * GiB) <= 1
    assert tiling.free_memory_bytes("cuda") == cap - GiB // 2
    # DRSformer-like 6000 B/px at 2048x2048 in bf16: tiles, not the whole image the card would take
    assert choose_tile(2048, 2048, 6000, "cuda", dtype_bytes=2) == 544  # sqrt(2.5 GiB / 3 / 3000 B) -> 544
    _fake_cuda(monkeypatch, free=130 * GiB, total=140 * GiB, reserved=4 * GiB, allocated=4 * GiB,
               fraction=3 / 140)
    assert tiling.free_memory_bytes("cuda") == 0  # already over the cap


def test_cublas_and_cudnn_allocation_failures_count_as_out_of_memory():
    fn = _Limited(100 * 100, RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
    x = _image(200, 200)  # fails whole, then works in 100x100 tiles
    assert torch.allclose(run_tiled(fn, x, tile=None), 1 - x, atol=1e-6)
    fn = _Limited(100 * 100, RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    assert torch.allclose(run_tiled(fn, x, tile=None), 1 - x, atol=1e-6)
