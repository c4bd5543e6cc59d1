"""The one error handler every command runs in: message, exit code, traceback only with -v."""

from __future__ import annotations

import pytest
import typer

from derain_cli.cli import EXIT_INTERRUPTED, Output, handle_errors
from derain_cli.errors import DeviceError, ImageError, ModelError, UsageError, WeightsError


@pytest.mark.parametrize("error,code", [
    (UsageError("--tile must be auto"), 2),
    (DeviceError("device 'mps' requested but Apple MPS is not available"), 2),
    (ModelError("weights do not fit"), 1),
    (WeightsError("offline and not cached"), 1),
    (ImageError("a.jpg", "file is empty"), 1),
])
def test_derain_errors_become_one_line_and_their_exit_code(capsys, error, code):
    with pytest.raises(typer.Exit) as exit_info, handle_errors(Output()):
        raise error
    assert exit_info.value.exit_code == code
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"error: {error}\n")


def test_verbose_prints_the_traceback_before_the_line(capsys):
    with pytest.raises(typer.Exit), handle_errors(Output(verbose=True)):
        raise ModelError("weights do not fit")
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("error: weights do not fit\n")


def test_interrupt_is_130_with_the_commands_message(capsys):
    with pytest.raises(typer.Exit) as exit_info, handle_errors(Output(), interrupted="interrupted; rerun"):
        raise KeyboardInterrupt
    assert exit_info.value.exit_code == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "error: interrupted; rerun\n"


def test_nested_handlers_the_inner_one_answers(capsys):
    with pytest.raises(typer.Exit), handle_errors(Output()), handle_errors(Output(), interrupted="inner"):
        raise KeyboardInterrupt
    assert capsys.readouterr().err == "error: inner\n"


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError), handle_errors(Output()):
        _ = 1 / 0


def test_quiet_does_not_hide_errors(capsys):
    with pytest.raises(typer.Exit), handle_errors(Output(quiet=True)):
        raise UsageError("bad")
    assert capsys.readouterr().err == "error: bad\n"
