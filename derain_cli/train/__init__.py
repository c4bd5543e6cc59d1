"""Training: rain synthesis, the training loop, and export of trained weights.

    synth_folder(clean_dir, out_dir, preset, per_image, seed)   # derain synth
    train(arch, out, data, synth, config_file, resume)          # derain train
    export_run(run_dir, out_file)                               # derain export

Importing this package imports torch (through the loop); the CLI imports it only for these commands.
"""

from .config import TrainConfig
from .export import export_run, read_metadata
from .loop import TrainResult, load_run_config, resume_run, start_run, train
from .synth import PRESET_NAMES, add_rain, synth_folder

__all__ = [
    "PRESET_NAMES",
    "TrainConfig",
    "TrainResult",
    "add_rain",
    "export_run",
    "load_run_config",
    "read_metadata",
    "resume_run",
    "start_run",
    "synth_folder",
    "train",
]
