"""daebus(1) documents every command, every option and every exit status."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from daebus.cli import Exit, build_parser

MANUAL = (Path(__file__).resolve().parents[3] / "debian" / "daebus.1").read_text()


def _commands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    found = {}
    for name, parser in sub.choices.items():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            found.update({f"{name} {kind}": child for kind, child in nested[0].choices.items()})
        else:
            found[name] = parser
    return found


@pytest.mark.parametrize("command, parser", sorted(_commands().items()))
def test_each_command_and_its_options_are_in_the_synopsis(command, parser):
    synopsis = MANUAL.split(".SH DESCRIPTION")[0]
    assert f".B daebus {command}\n" in synopsis
    block = synopsis.split(f".B daebus {command}\n")[1].split(".br")[0]
    for action in parser._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                assert option.replace("-", "\\-") in block, (command, option)
    assert f".SS daebus {command}\n" in MANUAL


def test_every_exit_status_is_documented():
    section = MANUAL.split(".SH EXIT STATUS")[1].split(".SH ")[0]
    documented = {int(n) for n in re.findall(r"^\.B (\d+)$", section, re.M)}
    assert documented == {int(status) for status in Exit}


def test_the_readme_lists_the_same_exit_statuses():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## The daebus command")[1].split("\n## ")[0]
    assert {int(n) for n in re.findall(r"^\| (\d+) \|", section, re.M)} == {int(status) for status in Exit}
