"""Deterministic, valid PNG files of an exact byte size, generated as a stream.

Layout: signature, IHDR, IDAT (a 2x2 RGB image whose colour derives from the image
id), one private ancillary ``prVt`` chunk of pseudo-random padding that brings the file
to its exact size, IEND. The padding comes in fixed 64 KiB blocks, each a window of
one pseudo-random pool per seed at an offset derived from (image id, block index), so
a streamed download and a whole-file build agree byte for byte, nothing larger than
one block is held per download, and serving a block costs a copy, not a hash: the
portal stays cheap on the CPU it shares with the client under test.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from collections.abc import Iterator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CONTENT_TYPE = "image/png"
PADDING_CHUNK_TYPE = b"prVt"  # ancillary, private, safe-to-copy
STREAM_BLOCK_SIZE = 64 * 1024
_POOL_BYTES = 1024 * 1024 + STREAM_BLOCK_SIZE

_WIDTH = 2
_HEIGHT = 2
_CHUNK_OVERHEAD = 12  # length + type + CRC
_MAX_CHUNK_DATA = 2**31 - 1  # PNG limit on one chunk's data length


def _chunk(chunk_type: bytes, data: bytes) -> bytes:
    """One complete PNG chunk: length, type, data, CRC over type + data."""
    crc = zlib.crc32(chunk_type + data)
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", crc)


def _colour(image_id: int) -> bytes:
    return bytes(((image_id * 97) % 256, (image_id * 57 + 80) % 256, (image_id * 31 + 160) % 256))


def _head(image_id: int) -> bytes:
    """Signature, IHDR and IDAT: everything before the padding chunk."""
    ihdr = struct.pack(">IIBBBBB", _WIDTH, _HEIGHT, 8, 2, 0, 0, 0)  # 8-bit RGB
    scanline = b"\x00" + _colour(image_id) * _WIDTH  # filter byte 0, then the pixels
    # Level 0 (stored) keeps the IDAT length the same for every colour.
    idat = zlib.compress(scanline * _HEIGHT, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)


_TRAILER = _chunk(b"IEND", b"")

MIN_PNG_SIZE = len(_head(0)) + _CHUNK_OVERHEAD + len(_TRAILER)
"""Smallest file this module can produce (an empty padding chunk)."""

MAX_PNG_SIZE = MIN_PNG_SIZE + _MAX_CHUNK_DATA
"""Largest file: the padding must fit in one chunk."""


@functools.lru_cache(maxsize=4)
def _pool(seed: int) -> bytes:
    return hashlib.shake_128(f"png-padding:{seed}".encode()).digest(_POOL_BYTES)


def _padding_block(seed: int, image_id: int, index: int, length: int) -> bytes:
    where = hashlib.blake2b(f"{image_id}:{index}".encode(), digest_size=4).digest()
    offset = int.from_bytes(where, "big") % (_POOL_BYTES - STREAM_BLOCK_SIZE + 1)
    return _pool(seed)[offset : offset + length]


def iter_png(image_id: int, size: int, seed: int) -> Iterator[bytes]:
    """Yield the PNG for ``image_id`` of exactly ``size`` bytes, in pieces of ≤ 64 KiB + head."""
    if not MIN_PNG_SIZE <= size <= MAX_PNG_SIZE:
        raise ValueError(f"PNG size must be in [{MIN_PNG_SIZE}, {MAX_PNG_SIZE}], got {size}")
    padding = size - MIN_PNG_SIZE
    yield _head(image_id) + struct.pack(">I", padding) + PADDING_CHUNK_TYPE
    crc = zlib.crc32(PADDING_CHUNK_TYPE)
    index = 0
    remaining = padding
    while remaining > 0:
        block = _padding_block(seed, image_id, index, min(STREAM_BLOCK_SIZE, remaining))
        crc = zlib.crc32(block, crc)
        remaining -= len(block)
        index += 1
        yield block
    yield struct.pack(">I", crc) + _TRAILER


def png_bytes(image_id: int, size: int, seed: int) -> bytes:
    """The whole file :func:`iter_png` streams, as one bytes object."""
    return b"".join(iter_png(image_id, size, seed))
