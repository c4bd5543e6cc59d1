"""How `derain` parses its first word and how its help reads.

Two Typer classes: `DerainCommand` for every command (argument names instead of Python types in
usage lines and help, and the shared error handler around the command), and `DerainGroup` for
`derain` and `derain models` (commands listed by section with short help that is not cut off).
`RootGroup` adds what only the top level does: `derain FILE...` means `derain run FILE...`, a
mistyped command name is reported as one, and the environment variables close `derain --help`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer.core import TyperCommand, TyperGroup

from .. import settings
from ._errors import handle_errors, signals_stop_like_ctrl_c
from ._output import Output

if TYPE_CHECKING:
    from typer._click import Context, HelpFormatter, Parameter

DEFAULT_COMMAND = "run"
TOP_LEVEL_FLAGS = ("--help", "-h", "--version")
TYPO_CUTOFF = 0.6  # difflib's default, the one Typer's "Did you mean" suggestion uses too


def argument_label(param: Parameter) -> str:
    """`FILE...` for a required list, `[NAME]` for an optional argument: what to type, not a type."""
    name = param.metavar or (param.name or "").upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name if param.required else f"[{name}]"


class DerainCommand(TyperCommand):
    """A command whose help shows argument names, and which runs inside the error handler."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        pieces += [argument_label(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((argument_label(param), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def invoke(self, ctx: Context) -> Any:
        with signals_stop_like_ctrl_c(), handle_errors(Output(verbose=bool(ctx.params.get("verbose", False)))):
            return super().invoke(ctx)


class DerainGroup(TyperGroup):
    """A group whose commands are listed by section (their `rich_help_panel`), in the order added."""

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        shown = [(name, command) for name, command in commands if command is not None and not command.hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)  # as click does
        sections: dict[str, list[tuple[str, str]]] = {}
        for name, command in shown:
            section = getattr(command, "rich_help_panel", None) or "Commands"
            sections.setdefault(section, []).append((name, command.get_short_help_str(limit=limit)))
        for title, rows in sections.items():
            with formatter.section(title):
                formatter.write_dl(rows)


class RootGroup(DerainGroup):
    """`derain`: a default command for file names, typo detection, and the environment in --help."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and self._needs_default_command(args):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def _needs_default_command(self, args: list[str]) -> bool:
        first = args[0]
        if not first.startswith("-"):
            # `derain photo.jpg ...`; but `derain bacth ...` is a mistyped command, not a file
            return first not in self.commands and not self._is_command_typo(first)
        # `derain -m prenet photo.jpg`: options first, and no command anywhere
        return first not in TOP_LEVEL_FLAGS and not any(a in self.commands for a in args)

    def _is_command_typo(self, word: str) -> bool:
        """A word that names no file, has no extension or folder part, and is close to a command.

        Such a word is reported as "No such command 'bacth'. Did you mean 'batch'?" (exit 2); read
        as a file name it would give a confusing error about the options that follow it.
        """
        if Path(word).exists() or Path(word).suffix or "/" in word or "\\" in word:
            return False
        return bool(difflib.get_close_matches(word, list(self.commands), n=1, cutoff=TYPO_CUTOFF))

    def format_usage(self, ctx: Context, formatter: HelpFormatter) -> None:
        formatter.write_usage("derain", "FILE... [OPTIONS]  |  derain COMMAND [ARGS]...")

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        formatter.write_paragraph()
        formatter.write(settings.help_epilogue(width=formatter.width) + "\n")
