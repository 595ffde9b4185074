"""A download is stored only if its first bytes are the image its Content-Type names."""

from __future__ import annotations

import pytest

from exporter.destination.content import content_problem

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 "


@pytest.mark.parametrize(
    ("head", "content_type"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (JPEG, "image/jpeg; charset=binary"),
        (WEBP, "image/webp"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", "image/svg+xml"),
        (b"\x00\x01\x02anything", "application/octet-stream"),
    ],
)
def test_a_body_that_matches_its_type_passes(head: bytes, content_type: str) -> None:
    assert content_problem(head, content_type) is None


@pytest.mark.parametrize(
    "head",
    [b"<!DOCTYPE html><html>", b"  \r\n<html><head>", b"\xef\xbb\xbf<!doctype HTML>", b"<HTML>"],
)
def test_an_html_page_is_refused_whatever_its_type(head: bytes) -> None:
    for content_type in ("image/png", "application/octet-stream", ""):
        assert content_problem(head, content_type) == "an HTML page instead of the file"


@pytest.mark.parametrize(
    ("head", "content_type"),
    [(JPEG, "image/png"), (PNG, "image/jpeg"), (b'{"error":"x"}', "image/gif"), (b"", "image/png")],
)
def test_a_body_unlike_its_claimed_type_is_refused(head: bytes, content_type: str) -> None:
    problem = content_problem(head, content_type)
    assert problem is not None
    assert content_type.split(";")[0] in problem
