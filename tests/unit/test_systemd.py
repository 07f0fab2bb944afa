import os
import shutil
import socket
import tempfile
import uuid

import pytest

from daebus.ops.systemd import Notifier


@pytest.fixture
def receiver():
    folder = tempfile.mkdtemp(prefix="daebus-notify-test-")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()
    shutil.rmtree(folder, ignore_errors=True)


def test_sends_lines_as_one_datagram(receiver):
    path, sock = receiver
    notifier = Notifier(path)
    assert notifier.ready("serving")
    assert sock.recv(1024) == b"READY=1\nSTATUS=serving"
    notifier.stopping()
    assert sock.recv(1024) == b"STOPPING=1"


def test_abstract_socket_address():
    name = f"daebus-test-{uuid.uuid4()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier("@" + name).watchdog()
        assert sock.recv(64) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier.from_env({})
    assert not notifier.enabled and not notifier.ready()


def test_watchdog_interval_is_half_of_watchdog_usec():
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(env).watchdog_interval == 15.0
    env["WATCHDOG_PID"] = "1"
    assert Notifier.from_env(env).watchdog_interval is None


def test_unreachable_socket_is_not_an_error():
    assert Notifier("/nonexistent/notify").ready() is False
