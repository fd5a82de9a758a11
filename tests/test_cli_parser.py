"""The CLI builds the parser of the one sub-command it runs (issue 14: a CLI process has an 80 ms
budget and argparse spends ~10-20 ms building all of them), and parses exactly as the full parser."""

from __future__ import annotations

import argparse

import pytest

from daemon.cli.parser import COMMANDS, build_parser

ARGVS = [
    ["send", "--to", "1", "-m", "hi", "--priority", "high", "--json"],
    ["--socket", "/tmp/s", "send", "--to-group", "oncall", "-m", "x", "--key", "k"],
    ["--config=/etc/f.toml", "status", "--json"],
    ["--config", "status", "list", "--limit", "5"],  # a config file named like a command
    ["show", "--batch", "3"],
    ["cancel", "7"],
    ["retry", "7", "--json"],
    ["doctor", "--timeout", "3"],
    ["recipient", "update", "2", "--quiet-hours", "22:00-07:00", "--timezone", "Europe/Moscow"],
    ["group", "update", "oncall", "--add", "4"],
    ["migrate", "--to", "postgresql://u@h/db", "--dry-run"],
    ["pause"],
    ["resume"],
]


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


@pytest.mark.parametrize("argv", ARGVS, ids=lambda a: " ".join(a))
def test_the_lazy_parser_parses_like_the_full_one(argv: list[str]) -> None:
    assert vars(build_parser(argv).parse_args(argv)) == vars(build_parser().parse_args(argv))


def test_only_the_named_command_is_built() -> None:
    assert subcommands(build_parser(["send", "--to", "1", "-m", "x"])) == ["send"]
    assert subcommands(build_parser(["--socket", "/s", "cancel", "1"])) == ["cancel", "retry"]


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["bogus"], ["--version"]])
def test_help_and_unknown_commands_get_every_command(argv: list[str]) -> None:
    assert subcommands(build_parser(argv)) == list(COMMANDS)


def test_an_unknown_command_is_refused_listing_every_choice(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser(["bogus"]).parse_args(["bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'bogus'" in err
    for name in ("send", "status", "recipient", "group", "migrate", "doctor"):
        assert f"'{name}'" in err
