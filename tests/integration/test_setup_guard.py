"""Declaring handlers after run() started is an error, not a silent no-op."""

import pytest

from daebus import Blueprint, Daebus, DaebusHttp
from daebus.call.caller import DaebusCaller


def test_declarations_after_run_started_raise(run_app, redis_url):
    app = Daebus("guarded")
    bp = Blueprint("extra")
    app.register_blueprint(bp)

    @app.action("ping")
    def ping():
        return "pong"

    run_app(app, service="guarded")
    for declare in (lambda: app.action("late")(ping), lambda: app.listen("news")(ping),
                    lambda: app.route("/late")(ping), lambda: app.background("t", 5)(ping),
                    lambda: app.thread("t")(ping), lambda: app.on_start()(ping),
                    lambda: app.attach(DaebusHttp(port=0)), lambda: bp.listen("news")(ping),
                    lambda: app.register_blueprint(Blueprint("later"))):
        with pytest.raises(RuntimeError, match=r"after run\(\) started"):
            declare()
    assert "news" not in app.listeners and "late" not in app.actions
    with DaebusCaller("guarded", redis_url=redis_url, timeout=5) as caller:
        assert caller.send_request("ping", {}) == "pong"


def test_declaring_is_allowed_again_once_run_returned(run_app):
    app = Daebus("again")
    thread = run_app(app, service="again")
    app.stop()
    thread.join(15)
    assert not thread.is_alive()

    @app.action("later")
    def later():
        return 1

    assert app.actions["later"] is later
