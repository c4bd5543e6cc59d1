"""Reading checkpoint files without running code from them.

* ``checkpoint_format`` tells safetensors, PyTorch (zip or legacy pickle) and anything else apart
  by content, not by file name.
* ``read_checkpoint`` loads safetensors or ``torch.load(weights_only=True)``: a checkpoint that
  needs to run Python code to load is refused.
* ``safetensors_io``: the metadata of files written by ``derain export``, and writing converted
  state dicts.
* ``tf_checkpoint``: TensorFlow 1/2 Saver checkpoints, read without TensorFlow (MSPFN's release).
"""

from __future__ import annotations

from .checkpoint import checkpoint_format, read_checkpoint

__all__ = ["checkpoint_format", "read_checkpoint"]
