"""``python3 -m gateway``: gunicorn with the gateway, as the systemd unit runs it.

Without arguments it runs ``gunicorn -c python:gateway.gunicorn_conf
gateway.wsgi:app``; arguments replace those. Example::

    PYTHONPATH=/usr/share/daebus python3 -m gateway

gunicorn 20.1 (Debian 12) imports pkg_resources at start only to resolve
``egg:`` class names, which the gateway never uses; it costs about 14 MB in
the master and again in the forked worker. Here it is deferred: the real
module is imported the first time gunicorn uses it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

DEFAULT_ARGS = ["-c", "python:gateway.gunicorn_conf", "gateway.wsgi:app"]


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is asked for.

    (importlib.util.LazyLoader would load it at once: a second ``import``
    of a module in sys.modules reads its ``__spec__``.)
    """

    def __getattr__(self, attribute: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def import_lazily(name: str) -> None:
    """Make ``import name`` cheap until the module is really used."""
    if name not in sys.modules and importlib.util.find_spec(name) is not None:
        sys.modules[name] = _Deferred(name)


def main(argv: list[str] | None = None) -> None:
    import_lazily("pkg_resources")
    from gunicorn.app.wsgiapp import run

    args = sys.argv[1:] if argv is None else argv
    sys.argv = ["daebus-gateway", *(args or DEFAULT_ARGS)]
    run()


if __name__ == "__main__":
    main()
