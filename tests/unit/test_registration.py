import pytest

from daebus import Blueprint, Daebus


def test_decorators_return_the_function_unchanged():
    app = Daebus("t")

    def fn():
        return 1

    for decorator in (app.action("a"), app.listen("c"), app.background("b", 5),
                      app.thread("th"), app.on_start(), app.route("/x")):
        assert decorator(fn) is fn
    assert app.actions == {"a": fn} and app.listeners == {"c": [fn]}
    assert "b" in app.tasks and "th" in app.threads and app.start_hooks == [fn]


def test_same_action_name_for_another_function_is_refused():
    app = Daebus("t")
    app.action("a")(lambda: 1)
    with pytest.raises(ValueError, match="already handled"):
        app.action("a")(lambda: 2)


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {}, "either an interval or cron"),
    ((5,), {"cron": "* * * * *"}, "either an interval or cron"),
    ((0,), {}, "positive"),
    ((), {"cron": "* * *"}, "five fields"),
])
def test_background_arguments_are_checked_at_declaration(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Daebus("t").background("job", *args, **kwargs)


def test_blueprint_registers_everything_with_a_url_prefix():
    bp = Blueprint("display", url_prefix="/display")
    bp.action("set")(lambda: None)
    bp.listen("dim")(lambda p: None)
    bp.background("poll", 10)(lambda: None)
    bp.thread("loop")(lambda running: None)
    bp.route("/state", methods=["GET", "post"])(lambda req: {})
    app = Daebus("t")
    app.register_blueprint(bp)
    assert set(app.actions) == {"set"} and set(app.listeners) == {"dim"}
    assert set(app.tasks) == {"poll"} and set(app.threads) == {"loop"}
    assert [(r.path, r.methods) for r in app.routes] == [("/display/state", ("GET", "POST"))]


def test_blueprint_can_be_registered_after_a_component_is_attached():
    app = Daebus("t")
    bound = []

    class Component:
        def bind(self, app):
            bound.append(app)

    app.attach(Component())
    bp = Blueprint("late")
    bp.route("/late")(lambda req: "ok")
    app.register_blueprint(bp, url_prefix="/v1")
    assert bound == [app] and app.routes[0].path == "/v1/late"


def test_max_workers_must_be_positive():
    with pytest.raises(ValueError):
        Daebus("t", max_workers=0)


def test_blueprint_declarations_after_registration_still_count():
    bp = Blueprint("display", url_prefix="/display")
    app = Daebus("t")
    app.register_blueprint(bp)

    @bp.action("late")
    def late():
        return {}

    @bp.listen("dim")
    def dim(payload):
        pass

    bp.route("/late")(late)
    bp.background("poll", 10)(late)
    bp.on_start()(late)
    assert app.actions["late"] is late and app.listeners["dim"] == [dim]
    assert [r.path for r in app.routes] == ["/display/late"] and bp.routes[0].path == "/late"
    assert set(app.tasks) == {"poll"} and app.start_hooks == [late]


def test_a_blueprint_is_registered_once():
    bp = Blueprint("display")
    app = Daebus("t")
    app.register_blueprint(bp)
    with pytest.raises(ValueError, match="already registered"):
        app.register_blueprint(bp)
    with pytest.raises(ValueError, match="a different blueprint named 'display'"):
        app.register_blueprint(Blueprint("display"))


def test_bound_to_is_the_seam_for_in_process_harnesses():
    app = Daebus("t")
    with pytest.raises(RuntimeError, match="not running"):
        app.cache
    with app.bound_to("client", "broadcaster", "redis://x/0"):
        assert (app.cache, app.broadcaster, app.redis_url) == ("client", "broadcaster", "redis://x/0")
    with pytest.raises(RuntimeError, match="not running"):
        app.broadcaster
