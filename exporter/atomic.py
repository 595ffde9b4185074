"""Local files that appear whole or not at all: temporary names, fsync, rename, fsync of the folder.

Temporaries live next to their final name (a rename within one folder is atomic) and
share one recognisable suffix, so the next run can remove what a killed run left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

TEMP_SUFFIX = ".b24-partial"
_TEMP_NAME_PREFIX_CHARS = 48  # keeps the temporary name within file-name limits


def temp_path_for(final: Path) -> Path:
    """A fresh hidden temporary name in the final file's folder."""
    stem = final.name[:_TEMP_NAME_PREFIX_CHARS]
    return final.with_name(f".{stem}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def is_temporary(path: Path) -> bool:
    """Whether a file name is one of the exporter's temporaries."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_temp(temp: Path, final: Path, *, sync_dir: bool = True) -> None:
    """Rename a complete, fsynced temporary onto its final name.

    `sync_dir=False` leaves making the rename durable to a later rename in the same
    folder (a file's sidecar follows it), saving one folder fsync per image.
    """
    temp.replace(final)
    if sync_dir:
        fsync_dir(final.parent)


def discard(path: Path) -> None:
    """Remove a temporary, ignoring that it may already be gone."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_atomic_sync(
    path: Path, data: bytes, *, mode: int | None = None, sync_dir: bool = True
) -> None:
    """Write small content (a sidecar, the report) whole or not at all.

    Without `mode` the file gets what the umask leaves of 0o666, like any new file.
    `sync_dir=False` leaves making the rename durable to the caller (one fsync of the
    folder for a group of files).
    """
    temp = temp_path_for(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    fd = os.open(temp, flags, 0o666 if mode is None else mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        commit_temp(temp, path, sync_dir=sync_dir)
    except BaseException:
        discard(temp)
        raise
