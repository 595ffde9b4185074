"""Storing a download's blocks: every byte written and hashed, whatever os.writev does."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from exporter import download

REAL_WRITEV = os.writev


def _store(path: Path, pieces: list[bytes]) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        download._digest_and_write(pieces, digest, fd)
    finally:
        os.close(fd)
    return digest.hexdigest()


def test_short_writes_are_continued_until_every_byte_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def stingy_writev(fd: int, buffers: Sequence[bytes]) -> int:
        calls.append(len(buffers))
        return REAL_WRITEV(fd, [bytes(buffers[0][:999])])  # never more than 999 bytes

    monkeypatch.setattr(os, "writev", stingy_writev)
    pieces = [bytes([n]) * size for n, size in enumerate((5000, 1, 70_000, 999, 1000))]
    whole = b"".join(pieces)
    digest = _store(tmp_path / "f", pieces)
    assert (tmp_path / "f").read_bytes() == whole
    assert digest == hashlib.sha256(whole).hexdigest()
    assert len(calls) > len(pieces)  # the short writes did happen


def test_more_pieces_than_one_writev_takes_are_written_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    largest = []

    def recording_writev(fd: int, buffers: Sequence[bytes]) -> int:
        largest.append(len(buffers))
        return REAL_WRITEV(fd, buffers)

    monkeypatch.setattr(os, "writev", recording_writev)
    pieces = [n.to_bytes(2, "big") for n in range(5000)]  # tiny chunks of a chunked body
    digest = _store(tmp_path / "f", pieces)
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)
    assert digest == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert max(largest) <= 1024
