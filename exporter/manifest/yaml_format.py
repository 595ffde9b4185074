"""The YAML manifest: a list of rows, or a mapping whose key images holds that list.

Rows are written as flow mappings, one a line, so a written manifest streams back in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from exporter.errors import ManifestError, ManifestProblem
from exporter.manifest.rows import (
    ESCAPED_BYTE,
    FIELD_NAMES,
    IMAGE,
    PRODUCT,
    ManifestFormat,
    ManifestRow,
    open_text,
    quoted,
    row_of,
    text_id,
)

# What YAML 1.1 accepts in a stream; the escaped bytes above fall outside it.
_YAML_UNPRINTABLE = re.compile(
    "[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)

# How a plain (unquoted) YAML scalar reads in YAML 1.1, as PyYAML's SafeLoader has it.
_YAML_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_YAML_BOOLS = frozenset(
    word
    for base in ("yes", "no", "true", "false", "on", "off")
    for word in (base, base.capitalize(), base.upper())
)
_YAML_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class _CheckedText:
    """The manifest as the YAML parser reads it: stops at the first character YAML refuses.

    The parser's own error for such a character (a byte that is not UTF-8, a control
    character) gives an offset, not a line; this names the line.
    """

    __slots__ = ("_file", "_lines", "name")

    def __init__(self, file: TextIO, name: str) -> None:
        self._file = file
        self._lines = 0  # line breaks handed to the parser so far
        self.name = name  # the parser quotes it in its own messages

    def read(self, size: int = -1) -> str:
        text = self._file.read(size if size > 0 else 1 << 16)
        refused = _YAML_UNPRINTABLE.search(text)
        if refused is not None:
            line = self._lines + text.count("\n", 0, refused.start()) + 1
            char = refused.group()
            what = (
                "not valid UTF-8"
                if ESCAPED_BYTE.match(char)
                else f"not valid YAML: control character U+{ord(char):04X} is not allowed"
            )
            raise ManifestError(f"{self.name}:{line}: {what}")
        self._lines += text.count("\n")
        return text


def _yaml_records(path: Path) -> Iterator[ManifestRow | ManifestProblem]:
    # The event stream, not yaml.safe_load: a loaded document would hold every row at once.
    name = str(path)
    with open_text(path) as file:
        events = yaml.parse(_CheckedText(file, name), Loader=_YAML_LOADER)
        try:
            yield from _yaml_stream(events, name)
        except yaml.MarkedYAMLError as exc:
            raise ManifestError(_yaml_syntax_message(exc, name)) from None
        except yaml.YAMLError as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            raise ManifestError(f"{name}: not valid YAML: {reason}") from None


def _yaml_stream(events: Iterator[Event], name: str) -> Iterator[ManifestRow | ManifestProblem]:
    """The rows of the stream's one document (none for an empty file)."""
    next(events)  # StreamStartEvent
    if isinstance(next(events), StreamEndEvent):
        return
    root = next(events)
    if isinstance(root, SequenceStartEvent):
        yield from _yaml_rows(events, name)
    elif isinstance(root, MappingStartEvent):
        yield from _yaml_images(events, name, _line(root))
    elif not (isinstance(root, ScalarEvent) and _is_yaml_null(root)):
        raise ManifestError(
            f"{name}:{_line(root)}: a YAML manifest is a list of rows or a mapping with "
            f"the key images; found {_describe(root)}"
        )
    next(events)  # DocumentEndEvent
    after = next(events)
    if isinstance(after, DocumentStartEvent):
        raise ManifestError(
            f"{name}:{_line(after)}: a second YAML document; a manifest is one document"
        )


def _yaml_images(
    events: Iterator[Event], name: str, line: int
) -> Iterator[ManifestRow | ManifestProblem]:
    """The rows under the `images` key of a top-level mapping; other keys are skipped."""
    found = False
    while not isinstance(key := next(events), MappingEndEvent):
        _skip(key, events)
        value = next(events)
        if not (isinstance(key, ScalarEvent) and key.value.strip().lower() == "images"):
            _skip(value, events)
            continue
        if found:
            raise ManifestError(f"{name}:{_line(key)}: the key images appears twice")
        found = True
        if isinstance(value, SequenceStartEvent):
            yield from _yaml_rows(events, name)
        elif not (isinstance(value, ScalarEvent) and _is_yaml_null(value)):
            raise ManifestError(
                f"{name}:{_line(value)}: images must be a list of rows; found {_describe(value)}"
            )
    if not found:
        raise ManifestError(
            f"{name}:{line}: a YAML manifest that is a mapping needs the key images "
            "holding the list of rows"
        )


def _yaml_rows(events: Iterator[Event], name: str) -> Iterator[ManifestRow | ManifestProblem]:
    """The items of a sequence, up to its end event, each a row or the problem with it."""
    while not isinstance(item := next(events), SequenceEndEvent):
        if isinstance(item, MappingStartEvent):
            yield _yaml_row(events, name, _line(item))
        else:
            _skip(item, events)
            yield ManifestProblem(
                name, _line(item), f"row is {_describe(item)}, not a mapping with a productId"
            )


def _yaml_row(events: Iterator[Event], name: str, line: int) -> ManifestRow | ManifestProblem:
    """One row from the events of its mapping; nested values are skipped, not built."""
    values: dict[str, ScalarEvent | str] = {}
    keys: dict[str, str] = {}
    duplicate = ""
    while not isinstance(key := next(events), MappingEndEvent):
        _skip(key, events)
        value = next(events)
        _skip(value, events)
        written = key.value if isinstance(key, ScalarEvent) else ""
        field = FIELD_NAMES.get(written.strip().lower())
        if field is None:
            continue
        if field in keys and not duplicate:
            first = keys[field]
            duplicate = (
                f"row has {first} twice"
                if first == written
                else f"row has both {first} and {written}"
            )
        keys[field] = written
        values[field] = value if isinstance(value, ScalarEvent) else _describe(value)
    if duplicate:
        return ManifestProblem(name, line, duplicate)
    return row_of(name, line, values.get(PRODUCT), values.get(IMAGE), _yaml_id)


def _yaml_id(field: str, value: ScalarEvent | str | None) -> int | None:
    """An id from a YAML value (a scalar, or the description of anything else)."""
    if value is None:
        return None
    if isinstance(value, str):
        raise ValueError(f"{field} is {value}, not a positive integer")
    if _is_yaml_null(value):
        return None
    if _is_plain(value) and value.value in _YAML_BOOLS:
        raise ValueError(f"{field} {value.value} is a boolean, not a positive integer")
    # Plain digits and quoted strings alike: ids are read as decimal text ("010" is 10).
    return text_id(field, value.value)


def _is_plain(event: ScalarEvent) -> bool:
    return event.implicit[0] and event.tag in (None, "!")


def _is_yaml_null(event: ScalarEvent) -> bool:
    return _is_plain(event) and event.value in _YAML_NULLS


def _skip(event: Event, events: Iterator[Event]) -> None:
    """Consume the rest of a collection whose start event was just read."""
    if not isinstance(event, CollectionStartEvent):
        return
    depth = 1
    while depth:
        inner = next(events)
        if isinstance(inner, CollectionStartEvent):
            depth += 1
        elif isinstance(inner, CollectionEndEvent):
            depth -= 1


def _describe(event: Event) -> str:
    if isinstance(event, MappingStartEvent):
        return "a mapping"
    if isinstance(event, SequenceStartEvent):
        return "a list"
    if isinstance(event, AliasEvent):
        return f"an alias (*{event.anchor})"
    if isinstance(event, ScalarEvent):
        return quoted(event.value)
    return type(event).__name__


def _line(event: Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 0


def _yaml_syntax_message(exc: yaml.MarkedYAMLError, name: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{name}:{mark.line + 1}" if mark is not None else name
    message = f"{where}: not valid YAML: {exc.problem or exc.context or 'syntax error'}"
    if exc.problem and exc.context and exc.context_mark is not None:
        message += f" ({exc.context} from line {exc.context_mark.line + 1})"
    return message


FORMAT = ManifestFormat(
    "yaml",
    (".yaml", ".yml"),
    _yaml_records,
    header="images:\n",
    row="  - {{productId: {}, id: {}}}\n",
)
