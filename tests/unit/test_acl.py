"""The ACL file daebus renders (checked against a real Redis in
tests/integration/test_acl.py)."""

from __future__ import annotations

import hashlib

import pytest

from daebus.security import acl

SECRETS = {"admin": "a" * 32, "gateway": "g" * 32, "worker:sensors": "s" * 32}


def users(text: str) -> dict[str, str]:
    return {line.split()[1]: line for line in text.splitlines()}


def test_every_role_is_denied_the_dangerous_commands():
    rendered = users(acl.render(SECRETS, [acl.Worker("sensors", "sensors")]))
    assert set(rendered) == {"default", "admin", "gateway", "worker:sensors"}
    assert rendered["default"].split()[2] == "off"
    for name in ("admin", "gateway", "worker:sensors"):
        rules = rendered[name].split()
        for denied in ("-@dangerous", "-flushall", "-config", "-keys", "-debug", "-shutdown", "-module"):
            assert denied in rules, (name, denied)
        # Denials come after every grant of the user's root permissions.
        assert rules.index("-@dangerous") > rules.index("+@all")


def test_the_file_holds_hashes_not_passwords():
    text = acl.render(SECRETS)
    assert "a" * 32 not in text
    assert "#" + hashlib.sha256(b"a" * 32).hexdigest() in text


def test_a_worker_is_scoped_to_its_service():
    worker = acl.Worker("sensors-2", "sensors", listen=("system_status", "temp.*"))
    rules = acl.worker_rules(worker)
    assert "&sensors" in rules and "&caller:worker:sensors-2:*" in rules
    assert "&system_status" in rules and "&temp.*" in rules
    assert "~sensors:*" in rules and "~daebus:service:sensors" in rules and "~daebus:stream:sensors" in rules
    assert "&*" not in rules and "~*" not in rules


def test_glob_characters_in_a_service_name_match_only_themselves():
    rules = acl.worker_rules(acl.Worker("odd", "a*b"))
    assert "&a\\*b" in rules and "~a\\*b:*" in rules


def test_workers_without_a_secret_are_left_out_and_admin_is_required():
    assert "worker:ghost" not in acl.render(SECRETS, [acl.Worker("ghost", "ghost")])
    with pytest.raises(KeyError):
        acl.render({"gateway": "g" * 32})
    with pytest.raises(ValueError):
        acl.render({**SECRETS, "admin": ""})


def test_the_gateway_subscribes_to_its_replies_notices_and_exposed_patterns_only():
    rules = acl.gateway_rules(["sensors.*", "system_status"])
    subscribable = [r for r in rules if r.startswith("&")]
    assert subscribable == ["&caller:gateway:*", "&daebus:kept", "&daebus:wake:*", "&sensors.*",
                            "&system_status"]
    assert "(&* +publish)" in rules    # requests to any service
