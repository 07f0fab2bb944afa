"""Log records as structured journald entries, with the standard library.

journald's native protocol is one datagram per entry on
``/run/systemd/journal/socket``: ``FIELD=value`` lines, or for a value that
contains a newline the field name, a newline, the value's length as a
little-endian 64-bit integer, the value and a newline. An entry too large
for a datagram travels as a sealed memfd passed with ``SCM_RIGHTS``.

A traceback is part of ``MESSAGE``, so it stays one entry. Besides
``PRIORITY``, ``SYSLOG_IDENTIFIER`` and ``CODE_FILE``/``CODE_LINE``/
``CODE_FUNC``, entries carry ``DAEBUS_SERVICE``, ``DAEBUS_ACTION`` and
``DAEBUS_REQUEST_ID`` when the record was made while serving a request, so::

    journalctl DAEBUS_REQUEST_ID=4f1c...    # the gateway's and the worker's lines

When the socket is missing, or full for longer than ``send_timeout``, the
record goes to the fallback handler (stderr) instead; it is never lost and
logging never hangs.
"""

from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import select
import socket
import struct

from daebus.ops.records import log_fields, syslog_priority

SOCKET_PATH = "/run/systemd/journal/socket"
SEND_TIMEOUT = 1.0
SEND_BUFFER = 8 * 1024 * 1024  # as sd_journal_send asks for; the kernel caps it
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
_RECORD_FIELDS = (("service", "DAEBUS_SERVICE"), ("action", "DAEBUS_ACTION"),
                  ("request_id", "DAEBUS_REQUEST_ID"))


def encode_field(name: str, value) -> bytes:
    """One field of an entry in journald's native format."""
    data = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
    if b"\n" in data:
        return name.encode("ascii") + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode("ascii") + b"=" + data + b"\n"


def record_fields(record: logging.LogRecord) -> dict:
    """The ``DAEBUS_*`` fields of a record: ``extra={"daebus_action": ...}``
    wins, then what is bound in the context (see :func:`daebus.ops.records.log_fields`)."""
    fields = log_fields()
    for key, name in _RECORD_FIELDS:
        value = getattr(record, "daebus_" + key, None)
        if value is not None:
            fields[key] = value
    return {name: fields[key] for key, name in _RECORD_FIELDS if fields.get(key) is not None}


class JournalHandler(logging.Handler):
    """Sends each record to journald as one structured entry.

    Example::

        handler = JournalHandler("daebus-worker-sensors", fallback=logging.StreamHandler())
        logging.getLogger().addHandler(handler)
    """

    def __init__(self, identifier: str, *, path: str = SOCKET_PATH, fallback: logging.Handler | None = None,
                 send_timeout: float = SEND_TIMEOUT):
        super().__init__()
        self.identifier = identifier
        self.path = path
        self.fallback = fallback
        self.send_timeout = send_timeout
        self._sock: socket.socket | None = None
        # After a send that timed out, records go straight to the fallback
        # until one gets through: a stuck journald costs one wait, not one per record.
        self._stuck = False
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def encode(self, record: logging.LogRecord) -> bytes:
        parts = [encode_field("MESSAGE", self.format(record)),
                 encode_field("PRIORITY", syslog_priority(record.levelno)),
                 encode_field("SYSLOG_IDENTIFIER", self.identifier),
                 encode_field("CODE_FILE", record.pathname),
                 encode_field("CODE_LINE", record.lineno),
                 encode_field("CODE_FUNC", record.funcName),
                 encode_field("LOGGER", record.name)]
        parts += [encode_field(name, value) for name, value in record_fields(record).items()]
        return b"".join(parts)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.encode(record)
        except Exception:  # noqa: BLE001 - as logging's own handlers do
            self.handleError(record)
            return
        if not self._send(data) and self.fallback is not None:
            self.fallback.handle(record)

    # -- the socket ---------------------------------------------------------
    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
                sock.setblocking(False)
                # Connected, so that poll() reports when journald's queue has room.
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, data: bytes) -> bool:
        """True when journald took the entry (called under the handler's lock)."""
        for attempt in range(2):
            try:
                sock = self._socket()
                try:
                    sock.send(data)
                except BlockingIOError:
                    if self._stuck or not select.select([], [sock], [], self.send_timeout)[1]:
                        self._stuck = True
                        return False
                    sock.send(data)
                self._stuck = False
                return True
            except BlockingIOError:
                self._stuck = True
                return False
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:
                    return self._send_memfd(data)
                # journald restarted (its socket is new) or is gone: one fresh try.
                self._drop_socket()
                if attempt or exc.errno not in (errno.ECONNREFUSED, errno.ENOTCONN, errno.ENOENT,
                                                errno.EPIPE, errno.ECONNRESET):
                    return False
        return False

    def _send_memfd(self, data: bytes) -> bool:
        try:
            fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        except (OSError, AttributeError):
            return False
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            sock = self._socket()
            sock.settimeout(self.send_timeout)
            try:
                sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
            finally:
                sock.setblocking(False)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        self.acquire()
        try:
            self._drop_socket()
        finally:
            self.release()
        super().close()


def available(path: str = SOCKET_PATH) -> bool:
    """True when journald's socket is there to take entries."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    except OSError:
        return False
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()
