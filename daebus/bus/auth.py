"""Who a process is on Redis, and what happens when Redis says no.

The identity comes from the URL (``redis://user:password@host``) or, when
the URL names none, from ``[redis] username`` and ``[redis] password_file``;
a bare ``password_file`` name is a systemd credential (``LoadCredential=``),
read from ``$CREDENTIALS_DIRECTORY``. The password is read when a client is
built and never stored in settings, logged or shown by ``daebus config``.

A refusal (``WRONGPASS``, ``NOAUTH``, ``NOPERM``) cannot be cured by
reconnecting, so every connection daebus makes turns it into
:class:`~daebus.errors.AccessDenied`, which is not a connection error: the
loops that reconnect after a lost Redis let it through to whoever asked.

Example::

    [redis]
    url = "unix:///run/redis-daebus/redis-server.sock"
    username = "gateway"
    password_file = "redis-password"     # LoadCredential=redis-password:...
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from daebus.errors import AccessDenied, ConfigError

_REFUSALS = ("WRONGPASS", "NOAUTH", "NOPERM")


def read_secret(spec: str, label: str = "[redis] password_file") -> str:
    """The text of the file ``spec`` names (stripped); a name without a
    slash is a systemd credential. ConfigError when it cannot be read."""
    if "/" in spec:
        path = Path(spec)
    else:
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if not folder:
            raise ConfigError(f"{label}: {spec!r} names a systemd credential, but this process has "
                              "none ($CREDENTIALS_DIRECTORY is unset; use LoadCredential= or a path)")
        path = Path(folder) / spec
    return read_private(path, label)


def read_private(path: Path | str, label: str) -> str:
    """The stripped text of a secret file, refused (ConfigError) when others
    than its owner and group may read or write it, as ssh refuses a key."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if mode & 0o007:
                raise ConfigError(f"{label}: {path} is open to every user (mode {mode & 0o777:04o}); "
                                  f"a secret must not be: chmod o-rwx {path}")
            secret = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not secret:
        raise ConfigError(f"{label}: {path} is empty")
    return secret


def username(url: str) -> str | None:
    """The user ``url`` connects as: its own, else the configured one."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return unquote(parts.username or "") or None
    from daebus.ops import config

    return config.resolve((config.REDIS,))[config.REDIS.name]["username"].value or None


def credentials(url: str) -> dict:
    """``username``/``password`` keyword arguments for a client of ``url``:
    the configured ones the URL lacks (what the URL says wins)."""
    parts = urlsplit(url)
    found = {}
    if parts.password:
        return found
    from daebus.ops import config  # imported late: config is not needed to parse a URL

    values = config.resolve((config.REDIS,))[config.REDIS.name]
    username, password_file = values["username"].value, values["password_file"].value
    if username and not parts.username:
        found["username"] = username
    if password_file:
        found["password"] = read_secret(password_file)
    return found


def refusal(exc: BaseException, username: str | None = None) -> AccessDenied | None:
    """``exc`` as an AccessDenied when it is Redis refusing the identity or
    a command; None for anything else."""
    import redis  # here, not at the top: the gateway's master reads secrets without redis-py

    text = str(exc)
    if not isinstance(exc, redis.RedisError) or not text.upper().startswith(_REFUSALS) and \
            not isinstance(exc, redis.AuthenticationError | redis.exceptions.NoPermissionError):
        return None
    who = f"user {username!r}" if username else "the default user"
    if isinstance(exc, redis.exceptions.NoPermissionError) or text.upper().startswith("NOPERM"):
        kind = "NOPERM"
    elif "required" in text.lower() or text.upper().startswith("NOAUTH"):
        kind = "NOAUTH"
    else:
        kind = "WRONGPASS"
    text = text.split(" ", 1)[1] if text.upper().startswith(_REFUSALS) else text
    return AccessDenied(f"Redis refused {who} ({kind}): {text} (see [redis] username and "
                        "password_file, and the bus ACL)")


# Memoised class factories, not caches of clients: every pool built from one
# connection class shares one subclass (and one exception class), so types
# compare equal across clients; nothing here holds a connection or a socket,
# and a forked child may use the same classes.
@functools.cache
def _refused() -> type:
    """AccessDenied as redis-py's connection code sees it: a RedisError, but
    no ConnectionError, so that nothing retries."""
    import redis

    return type("AccessDenied", (AccessDenied, redis.RedisError), {})


@functools.cache
def refusing(connection_class: type) -> type:
    """A subclass of a redis-py connection class whose replies raise
    AccessDenied instead of an authentication or permission error."""
    import redis

    refused = _refused()

    def read_response(self, *args, **kwargs):
        try:
            return connection_class.read_response(self, *args, **kwargs)
        except redis.RedisError as exc:
            denied = refusal(exc, getattr(self, "username", None))
            if denied is None:
                raise
            # The replies of a pipeline's later commands may follow: the
            # next command on this connection would read them as its own.
            self.disconnect()
            raise refused(str(denied)) from exc

    return type(connection_class.__name__, (connection_class,), {"read_response": read_response})
