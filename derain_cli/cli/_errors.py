"""The exit codes of `derain` and the one place that turns errors into them.

The README promises: 0 ok, 1 some inputs failed, 2 usage error, 130 interrupted. A `DerainError`
carries its own code (`UsageError` and `DeviceError` are 2), so the decision "which code" is made
where the error is raised and only printed here.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from ..errors import DerainError
from ._output import Output

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@contextmanager
def handle_errors(out: Output, interrupted: str = "interrupted") -> Iterator[None]:
    """Turn the errors a user can act on into one `error: ...` line and the exit code.

    - `DerainError`: its message, its `exit_code`; with `-v` the traceback first.
    - `KeyboardInterrupt` (Ctrl-C): `error: <interrupted>` and 130; commands that can resume pass
      a message that says how.

    Any other exception is a bug and keeps its traceback. Every command runs inside this handler
    (`DerainCommand.invoke`); a command that needs its own interrupted message nests a second one,
    which answers first.
    """
    try:
        yield
    except KeyboardInterrupt:
        out.error(interrupted)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except DerainError as exc:
        if out.verbose:
            traceback.print_exc()
        out.error(str(exc))
        raise typer.Exit(exc.exit_code) from None
