"""JSON text for people to read: what `json.dumps(value, ensure_ascii=False, indent=2)` gives.

With `indent`, `json.dumps` runs the json module's pure-Python encoder; sidecars (one
per image) and reports (a line per image exported) are written often enough for that to
show. `indented_json` gives the same text with the C encoder's string escaping, in about
half the time, and leaves anything but plain JSON types to `json.dumps`.
"""

from __future__ import annotations

import json
from typing import Any

_encode_string = json.encoder.encode_basestring  # the C encoder's, as dumps uses it
_FLOAT_WORDS = {float("inf"): "Infinity", float("-inf"): "-Infinity"}


def indented_json(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, indent=2)`, to the character."""
    try:
        return _indented(value, "\n")
    except _Unusual:
        return json.dumps(value, ensure_ascii=False, indent=2)


class _Unusual(Exception):
    """A value `_indented` leaves to the json module."""


def _indented(value: Any, newline: str) -> str:
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value != value:
            return "NaN"
        return _FLOAT_WORDS.get(value) or float.__repr__(value)
    inner = newline + "  "
    if kind is dict:
        if not value:
            return "{}"
        items = []
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual
            # Strings and integers, most of a sidecar, without a call of their own.
            of = type(item)
            text = (
                _encode_string(item) if of is str
                else int.__repr__(item) if of is int
                else _indented(item, inner)
            )  # fmt: skip
            items.append(_encode_string(key) + ": " + text)
        return "{" + inner + ("," + inner).join(items) + newline + "}"
    if kind is list:
        if not value:
            return "[]"
        parts = ("," + inner).join(_indented(item, inner) for item in value)
        return "[" + inner + parts + newline + "]"
    raise _Unusual
