"""The users of a locked bus on a device: their secrets and the ACL file.

Secrets live in one folder only root may enter (``/etc/daebus/secrets``,
``DAEBUS_SECRETS_DIR`` names another): ``admin``, ``gateway``, ``bridge`` and
``workers/<name>``, each ``0600``, made once and then kept, so package
upgrades and restarts never change a password. systemd hands each unit its
own with ``LoadCredential=``. The ACL file Redis reads
(``/etc/redis/redis-daebus.acl``, ``DAEBUS_ACL_FILE``) is rendered from
them and the worker files by :mod:`daebus.security.acl`, replaced atomically.

Example (what ``daebus acl write --worker sensors --load`` does)::

    users = BusUsers()
    users.write(extra_workers=["sensors"])   # secrets made if missing, ACL file written
    users.load(url)                          # ACL LOAD as the admin user
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import secrets
import tempfile
from pathlib import Path

from daebus.ops import paths
from daebus.security import acl
from daebus.bus import auth
from daebus.service import workers
from daebus.errors import ConfigError

DEFAULT_SECRETS_DIR, DEFAULT_ACL_FILE = paths.SECRETS_DIR, paths.ACL_FILE
# Redis (user redis, whatever group its unit runs it with) must read the
# ACL file; nobody else needs to.
ACL_OWNER = "redis"


@dataclasses.dataclass
class Outcome:
    """What :meth:`BusUsers.write` did: users in the file, secrets it made,
    and the workers it had to leave out (name: why)."""

    users: list[str]
    created: list[str]
    problems: dict[str, str]
    changed: bool = True   # the file's text is new (not rewritten otherwise)
    retired: list[str] = dataclasses.field(default_factory=list)   # secrets removed with their worker file


def exposed_channels() -> list[str]:
    """``[gateway] expose_channels`` of every config file (the lists add
    up, as the gateway reads them), without the gateway package."""
    from daebus.ops import config

    found: list[str] = []
    for doc in config.documents():
        value = doc.data.get("gateway", {}).get("expose_channels", [])
        found += [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
    return list(dict.fromkeys(found))


class BusUsers:
    def __init__(self, secrets_dir: Path | str | None = None, acl_file: Path | str | None = None):
        self.dir = Path(secrets_dir) if secrets_dir else paths.secrets_dir()
        self.acl_file = Path(acl_file) if acl_file else paths.acl_file()

    def secret_path(self, user: str) -> Path:
        if user.startswith(acl.WORKER_PREFIX):
            return self.dir / "workers" / workers.check_name(user[len(acl.WORKER_PREFIX):])
        return self.dir / user

    def secret(self, user: str, created: list[str] | None = None) -> str:
        """The user's secret, made (``0600``) if it does not exist yet."""
        path = self.secret_path(user)
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Written aside (0600), then linked into place: helpers starting at
            # once (a package enabling several workers) find no secret or a
            # whole one, and the first link wins over the others.
            fd, aside = tempfile.mkstemp(prefix=".new-", dir=path.parent)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32) + "\n")
                os.link(aside, path)
            except FileExistsError:
                pass
            else:
                if created is not None:
                    created.append(user)
            finally:
                os.unlink(aside)
        return auth.read_private(path, f"secret of {user}")

    def workers(self, extra: list[str] = ()) -> tuple[list[acl.Worker], dict[str, str]]:
        """Every worker file's worker (and ``extra`` names); files that do
        not parse are left out and described."""
        folder = workers.workers_dir()
        names = sorted({p.stem for p in folder.glob("*.toml")} | set(extra)) if folder.is_dir() else sorted(extra)
        found, problems = [], {}
        for name in names:
            try:
                config = workers.read_worker(name, folder)
            except ConfigError as exc:
                problems[name] = str(exc)
                continue
            found.append(acl.Worker(config.name, config.service, config.listen))
        return found, problems

    def write(self, extra_workers: list[str] = ()) -> Outcome:
        """Make missing secrets and write the ACL file (atomically)."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        found, problems = self.workers(extra_workers)
        created: list[str] = []
        users = [acl.ADMIN, acl.GATEWAY, acl.FLEET_BRIDGE, *(acl.worker_user(w.name) for w in found)]
        text = acl.render({user: self.secret(user, created) for user in users}, found, exposed_channels())
        # A worker asked for by name whose file is wrong still gets its
        # secret (systemd hands it over before the worker starts), so that
        # the worker itself says what is wrong, in its own journal.
        for name in extra_workers:
            if name in problems:
                self.secret(acl.worker_user(name), created)
        retired = self._retire(extra_workers)
        try:
            if self.acl_file.read_text() == text:
                return Outcome(users, created, problems, changed=False, retired=retired)
        except (OSError, UnicodeDecodeError):
            pass   # missing or unreadable: written below
        self.acl_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".daebus-acl-", dir=self.acl_file.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.chmod(tmp, 0o640)
            if os.geteuid() == 0:
                try:
                    owner = pwd.getpwnam(ACL_OWNER)
                    os.chown(tmp, owner.pw_uid, owner.pw_gid)
                except KeyError:
                    pass  # no redis user: root alone reads it (a test, a container)
            os.replace(tmp, self.acl_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Outcome(users, created, problems, retired=retired)

    def _retire(self, extra: list[str]) -> list[str]:
        """Remove the secrets of workers whose file is gone (a worker file
        that is there but wrong keeps its secret)."""
        folder = workers.workers_dir()
        files = {p.stem for p in folder.glob("*.toml")} if folder.is_dir() else set()
        retired = []
        for path in sorted((self.dir / "workers").glob("*")):
            if path.is_file() and not path.name.startswith(".") and path.name not in files | set(extra):
                path.unlink(missing_ok=True)
                retired.append(acl.worker_user(path.name))
        return retired

    def load(self, url: str) -> None:
        """``ACL LOAD`` as the admin user: the users in the file take effect
        now. Redis 7.0 then closes every connection logged in as a user (they
        reconnect), hence ``daebus acl --load --if-changed`` where it is run
        at every start."""
        from daebus.bus.transport import connect

        scheme, rest = url.split("://", 1)
        if "@" in rest.split("/", 1)[0]:
            rest = rest.split("@", 1)[1]   # the admin's identity replaces the URL's
        client = connect(f"{scheme}://{acl.ADMIN}:{self.secret(acl.ADMIN)}@{rest}", socket_timeout=5.0)
        try:
            client.execute_command("ACL", "LOAD")
        finally:
            client.close()
