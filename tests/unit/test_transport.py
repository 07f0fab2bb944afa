from daebus.transport import Backoff, redact


def test_redact_hides_only_the_password():
    assert redact("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("rediss://user:pw@host/1") == "rediss://user:***@host/1"
    assert redact("unix:///run/redis.sock?db=2") == "unix:///run/redis.sock?db=2"


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(0.1, cap=0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1
