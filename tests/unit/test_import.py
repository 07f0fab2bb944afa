"""Importing daebus configures no logging and opens no connection."""

import subprocess
import sys

CHECK = """
import socket, sys, logging
events = []
sys.addaudithook(lambda name, args: events.append(name) if name.startswith("socket.") else None)
import daebus
assert not logging.getLogger().handlers, logging.getLogger().handlers
assert logging.getLogger().level == logging.WARNING
assert not [e for e in events if e in ("socket.connect", "socket.bind")], events
assert "apscheduler" not in sys.modules and "flask" not in sys.modules
print("clean")
"""


def test_import_has_no_side_effects():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
