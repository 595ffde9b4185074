"""The CSV manifest: a header naming the productId (and id) column, then one row a line."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from exporter.errors import ManifestError, ManifestProblem
from exporter.manifest.rows import (
    ACCEPTED_FIELDS,
    FIELD_NAMES,
    IMAGE,
    PRODUCT,
    ManifestFormat,
    ManifestRow,
    escaped_byte_at,
    open_text,
    quoted,
    row_of,
    text_id,
)

_MAX_LINE = 1 << 20  # characters; bounds memory on a file that is not a CSV at all


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
    with open_text(path) as file:
        lines = _Lines(file, name)
        header = next((line for line in lines if line.strip()), None)
        if header is None:
            raise ManifestError(f"{name}: the manifest has no rows")
        if escaped_byte_at(header) is not None:
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
            if escaped_byte_at(text) is not None:
                yield ManifestProblem(name, start, "row is not valid UTF-8")
                continue
            product = _cell(cells, product_column)
            image = "" if image_column is None else _cell(cells, image_column)
            yield row_of(name, start, product, image, text_id)


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
            field = FIELD_NAMES.get(cell.strip().lower())
            if field is None:
                continue
            if field in columns:
                first = cells[columns[field]].strip()
                raise ManifestError(
                    f"{name}:{line}: columns {quoted(first)} and {quoted(cell.strip())} "
                    f"both name the {field}; keep one"
                )
            columns[field] = index
        if PRODUCT in columns:
            return delimiter, columns[PRODUCT], columns.get(IMAGE)
        if len(cells) > len(widest):
            widest = cells
    found = ", ".join(quoted(cell.strip()) for cell in widest)
    raise ManifestError(
        f"{name}:{line}: no productId column in the header (found {found}); "
        f"accepted columns: {ACCEPTED_FIELDS}"
    )


def _cell(cells: list[str], index: int) -> str:
    return cells[index] if index < len(cells) else ""


FORMAT = ManifestFormat("csv", (".csv",), _csv_records, header="productId,id\n", row="{},{}\n")
