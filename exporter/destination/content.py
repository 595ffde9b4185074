"""Is a download the image it claims to be? Checked on its first bytes.

Near their limits, portals (and proxies in front of them) answer with an HTML error
page and a 200 status; a body like that must never be stored as an image. The first
bytes of a body are compared with the signature of the format its Content-Type names;
an HTML page is refused whatever the Content-Type says.
"""

from __future__ import annotations

HEAD_BYTES = 16  # enough for every signature below

_SIGNATURES: dict[str, tuple[tuple[int, bytes], ...]] = {
    "image/jpeg": ((0, b"\xff\xd8\xff"),),
    "image/pjpeg": ((0, b"\xff\xd8\xff"),),
    "image/png": ((0, b"\x89PNG\r\n\x1a\n"),),
    "image/gif": ((0, b"GIF87a"), (0, b"GIF89a")),
    "image/webp": ((8, b"WEBP"),),
    "image/bmp": ((0, b"BM"),),
    "image/x-ms-bmp": ((0, b"BM"),),
    "image/tiff": ((0, b"II*\x00"), (0, b"MM\x00*")),
    "image/x-icon": ((0, b"\x00\x00\x01\x00"),),
    "image/vnd.microsoft.icon": ((0, b"\x00\x00\x01\x00"),),
    "image/avif": ((4, b"ftyp"),),
    "image/heic": ((4, b"ftyp"),),
    "image/heif": ((4, b"ftyp"),),
}
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")


def content_problem(head: bytes, content_type: str) -> str | None:
    """Why a body starting with `head` is not the file `content_type` names, or None."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(_HTML_STARTS):
        return "an HTML page instead of the file"
    media_type = content_type.split(";")[0].strip().lower()
    signatures = _SIGNATURES.get(media_type)
    if signatures is None:
        return None  # a type without a known signature: nothing to compare
    if any(head[offset : offset + len(magic)] == magic for offset, magic in signatures):
        return None
    return f"the body does not start like the {media_type} it claims to be"
