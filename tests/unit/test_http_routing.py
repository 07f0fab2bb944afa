"""URL rules and method matching (daebus.http.routing)."""

import pytest

from daebus import Blueprint, Daebus
from daebus.http import HttpError, Router, Rule


def handler(req, **params):
    return params


def test_converters_convert_and_constrain():
    assert Rule("/a/<name>", ["GET"], handler).match("/a/x y") == {"name": "x y"}
    assert Rule("/a/<string:name>", ["GET"], handler).match("/a/b/c") is None
    assert Rule("/d/<int:n>", ["GET"], handler).match("/d/42") == {"n": 42}
    assert Rule("/d/<int:n>", ["GET"], handler).match("/d/-3") == {"n": -3}
    assert Rule("/d/<int:n>", ["GET"], handler).match("/d/4.2") is None
    assert Rule("/d/<int:n>", ["GET"], handler).match("/d/abc") is None
    assert Rule("/f/<float:x>", ["GET"], handler).match("/f/2.5") == {"x": 2.5}
    assert Rule("/f/<float:x>", ["GET"], handler).match("/f/7") == {"x": 7.0}
    assert Rule("/f/<float:x>", ["GET"], handler).match("/f/1e3") is None
    assert Rule("/p/<path:rest>", ["GET"], handler).match("/p/a/b/c.txt") == {"rest": "a/b/c.txt"}
    assert Rule("/p/<path:rest>", ["GET"], handler).match("/p/") is None


@pytest.mark.parametrize("path", ["/d/\u0663", "/d/\uff17", "/d/" + "7" * 5000, "/d/" + "7" * 101,
                                  "/f/" + "9" * 101, "/f/1." + "0" * 101])
def test_numbers_are_ascii_digits_of_sane_length(path):
    router = Router()
    router.add("/d/<int:n>", ["GET"], handler)
    router.add("/f/<float:x>", ["GET"], handler)
    with pytest.raises(HttpError) as exc:
        router.match("GET", path)
    assert exc.value.status == 404
    assert Rule("/d/<int:n>", ["GET"], handler).match("/d/" + "7" * 100) == {"n": int("7" * 100)}


def test_several_parameters_and_literal_text():
    rule = Rule("/devices/<int:id>/files/<path:name>.json", ["GET"], handler)
    assert rule.match("/devices/3/files/a/b.json") == {"id": 3, "name": "a/b"}
    assert rule.match("/devices/3/files/a/b.txt") is None
    # Regex characters in the literal part are literal.
    assert Rule("/v1.0/<x>", ["GET"], handler).match("/v1x0/y") is None


@pytest.mark.parametrize("path", ["/a/<bad name>", "/a/<x>/<x>", "/a/<uuid:x>", "/a/<x", "a/b", "/a/<>"])
def test_invalid_patterns_are_refused(path):
    with pytest.raises(ValueError):
        Rule(path, ["GET"], handler)


def test_methods_on_one_path_go_to_their_handlers():
    def get(req): ...
    def post(req): ...
    def patch(req): ...
    router = Router()
    router.add("/status", ["GET"], get)
    router.add("/status", ["POST"], post)
    router.add("/status", ["PATCH"], patch)
    assert router.match("GET", "/status").rule.fn is get
    assert router.match("POST", "/status").rule.fn is post
    assert router.match("PATCH", "/status").rule.fn is patch


def test_unknown_path_is_404_and_wrong_method_is_405_with_allow():
    router = Router()
    router.add("/status", ["GET", "POST"], handler)
    with pytest.raises(HttpError) as exc:
        router.match("GET", "/nope")
    assert exc.value.status == 404
    with pytest.raises(HttpError) as exc:
        router.match("DELETE", "/status")
    assert exc.value.status == 405
    assert exc.value.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_head_falls_back_to_get_but_an_explicit_head_wins():
    def get(req): ...
    def head(req): ...
    router = Router()
    router.add("/a", ["GET"], get)
    assert router.match("HEAD", "/a").rule.fn is get
    router.add("/a", ["HEAD"], head)
    assert router.match("HEAD", "/a").rule.fn is head
    router.add("/post-only", ["POST"], get)
    with pytest.raises(HttpError) as exc:
        router.match("HEAD", "/post-only")
    assert exc.value.status == 405


def test_options_on_a_known_path_is_left_to_the_server():
    router = Router()
    router.add("/a", ["GET"], handler)
    assert router.match("OPTIONS", "/a") is None
    assert router.allowed_methods("/a") == {"GET", "HEAD"}
    with pytest.raises(HttpError):
        router.match("OPTIONS", "/b")


def test_specific_rules_win_whatever_the_declaration_order():
    def by_path(req, rest): ...
    def by_name(req, name): ...
    def by_id(req, name): ...
    def new(req): ...
    router = Router()
    router.add("/files/<path:rest>", ["GET"], by_path)
    router.add("/files/<name>", ["GET"], by_name)
    router.add("/files/new", ["GET"], new)
    assert router.match("GET", "/files/new").rule.fn is new
    assert router.match("GET", "/files/readme").rule.fn is by_name
    assert router.match("GET", "/files/a/b").rule.fn is by_path
    # Equal specificity: the first declared wins.
    router.add("/items/<int:name>", ["GET"], by_id)
    router.add("/items/<name>", ["GET"], by_name)
    assert router.match("GET", "/items/5").rule.fn is by_id
    assert router.match("GET", "/items/5").params == {"name": 5}
    assert router.match("GET", "/items/x").rule.fn is by_name


def test_method_decides_between_overlapping_patterns():
    def static_get(req): ...
    def dynamic_post(req, name): ...
    router = Router()
    router.add("/items/new", ["GET"], static_get)
    router.add("/items/<name>", ["POST"], dynamic_post)
    assert router.match("POST", "/items/new").params == {"name": "new"}
    assert router.match("POST", "/items/new").rule.fn is dynamic_post
    assert router.allowed_methods("/items/new") == {"GET", "HEAD", "POST"}


def test_same_path_and_method_twice_is_an_error():
    router = Router()
    router.add("/a", ["GET", "POST"], handler)
    with pytest.raises(ValueError, match="POST /a is declared twice"):
        router.add("/a", ["POST"], handler)


def test_router_reads_app_routes_with_blueprint_prefixes():
    app = Daebus("routing-test")
    bp = Blueprint("display", url_prefix="/display")

    @bp.route("/brightness/<int:level>", methods=["PUT"])
    def set_brightness(req, level): ...

    @app.route("/status")
    def status(req): ...

    app.register_blueprint(bp)
    router = Router(app.routes)
    assert router.match("PUT", "/display/brightness/30").params == {"level": 30}
    assert router.match("PUT", "/display/brightness/30").rule.fn is set_brightness
    assert router.match("GET", "/status").rule.fn is status
    assert len(router) == 2
