"""Where the command line's messages go, and how numbers in them look.

Results go to stdout, diagnostics to stderr, so that `derain ... > list.txt` captures only results
and `--json` keeps stdout pure JSON (one record per line) for scripts.
"""

from __future__ import annotations

import json
import math
from typing import Any

import typer


class Output:
    """The one place a command prints: results, notes, warnings, errors and JSON records."""

    def __init__(self, quiet: bool = False, verbose: bool = False, json_mode: bool = False):
        self.quiet, self.verbose, self.json_mode = quiet, verbose, json_mode

    def info(self, msg: str) -> None:
        """A result line: stdout, or stderr under --json (stdout then holds only records)."""
        if not self.quiet:
            typer.echo(msg, err=self.json_mode)

    def note(self, msg: str) -> None:
        """Progress-like chatter: stderr, hidden by --quiet."""
        if not self.quiet:
            typer.echo(msg, err=True)

    def warn(self, msg: str) -> None:
        if not self.quiet:
            typer.echo(f"warning: {msg}", err=True)

    def error(self, msg: str) -> None:
        """One `error: ...` line on stderr; shown even under --quiet."""
        typer.echo(f"error: {msg}", err=True)

    def record(self, obj: dict[str, Any]) -> None:
        """One JSON record on one stdout line."""
        typer.echo(json.dumps(json_safe(obj), ensure_ascii=False))


def json_safe(obj: Any) -> Any:
    """Infinite PSNR (identical images) becomes null so the output stays valid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def number_text(value: float | None, digits: int = 2) -> str:
    """A score for a table: '-' when missing, 'inf' for identical images."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def size_text(nbytes: float | None) -> str:
    """A file size the way people read it: 812 B, 86.4 KB, 1.2 GB."""
    if not nbytes:
        return "-"
    size = float(nbytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
