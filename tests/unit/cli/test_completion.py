"""The bash completion shipped in the package: commands and options as the parser has them."""

from __future__ import annotations

import argparse
import shlex
import subprocess
from pathlib import Path

import pytest

from daebus.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
COMPLETION = ROOT / "debian" / "completion" / "daebus"


def complete(line: str, env: dict | None = None) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end)."""
    words = line.split(" ")
    script = (f"source {shlex.quote(str(COMPLETION))}\n"
              f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
              f"COMP_CWORD={len(words) - 1}\n"
              "_daebus\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    out = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin", **(env or {})})
    assert out.returncode == 0, out.stderr
    return sorted(word for word in out.stdout.splitlines() if word)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found = {o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found |= _options(child)
    return found


COMMANDS = _subcommands(build_parser())


def test_every_command_is_offered():
    assert complete("daebus ") == sorted(COMMANDS)
    assert complete("daebus se") == ["services"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_options_of_each_command_are_the_parsers(command):
    assert complete(f"daebus {command} --") == sorted(_options(COMMANDS[command]) | {"--help"})


def test_values_of_options_are_not_taken_for_arguments():
    # "--timeout 3" must not make "3" the service: the action is completed next.
    assert complete("daebus new --dir /tmp ") == ["worker"]
    assert complete("daebus call --timeout ") == []


def test_worker_names_come_from_the_worker_files(tmp_path):
    for name in ("sensors", "display", "scanner"):
        (tmp_path / f"{name}.toml").write_text('app = "/x.py"\n')
    (tmp_path / "notes.txt").write_text("")
    assert complete("daebus worker s", {"DAEBUS_WORKERS_DIR": str(tmp_path)}) == ["scanner", "sensors"]
    assert complete("daebus worker ", {"DAEBUS_WORKERS_DIR": str(tmp_path / "none")}) == []


def test_run_offers_python_files(tmp_path):
    (tmp_path / "worker.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert complete(f"daebus run {tmp_path}/") == [f"{tmp_path}/worker.py"]
