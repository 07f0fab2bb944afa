"""The signals a process stops on reach it, whatever mask it was started with.

A process inherits its parent's signal mask across fork and exec. A CI
runner, a shell script or a supervisor that blocks SIGINT and SIGTERM for
itself passes that mask on, and a handler installed for a blocked signal
never runs: the process ignores Ctrl-C and ``kill`` until SIGKILL. So every
entry point that stops on a signal unblocks the signals it handles where it
installs its handlers (systemd starts units with an empty mask; this gives
the same outside it).

The mask is per thread and new threads copy their creator's: unblocking in
the main thread before any other thread starts covers the whole process,
and unblocking later still lets the kernel deliver to the main thread.
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def unblock(signals=STOP_SIGNALS) -> None:
    """Let ``signals`` (default SIGINT and SIGTERM) through this thread's mask."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(signals))

