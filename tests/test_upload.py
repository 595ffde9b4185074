"""Uploads: adds packed by bytes and count, base64 that survives the portal's parse_str."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

from exporter.portal.upload import Packer, Upload

# Bytes whose base64 is full of "+", "/" and "=": what parse_str would damage unquoted.
NASTY = bytes([0xFB, 0xEF, 0xFF]) * 40 + b"\xfb"


def upload(size: int, key: str = "u1") -> Upload:
    return Upload(key, 7, "MORE_PHOTO", "front.png", bytes(size))


def test_base64_in_a_batch_command_is_percent_encoded_and_comes_back_whole() -> None:
    command = Upload("u1", 7, "MORE_PHOTO", "a+b.png", NASTY).batch_call().command()
    query = urlsplit(command).query
    assert "+" not in query  # a raw "+" would arrive as a space
    assert "%2B" in query and "%2F" in query and "%3D" in query
    # The portal reads the command with parse_str: what it decodes is the file, whole.
    fields = parse_qs(query, keep_blank_values=True)
    assert base64.b64decode(fields["fileContent[1]"][0], validate=True) == NASTY
    assert fields["fileContent[0]"] == ["a+b.png"]
    assert fields["fields[productId]"] == ["7"]


def test_a_request_of_its_own_carries_the_file_as_fields_and_file_content() -> None:
    params = Upload("u1", 7, "DETAIL_PICTURE", "d.png", NASTY).params()
    assert params["fields"] == {"productId": 7, "type": "DETAIL_PICTURE"}
    name, data = params["fileContent"]
    assert (name, base64.b64decode(data)) == ("d.png", NASTY)


def test_batches_stay_under_the_byte_budget_and_50_commands() -> None:
    packer: Packer[Upload] = Packer(budget=10_000, commands=50)
    batches = []
    for n in range(30):
        full = packer.add(upload(3000, f"u{n}"))  # 4,000 bytes of base64 each
        if full:
            batches.append(full)
    batches.append(packer.flush())
    assert [len(b) for b in batches] == [2] * 15
    assert all(sum(u.encoded_size for u in b) <= 10_000 for b in batches)
    small: Packer[Upload] = Packer(budget=10**9, commands=50)
    counts = [len(full) for n in range(120) if (full := small.add(upload(3, f"s{n}")))]
    assert counts == [50, 50] and len(small.flush()) == 20


def test_an_image_bigger_than_the_budget_goes_alone() -> None:
    packer: Packer[Upload] = Packer(budget=1000, commands=50)
    assert packer.add(upload(100, "a")) is None
    assert [u.key for u in packer.add(upload(5000, "big")) or []] == ["a"]
    assert [u.key for u in packer.add(upload(100, "c")) or []] == ["big"]
    assert [u.key for u in packer.flush()] == ["c"]
