"""Streaming one download to disk: temporary file, SHA-256 on the way, length check, rename.

Memory stays at one chunk whatever the file's size. Nothing appears under the final
name until the whole body has arrived, matched its Content-Length and been fsynced;
any failure on the way removes the temporary.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import aiofiles
import aiohttp
import anyio

from exporter.errors import OutputError, TransportError
from exporter.files import commit_temp, discard, temp_path_for
from exporter.sidecar import SavedFile

CHUNK_BYTES = 256 * 1024


async def save_response(response: aiohttp.ClientResponse, final: Path) -> SavedFile:
    """Stream a 200 download answer into `final`, whole or not at all."""
    content_type = response.headers.get("Content-Type", "application/octet-stream")
    temp = temp_path_for(final)
    digest = hashlib.sha256()
    size = 0
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        async with aiofiles.open(temp, "xb") as out:
            pending = bytearray()  # network reads come in small pieces; write in big ones
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                pending += chunk
                if len(pending) >= CHUNK_BYTES:
                    await out.write(bytes(pending))
                    pending.clear()
            await out.write(bytes(pending))
            await out.flush()
            await anyio.to_thread.run_sync(os.fsync, out.fileno())
        expected = response.content_length
        if expected is not None and size != expected:
            raise TransportError("SHORT_BODY", f"received {size} of {expected} bytes")
        commit_temp(temp, final)
    except aiohttp.ClientError:
        discard(temp)
        raise  # the client maps transport errors
    except OSError as exc:
        discard(temp)
        raise OutputError(f"cannot write {final}: {exc.strerror or exc}") from None
    except BaseException:
        discard(temp)
        raise
    return SavedFile(final, size, digest.hexdigest(), content_type.split(";")[0].strip())
