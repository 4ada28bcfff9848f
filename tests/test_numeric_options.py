"""Every numeric option of every command refuses nan, inf and -inf (hostile-input review, item 11).

float() reads "nan" and "inf": a `tail --shutdown-deadline nan` used to start, and its deadline never
arrived (nor did its drain), so a SIGTERM right after a write lost the last bytes. The walk below covers
the commands' parsers as they are, so an option added later is checked too.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from elyra_sidecar._cli import COMMANDS

NON_FINITE = ("nan", "inf", "-inf", "NaN", "Infinity")


def _parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[command][0])
    made = module.parser()
    assert isinstance(made, argparse.ArgumentParser)
    return made


def _numeric_options() -> list[tuple[str, str]]:
    """(command, option) for every option whose value is a number (its type reads "1")."""
    found = []
    for command in COMMANDS:
        for action in _parser(command)._actions:
            if not action.option_strings or action.type is None or not callable(action.type):
                continue
            try:
                value = action.type("1")
            except (ValueError, TypeError, argparse.ArgumentTypeError):
                continue
            if isinstance(value, (int, float)):
                found.append((command, action.option_strings[-1]))
    return found


def _type(command: str, option: str):
    return next(a.type for a in _parser(command)._actions if option in a.option_strings)


def _minimal_argv(parser: argparse.ArgumentParser) -> list[str]:
    """Just the required arguments, each given "1" (a valid value for every required one here)."""
    argv: list[str] = []
    for action in parser._actions:
        if action.option_strings and action.required:
            argv += [action.option_strings[-1], "1"]
        elif not action.option_strings and action.nargs is None:
            argv.append("1")
    return argv


NUMERIC = _numeric_options()


def test_the_walk_finds_the_known_numeric_options():
    """Not vacuous: the seconds options of `tail` and `logs` are among those walked."""
    assert {
        ("tail", "--upload-interval"),
        ("tail", "--shutdown-deadline"),
        ("tail", "--idle-flush"),
        ("tail", "--max-line"),
        ("logs", "--poll-interval"),
        ("webhook", "--port"),
        ("stop", "--signal"),
    } <= set(NUMERIC)


@pytest.mark.parametrize(("command", "option"), NUMERIC, ids=[f"{c} {o}" for c, o in NUMERIC])
@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_numbers_are_refused(command, option, value, capsys):
    parser = _parser(command)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args([*_minimal_argv(parser), f"{option}={value}"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert "error:" in error and option in error, error


def _takes_fractions(command: str, option: str) -> bool:
    try:
        return isinstance(_type(command, option)("1.5"), float)
    except (ValueError, argparse.ArgumentTypeError):
        return False


SECONDS = [(c, o) for c, o in NUMERIC if _takes_fractions(c, o)]


@pytest.mark.parametrize(("command", "option"), SECONDS, ids=[f"{c} {o}" for c, o in SECONDS])
@pytest.mark.parametrize("value", ["1e308", "604801"])
def test_seconds_above_a_week_are_refused(command, option, value, capsys):
    """Finite but huge: `time.monotonic() + 1e308` overflows select() and lock timeouts (OverflowError),
    and the deadline thread would die; the config refuses the same (`transformer._config`)."""
    parser = _parser(command)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args([*_minimal_argv(parser), f"{option}={value}"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert option in error and "at most 604800" in error, error


def test_the_config_takes_no_more_seconds_than_the_sidecar():
    """What the transformer writes from its config, the sidecar accepts: the same upper bound."""
    from elyra_sidecar.transformer import ConfigError, config_from_mapping

    assert config_from_mapping({"sidecar": {"upload_interval_seconds": 604800}})
    with pytest.raises(ConfigError, match="at most 604800"):
        config_from_mapping({"sidecar": {"upload_interval_seconds": 604801}})
    with pytest.raises(ConfigError, match="at most 604800"):
        config_from_mapping({"sidecar": {"upload_interval_seconds": 1e308}})


@pytest.mark.parametrize(("command", "option"), NUMERIC, ids=[f"{c} {o}" for c, o in NUMERIC])
def test_a_finite_number_is_still_accepted(command, option):
    parser = _parser(command)
    args = parser.parse_args([*_minimal_argv(parser), f"{option}=3"])
    assert args is not None


def test_tail_with_a_nan_deadline_does_not_start():
    """The reported case, as a process: exit 2 and one error line naming the option, nothing followed."""
    argv = ["tail", "--dir", "/nonexistent", "--file", "x", "--shutdown-deadline", "nan"]
    proc = subprocess.run(
        [sys.executable, "-m", "elyra_sidecar", *argv],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.decode().splitlines() if "error:" in line]
    assert errors == [
        "elyra-sidecar tail: error: argument --shutdown-deadline: must be a finite number, got 'nan'"
    ]
    assert proc.stdout == b""
