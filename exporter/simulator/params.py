"""Request parameters the way PHP sees them: query string, form body or JSON body, merged."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from . import errors

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def parse_php_query(query: str) -> dict[str, Any]:
    """Decode ``a=1&select[]=id&filter[>id]=5`` into nested dicts and lists, like ``parse_str``.

    A container whose keys are exactly 0..n-1 (``x[]=…`` or ``x[0]=…``) becomes a list.
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        match = _KEY.match(key)
        path = [match.group(1), *_SEGMENT.findall(match.group(2))] if match else [key]
        _assign(root, path, value)
    return {key: _listify(value) for key, value in root.items()}


def _assign(container: dict[str, Any], path: list[str], value: str) -> None:
    for position, segment in enumerate(path):
        if segment == "":
            segment = str(sum(1 for key in container if key.isdigit()))
        if position == len(path) - 1:
            container[segment] = value
            return
        child = container.get(segment)
        if not isinstance(child, dict):
            child = container[segment] = {}
        container = child


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {key: _listify(item) for key, item in value.items()}
    if items and list(items) == [str(index) for index in range(len(items))]:
        return list(items.values())
    return items


async def read_params(request: web.Request) -> dict[str, Any]:
    """Query-string parameters overlaid with the body's (form-encoded or JSON).

    An unparsable JSON body counts as no body, as on the portal. A body already read
    (to measure it) is read again from aiohttp's copy.
    """
    params = parse_php_query(request.query_string)
    if not request.body_exists:
        return params
    raw = await request.read()
    if not raw.strip():
        return params
    if request.content_type == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            return params
        if isinstance(body, dict):
            params.update(body)
        return params
    params.update(parse_php_query(raw.decode("utf-8", errors="replace")))
    return params


def php_truthy(value: Any) -> bool:
    """PHP's ``(bool)`` cast: "0", "", 0, empty arrays and null are false, "false" is true."""
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def optional_int(params: dict[str, Any], name: str) -> int | None:
    """An integer parameter, None when absent, null or empty."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise errors.invalid_parameter(name, value)


def required_int(params: dict[str, Any], name: str) -> int:
    """An integer parameter that must be present (error 100 otherwise)."""
    value = optional_int(params, name)
    if value is None:
        raise errors.missing_parameter(name)
    return value


def string_list(value: Any) -> list[str]:
    """A ``select``-style parameter (JSON list, PHP map or one string) as a list of strings."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value]
    return []
