"""Image bytes are valid PNG files of exactly the advertised size."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from exporter.simulator import MIN_PNG_SIZE, Catalog
from exporter.simulator.png import PADDING_CHUNK_TYPE, PNG_SIGNATURE, iter_png, png_bytes

from .helpers import crc_ok, png_chunks


@pytest.fixture
def data() -> bytes:
    return png_bytes(image_id=1001, size=300_000, seed=1)


def test_starts_with_the_png_signature(data: bytes) -> None:
    assert data[:8] == PNG_SIGNATURE


def test_has_exactly_the_requested_size(data: bytes) -> None:
    assert len(data) == 300_000


def test_chunk_sequence_is_ihdr_idat_padding_iend(data: bytes) -> None:
    assert [chunk_type for chunk_type, _, _ in png_chunks(data)] == [
        b"IHDR",
        b"IDAT",
        b"prVt",
        b"IEND",
    ]


def test_every_chunk_crc_checks_out(data: bytes) -> None:
    assert all(crc_ok(*chunk) for chunk in png_chunks(data))


def test_image_data_decodes_to_the_declared_pixels(data: bytes) -> None:
    chunks = {chunk_type: body for chunk_type, body, _ in png_chunks(data)}
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + 3 * width)


def test_padding_chunk_is_ancillary_private_and_safe_to_copy() -> None:
    first, second, third, fourth = (bytes([byte]) for byte in PADDING_CHUNK_TYPE)
    assert first.islower() and second.islower() and third.isupper() and fourth.islower()


def test_minimal_size_has_an_empty_padding_chunk() -> None:
    chunks = png_chunks(png_bytes(1, MIN_PNG_SIZE, 0))
    assert chunks[2][:2] == (b"prVt", b"")


def test_size_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError):
        png_bytes(1, MIN_PNG_SIZE - 1, 0)


def test_streamed_pieces_join_to_the_whole_file() -> None:
    pieces = list(iter_png(7, 200_000, 3))
    assert b"".join(pieces) == png_bytes(7, 200_000, 3)
    assert max(len(piece) for piece in pieces[1:]) <= 64 * 1024


def test_bytes_are_deterministic_per_seed_and_id() -> None:
    assert png_bytes(5, 5_000, 1) == png_bytes(5, 5_000, 1)
    assert png_bytes(5, 5_000, 1) != png_bytes(5, 5_000, 2)
    assert png_bytes(5, 5_000, 1) != png_bytes(6, 5_000, 1)


def test_catalog_clamps_tiny_sizes_up_to_a_valid_png() -> None:
    catalog = Catalog()
    image_id = catalog.add_image(1, name="tiny.png", size=1)
    assert catalog.image(image_id).size == MIN_PNG_SIZE
    assert len(catalog.image_bytes(image_id)) == MIN_PNG_SIZE


def test_catalog_sha256_matches_its_bytes() -> None:
    catalog = Catalog.generate(products=2, images=3, seed=4)
    for _, image_id in catalog.pairs():
        expected = hashlib.sha256(catalog.image_bytes(image_id)).hexdigest()
        assert catalog.image_sha256(image_id) == expected
