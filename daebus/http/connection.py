"""One client connection: reading whole requests under a deadline, writing responses.

Every read is bounded twice: in size (head and body limits, checked before
the bytes are read) and in time (one deadline for the whole request, so a
client that trickles a byte a second is cut off like one that sends
nothing). The serving loop buffers a request with :meth:`Connection.fill_nowait`
until :meth:`Connection.request_buffered` says a handler can answer it
without waiting on the client.
"""

from __future__ import annotations

import re
import socket
import time
from typing import NamedTuple

from daebus.http.wire import HttpError, RequestHead, body_length, parse_head

_CRLF = b"\r\n"
# RFC 9112 7.1: chunk-size is 1*HEXDIG (no "0x", sign or spaces before it),
# then optional extensions; 16 digits already exceed any body limit.
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_RECV = 65536


class Timeout(Exception):
    """The client did not send a whole request in time; ``partial`` when it
    had started one (so it is owed a 408), not when it was merely idle."""

    def __init__(self, partial: bool = False):
        super().__init__("request not received in time")
        self.partial = partial


class Limits(NamedTuple):
    max_head: int = 64 * 1024
    max_body: int = 1024 * 1024
    max_line: int = 8 * 1024


class Connection:
    """A client socket and the bytes it sent that are not yet parsed.

    Example::

        conn = Connection(sock, addr)
        head, body = conn.read_request(Limits(), time.monotonic() + 10)
        conn.send(serialize_response(200, Headers(), b"ok"), timeout=10)
    """

    __slots__ = ("sock", "addr", "buf", "requests")

    def __init__(self, sock: socket.socket, addr):
        self.sock = sock
        self.addr = addr
        self.buf = bytearray()
        self.requests = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def has_data(self) -> bool:
        """Bytes of a next (pipelined) request are already buffered."""
        return bool(self.buf)

    def fill_nowait(self) -> int | None:
        """Buffer what the socket holds without waiting: the byte count,
        0 at end of stream, None when nothing was there after all."""
        try:
            data = self.sock.recv(_RECV, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        self.buf += data
        return len(data)

    def request_buffered(self, limits: Limits) -> bool:
        """A handler can answer the next request without waiting on the client.

        True once the whole head is buffered, and with it a body announced by
        ``Content-Length``; also when what is buffered is already bad enough
        to refuse (too large, malformed). A chunked body, or one behind
        ``Expect: 100-continue``, is read by the handler within its timeout.
        """
        buf = self.buf
        start = 0
        while buf.startswith(_CRLF, start):
            start += 2
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            return len(buf) - start > limits.max_head
        try:
            head = parse_head(bytes(buf[start:end]))
            length = body_length(head, limits.max_body)
        except HttpError:
            return True
        if length is None or "expect" in head.headers:
            return True
        return len(buf) >= end + 4 + length

    def read_request(self, limits: Limits, deadline: float) -> tuple[RequestHead, bytes] | None:
        """The next request's head and body; None if the client closed first.

        Raises :class:`HttpError` for a request to refuse (the connection
        must then be closed: its framing can't be trusted) and
        :class:`Timeout` when ``deadline`` passes.
        """
        start = 0
        while True:
            # Clients may send stray CRLFs between requests (RFC 9112 2.2).
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
            end = self.buf.find(b"\r\n\r\n", start)
            if end >= 0:
                break
            if len(self.buf) > limits.max_head:
                raise HttpError(431, "request head too large")
            start = max(0, len(self.buf) - 3)
            try:
                filled = self._fill(deadline)
            except Timeout:
                raise Timeout(partial=bool(self.buf)) from None
            if not filled:
                if self.buf:
                    raise HttpError(400, "connection closed in the middle of a request")
                return None
        if end > limits.max_head:
            raise HttpError(431, "request head too large")
        if self.buf.find(b"\r\n", 0, end + 2) > limits.max_line:
            raise HttpError(414, "request line too long")
        head = parse_head(bytes(self.buf[:end]))
        del self.buf[:end + 4]
        length = body_length(head, limits.max_body)
        if length != 0:
            self._maybe_continue(head, length, deadline)
        try:
            body = (self._read_chunked(limits, deadline) if length is None
                    else self._read_exactly(length, deadline))
        except Timeout:
            raise Timeout(partial=True) from None
        self.requests += 1
        return head, body

    def send(self, data: bytes, timeout: float) -> None:
        """Write all of ``data`` within ``timeout`` seconds (socket.timeout otherwise)."""
        self.sock.settimeout(timeout)
        self.sock.sendall(data)

    def send_nowait(self, data: bytes) -> None:
        """Write what the socket takes at once; a client that is not reading loses the rest."""
        try:
            self.sock.send(data, socket.MSG_DONTWAIT)
        except OSError:
            pass

    def close(self, linger: float = 0.0) -> None:
        """Close; with ``linger``, first let the client read what was sent.

        Closing with unread request bytes in the kernel makes it send a
        reset, which can destroy the response (a 413) before the client
        reads it; so half-close and discard input for at most ``linger`` s.
        """
        try:
            if linger > 0:
                self.sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + linger
                while (remaining := deadline - time.monotonic()) > 0:
                    self.sock.settimeout(remaining)
                    if not self.sock.recv(_RECV):
                        break
        except OSError:
            pass
        finally:
            self.sock.close()

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(_RECV)
        except TimeoutError:
            raise Timeout() from None
        if not data:
            return False
        self.buf += data
        return True

    def _maybe_continue(self, head: RequestHead, length: int | None, deadline: float) -> None:
        expect = head.headers.tokens("expect")
        if not expect:
            return
        if expect != ["100-continue"]:
            raise HttpError(417, "only 'Expect: 100-continue' is supported")
        # The client waits for this before sending the body; a 413 or 400
        # raised earlier means it never has to send it at all.
        if head.version == "HTTP/1.1" and not self.buf:
            self.send(_CONTINUE, max(0.0, deadline - time.monotonic()))

    def _read_exactly(self, length: int, deadline: float) -> bytes:
        while len(self.buf) < length:
            if not self._fill(deadline):
                raise HttpError(400, "connection closed in the middle of the body")
        body = bytes(self.buf[:length])
        del self.buf[:length]
        return body

    def _read_line(self, limits: Limits, deadline: float) -> bytes:
        start = 0
        while (end := self.buf.find(b"\r\n", start)) < 0:
            if len(self.buf) > limits.max_line:
                raise HttpError(400, "chunk line too long")
            start = max(0, len(self.buf) - 1)
            if not self._fill(deadline):
                raise HttpError(400, "connection closed in the middle of the body")
        line = bytes(self.buf[:end])
        del self.buf[:end + 2]
        return line

    def _read_chunked(self, limits: Limits, deadline: float) -> bytes:
        body = bytearray()
        while True:
            match = _CHUNK_SIZE.fullmatch(self._read_line(limits, deadline))
            if match is None:
                raise HttpError(400, "invalid chunk size")
            size = int(match.group(1), 16)
            if size == 0:
                break
            if len(body) + size > limits.max_body:
                raise HttpError(413, f"request body exceeds the {limits.max_body} byte limit")
            body += self._read_exactly(size, deadline)
            if self._read_line(limits, deadline):
                raise HttpError(400, "chunk not followed by CRLF")
        while self._read_line(limits, deadline):
            pass  # trailer fields carry nothing a handler reads
        return bytes(body)
