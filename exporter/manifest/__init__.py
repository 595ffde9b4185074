"""The manifest: which products and images to export, in the formats read and written.

Each format is one module (`csv_format`, `yaml_format`) with its reader and its writer,
entered once in `FORMATS`; what they share (rows, ids, messages) is in `rows`. The help
text and the error messages list the formats from the registry.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from exporter.atomic import commit_temp, discard, temp_path_for
from exporter.errors import ConfigError, ManifestError, ManifestProblem, OutputError
from exporter.manifest import csv_format, yaml_format
from exporter.manifest.rows import (
    MAX_PROBLEMS,
    ManifestFormat,
    ManifestRow,
    Records,
    plural,
    reason,
)
from exporter.model import ImageRef

__all__ = [
    "FORMATS",
    "MAX_PROBLEMS",
    "ManifestFormat",
    "ManifestRow",
    "check_manifest_path",
    "formats_help",
    "iter_manifest",
    "validate_manifest",
    "write_manifest",
]

FORMATS: tuple[ManifestFormat, ...] = (csv_format.FORMAT, yaml_format.FORMAT)


def formats_help(*, short: bool = False) -> str:
    """The known suffixes for help and messages: ".csv, .yaml or .yml"; short: ".csv/.yaml"."""
    if short:
        return "/".join(fmt.suffixes[0] for fmt in FORMATS)
    *others, last = (suffix for fmt in FORMATS for suffix in fmt.suffixes)
    return f"{', '.join(others)} or {last}" if others else last


def validate_manifest(path: Path, each: Callable[[ManifestRow], None] | None = None) -> int:
    """Read the whole manifest once, before the first request, and return its number of rows
    (each good row handed to `each` on the way, when given).

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
            if each is not None:
                each(record)
            continue
        bad += 1
        if len(shown) < MAX_PROBLEMS:
            shown.append(record)
    if bad:
        summary = f"{name}: {bad} invalid {plural(bad, 'row')}"
        raise ManifestError(summary, tuple(shown), omitted=bad - len(shown))
    if rows == 0:
        raise ManifestError(f"{name}: the manifest has no rows")
    return rows


def iter_manifest(path: Path) -> Iterator[ManifestRow]:
    """Stream the rows of a manifest that `validate_manifest` accepted, in file order.

    One row is held at a time, whatever the size of the file; rows come out as written
    (duplicates are the pipeline's business). A bad row met here means the file changed
    since it was validated: ManifestError.
    """
    for record in _records(path):
        if isinstance(record, ManifestProblem):
            raise ManifestError(
                f"{path}: invalid row met while streaming (did the file change after the check?)",
                (record,),
            )
        yield record


def check_manifest_path(path: Path) -> ManifestFormat:
    """The manifest format its name asks for; ConfigError before any request."""
    fmt = _format_of(path)
    if fmt is None:
        found = f'"{path.suffix}"' if path.suffix else "no extension"
        raise ConfigError(f"{path}: cannot write a manifest with {found}; use {formats_help()}")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a manifest file")
    return fmt


async def write_manifest(path: Path, refs: AsyncIterable[ImageRef]) -> int:
    """Stream refs into a manifest at `path`, whole or not at all; returns the rows written.

    Rows go to a temporary file in the same folder, renamed onto `path` only when the
    last one is written; if `refs` raises, the temporary is removed and `path` is left
    as it was, so a failed discovery never destroys the previous manifest.
    """
    fmt = check_manifest_path(path)
    seen: set[ImageRef] = set()  # 100,000 refs hold a few MB
    temp = temp_path_for(path)
    try:
        with _disk(path):
            out = open(temp, "x", encoding="utf-8", newline="\n")  # noqa: SIM115
        with out:
            with _disk(path):
                out.write(fmt.header)
            async for ref in refs:
                if ref not in seen:
                    seen.add(ref)
                    with _disk(path):
                        out.write(fmt.row.format(ref.product_id, ref.image_id))
            with _disk(path):
                out.flush()
                os.fsync(out.fileno())
        with _disk(path):
            commit_temp(temp, path)
    except BaseException:
        discard(temp)
        raise
    return len(seen)


def _format_of(path: Path) -> ManifestFormat | None:
    """The registered format whose suffixes hold the file's suffix (any letter case)."""
    suffix = path.suffix.lower()
    return next((fmt for fmt in FORMATS if suffix in fmt.suffixes), None)


def _records(path: Path) -> Records:
    """Every row of the file, good or bad, in order; fatal problems raise ManifestError."""
    fmt = _format_of(path)
    if fmt is None:
        found = f'format "{path.suffix}"' if path.suffix else "file name without an extension"
        raise ManifestError(f"{path}: unsupported manifest {found}; use {formats_help()}")
    return fmt.read(path)


@contextmanager
def _disk(path: Path) -> Iterator[None]:
    """Disk errors writing the manifest as OutputError; errors of the refs pass untouched."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write the manifest {path}: {reason(exc)}") from None
