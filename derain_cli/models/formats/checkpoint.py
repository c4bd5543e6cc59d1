"""Telling checkpoint formats apart and loading PyTorch and safetensors files safely."""

from __future__ import annotations

import contextlib
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

from ...errors import WeightsError, one_line


def _is_safetensors(path: Path) -> bool:
    if path.suffix.lower() == ".safetensors":
        return True
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < n <= path.stat().st_size - 8


def checkpoint_format(path: Path | str) -> str | None:
    """'safetensors', 'torch' (zip or legacy pickle) or None for anything else (a folder, a TF file)."""
    path = Path(path)
    if not path.is_file():
        return None
    if _is_safetensors(path):
        return "safetensors"
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04"):
        with contextlib.suppress(zipfile.BadZipFile, OSError), zipfile.ZipFile(path) as zf:
            if any(n.endswith("data.pkl") for n in zf.namelist()):
                return "torch"
        return None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle: torch's legacy format
        return "torch"
    return None


def read_checkpoint(path: Path | str, name: Path | str | None = None) -> Any:
    """Load a weights file without executing code: safetensors, or torch.load(weights_only=True).

    ``name``: the file named in error messages (default ``path``), e.g. the user's file when
    ``path`` is its copy in the cache.
    """
    path = Path(path)
    name = path if name is None else name
    if not path.is_file():
        raise WeightsError(f"{name}: no such weights file")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:
            raise WeightsError(f"{name}: not a readable safetensors file ({one_line(e)})") from e
    import pickle

    import torch

    try:
        return torch.load(str(path), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found is None:
            raise _unreadable(name, e) from e
        raise WeightsError(
            f"{name}: not a plain weights file: it holds Python objects besides tensors (it needs "
            f"{found.group(1)}), and derain never runs code from checkpoint files"
        ) from e
    except Exception as e:
        raise _unreadable(name, e) from e


def _unreadable(path: Path | str, e: BaseException) -> WeightsError:
    return WeightsError(f"{path}: not a readable PyTorch or safetensors weights file ({_torch_reason(e)})")


def _torch_reason(e: BaseException) -> str:
    """The informative part of a torch.load error (without its advice to load unsafely)."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    text = " ".join(text.split())
    first = re.split(r"(?<=[a-z0-9])\. ", text, maxsplit=1)[0].rstrip(".")
    return one_line(first) if first else type(e).__name__

