"""What a test run leaves behind: folders in the temp directory, processes.

The suite runs with a temp directory of its own (``TMPDIR``), so folders
other runs on the machine make at the same time are not counted, and marks
its processes with :data:`MARK` in their environment, which children
inherit. At the end, :func:`check` names what is left and removes it.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid

MARK = "DAEBUS_TEST_RUN"


class Leftovers:
    def __init__(self):
        self.token = uuid.uuid4().hex
        self.original_tmp = tempfile.gettempdir()
        self.tmp = tempfile.mkdtemp(prefix="daebus-test-run-", dir=self.original_tmp)
        self.pid = os.getpid()
        self._seen: set[str] = set()
        self.made_by: dict[str, str] = {}

    def install(self) -> None:
        # pytest's own tmp_path folders stay where they always are (and are kept as pytest keeps them).
        os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", self.original_tmp)
        os.environ["TMPDIR"] = self.tmp
        tempfile.tempdir = self.tmp
        os.environ[MARK] = self.token

    def folders(self) -> list[str]:
        return sorted(os.listdir(self.tmp))

    def after(self, test: str) -> None:
        """Note which test the folders that appeared since the last call came
        from, so that what is left at the end names its test."""
        now = set(self.folders())
        for name in now - self._seen:
            self.made_by.setdefault(name, test)
        self._seen = now

    def processes(self) -> list[str]:
        """``pid command`` of each live process of this run but this one."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.pid:
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    marked = f"{MARK}={self.token}".encode() in f.read().split(b"\0")
                with open(f"/proc/{entry}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if marked and state != "Z":
                found.append(f"{entry} {command[:200]}")
        return found

    def check(self, grace: float = 5.0) -> list[str]:
        """What is left, after ``grace`` seconds for processes already exiting;
        kills and removes it."""
        deadline = time.monotonic() + grace
        while (processes := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        problems = [f"process still running: {p}" for p in processes]
        problems += [f"left in the temp directory: {name}" + (f" (made during {self.made_by[name]})"
                                                              if name in self.made_by else "")
                     for name in self.folders()]
        for line in processes:
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems
