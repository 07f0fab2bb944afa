"""daebus call, publish and listen against a real redis-server and real services."""

from __future__ import annotations

import json
import signal
import time

import pytest

from daebus.cli import Exit


@pytest.fixture
def basic(service):
    return service("basic.py", "cli-basic")


# -- call -----------------------------------------------------------------------

def test_call_prints_the_payload_as_one_compact_line_when_piped(daebus, basic):
    out = daebus("call", "cli-basic", "echo", '{"name": "kiosk", "n": 2}')
    assert out.returncode == Exit.OK, out.stderr
    assert out.stdout.count("\n") == 1 and ": " not in out.stdout
    assert json.loads(out.stdout)["echo"] == {"name": "kiosk", "n": 2}
    assert out.stderr == ""


def test_call_pretty_prints_on_a_terminal(daebus_tty, basic):
    status, output = daebus_tty("call", "cli-basic", "echo", '{"name": "kiosk"}')
    assert status == Exit.OK
    assert '\n  "echo": {\n    "name": "kiosk"\n  },' in output


def test_call_reads_the_payload_from_stdin_and_defaults_to_an_empty_object(daebus, basic):
    out = daebus("call", "cli-basic", "echo", "-", input='[1, "two"]\n')
    assert json.loads(out.stdout)["echo"] == [1, "two"]
    out = daebus("call", "cli-basic", "echo")
    assert out.returncode == Exit.OK, out.stderr
    assert json.loads(out.stdout)["echo"] == {}


def test_call_prints_progress_to_stderr_and_the_result_to_stdout(daebus, basic):
    out = daebus("call", "cli-basic", "progress")
    assert out.returncode == Exit.OK
    assert json.loads(out.stdout) == {"done": True}
    assert out.stderr.splitlines() == [
        f'progress: {{"step":{step},"progress_percentage":{(step + 1) * 25:.1f}}}' for step in range(3)]


def test_progress_reaches_stderr_before_the_final_reply(daebus, service, background, tmp_path):
    # The handler waits for a broadcast that is only sent once the first
    # progress line has been read from the command's stderr.
    script = tmp_path / "stepper.py"
    script.write_text(
        "import threading\n"
        "from daebus import Daebus, response\n"
        "app = Daebus('stepper')\n"
        "go = threading.Event()\n"
        "@app.listen('stepper.go')\n"
        "def on_go(payload):\n"
        "    go.set()\n"
        "@app.action('run')\n"
        "def run():\n"
        "    response.progress({'phase': 'waiting'})\n"
        "    if not go.wait(20):\n"
        "        raise RuntimeError('never released')\n"
        "    return {'released': True}\n"
        "app.run()\n")
    service(str(script))
    proc = background("call", "stepper", "run", "--timeout", "30")
    assert proc.stderr.readline() == 'progress: {"phase":"waiting"}\n'
    assert proc.poll() is None  # still waiting for the final reply
    assert daebus("publish", "stepper.go", "{}").returncode == Exit.OK
    assert json.loads(proc.stdout.read()) == {"released": True}
    assert proc.wait(30) == Exit.OK


def test_remote_errors_print_code_and_message_and_exit_3(daebus, basic):
    out = daebus("call", "cli-basic", "boom")
    assert out.returncode == Exit.REMOTE_ERROR == 3
    assert out.stdout == ""
    assert out.stderr == "daebus: cli-basic.boom: handler_error: kaput\n"
    out = daebus("call", "cli-basic", "invalid")
    assert out.returncode == 3
    assert out.stderr == "daebus: cli-basic.invalid: bad_request: brightness must be between 0 and 100\n"
    out = daebus("call", "cli-basic", "no_such_action")
    assert out.returncode == 3
    assert out.stderr.startswith("daebus: cli-basic.no_such_action: action_not_found: ")


def test_a_missing_service_exits_4_at_once(daebus):
    started = time.monotonic()
    out = daebus("call", "nobody-runs-this", "echo", "--timeout", "20")
    assert out.returncode == Exit.UNAVAILABLE == 4
    assert time.monotonic() - started < 15  # not the 20 s timeout
    assert out.stderr == "daebus: service 'nobody-runs-this' is not running (nobody subscribed to its channel)\n"


def test_a_slow_action_times_out_with_exit_5(daebus, basic):
    started = time.monotonic()
    out = daebus("call", "cli-basic", "slow", '{"seconds": 30}', "--timeout", "1")
    assert out.returncode == Exit.TIMEOUT == 5
    assert time.monotonic() - started < 20
    assert out.stderr == "daebus: cli-basic.slow did not answer within 1 s\n"
    assert out.stdout == ""


def test_redis_unreachable_exits_6_in_one_line(daebus):
    for args in (("call", "x", "y"), ("publish", "c", "{}"), ("listen", "c"), ("services",)):
        out = daebus(*args, "--redis-url", "redis://127.0.0.1:1/0")
        assert out.returncode == Exit.REDIS == 6, args
        assert out.stderr.startswith("daebus: cannot reach Redis at redis://127.0.0.1:1/0"), args
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr


def test_redis_lost_during_a_call_exits_6(fresh_redis, background, service):
    service("basic.py", "cli-lost", url=fresh_redis.url)
    listener = fresh_redis.client().pubsub()
    listener.subscribe("slow_started")
    listener.get_message(timeout=5)
    proc = background("call", "cli-lost", "slow", '{"seconds": 30}', "--timeout", "60", url=fresh_redis.url)
    # The handler announces that it runs: the request is in flight.
    message = listener.get_message(timeout=15)
    while message is not None and message["type"] != "message":
        message = listener.get_message(timeout=15)
    assert message is not None
    fresh_redis.stop(kill=True)
    assert proc.wait(20) == Exit.REDIS
    err = proc.stderr.read()
    assert err.startswith("daebus: lost connection to Redis") and err.count("\n") == 1, err


@pytest.mark.parametrize("args", [
    ("call", "cli-basic", "echo", "{not json"),
    ("call", "cli-basic", "echo", "-"),
    ("publish", "chan", "nope"),
    ("publish", "chan", "[1, 2]"),
])
def test_bad_json_is_a_usage_error(daebus, basic, args):
    out = daebus(*args, input="")
    assert out.returncode == Exit.USAGE == 2
    assert out.stderr.startswith("daebus: ") and out.stderr.count("\n") == 1
    assert out.stdout == ""


@pytest.mark.parametrize("args", [
    ("call",), ("call", "svc"), ("call", "svc", "act", "--timeout", "0"), ("call", "svc", "act", "--timeout", "x"),
    ("publish", "chan"), ("listen",), ("listen", "x", "--count", "0"), ("no-such-command",),
])
def test_usage_errors_exit_2(daebus, args):
    out = daebus(*args)
    assert out.returncode == Exit.USAGE
    assert "usage: daebus" in out.stderr


# -- publish and listen -----------------------------------------------------------

def numpat(client) -> int:
    return client.execute_command("PUBSUB", "NUMPAT")


def test_publish_reaches_a_listener_and_says_how_many_received_it(daebus, redis_server):
    client = redis_server.client()
    pubsub = client.pubsub()
    pubsub.subscribe("cli.pub")
    pubsub.get_message(timeout=5)
    out = daebus("publish", "cli.pub", '{"level": "high"}')
    assert out.returncode == Exit.OK
    assert out.stdout == "cli.pub: 1 receiver\n"
    message = pubsub.get_message(timeout=5)
    assert json.loads(message["data"]) == {"level": "high"}
    assert daebus("publish", "cli.nobody", "-", input='{"a": 1}').stdout == "cli.nobody: 0 receivers\n"


def test_listen_prints_time_channel_and_payload_and_survives_garbage(background, redis_server, daebus,
                                                                     wait_until):
    client = redis_server.client()
    before = numpat(client)
    proc = background("listen", "cli.sensors.*", "cli.alert", "--count", "5")
    wait_until(lambda: numpat(client) >= before + 2, what="the listener's subscriptions")
    client.publish("cli.sensors.temp", '{"celsius": 21.5}')
    client.publish("cli.sensors.bad", "garbage {")
    client.publish("cli.other", '{"ignored": true}')
    client.publish("cli.alert", b"\xff\xfe")  # not UTF-8
    client.publish("cli.sensors.list", "[1, 2]")
    assert daebus("publish", "cli.alert", '{"level": 3}').returncode == 0
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == Exit.OK, err
    lines = out.splitlines()
    assert len(lines) == 5
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert all(len(stamp) >= 23 and stamp[10] == "T" for stamp in stamps), stamps
    assert [line.split(" ", 1)[1] for line in lines] == [
        'cli.sensors.temp {"celsius":21.5}',
        "cli.sensors.bad (not JSON) 'garbage {'",
        "cli.alert (not JSON) '\ufffd\ufffd'",
        "cli.sensors.list [1,2]",
        'cli.alert {"level":3}',
    ]


def test_listen_json_lines(background, redis_server, wait_until):
    client = redis_server.client()
    before = numpat(client)
    proc = background("listen", "cli.json.*", "--json", "--count", "2")
    wait_until(lambda: numpat(client) > before, what="the listener's subscription")
    client.publish("cli.json.a", '{"x": [1, null]}')
    client.publish("cli.json.b", "not json")
    out, _ = proc.communicate(timeout=20)
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["channel"] == "cli.json.a" and first["data"] == {"x": [1, None]} and "raw" not in first
    assert second["channel"] == "cli.json.b" and second["raw"] == "not json" and "data" not in second
    assert first["time"] <= second["time"]


def test_listen_stops_on_ctrl_c_with_exit_0(background, redis_server, wait_until):
    client = redis_server.client()
    before = numpat(client)
    proc = background("listen", "cli.ctrl.*")
    wait_until(lambda: numpat(client) > before, what="the listener's subscription")
    client.publish("cli.ctrl.x", "{}")
    assert proc.stdout.readline().endswith(" cli.ctrl.x {}\n")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == Exit.OK
    assert "Traceback" not in proc.stderr.read()


def test_listen_exits_6_when_redis_goes_away(background, fresh_redis, wait_until):
    client = fresh_redis.client()
    proc = background("listen", "anything", url=fresh_redis.url)
    wait_until(lambda: numpat(client) == 1, what="the listener's subscription")
    fresh_redis.stop(kill=True)
    assert proc.wait(20) == Exit.REDIS
    err = proc.stderr.read()
    assert err.startswith("daebus: cannot reach Redis") and err.count("\n") == 1


def test_listen_keeps_up_with_a_flood_in_order(background, redis_server, wait_until):
    client = redis_server.client()
    before = numpat(client)
    proc = background("listen", "cli.flood", "--json", "--count", "2000")
    wait_until(lambda: numpat(client) > before, what="the listener's subscription")
    pipe = client.pipeline(transaction=False)
    for n in range(2000):
        pipe.publish("cli.flood", json.dumps({"n": n}))
    pipe.execute()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == Exit.OK, err
    assert [json.loads(line)["data"]["n"] for line in out.splitlines()] == list(range(2000))


def test_a_service_that_dies_during_a_call_is_a_timeout(background, service, redis_server):
    svc = service("basic.py", "cli-dying")
    listener = redis_server.client().pubsub()
    listener.subscribe("slow_started")
    listener.get_message(timeout=5)
    started = time.monotonic()
    proc = background("call", "cli-dying", "slow", '{"seconds": 60}', "--timeout", "3")
    message = listener.get_message(timeout=15)
    while message is not None and message["type"] != "message":
        message = listener.get_message(timeout=15)
    svc.process.kill()
    assert proc.wait(20) == Exit.TIMEOUT
    assert time.monotonic() - started < 20
    assert proc.stderr.read() == "daebus: cli-dying.slow did not answer within 3 s\n"


# -- odd input: one line on stderr and a status, never a traceback ---------------

# Named ids: pytest puts a test's id in each child's environment
# (PYTEST_CURRENT_TEST), and one longer than 128 KiB fails the exec.
@pytest.mark.parametrize("payload, hint", [
    ('{"v": NaN}', "NaN"), ('{"v": 1e400}', "too large"), ('{"v": "\\ud800"}', "surrogate"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
], ids=["nan", "huge-number", "surrogate", "deep-nesting"])
def test_call_refuses_json_the_bus_does_not_carry(daebus, basic, payload, hint):
    out = daebus("call", "cli-basic", "echo", "-", input=payload)
    assert out.returncode == Exit.USAGE, out.stderr
    assert out.stderr.startswith("daebus: invalid JSON payload") and hint in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_call_refuses_stdin_that_is_not_utf8_and_oversized_payloads(redis_url, basic):
    import subprocess
    import sys

    from support import child_env

    for data, hint, status in ((b'{"v": "\xff"}', "not UTF-8", Exit.USAGE),
                               (b'{"blob": "' + b"x" * (2 * 1024 * 1024) + b'"}', "byte limit", Exit.USAGE)):
        out = subprocess.run([sys.executable, "-m", "daebus.cli", "call", "cli-basic", "echo", "-"], input=data, capture_output=True,
                             timeout=30, env=child_env(redis_url))
        err = out.stderr.decode()
        assert out.returncode == status, err
        assert err.startswith("daebus: ") and hint in err and err.count("\n") == 1, err


@pytest.mark.parametrize("args, hint", [
    (("--timeout", "1e308"), "--timeout"),
    (("--redis-url", "bogus://x"), "invalid Redis URL"),
    (("--redis-url", "redis://u:secret@[::1"), "invalid Redis URL"),  # urllib cannot split it
])
def test_call_reports_impossible_options_in_one_line(daebus, args, hint):
    out = daebus("call", "cli-basic", "echo", *args)
    assert out.returncode == Exit.USAGE, out.stderr
    assert hint in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert "secret" not in out.stderr, out.stderr


def test_call_with_a_timeout_shorter_than_a_round_trip_is_a_timeout(daebus, basic):
    # 3 ms may pass before the reply subscription is even confirmed; the
    # handler takes a second, so no fast machine can answer within it.
    out = daebus("call", "cli-basic", "slow", '{"seconds": 1}', "--timeout", "0.003")
    assert out.returncode == Exit.TIMEOUT, out.stderr
    assert "cannot reach Redis" not in out.stderr


def test_listen_survives_odd_messages_and_escapes_control_characters(background, redis_server, wait_until):
    client = redis_server.client()
    before = numpat(client)
    proc = background("listen", "cli.odd*", "--count", "4")
    wait_until(lambda: numpat(client) > before, what="the listener's subscription")
    client.publish("cli.odd.deep", "[" * 100_000 + "]" * 100_000)
    client.publish("cli.odd.surrogate", '{"x": "\\ud800"}')
    client.publish("cli.odd\x1b]0;owned\x07", '{"ok": 1}')
    client.publish("cli.odd.c1", '{"x": "\u009b2J"}')
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == Exit.OK and "Traceback" not in err, err
    lines = [line.split(" ", 1)[1] for line in out.splitlines()]
    assert len(lines) == 4, out[:500]
    assert lines[0].startswith("cli.odd.deep (not JSON) '[[[")
    assert lines[1] == "cli.odd.surrogate (not JSON) '{\"x\": \"\\\\ud800\"}'"
    assert lines[2] == 'cli.odd\\x1b]0;owned\\x07 {"ok":1}'
    assert lines[3] == 'cli.odd.c1 {"x":"\\u009b2J"}'
    assert "\x1b" not in out and "\x9b" not in out
