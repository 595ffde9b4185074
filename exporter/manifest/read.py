"""The manifest: which products and images to export, read from a CSV or YAML file.

`validate_manifest` reads the whole file once, before the first request, so that a bad
row stops the run with every problem named; `iter_manifest` then streams the rows to
the pipeline. Both hold one row at a time, whatever the size of the file. Rows come out
as written: duplicates are the pipeline's business.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

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

MAX_PROBLEMS = 20  # bad rows named in a ManifestError; the rest are counted

_PRODUCT = "productId"
_IMAGE = "id"
# Column (CSV) and key (YAML) names, compared trimmed and lower-cased.
_FIELD_NAMES = {"productid": _PRODUCT, "product_id": _PRODUCT, "id": _IMAGE, "image_id": _IMAGE}
_ACCEPTED = "productId or product_id, and optionally id or image_id (any letter case)"

_SIGNED_WHOLE = re.compile(r"[-+]?[0-9]+")
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_MAX_ID = 2**63 - 1  # what a signed 64-bit database column holds
_MAX_ID_DIGITS = len(str(_MAX_ID))
# Bytes that are not UTF-8 are decoded with "surrogateescape" into these code points,
# so the reader can go on and name the line instead of failing somewhere in a chunk.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# What YAML 1.1 accepts in a stream; the escaped bytes above fall outside it.
_YAML_UNPRINTABLE = re.compile(
    "[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_MAX_LINE = 1 << 20  # characters; bounds memory on a file that is not a CSV at all

# How a plain (unquoted) YAML scalar reads in YAML 1.1, as PyYAML's SafeLoader has it.
_YAML_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_YAML_BOOLS = frozenset(
    word
    for base in ("yes", "no", "true", "false", "on", "off")
    for word in (base, base.capitalize(), base.upper())
)
_YAML_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One row of the manifest: a product and one of its images, or all of them."""

    product_id: int
    image_id: int | None  # None: every image of the product (a product-only row)
    line: int  # 1-based line in the file where the row starts


def validate_manifest(path: Path) -> int:
    """Read the whole manifest once and return its number of rows.

    Raises ManifestError naming every bad row (file, line, what is wrong), up to
    MAX_PROBLEMS of them, followed by a line counting the rest.
    """
    name = str(path)
    rows = 0
    bad = 0
    shown: list[ManifestProblem] = []
    for record in _records(path):
        if isinstance(record, ManifestRow):
            rows += 1
            continue
        bad += 1
        if len(shown) < MAX_PROBLEMS:
            shown.append(record)
    if bad:
        summary = f"{name}: {bad} invalid {_plural(bad, 'row')}"
        raise ManifestError(summary, tuple(shown), omitted=bad - len(shown))
    if rows == 0:
        raise ManifestError(f"{name}: the manifest has no rows")
    return rows


def iter_manifest(path: Path) -> Iterator[ManifestRow]:
    """Stream the rows of a manifest that `validate_manifest` accepted, in file order.

    A bad row met here means the file changed since it was validated: ManifestError.
    """
    for record in _records(path):
        if isinstance(record, ManifestProblem):
            raise ManifestError(
                f"{path}: invalid row met while streaming (did the file change after the check?)",
                (record,),
            )
        yield record


def _records(path: Path) -> Iterator[ManifestRow | ManifestProblem]:
    """Every row of the file, good or bad, in order; fatal problems raise ManifestError."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_records(path)
    if suffix in (".yaml", ".yml"):
        return _yaml_records(path)
    found = f'format "{path.suffix}"' if path.suffix else "file name without an extension"
    raise ManifestError(f"{path}: unsupported manifest {found}; use .csv, .yaml or .yml")


@contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    """Open the manifest as UTF-8 text (BOM or not), turning OS errors into ManifestError."""
    try:
        # newline="": line ends reach the csv module and the YAML parser untranslated.
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as file:
            yield file
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {_reason(exc)}") from None


# CSV


class _Lines:
    """The physical lines of a text file, counted as they are read."""

    __slots__ = ("_file", "_name", "number")

    def __init__(self, file: TextIO, name: str) -> None:
        self._file = file
        self._name = name
        self.number = 0  # lines read so far

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._file.readline(_MAX_LINE)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) == _MAX_LINE and not line.endswith(("\n", "\r")):
            raise ManifestError(
                f"{self._name}:{self.number}: line longer than {_MAX_LINE} characters; "
                "is this a CSV manifest?"
            )
        return line


def _csv_records(path: Path) -> Iterator[ManifestRow | ManifestProblem]:
    name = str(path)
    with _open_text(path) as file:
        lines = _Lines(file, name)
        header = next((line for line in lines if line.strip()), None)
        if header is None:
            raise ManifestError(f"{name}: the manifest has no rows")
        if _escaped_byte_at(header) is not None:
            raise ManifestError(f"{name}:{lines.number}: the header is not valid UTF-8")
        delimiter, product_column, image_column = _csv_header(header, name, lines.number)
        reader = csv.reader(lines, delimiter=delimiter)
        while True:
            # The reader pulls no line beyond the row it returns, so this is its first.
            start = lines.number + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ManifestError(f"{name}:{lines.number}: not valid CSV: {exc}") from None
            text = "".join(cells)
            if not text or text.isspace():
                continue
            if _escaped_byte_at(text) is not None:
                yield ManifestProblem(name, start, "row is not valid UTF-8")
                continue
            product = _cell(cells, product_column)
            image = "" if image_column is None else _cell(cells, image_column)
            yield _row(name, start, product, image, _text_id)


def _csv_header(header: str, name: str, line: int) -> tuple[str, int, int | None]:
    """The delimiter and the productId and id column indexes that the header line names."""
    widest: list[str] = []
    for delimiter in (",", ";"):
        try:
            cells = next(csv.reader([header], delimiter=delimiter))
        except csv.Error as exc:
            raise ManifestError(f"{name}:{line}: not valid CSV: {exc}") from None
        columns: dict[str, int] = {}
        for index, cell in enumerate(cells):
            field = _FIELD_NAMES.get(cell.strip().lower())
            if field is None:
                continue
            if field in columns:
                first = cells[columns[field]].strip()
                raise ManifestError(
                    f"{name}:{line}: columns {_show(first)} and {_show(cell.strip())} "
                    f"both name the {field}; keep one"
                )
            columns[field] = index
        if _PRODUCT in columns:
            return delimiter, columns[_PRODUCT], columns.get(_IMAGE)
        if len(cells) > len(widest):
            widest = cells
    found = ", ".join(_show(cell.strip()) for cell in widest)
    raise ManifestError(
        f"{name}:{line}: no productId column in the header (found {found}); "
        f"accepted columns: {_ACCEPTED}"
    )


def _cell(cells: list[str], index: int) -> str:
    return cells[index] if index < len(cells) else ""


# YAML


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
                if _ESCAPED_BYTE.match(char)
                else f"not valid YAML: control character U+{ord(char):04X} is not allowed"
            )
            raise ManifestError(f"{self.name}:{line}: {what}")
        self._lines += text.count("\n")
        return text


def _yaml_records(path: Path) -> Iterator[ManifestRow | ManifestProblem]:
    # The event stream, not yaml.safe_load: a loaded document would hold every row at once.
    name = str(path)
    with _open_text(path) as file:
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
        field = _FIELD_NAMES.get(written.strip().lower())
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
    return _row(name, line, values.get(_PRODUCT), values.get(_IMAGE), _yaml_id)


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
    return _text_id(field, value.value)


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
        return _show(event.value)
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


# Ids and rows


def _row(
    name: str, line: int, product: _T, image: _T, read_id: Callable[[str, _T], int | None]
) -> ManifestRow | ManifestProblem:
    """A row from its two raw values, or one problem naming everything wrong with it."""
    # The common case, both ids good, first; a bad row is read again for every message.
    try:
        product_id = read_id(_PRODUCT, product)
        image_id = read_id(_IMAGE, image)
    except ValueError:
        product_id = None
    if product_id is not None:
        return ManifestRow(product_id, image_id, line)
    messages: list[str] = []
    for field, value in ((_PRODUCT, product), (_IMAGE, image)):
        try:
            if read_id(field, value) is None and field == _PRODUCT:
                messages.append("row has no productId")
        except ValueError as exc:
            messages.append(str(exc))
    return ManifestProblem(name, line, "; ".join(messages))


def _text_id(field: str, text: str) -> int | None:
    """An id written as text: None when blank, else a positive integer (or ValueError)."""
    digits = text.strip()
    if digits.isascii() and digits.isdigit():
        # Length first: int() refuses strings of thousands of digits.
        if len(digits) > _MAX_ID_DIGITS and len(digits.lstrip("0")) > _MAX_ID_DIGITS:
            raise ValueError(f"{field} {_show(text)} is too large for an id")
        value = int(digits)
        if value > _MAX_ID:
            raise ValueError(f"{field} {_show(text)} is too large for an id")
        if value == 0:
            raise ValueError(f"{field} {_show(text)} is not a positive integer")
        return value
    if not digits:
        return None
    whole = _SIGNED_WHOLE.fullmatch(digits) or not _DECIMAL.fullmatch(digits)
    hint = "" if whole else ": it must be a whole number"
    raise ValueError(f"{field} {_show(text)} is not a positive integer{hint}")


def _escaped_byte_at(text: str) -> int | None:
    """Where the first byte that was not UTF-8 sits in text decoded with surrogateescape."""
    if text.isascii():
        return None
    match = _ESCAPED_BYTE.search(text)
    return match.start() if match else None


def _show(text: str) -> str:
    """A value quoted for a message, cut short and with control characters escaped."""
    return json.dumps(text if len(text) <= 40 else text[:40] + "...", ensure_ascii=False)


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
