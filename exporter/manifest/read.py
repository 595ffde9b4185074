"""The manifest: which products and images to export, read from a CSV or YAML file.

`validate_manifest` reads the whole file once, before the first request, so that a bad
row stops the run with every problem named; `iter_manifest` then streams the rows to
the pipeline. Both hold one row at a time, whatever the size of the file. Rows come out
as written: duplicates are the pipeline's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from exporter.errors import ManifestError, ManifestProblem
from exporter.manifest.csv_format import _csv_records
from exporter.manifest.rows import MAX_PROBLEMS, ManifestRow, _plural
from exporter.manifest.yaml_format import _yaml_records


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
