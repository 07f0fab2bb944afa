"""The fleet's topics: built and parsed in one place, unusable names refused."""

import pytest

from daebus.fleet.topics import Topics, check_action_pattern, check_device, level_problem


T = Topics("kiosks")


def test_topics_are_built_under_the_fleet_prefix():
    assert T.state("k1") == "daebus/kiosks/k1/state"
    assert T.events("k1", "sensors.temp") == "daebus/kiosks/k1/events/sensors.temp"
    assert T.call("k1", "display", "show") == "daebus/kiosks/k1/call/display/show"
    assert T.broadcast("all", "news") == "daebus/kiosks/all/broadcast/news"
    assert T.broadcast("group:lobby", "news") == "daebus/kiosks/group/lobby/broadcast/news"
    assert T.broadcast("k1", "news") == "daebus/kiosks/k1/broadcast/news"
    assert T.broadcast_filters("k1", ["lobby"]) == ["daebus/kiosks/all/broadcast/+", "daebus/kiosks/k1/broadcast/+",
                                                    "daebus/kiosks/group/lobby/broadcast/+"]


def test_topics_parse_back_and_anything_else_is_none():
    assert T.parse_call("daebus/kiosks/k1/call/display/show") == ("k1", "display", "show")
    assert T.parse_call("daebus/kiosks/k1/call/display") is None
    assert T.parse_call("daebus/kiosks/k1/call/display/show/extra") is None
    assert T.parse_call("daebus/other/k1/call/display/show") is None
    assert T.parse_call("daebus/kiosks/k1/call//show") is None
    assert T.parse_broadcast("daebus/kiosks/all/broadcast/news") == "news"
    assert T.parse_broadcast("daebus/kiosks/group/lobby/broadcast/news") == "news"
    assert T.parse_broadcast("daebus/kiosks/k1/broadcast/news") == "news"
    assert T.parse_broadcast("daebus/kiosks/x/lobby/broadcast/news") is None
    assert T.parse_broadcast("daebus/kiosks/all/broadcast/") is None
    assert T.parse_state("daebus/kiosks/k1/state") == "k1"
    assert T.parse_state("daebus/kiosks/k1/state/x") is None


@pytest.mark.parametrize("name", ["", "a/b", "a+", "#", "nul\x00", "x" * 201])
def test_names_that_cannot_be_one_topic_level_are_refused(name):
    assert level_problem(name)
    with pytest.raises(ValueError):
        check_device(name)


@pytest.mark.parametrize("device", ["all", "group", "reply"])
def test_reserved_device_ids(device):
    with pytest.raises(ValueError, match="reserved"):
        check_device(device)


def test_call_action_patterns_are_service_slash_action():
    assert check_action_pattern("display/*") == "display/*"
    for bad in ("display", "a/b/c", "a/+", "/x"):
        with pytest.raises(ValueError):
            check_action_pattern(bad)


def test_a_fleet_name_is_one_level():
    with pytest.raises(ValueError):
        Topics("a/b")
