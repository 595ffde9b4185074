"""Local files that appear whole or not at all: temporary names, fsync, rename, fsync of the folder.

Temporaries live next to their final name (a rename within one folder is atomic) and
share one recognisable suffix, so the next run can remove what a killed run left.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from pathlib import Path

TEMP_SUFFIX = ".b24-partial"
_TEMP_NAME_PREFIX_CHARS = 48  # keeps the temporary name within file-name limits
# Temporary names: this process's random tag and a counter, fresh for every file without
# a call for randomness each; O_EXCL refuses any name that exists all the same.
_TAG = secrets.token_hex(3)
_NUMBERS = itertools.count()

Where = str | os.PathLike[str]


def temp_name_for(final: str) -> str:
    """A fresh hidden temporary name in the final file's folder (paths as strings)."""
    folder, sep, name = final.rpartition(os.sep)
    unique = f"{_TAG}{next(_NUMBERS):x}"
    return f"{folder}{sep}.{name[:_TEMP_NAME_PREFIX_CHARS]}.{unique}{TEMP_SUFFIX}"


def temp_path_for(final: Path) -> Path:
    """A fresh hidden temporary name in the final file's folder."""
    return Path(temp_name_for(str(final)))


def is_temporary(path: Path) -> bool:
    """Whether a file name is one of the exporter's temporaries."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def fsync_dir(folder: Where) -> None:
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


def commit_temp(temp: Where, final: Where, *, sync_dir: bool = True) -> None:
    """Rename a complete, fsynced temporary onto its final name.

    `sync_dir=False` leaves making the rename durable to the caller: one fsync of the
    folder after a group of renames.
    """
    # Plain os calls, not pathlib: paths arrive as strings from the per-image hot path.
    os.replace(temp, final)  # noqa: PTH105
    if sync_dir:
        fsync_dir(os.path.dirname(final) or ".")  # noqa: PTH120


def discard(path: Where) -> None:
    """Remove a temporary, ignoring that it may already be gone."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # noqa: PTH108


def write_atomic_sync(
    path: Where, data: bytes, *, mode: int | None = None, sync_dir: bool = True
) -> None:
    """Write small content (a sidecar, the report) whole or not at all.

    Without `mode` the file gets what the umask leaves of 0o666, like any new file.
    `sync_dir=False` leaves making the rename durable to the caller.
    """
    temp = write_temp_sync(path, data, mode=mode)
    try:
        commit_temp(temp, path, sync_dir=sync_dir)
    except BaseException:
        discard(temp)
        raise


def write_temp_sync(path: Where, data: bytes, *, mode: int | None = None) -> str:
    """Write small content, fsynced, to a fresh temporary next to `path`; return its name,
    for `commit_temp` to rename onto `path` (nothing is left when this raises)."""
    temp = temp_name_for(os.fspath(path))
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
    except BaseException:
        discard(temp)
        raise
    return temp
