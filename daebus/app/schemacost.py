"""What a payload schema may ask for: checks whose cost is bounded.

A payload is checked on the thread that read it, before its handler runs
(and by the gateway, before it publishes): a check that runs for seconds
stalls every other call. So a schema is refused when it is declared if it
holds one of the constructs whose cost grows without bound:

- a reference cycle (``{"$ref": "#"}`` inside itself, ``a -> b -> a``) or a
  ``$dynamicRef``/``$recursiveRef``: recursion;
- a ``pattern`` (or a ``patternProperties`` key) with a repeat nested in a
  repeat, such as ``^(a+)+$``, an unbounded repeat of branches that can
  start alike, such as ``^(a|aa)+$``, or two unbounded repeats in a row that
  can match the same characters, such as ``^[a-z]+[a-z0-9]*$``: catastrophic
  backtracking;
- ``uniqueItems`` without ``maxItems`` of at most :data:`MAX_UNIQUE_ITEMS`,
  unless ``items`` are plain strings, numbers or booleans: comparing every
  pair of objects is quadratic.

With these out, a check costs at most a few passes over a payload that the
bus already bounds in size and depth (:mod:`daebus.bus.wirejson`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

try:  # the interpreter's own regex parser: what re.search will run
    from re import _constants as _sre, _parser as _sre_parse
except ImportError:  # pragma: no cover - Python before 3.11
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

MAX_UNIQUE_ITEMS = 256

# One text matched in many ways, which a failing match tries one by one.
_BACKTRACKS = "can backtrack without end"

_REFS = ("$ref",)
_RECURSIVE_REFS = ("$dynamicRef", "$recursiveRef")
_SCALAR_TYPES = {"string", "number", "integer", "boolean", "null"}
_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT} | ({_sre.POSSESSIVE_REPEAT} if hasattr(_sre, "POSSESSIVE_REPEAT")
                                                  else set())


def cost_problem(schema: Any) -> tuple[list, str] | None:
    """``(path, why)`` of the first construct above, or None."""
    found = _walk(schema, schema, [], set(), set())
    return found


def bounded_unique_items(original):
    """``uniqueItems`` as ``original`` checks it, within the rule above.

    A validator checks every keyword, so ``maxItems`` or ``items`` refusing
    an array does not stop ``uniqueItems`` comparing every pair of it first:
    an array over its ``maxItems`` is left to ``maxItems``, and a long one
    of mixed or structured items (one the declared ``items`` refuse) is
    refused without the comparisons."""
    def unique_items(validator, unique, instance, schema):
        if not unique or not validator.is_type(instance, "array"):
            return
        limit = schema.get("maxItems")
        if isinstance(limit, int) and not isinstance(limit, bool) and len(instance) > limit:
            return
        if len(instance) > MAX_UNIQUE_ITEMS and not _sortable(instance):
            yield _error(f"more than {MAX_UNIQUE_ITEMS} items that are not all strings or all "
                                    "numbers: too many to check for uniqueness")
            return
        yield from original(validator, unique, instance, schema)
    return unique_items


def _sortable(items: list) -> bool:
    # What uniq() sorts, in n log n; anything else it compares pair by pair.
    if all(isinstance(item, str) for item in items):
        return True
    return all(isinstance(item, int | float) and not isinstance(item, bool) for item in items)


def _error(message: str):
    from jsonschema.exceptions import ValidationError

    return ValidationError(message)


def _walk(root, node, path: list, active: set, done: set):
    if isinstance(node, list):
        for index, item in enumerate(node):
            found = _walk(root, item, [*path, index], active, done)
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    found = _local_problem(node, path)
    if found:
        return found
    for key, value in node.items():
        if key in _RECURSIVE_REFS:
            return [*path, key], "recursive references are not supported"
        if key in _REFS and isinstance(value, str):
            found = _follow(root, value, [*path, key], active, done)
        elif key in ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"):
            # Names here are property names, not keywords.
            found = None
            if isinstance(value, dict):
                for name, sub in value.items():
                    found = _walk(root, sub, [*path, key, name], active, done)
                    if found:
                        break
        else:
            found = _walk(root, value, [*path, key], active, done)
        if found:
            return found
    return None


def _follow(root, ref: str, path: list, active: set, done: set):
    target = _resolve(root, ref)
    if target is None:
        return path, f"the reference {ref!r} points nowhere in this schema"
    key = id(target)
    if key in active:
        return path, f"the reference {ref!r} makes the schema recursive"
    if key in done:
        return None
    active.add(key)
    try:
        found = _walk(root, target, path, active, done)
    finally:
        active.discard(key)
    if found is None:
        done.add(key)
    return found


def _resolve(root, ref: str):
    if not ref.startswith("#"):
        return None
    fragment = unquote(ref[1:])
    if fragment and not fragment.startswith("/"):
        return _anchor(root, fragment)
    node = root
    for part in fragment.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _anchor(node, name: str):
    if isinstance(node, dict):
        if node.get("$anchor") == name or node.get("$dynamicAnchor") == name:
            return node
        values = node.values()
    elif isinstance(node, list):
        values = node
    else:
        return None
    for value in values:
        found = _anchor(value, name)
        if found is not None:
            return found
    return None


def _local_problem(node: dict, path: list):
    pattern = node.get("pattern")
    if isinstance(pattern, str) and _backtracks(pattern):
        return [*path, "pattern"], \
            f"the pattern {pattern[:80]!r} {_BACKTRACKS}"
    props = node.get("patternProperties")
    if isinstance(props, dict):
        for key in props:
            if isinstance(key, str) and _backtracks(key):
                return [*path, "patternProperties", key], \
                    f"the pattern {key[:80]!r} {_BACKTRACKS}"
    if node.get("uniqueItems") is True and not _unique_is_cheap(node):
        return [*path, "uniqueItems"], (f"uniqueItems needs maxItems of at most {MAX_UNIQUE_ITEMS} "
                                        "(or items of a plain type: string, number, integer, boolean)")
    return None


def _unique_is_cheap(node: dict) -> bool:
    limit = node.get("maxItems")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit <= MAX_UNIQUE_ITEMS:
        return True
    items = node.get("items")
    kind = items.get("type") if isinstance(items, dict) else None
    kinds = set(kind) if isinstance(kind, list) else {kind}
    # One kind that sorts (strings and booleans do not sort together).
    return bool(kinds) and kinds <= _SCALAR_TYPES and (len(kinds) == 1 or kinds <= {"number", "integer"})


def _backtracks(pattern: str) -> bool:
    try:
        parsed = _sre_parse.parse(pattern)
    except Exception:  # noqa: BLE001 - an invalid pattern is check_schema's to report
        return False
    return _ambiguous(list(parsed))


# Characters are judged on a sample: ASCII and Latin, where the patterns of
# payload schemas live; a class the sample cannot tell apart counts as "any".
_SAMPLE = [chr(c) for c in range(0x250)]
_CHAR_OPS = {_sre.LITERAL, _sre.NOT_LITERAL, _sre.IN, _sre.ANY}
_ALL = frozenset(_SAMPLE)
_CATEGORIES = {
    "CATEGORY_DIGIT": str.isdigit, "CATEGORY_SPACE": str.isspace,
    "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
}


def _ambiguous(items: list) -> bool:
    """A repeat whose iterations can split one run of text in several ways,
    or two unbounded repeats in a row that can share one run."""
    if _adjacent_runs(items):
        return True
    for op, av in items:
        if op in _REPEATS:
            _low, high, body = av
            body = list(body)
            if (high == _sre.MAXREPEAT or high > 1) and _splits(body):
                return True
            # (a|a)+ and (a|aa)+: each iteration may take either branch, and
            # a failure tries every choice. A bounded count only multiplies.
            if high == _sre.MAXREPEAT and _overlapping_branches(body):
                return True
            if _ambiguous(body):
                return True
        elif op == _sre.SUBPATTERN and _ambiguous(list(av[-1])):
            return True
        elif op == _sre.BRANCH and any(_ambiguous(list(b)) for b in av[1]):
            return True
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT) and _ambiguous(list(av[1])):
            return True
    return False


def _overlapping_branches(items: list) -> bool:
    """An alternation in ``items`` with two branches that can start alike."""
    for op, av in items:
        if op == _sre.BRANCH:
            firsts = [_first(list(branch)) for branch in av[1]]
            if any(firsts[i] & firsts[j] for i in range(len(firsts)) for j in range(i)):
                return True
            if sum(_nullable(list(branch)) for branch in av[1]) > 1:  # a|a, parsed as a(?:|)
                return True
            if any(_overlapping_branches(list(branch)) for branch in av[1]):
                return True
        elif op == _sre.SUBPATTERN and _overlapping_branches(list(av[-1])):
            return True
        elif op in _REPEATS and _overlapping_branches(list(av[2])):
            return True
    return False


def _adjacent_runs(items: list) -> bool:
    # a*a*b and [a-z]+[a-z0-9]*!: every way to share a run between the two
    # repeats is tried, a number of ways that grows with the run's square
    # (its cube for three), seconds for a string of a megabyte.
    # Only runs of one character class each, side by side: what a group
    # between or around them needs can make a shared run impossible.
    previous: frozenset = frozenset()
    for op, av in items:
        body = list(av[2]) if op in _REPEATS else None
        if body is not None and av[1] == _sre.MAXREPEAT and len(body) == 1 and body[0][0] in _CHAR_OPS:
            chars = _chars(*body[0])
            if previous & chars:
                return True
            previous = chars
        else:
            previous = frozenset()
    return False


def _splits(body: list) -> bool:
    # (a*)* matches "" in every iteration; (a+)+ and (\w+\s?)+ end an
    # iteration with a run the next one can start with.
    # (aa?)+ and (a|aa)+ (parsed as a(?:|a)) end one with an optional part
    # that the next can start with.
    return _nullable(body) or bool(_tail_run(body) & _first(body)) or bool(_optional_tail(body) & _first(body))


def _optional_tail(items: list) -> frozenset:
    """What an optional part that can end ``items`` matches."""
    out: set = set()
    for op, av in reversed(items):
        if op in _REPEATS and av[0] == 0:
            out |= _all_chars(list(av[2]))
        elif op == _sre.BRANCH and any(_nullable(list(b)) for b in av[1]):
            out |= _all_chars([item for b in av[1] for item in b])
        elif op == _sre.SUBPATTERN:
            out |= _optional_tail(list(av[-1]))
        elif op == _sre.BRANCH:
            for branch in av[1]:
                out |= _optional_tail(list(branch))
        if not _item_nullable(op, av):
            break
    return frozenset(out)


def _nullable(items: list) -> bool:
    return all(_item_nullable(op, av) for op, av in items)


def _item_nullable(op, av) -> bool:
    if op in _REPEATS:
        return av[0] == 0 or _nullable(list(av[2]))
    if op == _sre.SUBPATTERN:
        return _nullable(list(av[-1]))
    if op == _sre.BRANCH:
        return any(_nullable(list(b)) for b in av[1])
    return op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT)


def _first(items: list) -> frozenset:
    out: set = set()
    for op, av in items:
        if op in _REPEATS:
            out |= _first(list(av[2]))
        elif op == _sre.SUBPATTERN:
            out |= _first(list(av[-1]))
        elif op == _sre.BRANCH:
            for branch in av[1]:
                out |= _first(list(branch))
        else:
            out |= _chars(op, av)
        if not _item_nullable(op, av):
            break
    return frozenset(out)


def _tail_run(items: list) -> frozenset:
    """What the unbounded repeat that can end ``items`` matches."""
    for op, av in reversed(items):
        if op in _REPEATS and (av[1] == _sre.MAXREPEAT or av[1] > 1):
            return _all_chars(list(av[2]))
        if op == _sre.SUBPATTERN:
            found = _tail_run(list(av[-1]))
        elif op == _sre.BRANCH:
            found = frozenset().union(*(_tail_run(list(b)) for b in av[1]))
        else:
            found = frozenset()
        if found or not _item_nullable(op, av):
            return found
    return frozenset()


def _all_chars(items: list) -> frozenset:
    out: set = set()
    for op, av in items:
        if op in _REPEATS:
            out |= _all_chars(list(av[2]))
        elif op == _sre.SUBPATTERN:
            out |= _all_chars(list(av[-1]))
        elif op == _sre.BRANCH:
            for branch in av[1]:
                out |= _all_chars(list(branch))
        else:
            out |= _chars(op, av)
    return frozenset(out)


def _chars(op, av) -> frozenset:
    if op == _sre.LITERAL:
        return frozenset({chr(av)})
    if op == _sre.NOT_LITERAL:
        return _ALL - {chr(av)}
    if op == _sre.IN:
        return _in(av)
    if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
        return frozenset()
    return _ALL  # ANY, back references, anything not modelled: assume the worst


def _in(members) -> frozenset:
    out: set = set()
    negate = False
    for op, av in members:
        if op == _sre.NEGATE:
            negate = True
        elif op == _sre.LITERAL:
            out.add(chr(av))
        elif op == _sre.RANGE:
            out |= {c for c in _SAMPLE if av[0] <= ord(c) <= av[1]}
        elif op == _sre.CATEGORY:
            name = str(av)
            test = _CATEGORIES.get(name.replace("NOT_", ""))
            if test is None:
                return _ALL
            matched = {c for c in _SAMPLE if test(c)}
            out |= (_ALL - matched) if "NOT_" in name else matched
        else:
            return _ALL
    return (_ALL - out) if negate else frozenset(out)
