"""derain: remove rain from photographs with published deep deraining networks.

Importing this package is cheap: torch is imported only by the modules that need it.
"""

__version__ = "0.1.0"

__all__ = ["Derainer", "RayBatch", "__version__"]


def __getattr__(name):  # lazy so that `derain --version` never imports torch
    if name == "Derainer":
        from .api import Derainer

        return Derainer
    if name == "RayBatch":  # needs the optional Ray extra only when a batch is created
        from .distributed import RayBatch

        return RayBatch
    raise AttributeError(name)
