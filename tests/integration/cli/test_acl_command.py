"""``daebus acl``: secrets made once and kept, the ACL file written from the
worker files, and a new worker's user loaded into a running, locked Redis."""

from __future__ import annotations

import stat

import pytest
import redis

from support import RedisServer


@pytest.fixture
def device(tmp_path):
    (tmp_path / "workers").mkdir()
    env = {"DAEBUS_SECRETS_DIR": str(tmp_path / "secrets"), "DAEBUS_ACL_FILE": str(tmp_path / "redis" / "users.acl"),
           "DAEBUS_WORKERS_DIR": str(tmp_path / "workers")}
    return tmp_path, env


def worker_file(folder, name, *lines):
    (folder / "workers" / f"{name}.toml").write_text("\n".join(['app = "/opt/x.py"', *lines]) + "\n")


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_private_and_kept(daebus, device):
    folder, env = device
    worker_file(folder, "sensors", 'listen = ["system_status"]')
    done = daebus("acl", env=env)
    assert done.returncode == 0, done.stderr
    secrets = folder / "secrets"
    assert mode(secrets) == 0o700
    files = [secrets / "admin", secrets / "gateway", secrets / "workers" / "sensors"]
    assert [mode(f) for f in files] == [0o600] * 3
    assert mode(folder / "redis" / "users.acl") == 0o640
    acl = (folder / "redis" / "users.acl").read_text()
    assert "user worker:sensors on" in acl and "&system_status" in acl
    assert all(f.read_text().strip() not in acl for f in files)   # hashes only
    before = [f.read_text() for f in files]
    # Again, as an upgrade or a restart does: nothing changes.
    assert daebus("acl", env=env).returncode == 0
    assert [f.read_text() for f in files] == before
    assert (folder / "redis" / "users.acl").read_text() == acl


def test_a_broken_worker_file_is_left_out_and_named(daebus, device):
    folder, env = device
    worker_file(folder, "good")
    worker_file(folder, "bad", "servce = 1")
    done = daebus("acl", env=env)
    assert done.returncode == 0
    assert "left out of the ACL" in done.stderr and "bad.toml" in done.stderr
    acl = (folder / "redis" / "users.acl").read_text()
    assert "user worker:good on" in acl and "worker:bad" not in acl
    # Asked for by name (as the worker's unit does): its secret only, and
    # silence, so that the worker's own start says what is wrong, once, in
    # its own journal; --quiet (every unit's pass) names no other file.
    named = daebus("acl", "--worker", "bad", env=env)
    assert named.returncode == 0 and "bad.toml" not in named.stderr, named.stderr
    assert (folder / "secrets" / "workers" / "bad").is_file()
    assert "worker:bad" not in (folder / "redis" / "users.acl").read_text()
    quiet = daebus("acl", "--quiet", "--worker", "good", env=env)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == "", quiet


def test_the_secret_of_a_removed_worker_file_goes_at_the_next_pass(daebus, device):
    folder, env = device
    worker_file(folder, "kept")
    worker_file(folder, "gone")
    assert daebus("acl", env=env).returncode == 0
    secrets = folder / "secrets" / "workers"
    assert sorted(p.name for p in secrets.iterdir()) == ["gone", "kept"]
    (folder / "workers" / "gone.toml").unlink()
    done = daebus("acl", env=env)
    assert done.returncode == 0 and "secrets removed for worker:gone" in done.stdout, done.stdout
    assert sorted(p.name for p in secrets.iterdir()) == ["kept"]
    assert "worker:gone" not in (folder / "redis" / "users.acl").read_text()


def test_a_new_worker_gets_its_user_in_a_running_redis(daebus, device):
    folder, env = device
    worker_file(folder, "first")
    assert daebus("acl", env=env).returncode == 0
    server = RedisServer(args=("--aclfile", str(folder / "redis" / "users.acl"))).start()
    try:
        worker_file(folder, "second")
        done = daebus("acl", "--worker", "second", "--load", env=env, url=server.url)
        assert done.returncode == 0, done.stderr
        secret = (folder / "secrets" / "workers" / "second").read_text().strip()
        client = redis.Redis(port=server.port, username="worker:second", password=secret)
        assert client.set("second:x", 1) and client.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("first:x", 1)
        client.close()
        # A wrong admin secret: the load is refused with one clear line.
        (folder / "secrets" / "admin").write_text("wrong\n")
        refused = daebus("acl", "--load", env=env, url=server.url)
        assert refused.returncode == 2 and "Redis refused user 'admin'" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        server.close()


def test_if_changed_loads_only_a_changed_file(daebus, device):
    # ACL LOAD closes the connections of every logged-in user (Redis 7.0):
    # what runs at every start must not do it when nothing changed.
    folder, env = device
    worker_file(folder, "first")
    assert daebus("acl", env=env).returncode == 0
    acl_file = folder / "redis" / "users.acl"
    server = RedisServer(args=("--aclfile", str(acl_file))).start()
    try:
        secret = (folder / "secrets" / "workers" / "first").read_text().strip()
        # One connection, never reopened behind the test's back.
        connection = redis.Connection(port=server.port, username="worker:first", password=secret)
        connection.connect()

        def ping():
            connection.send_command("PING")
            return connection.read_response()

        written = acl_file.stat().st_mtime_ns
        same = daebus("acl", "--worker", "first", "--load", "--if-changed", env=env, url=server.url)
        assert same.returncode == 0, same.stderr
        assert acl_file.stat().st_mtime_ns == written   # not rewritten either
        assert ping() in (b"PONG", "PONG")   # still open
        worker_file(folder, "second")
        changed = daebus("acl", "--worker", "second", "--load", "--if-changed", env=env, url=server.url)
        assert changed.returncode == 0, changed.stderr
        second = (folder / "secrets" / "workers" / "second").read_text().strip()
        assert redis.Redis(port=server.port, username="worker:second", password=second).ping()
        with pytest.raises(redis.exceptions.ConnectionError):
            ping()   # loaded: Redis closed it
        connection.disconnect()
    finally:
        server.close()


def test_load_without_a_running_redis_is_not_an_error(daebus, device):
    folder, env = device
    done = daebus("acl", "--load", env=env, url="redis://127.0.0.1:1/0")
    assert done.returncode == 0, done.stderr
    assert "reads the file when it starts" in done.stdout


def test_the_gateway_user_follows_the_exposed_channels(daebus, device):
    folder, env = device
    (folder / "daebus.toml").write_text('[gateway]\nexpose_channels = ["sensors.*"]\n')
    (folder / "conf.d").mkdir()
    (folder / "conf.d" / "50-vendor.toml").write_text('[gateway]\nexpose_channels = "system_status"\n')
    assert daebus("acl", env={**env, "DAEBUS_CONFIG": str(folder / "daebus.toml")}).returncode == 0
    [gateway] = [line for line in (folder / "redis" / "users.acl").read_text().splitlines()
                 if line.startswith("user gateway ")]
    assert "&sensors.* &system_status" in gateway
