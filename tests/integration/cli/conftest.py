"""Run the daebus command in a subprocess against the private redis-server."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from support import child_env, default_signals
from support import wait_until as _wait_until


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "daebus.cli", *args]


@pytest.fixture
def daebus(redis_url):
    """``daebus(*args, input=None, timeout=30, env=None)``: the finished process."""

    def run(*args: str, input: str | None = None, timeout: float = 30, env: dict | None = None,
            url: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(cli_argv(*args), input=input, capture_output=True, text=True,
                              timeout=timeout, env=child_env(url or redis_url, env))

    return run


@pytest.fixture
def daebus_tty(redis_url):
    """Run the command with stdout on a pseudo-terminal; returns (status, output)."""

    def run(*args: str, timeout: float = 30) -> tuple[int, str]:
        leader, follower = pty.openpty()
        proc = subprocess.Popen(cli_argv(*args), stdout=follower, stderr=subprocess.PIPE,
                                env=child_env(redis_url), preexec_fn=default_signals)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the command closed its end
                break
            if not data:
                break
            chunks.append(data)
        os.close(leader)
        status = proc.wait(timeout)
        return status, b"".join(chunks).decode().replace("\r\n", "\n")

    return run


@pytest.fixture
def background(redis_url):
    """Start a long-running command (listen, services --watch); killed at the end.

    ``preexec_fn`` sets the signals it starts with (see support.default_signals)."""
    started = []

    def start(*args: str, url: str | None = None, preexec_fn=default_signals) -> subprocess.Popen:
        proc = subprocess.Popen(cli_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=child_env(url or redis_url), preexec_fn=preexec_fn)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.fixture
def wait_until():
    """``wait_until(condition, timeout, what)``: poll a state in Redis or a process."""
    return _wait_until
