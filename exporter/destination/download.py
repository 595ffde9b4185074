"""Streaming one download to disk: temporary file, SHA-256 on the way, length check, rename.

Two steps, so a download slot is free again while the disk catches up: `receive`
streams the body into a temporary next to the final name, hashing it on the way, and
checks it against Content-Length; `commit` fsyncs it and renames it into place.
Nothing appears under the final name before both; any failure removes the temporary.
Memory stays at a few blocks whatever the file's size. Each block is hashed and
written in one worker-thread call (hashlib and os.writev release the GIL, and the
network pieces are written as they are, never joined), so the event loop keeps
receiving while a block is digested and stored; fsync and rename run there too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiofiles.os
import aiohttp
import anyio

from exporter.atomic import commit_temp, discard, temp_path_for
from exporter.destination.content import HEAD_BYTES, content_problem
from exporter.errors import OutputError, TransientError, TransportError
from exporter.model import SavedFile

BLOCK_BYTES = 1024 * 1024  # pieces are gathered into blocks this big before hashing
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL


def _iov_max() -> int:
    """Buffers one os.writev call may take (1024 on Linux; POSIX guarantees 16)."""
    try:
        return max(16, min(1024, os.sysconf("SC_IOV_MAX")))
    except (ValueError, OSError):
        return 16


_IOV_MAX = _iov_max()


@dataclass(frozen=True, slots=True)
class Received:
    """A download complete in its temporary file, checked, not yet durable or renamed."""

    temp: Path
    final: Path
    size: int
    sha256: str
    content_type: str

    def discard(self) -> None:
        discard(self.temp)


async def receive(response: aiohttp.ClientResponse, final: Path) -> Received:
    """Stream a 200 download answer into a temporary next to `final`; check its length."""
    content_type = response.headers.get("Content-Type", "application/octet-stream")
    temp = temp_path_for(final)
    digest = hashlib.sha256()
    size = 0
    try:
        await aiofiles.os.makedirs(final.parent, exist_ok=True)
        out = await anyio.to_thread.run_sync(os.open, temp, _NEW_FILE, 0o666)
        try:
            pieces: list[bytes] = []  # network reads come in pieces; store them in blocks
            gathered = 0
            checked = False
            # Piece by piece as aiohttp received them: iter_any would join them first.
            async for piece, _ in response.content.iter_chunks():
                pieces.append(piece)
                gathered += len(piece)
                if not checked and gathered >= HEAD_BYTES:
                    _check_head(b"".join(pieces)[:HEAD_BYTES], content_type)
                    checked = True
                if gathered >= BLOCK_BYTES:
                    await _store(pieces, digest, out)
                    size += gathered
                    pieces, gathered = [], 0
            if not checked:
                _check_head(b"".join(pieces), content_type)
            if pieces:
                await _store(pieces, digest, out)
                size += gathered
        finally:
            os.close(out)
        expected = response.content_length
        if expected is not None and size != expected:
            raise TransportError("SHORT_BODY", f"received {size} of {expected} bytes")
    except aiohttp.ClientError:
        discard(temp)
        raise  # the client maps transport errors
    except OSError as exc:
        discard(temp)
        raise OutputError(f"cannot write {final}: {exc.strerror or exc}") from None
    except BaseException:
        discard(temp)
        raise
    media_type = content_type.split(";")[0].strip()
    return Received(temp, final, size, digest.hexdigest(), media_type)


async def commit(received: Received) -> SavedFile:
    """Make a received file durable and give it its final name."""
    try:
        await anyio.to_thread.run_sync(_fsync_and_rename, received.temp, received.final)
    except OSError as exc:
        received.discard()
        raise OutputError(f"cannot write {received.final}: {exc.strerror or exc}") from None
    except BaseException:
        received.discard()
        raise
    return SavedFile(received.final, received.size, received.sha256, received.content_type)


def _fsync_and_rename(temp: Path, final: Path) -> None:
    fd = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    # The sidecar's rename, next, makes both renames durable with one folder fsync.
    commit_temp(temp, final, sync_dir=False)


def _check_head(head: bytes, content_type: str) -> None:
    problem = content_problem(head, content_type)
    if problem is not None:
        # Retried like any transient answer: the next attempt may get the real file.
        raise TransientError("UNEXPECTED_CONTENT", problem)


async def _store(pieces: list[bytes], digest: Any, fd: int) -> None:
    """Hash pieces and write them, in one call off the event loop."""
    await anyio.to_thread.run_sync(_digest_and_write, pieces, digest, fd)


def _digest_and_write(pieces: list[bytes], digest: Any, fd: int) -> None:
    for piece in pieces:
        digest.update(piece)
    for start in range(0, len(pieces), _IOV_MAX):
        _write_all(fd, [memoryview(piece) for piece in pieces[start : start + _IOV_MAX]])


def _write_all(fd: int, views: list[memoryview]) -> None:
    """os.writev until every byte is written (a short write leaves the rest to the next)."""
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]
