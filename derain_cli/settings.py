"""Every setting derain reads from the environment, in one place.

Each ``DERAIN_*`` variable is read here and nowhere else; the rest of the package asks these
functions. They read the environment on every call (nothing is cached), so a test or a long-lived
process that changes a variable sees the change at once. This module imports nothing heavy.

``ENVIRONMENT`` documents the variables; ``derain --help`` prints it as its epilogue and the README
repeats it.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = frozenset({"1", "true", "yes", "on"})

#: (variable, what it does), in the order ``derain --help`` lists them.
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("DERAIN_HOME", "cache folder for downloaded weights (default: the platform's user cache folder)"),
    ("DERAIN_OFFLINE", "1 = never use the network; missing weights are an error that says how to get them"),
    ("DERAIN_MIRROR", "folder, file:// or http(s):// URL holding weights files under their registry names"),
    ("DERAIN_THREADS", "CPU threads for the networks (default: the number of cores, at most 8)"),
    ("DERAIN_DEFAULT_MODEL", "model used when -m is not given (default: the built-in model)"),
    ("DERAIN_PLUGINS", "comma-separated Python modules that register extra architectures and models"),
)


def _text(name: str) -> str:
    return os.environ.get(name, "").strip()


def home() -> Path | None:
    """DERAIN_HOME as an absolute path, or None when unset (then the platform's cache folder is used)."""
    value = _text("DERAIN_HOME")
    return Path(value).expanduser().resolve() if value else None


def offline() -> bool:
    """Whether DERAIN_OFFLINE forbids network access."""
    return _text("DERAIN_OFFLINE").lower() in _TRUE


def mirror() -> str | None:
    """DERAIN_MIRROR (a folder, ``file://`` or ``http(s)://`` location), or None."""
    return _text("DERAIN_MIRROR") or None


def threads() -> int | None:
    """DERAIN_THREADS as a positive number, or None when unset or not a positive whole number."""
    value = _text("DERAIN_THREADS")
    return int(value) if value.isdigit() and int(value) > 0 else None


def default_model() -> str | None:
    """DERAIN_DEFAULT_MODEL, or None to use the built-in model."""
    return _text("DERAIN_DEFAULT_MODEL") or None


def plugins() -> list[str]:
    """The module names listed in DERAIN_PLUGINS."""
    return [name for name in (part.strip() for part in _text("DERAIN_PLUGINS").split(",")) if name]


def worker_environment() -> dict[str, str]:
    """The variables that worker processes elsewhere (Ray) need to behave as this process does.

    Every ``DERAIN_*`` variable set here (model, cache, mirror, plug-ins, threads) and the OpenMP
    wait policy. A worker on another machine does not share this shell's environment, so the
    Ray engine hands these over explicitly.
    """
    names = [name for name in os.environ if name.startswith("DERAIN_")] + ["OMP_WAIT_POLICY"]
    return {name: os.environ[name] for name in names if name in os.environ}


def test_worker_exit() -> tuple[int, Path] | None:
    """TEST-ONLY crash hook, never for users: ``DERAIN_TEST_WORKER_EXIT=N:MARKER``.

    A Ray worker that has just finished its Nth file exits at once without reporting it, the first
    time only (it creates MARKER to remember that it did). The tests use it to check that a worker
    dying mid-run leaves every output complete and none duplicated. None when unset or malformed.
    """
    count, _, marker = _text("DERAIN_TEST_WORKER_EXIT").partition(":")
    if not count.isdigit() or int(count) < 1 or not marker:
        return None
    return int(count), Path(marker)


def prefer_passive_openmp_wait() -> None:
    """Make idle OpenMP threads sleep instead of spin, unless the user chose otherwise.

    Spinning threads make a busy machine much slower (measured on 2 cores under load: PReNet at
    256x256 took 7.5 s with 2 spinning threads, 3.0 s with passive ones). Must run before torch is
    imported to take effect.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def help_epilogue(width: int | None = None) -> str:
    """The ENVIRONMENT table as text for ``--help``; descriptions wrap to ``width`` columns if given."""
    import textwrap

    name_width = max(len(name) for name, _ in ENVIRONMENT)
    indent = " " * (2 + name_width + 2)
    lines = ["Environment variables:"]
    for name, text in ENVIRONMENT:
        first = f"  {name:<{name_width}}  {text}"
        if width is None:
            lines.append(first)
        else:  # a hanging indent keeps the names in their own column
            lines += textwrap.wrap(first, width=max(width, len(indent) + 20), subsequent_indent=indent)
    return "\n".join(lines)
