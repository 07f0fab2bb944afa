"""Exposure patterns: Redis glob rules, messages and the PSUBSCRIBE set."""

import pytest

from gateway.expose import Exposure, glob_match


@pytest.mark.parametrize("pattern, name, expected", [
    ("news.*", "news.a", True),
    ("news.*", "news", False),
    ("*", "", True),
    ("h?llo", "hello", True),
    ("h?llo", "hllo", False),
    ("h[ae]llo", "hallo", True),
    ("h[ae]llo", "hillo", False),
    ("h[^e]llo", "hallo", True),
    ("h[^e]llo", "hello", False),
    ("h[a-b]llo", "hbllo", True),
    ("h[b-a]llo", "hbllo", True),  # Redis accepts a reversed range
    ("h[!e]llo", "h!llo", True),   # "!" is literal in Redis, unlike fnmatch
    (r"a\*b", "a*b", True),
    (r"a\*b", "axb", False),
    ("a.b", "axb", False),           # "." is literal
    ("clock/*", "clock/now", True),
    ("clock/*", "clocks/now", False),
])
def test_glob_follows_redis_rules(pattern, name, expected):
    assert glob_match(pattern, name) is expected


def test_nothing_is_exposed_by_default():
    exposure = Exposure()
    assert not exposure.action_allowed("clock", "now")
    assert not exposure.channel_allowed("news")


def test_actions_match_service_slash_action():
    exposure = Exposure(actions=["clock/*", "sensors/read"])
    assert exposure.action_allowed("clock", "now")
    assert exposure.action_allowed("sensors", "read")
    assert not exposure.action_allowed("sensors", "calibrate")


def test_denial_messages_name_the_key_and_the_file():
    exposure = Exposure(source="/etc/daebus/daebus.toml")
    message = exposure.action_denied("sensors", "calibrate")
    assert '"sensors/calibrate"' in message and '"sensors/*"' in message
    assert "gateway.expose_actions in /etc/daebus/daebus.toml" in message
    assert "gateway.expose_channels" in exposure.channel_denied("private")


def test_plain_names_covered_by_a_pattern_are_not_subscribed_twice():
    exposure = Exposure(channels=["news.*", "news.a", "status", "status"])
    assert exposure.subscription_patterns() == ["news.*", "status"]


def test_copies_counts_matching_patterns():
    exposure = Exposure(channels=["news.*", "*.a"])
    patterns = exposure.subscription_patterns()
    assert exposure.copies("news.a", patterns) == 2
    assert exposure.copies("news.b", patterns) == 1
    assert exposure.copies("other", patterns) == 0
