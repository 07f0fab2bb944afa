"""Daebus 0.0.31 as published, for tests of today's code against it.

``./dev test`` installs the release and its dependencies into a folder of
their own (:data:`FOLDER`); a process given that folder as ``PYTHONPATH``
imports 0.0.31's ``daebus`` instead of this checkout's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RELEASE = "0.0.31"
FOLDER = Path(sys.prefix) / "compat" / f"daebus-{RELEASE}"


def env(base: dict) -> dict:
    """``base`` with 0.0.31 first on the path; fails the test when it is missing."""
    if not (FOLDER / "daebus" / "__init__.py").is_file():
        pytest.fail(f"daebus {RELEASE} is not installed in {FOLDER}: `./dev test` installs it")
    return {**base, "PYTHONPATH": str(FOLDER), "PYTHONNOUSERSITE": "1"}


def run(code: str, base: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -c code`` with 0.0.31; checks that it really is 0.0.31's."""
    prelude = f"import daebus\nassert daebus.__version__ == {RELEASE!r}, daebus.__file__\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          timeout=timeout, env=env(base), cwd=os.path.dirname(FOLDER))


def install() -> None:
    """Install the release into :data:`FOLDER` unless it is there already."""
    if (FOLDER / "daebus" / "__init__.py").is_file():
        return
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--target", str(FOLDER), f"daebus=={RELEASE}"], check=True)


if __name__ == "__main__":
    install()  # ./dev test
