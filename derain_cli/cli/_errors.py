"""The exit codes of `derain` and the one place that turns errors into them.

The README promises: 0 ok, 1 some inputs failed, 2 usage error, 130 interrupted (Ctrl-C), and
128 + N for a stop by signal N: 143 for SIGTERM (docker stop, systemd, `timeout`), 129 for SIGHUP
(the terminal closed). A `DerainError` carries its own code (`UsageError` and `DeviceError` are
2), so the decision "which code" is made where the error is raised and only printed here.
"""

from __future__ import annotations

import signal
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import typer

from ..errors import DerainError
from ._output import Output

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: Signals that stop a command the way Ctrl-C does (those the platform has).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A stop by a signal other than SIGINT, raised where the program is, as Ctrl-C would be.

    Being a KeyboardInterrupt, it unwinds exactly as Ctrl-C does: `finally` blocks run and atomic
    writes delete their temporary file, and the handlers that catch Ctrl-C catch it too.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def exit_code_of(interrupt: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 128 + N for a stop by signal N."""
    return 128 + interrupt.signum if isinstance(interrupt, Stopped) else EXIT_INTERRUPTED


@contextmanager
def signals_stop_like_ctrl_c() -> Iterator[None]:
    """While inside: SIGTERM and SIGHUP raise `Stopped` (their default would kill the process
    at once, leaving a temporary file and no message). Handlers are set only from the main
    thread (the only one Python lets set them) and restored on the way out.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def handle_errors(out: Output, interrupted: str = "interrupted") -> Iterator[None]:
    """Turn the errors a user can act on into one `error: ...` line and the exit code.

    - `DerainError`: its message, its `exit_code`; with `-v` the traceback first.
    - `KeyboardInterrupt` (Ctrl-C, or SIGTERM/SIGHUP inside `signals_stop_like_ctrl_c`):
      `error: <interrupted>` and 130 (128 + N for signal N); commands that can resume pass a
      message that says how.

    Any other exception is a bug and keeps its traceback. Every command runs inside this handler
    (`DerainCommand.invoke`); a command that needs its own interrupted message nests a second one,
    which answers first.
    """
    try:
        yield
    except KeyboardInterrupt as exc:
        out.error(interrupted)
        raise typer.Exit(exit_code_of(exc)) from None
    except DerainError as exc:
        if out.verbose:
            traceback.print_exc()
        out.error(str(exc))
        raise typer.Exit(exc.exit_code) from None
