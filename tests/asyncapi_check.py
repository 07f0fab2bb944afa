"""Is it a valid AsyncAPI 3.0 document? The official JSON Schema of
AsyncAPI 3.0.0 (tests/data/asyncapi, from @asyncapi/specs) checked with
jsonschema, plus what that schema cannot check: every reference points at
something in the document, an operation's messages are its channel's, and
each schema a message carries in a JSON Schema dialect is valid in it.

    problems(doc)                      # [] for a valid document
    payload_validator(doc, "/channels/clock/messages/now/payload")
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema

SCHEMA = Path(__file__).resolve().parent / "data" / "asyncapi" / "3.0.0.json"

_VALIDATORS = {
    "draft-04": jsonschema.Draft4Validator, "draft-06": jsonschema.Draft6Validator,
    "draft-07": jsonschema.Draft7Validator, "draft-2019-09": jsonschema.Draft201909Validator,
    "draft-2020-12": jsonschema.Draft202012Validator,
}
_PREFIX = "application/schema+json;version="


@functools.lru_cache(maxsize=1)
def _spec_validator():
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema)


def problems(doc: dict) -> list[str]:
    """Everything that makes ``doc`` an invalid AsyncAPI 3.0 document."""
    found = [_said(e) for e in _spec_validator().iter_errors(doc)]
    for where, ref in _refs(doc, ""):
        if not (ref == "#" or ref.startswith("#/")):
            if not (ref.startswith("#") and _anchored(doc, ref[1:])):
                found.append(f"{where}: $ref {ref!r} is not a pointer into the document")
        elif _resolve(doc, ref) is _MISSING:
            found.append(f"{where}: $ref {ref!r} points nowhere")
    for key, operation in (doc.get("operations") or {}).items():
        channel = operation["channel"]["$ref"]
        for ref in operation.get("messages", []):
            if not ref["$ref"].startswith(channel + "/messages/"):
                found.append(f"operation {key}: message {ref['$ref']} is not of {channel}")
        reply = operation.get("reply")
        if reply:
            for ref in reply.get("messages", []):
                if not ref["$ref"].startswith(reply["channel"]["$ref"] + "/messages/"):
                    found.append(f"operation {key}: reply {ref['$ref']} is not of its reply channel")
    for where, node in _multi_format(doc, ""):
        dialect = node["schemaFormat"][len(_PREFIX):]
        cls = _VALIDATORS.get(dialect)
        if cls is None:
            found.append(f"{where}: unknown dialect {node['schemaFormat']!r}")
            continue
        try:
            cls.check_schema(node["schema"])
        except jsonschema.SchemaError as exc:
            found.append(f"{where}: not valid {dialect}: {exc.message[:300]}")
    return found


def _said(error) -> str:
    # A oneOf over whole objects says only "not valid under any": say how each branch missed.
    where = "/".join(map(str, error.absolute_path)) or "(root)"
    if error.context:
        misses = dict.fromkeys(f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message[:150]}"
                               for e in error.context)
        return f"{where}: none of its forms fits: " + " | ".join(list(misses)[:4])
    return f"{where}: {error.message[:300]}"


def payload_validator(doc: dict, pointer: str):
    """A validator of instances against the payload at ``pointer`` (a
    message's ``/payload``), its references read in the whole document."""
    node = _resolve(doc, "#" + pointer)
    assert node is not _MISSING, pointer
    if isinstance(node, dict) and "schemaFormat" in node:
        pointer += "/schema"
    # The document as the root resource, so that "#/..." means it.
    return jsonschema.Draft202012Validator({**doc, "$ref": "#" + pointer})


_MISSING = object()


def _resolve(doc, ref: str):
    node = doc
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _anchored(node, name: str) -> bool:
    if isinstance(node, dict):
        return node.get("$anchor") == name or any(_anchored(v, name) for v in node.values())
    if isinstance(node, list):
        return any(_anchored(v, name) for v in node)
    return False


def _refs(node, where: str):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            elif key not in ("const", "enum", "default", "examples"):
                yield from _refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{where}/{index}")


def _multi_format(node, where: str):
    if isinstance(node, dict):
        if isinstance(node.get("schemaFormat"), str) and "schema" in node:
            yield where, node
            return
        for key, value in node.items():
            yield from _multi_format(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _multi_format(value, f"{where}/{index}")
