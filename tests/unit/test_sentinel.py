"""Sentinel URLs: what they name, and clear errors for what they can't."""

import pytest

from daebus.bus import sentinel, transport


def test_hosts_master_db_and_passwords():
    target = sentinel.parse("redis+sentinel://:s3cret@10.0.0.1:26380,10.0.0.2/bus/2?sentinel_password=x")
    assert target.sentinels == (("10.0.0.1", 26380), ("10.0.0.2", sentinel.DEFAULT_PORT))
    assert (target.master, target.db, target.password, target.sentinel_password) == ("bus", 2, "s3cret", "x")
    assert sentinel.parse("redis+sentinel://h:1/bus").db == 0


@pytest.mark.parametrize("url", ["redis+sentinel:///bus", "redis+sentinel://h:1/", "redis+sentinel://h:x/bus",
                                 "redis+sentinel://h:1/bus/zero", "redis+sentinel://h:1/bus/0/extra"])
def test_malformed_urls_say_what_is_wrong(url):
    with pytest.raises(ValueError, match="sentinel|database"):
        sentinel.parse(url)


def test_password_is_redacted_in_logs():
    assert transport.redact("redis+sentinel://:pw@h:1,h:2/bus/0") == "redis+sentinel://:***@h:1,h:2/bus/0"


def test_a_client_asks_the_sentinels_for_the_master():
    client = transport.connect("redis+sentinel://127.0.0.1:1/bus")
    assert type(client.connection_pool).__name__ == "SentinelConnectionPool"
    assert client.connection_pool.service_name == "bus"


def test_a_malformed_sentinel_url_is_a_config_error(monkeypatch):
    from daebus.ops import config
    from daebus.errors import ConfigError

    monkeypatch.setenv("DAEBUS_REDIS_URL", "redis+sentinel://h:1/")
    with pytest.raises(ConfigError, match="expected redis\\+sentinel://"):
        config.load()
