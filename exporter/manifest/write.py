"""Writing a manifest: what `discover` produces, in the same formats `run` reads.

Rows stream to a temporary file next to the target and are renamed onto it only when
the last one is written, so a failed discovery never leaves half a manifest (or
destroys the previous one). YAML rows are flow mappings, one per line, so the file
streams both ways.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from exporter.destination.files import commit_temp, discard, temp_path_for
from exporter.errors import ConfigError, OutputError
from exporter.model import ImageRef

MANIFEST_FORMATS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}


def check_manifest_path(path: Path) -> str:
    """The manifest format its name asks for ("csv" or "yaml"); ConfigError before any request."""
    kind = MANIFEST_FORMATS.get(path.suffix.lower())
    if kind is None:
        found = f'"{path.suffix}"' if path.suffix else "no extension"
        raise ConfigError(f"{path}: cannot write a manifest with {found}; use .csv, .yaml or .yml")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a manifest file")
    return kind


async def write_manifest(path: Path, refs: AsyncIterable[ImageRef]) -> int:
    """Stream refs into a manifest at `path`, whole or not at all; returns the rows written.

    Rows go to a temporary file in the same folder, renamed onto `path` only when the
    last one is written; if `refs` raises, the temporary is removed and `path` is left
    as it was. YAML rows are flow mappings, one per line, so the file streams both ways.
    """
    csv = check_manifest_path(path) == "csv"
    row = "{},{}\n" if csv else "  - {{productId: {}, id: {}}}\n"
    seen: set[ImageRef] = set()  # 100,000 refs hold a few MB
    temp = temp_path_for(path)
    try:
        with _disk(path):
            out = open(temp, "x", encoding="utf-8", newline="\n")  # noqa: SIM115
        with out:
            with _disk(path):
                out.write("productId,id\n" if csv else "images:\n")
            async for ref in refs:
                if ref not in seen:
                    seen.add(ref)
                    with _disk(path):
                        out.write(row.format(ref.product_id, ref.image_id))
            with _disk(path):
                out.flush()
                os.fsync(out.fileno())
        with _disk(path):
            commit_temp(temp, path)
    except BaseException:
        discard(temp)
        raise
    return len(seen)


@contextmanager
def _disk(path: Path) -> Iterator[None]:
    """Disk errors writing the manifest as OutputError; errors of the refs pass untouched."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"cannot write the manifest {path}: {reason}") from None
