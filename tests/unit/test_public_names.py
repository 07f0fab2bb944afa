"""What README.md says of 0.0.x's public names holds: kept ones import,
the WebSocket part is absent."""

import importlib
import re
from pathlib import Path

import pytest

import daebus

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
KEPT = ("Daebus", "DaebusCaller", "DaebusHttp", "request", "response", "broadcast", "cache", "logger",
        "direct_logger", "PubSubRequest", "PubSubResponse", "HttpRequest", "HttpResponse")
DECORATORS = ("action", "listen", "background", "thread", "route")
GONE = ("DaebusWebSocket", "WebSocketRequest", "WebSocketResponse")


def test_readme_lists_exactly_these():
    for name in (*KEPT, *GONE, *(f"@app.{d}" for d in DECORATORS), "@app.socket"):
        assert re.search(rf"`{re.escape(name)}`", README), name


@pytest.mark.parametrize("name", KEPT)
def test_kept_names_import(name):
    assert getattr(importlib.import_module("daebus"), name) is not None


def test_kept_decorators_exist():
    app = daebus.Daebus("names")
    for decorator in DECORATORS:
        assert callable(getattr(app, decorator)), decorator


@pytest.mark.parametrize("name", GONE)
def test_websocket_names_are_absent(name):
    with pytest.raises(ImportError):
        exec(f"from daebus import {name}", {})


def test_no_socket_decorator():
    assert not hasattr(daebus.Daebus("names"), "socket")
