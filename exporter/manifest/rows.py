"""What every manifest format shares: the row, the field names, how ids are read and shown."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeAlias, TypeVar

from exporter.errors import ManifestError, ManifestProblem

MAX_PROBLEMS = 20  # bad rows named in a ManifestError; the rest are counted

PRODUCT = "productId"
IMAGE = "id"
# Column (CSV) and key (YAML) names, compared trimmed and lower-cased.
FIELD_NAMES = {"productid": PRODUCT, "product_id": PRODUCT, "id": IMAGE, "image_id": IMAGE}
ACCEPTED_FIELDS = "productId or product_id, and optionally id or image_id (any letter case)"

_SIGNED_WHOLE = re.compile(r"[-+]?[0-9]+")
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_MAX_ID = 2**63 - 1  # what a signed 64-bit database column holds
_MAX_ID_DIGITS = len(str(_MAX_ID))
# Bytes that are not UTF-8 are decoded with "surrogateescape" into these code points,
# so the reader can go on and name the line instead of failing somewhere in a chunk.
ESCAPED_BYTE = re.compile("[\udc80-\udcff]")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One row of the manifest: a product and one of its images, or all of them."""

    product_id: int
    image_id: int | None  # None: every image of the product (a product-only row)
    line: int  # 1-based line in the file where the row starts


Records: TypeAlias = Iterator[ManifestRow | ManifestProblem]


@dataclass(frozen=True, slots=True)
class ManifestFormat:
    """One manifest format: the file suffixes that ask for it, its reader and its writer."""

    name: str
    suffixes: tuple[str, ...]  # lower-case, dot first; help names the first of them
    read: Callable[[Path], Records]  # every row, good or bad, in order; fatal: ManifestError
    header: str  # what a written manifest starts with
    row: str  # a written row: a str.format template of the product id and the image id


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """Open the manifest as UTF-8 text (BOM or not), turning OS errors into ManifestError."""
    try:
        # newline="": line ends reach the format's reader untranslated.
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as file:
            yield file
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {reason(exc)}") from None


def row_of(
    name: str, line: int, product: _T, image: _T, read_id: Callable[[str, _T], int | None]
) -> ManifestRow | ManifestProblem:
    """A row from its two raw values, or one problem naming everything wrong with it."""
    # The common case, both ids good, first; a bad row is read again for every message.
    try:
        product_id = read_id(PRODUCT, product)
        image_id = read_id(IMAGE, image)
    except ValueError:
        product_id = None
    if product_id is not None:
        return ManifestRow(product_id, image_id, line)
    messages: list[str] = []
    for field, value in ((PRODUCT, product), (IMAGE, image)):
        try:
            if read_id(field, value) is None and field == PRODUCT:
                messages.append("row has no productId")
        except ValueError as exc:
            messages.append(str(exc))
    return ManifestProblem(name, line, "; ".join(messages))


def text_id(field: str, text: str) -> int | None:
    """An id written as text: None when blank, else a positive integer (or ValueError)."""
    digits = text.strip()
    if digits.isascii() and digits.isdigit():
        # Length first: int() refuses strings of thousands of digits.
        if len(digits) > _MAX_ID_DIGITS and len(digits.lstrip("0")) > _MAX_ID_DIGITS:
            raise ValueError(f"{field} {quoted(text)} is too large for an id")
        value = int(digits)
        if value > _MAX_ID:
            raise ValueError(f"{field} {quoted(text)} is too large for an id")
        if value == 0:
            raise ValueError(f"{field} {quoted(text)} is not a positive integer")
        return value
    if not digits:
        return None
    whole = _SIGNED_WHOLE.fullmatch(digits) or not _DECIMAL.fullmatch(digits)
    hint = "" if whole else ": it must be a whole number"
    raise ValueError(f"{field} {quoted(text)} is not a positive integer{hint}")


def escaped_byte_at(text: str) -> int | None:
    """Where the first byte that was not UTF-8 sits in text decoded with surrogateescape."""
    if text.isascii():
        return None
    match = ESCAPED_BYTE.search(text)
    return match.start() if match else None


def quoted(text: str) -> str:
    """A value quoted for a message, cut short and with control characters escaped."""
    return json.dumps(text if len(text) <= 40 else text[:40] + "...", ensure_ascii=False)


def plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
