"""Flask-style URL rules: ``/devices/<int:device_id>``, matched to a handler per method.

Converters: ``<name>`` or ``<string:name>`` (one path segment), ``<int:name>``
and ``<float:name>`` (ASCII digits, at most 100 before and after the point,
an optional leading ``-``; a float may omit its fraction), ``<path:name>``
(the rest of the path, slashes included).

A path with no parameters is looked up in a dict; parameterised rules are
tried most specific first (fewest ``path`` converters, then most literal
characters), so ``/files/new`` beats ``/files/<name>`` beats
``/files/<path:rest>`` whatever order they were declared in.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, NamedTuple

from daebus.http.wire import HttpError

_CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "string": (r"[^/]+", str),
    # ASCII digits only ("\d" would take any script's digits), and at most
    # 100 of them: a longer number is no such path (404), not a conversion error.
    "int": (r"-?[0-9]{1,100}", int),
    "float": (r"-?[0-9]{1,100}(?:\.[0-9]{1,100})?", float),
    "path": (r".+", str),
}
_PARAM = re.compile(r"<(?:(?P<conv>[a-zA-Z_]\w*):)?(?P<name>[^<>:]*)>")


class Rule:
    """One URL pattern and the handler for some methods.

    Example::

        rule = Rule("/devices/<int:device_id>", ("GET",), get_device)
        assert rule.match("/devices/7") == {"device_id": 7}
    """

    __slots__ = ("path", "methods", "fn", "static", "_regex", "_convert", "order", "index")

    def __init__(self, path: str, methods: Iterable[str], fn: Callable, index: int = 0):
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"route path must start with '/', got {path!r}")
        self.path = path
        self.methods = frozenset(m.upper() for m in methods)
        if not self.methods:
            raise ValueError(f"route {path!r} has no methods")
        self.fn = fn
        self.index = index
        self._convert: dict[str, Callable[[str], Any]] = {}
        pattern, pos, literal, path_params = [], 0, 0, 0
        for m in _PARAM.finditer(path):
            pattern.append(re.escape(path[pos:m.start()]))
            literal += m.start() - pos
            conv, name = m.group("conv") or "string", m.group("name")
            if not name.isidentifier():
                raise ValueError(f"route {path!r}: {name!r} is not a valid parameter name")
            if conv not in _CONVERTERS:
                raise ValueError(f"route {path!r}: unknown converter {conv!r} "
                                 f"(use {', '.join(sorted(_CONVERTERS))})")
            if name in self._convert:
                raise ValueError(f"route {path!r}: parameter {name!r} appears twice")
            regex, self._convert[name] = _CONVERTERS[conv]
            pattern.append(f"(?P<{name}>{regex})")
            path_params += conv == "path"
            pos = m.end()
        rest = path[pos:]
        if "<" in rest or ">" in rest:
            raise ValueError(f"route {path!r}: unbalanced '<' or '>'")
        pattern.append(re.escape(rest))
        literal += len(rest)
        self.static = not self._convert
        self._regex = re.compile("".join(pattern))
        # Sort key: fewer greedy path converters, then more literal text, then declaration order.
        self.order = (path_params, -literal, index)

    def match(self, path: str) -> dict[str, Any] | None:
        """The converted parameters when ``path`` matches, else None."""
        if self.static:
            return {} if path == self.path else None
        m = self._regex.fullmatch(path)
        if m is None:
            return None
        try:
            return {name: self._convert[name](value) for name, value in m.groupdict().items()}
        except ValueError:
            return None  # e.g. a float too large to represent: no such path

    def __repr__(self) -> str:
        return f"Rule({self.path!r}, {sorted(self.methods)}, {getattr(self.fn, '__qualname__', self.fn)})"


class Match(NamedTuple):
    rule: Rule
    params: dict[str, Any]


class Router:
    """Finds the handler for a method and path, or says why there is none.

    Example::

        router = Router()
        router.add("/status", ["GET"], status)
        router.add("/status", ["POST"], set_status)
        rule, params = router.match("POST", "/status")
    """

    def __init__(self, routes: Iterable = ()):
        self._static: dict[str, list[Rule]] = {}
        self._dynamic: list[Rule] = []
        self._count = 0
        for route in routes:
            self.add(route.path, route.methods, route.fn)

    def add(self, path: str, methods: Iterable[str], fn: Callable) -> Rule:
        """Add a rule; the same path and method twice is an error."""
        rule = Rule(path, methods, fn, self._count)
        for other in self._static.get(path, []) + [r for r in self._dynamic if r.path == path]:
            clash = other.methods & rule.methods
            if clash:
                raise ValueError(f"route {', '.join(sorted(clash))} {path} is declared twice "
                                 f"({getattr(other.fn, '__qualname__', other.fn)} and "
                                 f"{getattr(fn, '__qualname__', fn)})")
        self._count += 1
        if rule.static:
            self._static.setdefault(path, []).append(rule)
        else:
            self._dynamic.append(rule)
            self._dynamic.sort(key=lambda r: r.order)
        return rule

    def __len__(self) -> int:
        return self._count

    def candidates(self, path: str):
        """Every rule whose pattern matches ``path``, best first, with its parameters."""
        for rule in self._static.get(path, ()):
            yield Match(rule, {})
        for rule in self._dynamic:
            params = rule.match(path)
            if params is not None:
                yield Match(rule, params)

    def allowed_methods(self, path: str) -> set[str]:
        """The methods some rule accepts on ``path`` (HEAD with GET); empty when unknown."""
        methods: set[str] = set()
        for rule, _ in self.candidates(path):
            methods |= rule.methods
        if "GET" in methods:
            methods.add("HEAD")
        return methods

    def match(self, method: str, path: str) -> Match | None:
        """The rule for ``method`` on ``path``.

        Raises :class:`HttpError` 404 for an unknown path and 405 (with an
        ``Allow`` header) for a known path and another method. Returns None
        for an OPTIONS request on a known path that no rule handles, which
        the server answers itself.
        """
        for rule in self._static.get(path, ()):
            if method in rule.methods:
                return Match(rule, {})
        found = list(self.candidates(path))
        for candidate in found:
            if method in candidate.rule.methods:
                return candidate
        if method == "HEAD":
            for candidate in found:
                if "GET" in candidate.rule.methods:
                    return candidate
        if not found:
            raise HttpError(404, f"no route for {path}")
        if method == "OPTIONS":
            return None
        raise HttpError(405, f"{method} is not allowed on {path}",
                        headers={"Allow": allow_header(self.allowed_methods(path))})


def allow_header(methods: set[str]) -> str:
    return ", ".join(sorted(methods | {"OPTIONS"}))
