"""safetensors files of our own: metadata of ``derain export`` files and converted state dicts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import ModelError


def read_metadata(path: Path | str) -> dict[str, str]:
    """The string metadata of a safetensors file; ModelError naming the file if it is unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad file
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None


def save_state_dict(state: Mapping[str, Any], path: Path | str, metadata: Mapping[str, str] | None = None) -> None:
    """Write a state dict as safetensors (contiguous copies: views of one storage cannot be saved)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    save_file(tensors, str(path), metadata=dict(metadata) if metadata else None)
