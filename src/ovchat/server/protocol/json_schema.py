"""Check a response_format JSON schema before it reaches GenAI's grammar compiler (xgrammar).

A schema xgrammar cannot compile fails inside the engine step; the engine recovers from that
(rebuilding its pipeline), but a client deserves a 400 that says what is wrong, at once, and the
others no pause. The checks: the JSON Schema meta-schema (jsonschema), then the limits xgrammar
has that the meta-schema allows, as measured against openvino-genai 2026.4: local $refs that
point to nothing or to something that is not a schema, min above max, integer bounds that are
not whole numbers, an empty enum, an array that must hold more items than it allows, property
names with quotes, backslashes or control characters, and regex features it does not support
(named-character escapes among them: xgrammar reads `\\N{...}` as a bad repetition count). Rarer
failures are left to the engine's recovery.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.validators import validator_for

from ovchat.errors import RequestRejected

MAX_DEPTH = 32
RANGES = (
    ("minimum", "maximum"),
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
)
PARAM = "response_format.json_schema.schema"


def check_json_schema(schema: Any) -> None:
    """Raise RequestRejected naming what is wrong with `schema`, or return if GenAI can use it."""
    if not isinstance(schema, dict):
        raise RequestRejected("the JSON schema must be an object", PARAM)
    validator = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema, format_checker=validator.FORMAT_CHECKER)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise RequestRejected(f"invalid JSON schema at {where}: {exc.message}", PARAM) from None
    _walk(schema, schema, "#", 0)


def _walk(node: Any, root: dict[str, Any], where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise RequestRejected(f"the JSON schema nests deeper than {MAX_DEPTH} levels", PARAM)
    if isinstance(node, list):
        for number, item in enumerate(node):
            _walk(item, root, f"{where}/{number}", depth + 1)
        return
    if not isinstance(node, dict):
        return
    _check_node(node, root, where)
    for key, value in node.items():
        if key not in ("enum", "const", "default", "examples"):
            _walk(value, root, f"{where}/{key}", depth + 1)


def _check_node(node: dict[str, Any], root: dict[str, Any], where: str) -> None:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target = _resolve(root, ref)
        if target is _NOTHING:
            raise RequestRejected(f"$ref {ref} at {where} points to nothing in the schema", PARAM)
        if not isinstance(target, dict | bool):
            raise RequestRejected(f"$ref {ref} at {where} points to something that is not a schema", PARAM)
    if node.get("type") == "integer":
        for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            value: Any = node.get(bound)
            if _is_number(value) and not float(value).is_integer():
                raise RequestRejected(
                    f"{bound} {value} of the integer at {where} is not a whole number", PARAM
                )
    names = [*(node.get("properties") or {}), *(n for n in node.get("required") or [] if isinstance(n, str))]
    for name in names:
        if any(c in name for c in '"\\') or any(ord(c) < 32 for c in name):
            raise RequestRejected(
                f"property name {name!r} at {where} has a quote, backslash or control "
                "character, which is not supported",
                PARAM,
            )
    for low, high in RANGES:
        lowest: Any = node.get(low)
        highest: Any = node.get(high)
        if _is_number(lowest) and _is_number(highest) and lowest > highest:
            raise RequestRejected(f"{low} ({lowest}) is greater than {high} ({highest}) at {where}", PARAM)
    if node.get("enum") == []:
        raise RequestRejected(f"enum at {where} is empty: nothing can match it", PARAM)
    if node.get("items") is False and _is_number(node.get("minItems")):
        allowed = len(node.get("prefixItems") or [])
        if node["minItems"] > allowed:
            raise RequestRejected(
                f"the array at {where} needs {node['minItems']} items but allows {allowed}", PARAM
            )
    patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
    if isinstance(node.get("patternProperties"), dict):
        patterns += list(node["patternProperties"])
    for pattern in patterns:
        problem = unsupported_regex(pattern)
        if problem:
            raise RequestRejected(
                f"pattern {pattern!r} at {where} uses {problem}, which is not supported", PARAM
            )


def unsupported_regex(pattern: str) -> str | None:
    """The regex feature of `pattern` that xgrammar cannot compile, if any."""
    i = 0
    quantified = False  # the previous item was a quantifier: another one right after is not supported
    while i < len(pattern):
        char = pattern[i]
        if char in "*+?{" and quantified and not (char == "?" and pattern[i - 1] != "?"):
            return "two quantifiers in a row (possessive or nested)"
        quantified = False
        if char in "*+":
            quantified = True
        elif (
            char == "{"
            and (end := pattern.find("}", i)) != -1
            and pattern[i + 1 : end].replace(",", "").isdigit()
        ):
            quantified = True
            i = end + 1
            continue
        if char == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt in "123456789" or nxt == "k":
                return "a backreference"
            if nxt in "bB":
                return "a word boundary"
            if nxt == "N":
                return "a named character escape"
            i += 2
            continue
        if char == "[":
            i = _skip_class(pattern, i)
            continue
        if pattern.startswith("(?", i):
            rest = pattern[i + 2 : i + 4]
            if rest.startswith(("=", "!")):
                return "a lookahead"
            if rest.startswith(("<=", "<!")):
                return "a lookbehind"
            if not (rest.startswith(":") or (rest.startswith("<") and rest[1:2].isalpha())):
                return "a group modifier"
        i += 1
    return None


def _skip_class(pattern: str, start: int) -> int:
    """The index after the character class that opens at `start`."""
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


_NOTHING = object()


def _resolve(root: dict[str, Any], ref: str) -> Any:
    """What a local JSON pointer ($ref "#/a/b") points to, or _NOTHING."""
    node: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return _NOTHING
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
