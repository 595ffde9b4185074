"""Streaming a download into a sink: its head checked, its length compared, never held whole.

Network reads come in pieces of a few KB; they are gathered into blocks of about 1 MiB
and handed to the sink as they are, never joined, so memory stays at a few blocks
whatever the file's size. The first bytes must look like the image the Content-Type
names (an HTML error page is never stored), and the body must be as long as its
Content-Length. Any failure discards the sink.
"""

from __future__ import annotations

from exporter.destination.base import Sink
from exporter.destination.content import HEAD_BYTES, content_problem
from exporter.errors import TransientError, TransportError
from exporter.model import Incoming

BLOCK_BYTES = 1024 * 1024  # pieces are gathered into blocks this big before hashing


async def receive(incoming: Incoming, sink: Sink) -> Sink:
    """Stream a download's body into `sink`, checking its head and its length."""
    content_type = incoming.content_type or "application/octet-stream"
    try:
        pieces: list[bytes] = []
        gathered = 0
        checked = False
        async for piece in incoming.pieces:
            pieces.append(piece)
            gathered += len(piece)
            if not checked and gathered >= HEAD_BYTES:
                _check_head(b"".join(pieces)[:HEAD_BYTES], content_type)
                checked = True
            if gathered >= BLOCK_BYTES:
                await sink.write(pieces)
                pieces, gathered = [], 0
        if not checked:
            _check_head(b"".join(pieces), content_type)
        if pieces:
            await sink.write(pieces)
        expected = incoming.length
        if expected is not None and sink.size != expected:
            raise TransportError("SHORT_BODY", f"received {sink.size} of {expected} bytes")
    except BaseException:
        sink.discard()
        raise
    return sink


def _check_head(head: bytes, content_type: str) -> None:
    problem = content_problem(head, content_type)
    if problem is not None:
        # Retried like any transient answer: the next attempt may get the real file.
        raise TransientError("UNEXPECTED_CONTENT", problem)
