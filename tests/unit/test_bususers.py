"""The bus's secrets: made once, whole, whoever asks first."""

from __future__ import annotations

import stat
import threading

from daebus.security.bususers import BusUsers


def test_helpers_starting_at_once_get_one_whole_secret(tmp_path):
    # As when a package enables several workers at once: each worker's
    # helper makes the secrets that are missing, all of them at the same time.
    users = BusUsers(tmp_path / "secrets", tmp_path / "bus.acl")
    names = [f"worker:w{n}" for n in range(40)]
    start = threading.Barrier(8)
    seen: list[dict[str, str]] = []
    errors: list[BaseException] = []

    def helper():
        start.wait()
        try:
            seen.append({name: users.secret(name) for name in names})
        except BaseException as exc:  # noqa: BLE001 - every failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=helper) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(seen) == 8 and all(secrets == seen[0] for secrets in seen)
    assert all(len(secret) == 64 for secret in seen[0].values())
    files = sorted(p.name for p in (tmp_path / "secrets/workers").iterdir())
    assert files == sorted(name.split(":")[1] for name in names)   # nothing left aside
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (tmp_path / "secrets/workers").iterdir())


def test_a_secret_once_made_is_kept(tmp_path):
    users = BusUsers(tmp_path / "secrets", tmp_path / "bus.acl")
    created: list[str] = []
    first = users.secret("gateway", created)
    again = users.secret("gateway", created)
    assert first == again and created == ["gateway"]
