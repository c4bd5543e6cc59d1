"""PyAV, the optional dependency behind `derain video`: one import guard and one error translation.

PyAV (``av`` on PyPI) binds FFmpeg's libraries and ships them inside its wheels, so reading and
writing video needs no system ffmpeg. It is an extra (``pip install 'derain-cli[video]'``) because
photo users never need its ~60 MB.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import UsageError

INSTALL_HINT = "pip install 'derain-cli[video]'"


def require_av() -> ModuleType:
    """The ``av`` module, or a UsageError (exit 2) that says how to install it."""
    try:
        import av
    except ImportError:
        raise UsageError(f"derain video needs PyAV, which is not installed: {INSTALL_HINT}") from None
    return av


def available() -> bool:
    """Whether PyAV can be imported (without importing it twice on success)."""
    try:
        require_av()
    except UsageError:
        return False
    return True


def problem(exc: BaseException) -> str:
    """A one-line description of an FFmpeg/PyAV failure: FFmpeg's own text, without the call details."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0].rstrip(".")
