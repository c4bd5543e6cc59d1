"""The shape of the command line: help, usage lines, the default command, mistyped commands."""

from __future__ import annotations

import re

import pytest

from derain_cli import __version__, settings
from derain_cli.cli import app
from derain_cli.device import choose_device
from tests.cli.conftest import Derain, M, write_png

COMMANDS = ["run", "batch", "bench", "video", "doctor", "synth", "train", "export",
            "models", "models list", "models info", "models download", "models import", "models verify",
            "models rm", "models path"]


@pytest.fixture
def cli() -> Derain:
    return Derain()


def test_version(cli):
    r = cli("--version")
    assert (r.code, r.stdout, r.stderr) == (0, f"derain {__version__}\n", "")


def test_help_lists_commands_by_section_then_the_environment(cli):
    r = cli("--help")
    assert r.code == 0
    lines = r.out_lines
    assert lines[0] == "Usage: derain FILE... [OPTIONS]  |  derain COMMAND [ARGS]..."

    def section(title: str) -> list[str]:
        start = lines.index(f"{title}:") + 1
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("  ")), len(lines))
        return [line for line in lines[start:end] if not line.startswith("    ")]  # first lines only

    assert [line.split()[0] for line in section("Commands")] == ["run", "batch", "bench", "video", "doctor", "models"]
    assert [line.split()[0] for line in section("Training your own model")] == ["synth", "train", "export"]
    assert not [line for line in section("Commands") if line.endswith("...")], "short help cut off"
    env = section("Environment variables")
    assert [line.split()[0] for line in env] == [name for name, _ in settings.ENVIRONMENT]
    env_block = lines[lines.index("Environment variables:"):]
    assert all(len(line) <= 80 for line in env_block), "wrapped to the 80-column help width"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_names_not_python_types(cli, command):
    r = cli(*command.split(), "--help")
    assert r.code == 0, r.stderr
    assert r.out_lines[0].startswith(f"Usage: derain {command} [OPTIONS]")
    assert not re.search(r"<[a-z][\w\[\], ]*>", r.stdout), r.stdout  # <path>, <list[Path]>, <int range>
    assert "{" not in r.out_lines[0], r.out_lines[0]


@pytest.mark.parametrize("command,usage", [
    ("run", "Usage: derain run [OPTIONS] FILE..."),
    ("batch", "Usage: derain batch [OPTIONS] IN_DIR"),
    ("bench", "Usage: derain bench [OPTIONS] IN_DIR"),
    ("train", "Usage: derain train [OPTIONS] [ARCH]"),
    ("models download", "Usage: derain models download [OPTIONS] NAME..."),
    ("models import", "Usage: derain models import [OPTIONS] NAME[:VARIANT] FILE"),
    ("models path", "Usage: derain models path [OPTIONS] [NAME]"),
])
def test_usage_lines(cli, command, usage):
    r = cli(*command.split(), "--help")
    assert r.out_lines[0] == usage
    argument = usage.split("[OPTIONS] ")[1].split()[0]
    assert any(line.startswith(f"  {argument}  ") for line in r.out_lines), f"{argument} not in Arguments"


def test_every_command_is_listed_in_help(cli):
    """A command added to the app without a place in `derain --help` is caught here."""
    from typer.main import get_command

    group = get_command(app)
    listed = {line.split()[0] for line in cli("--help").out_lines if line.startswith("  ") and line.split()}
    assert set(group.commands) <= listed


@pytest.mark.parametrize("typo,meant", [("bacth", "batch"), ("modles", "models"), ("trian", "train")])
def test_a_mistyped_command_is_reported_as_one(cli, tmp_path, monkeypatch, typo, meant):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    r = cli(typo, "dir", "--out", "x")
    assert r.code == 2
    assert r.err_lines[-1].startswith(f"Error: No such command '{typo}'. Did you mean '{meant}'")
    assert "No such option" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_a_file_named_like_a_command_is_still_a_file(derain, tmp_path, monkeypatch):
    """Only a word that names no file is taken for a mistyped command."""
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "batc.png")
    (tmp_path / "batc.png").rename(tmp_path / "batc")  # an existing file without an extension
    r = derain("batc", *M, "-o", "out.png")
    assert r.code == 0, r.stderr
    assert (tmp_path / "out.png").exists()


@pytest.mark.parametrize("order", ["file first", "options first", "explicit run"])
def test_files_go_to_the_default_command(derain, tmp_path, order):
    src = write_png(tmp_path / "a.png")
    args = {"file first": (src, *M), "options first": (*M, src), "explicit run": ("run", src, *M)}[order]
    r = derain(*args)
    assert r.code == 0, r.stderr
    device = choose_device("auto")  # the line names the model and the device it ran on
    assert re.fullmatch(rf"{re.escape(str(src))} -> {re.escape(str(tmp_path / 'a_derained.png'))} "
                        rf"\(32x24, \d+\.\d\d s, testnet:random on {device}\)", r.stdout.strip()), r.stdout
    assert r.stderr == ""


def test_missing_argument_and_unknown_option_are_usage_errors(cli, tmp_path):
    r = cli("run")
    assert r.code == 2 and r.err_lines[-1] == "Error: Missing argument 'FILE'."
    r = cli("batch", tmp_path)
    assert r.code == 2 and r.err_lines[-1] == "Error: Missing option '--out'."
    r = cli(tmp_path / "a.png", "--no-such-option")
    assert r.code == 2 and r.err_lines[-1].startswith("Error: No such option: --no-such-option")


def test_main_returns_exit_codes_and_python_m_works(capsys):
    from derain_cli.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"derain {__version__}\n"
    assert main(["run"]) == 2
    assert main(["models", "info", "no-such-model"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: unknown model 'no-such-model'")
