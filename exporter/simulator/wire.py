"""How answers look on the wire: PHP-flavoured JSON, the ``time`` block, error responses."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from .errors import ApiError
from .operating import OperatingUsage

# Bitrix encodes with JSON_HEX_AMP|JSON_HEX_APOS|JSON_HEX_TAG and escapes "/". These
# characters can only occur inside JSON strings, so a plain replace is safe.
_PHP_ESCAPES = {"/": "\\/", "&": "\\u0026", "'": "\\u0027", "<": "\\u003C", ">": "\\u003E"}
_PHP_TABLE = str.maketrans(_PHP_ESCAPES)


def php_dumps(value: Any) -> str:
    """JSON text as PHP's encoder writes it (non-ASCII as ``\\uXXXX``, ``/`` as ``\\/``)."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).translate(_PHP_TABLE)


def php_section(entries: dict[str, Any]) -> dict[str, Any] | list[Any]:
    """A batch section the way PHP encodes its array.

    Empty → ``[]``; keys exactly "0".."n-1" in order → a JSON list (the key mapping is
    lost, as on the real portal); anything else → an object.
    """
    if list(entries) == [str(index) for index in range(len(entries))]:
        return list(entries.values())
    return entries


def time_block(
    start: float, finish: float, processing: float, operating: OperatingUsage | None = None
) -> dict[str, Any]:
    """The ``time`` object every successful answer carries (unix seconds + ISO dates).

    With the operating limiter on it also carries ``operating`` and, when known,
    ``operating_reset_at``.
    """
    block: dict[str, Any] = {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": processing,
        "date_start": _iso(start),
        "date_finish": _iso(finish),
    }
    if operating is not None:
        block["operating"] = operating.seconds
        if operating.reset_at is not None:
            block["operating_reset_at"] = operating.reset_at
    return block


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON answer encoded like the portal's."""
    return web.Response(
        text=php_dumps(body), status=status, content_type="application/json", charset="utf-8"
    )


def error_response(error: ApiError) -> web.Response:
    """The ``{"error", "error_description"}`` answer with the error's status."""
    return json_response(error.body(), status=error.status)


def nginx_page(status: int, reason: str) -> str:
    """The HTML error page the front web server (nginx) answers with."""
    title = f"{status} {reason}"
    return (
        f"<html>\n<head><title>{title}</title></head>\n<body>\n"
        f"<center><h1>{title}</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n"
    )


NGINX_404_PAGE = nginx_page(404, "Not Found")
NGINX_413_PAGE = nginx_page(413, "Request Entity Too Large")


def nginx_not_found() -> web.Response:
    """The HTML 404 page the front web server answers for requests it does not like."""
    return web.Response(text=NGINX_404_PAGE, status=404, content_type="text/html")


def nginx_too_large() -> web.Response:
    """The HTML 413 page the front web server answers for a body above its limit."""
    return web.Response(text=NGINX_413_PAGE, status=413, content_type="text/html")


HTML_ERROR_PAGE = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Service temporarily unavailable</title></head>
<body>
<h1>Service temporarily unavailable</h1>
<p>The portal is under heavy load. Please try again in a few minutes.</p>
</body>
</html>
"""


def html_error_page() -> web.Response:
    """A 200 HTML page instead of JSON or a file, as portals answer near their limits."""
    return web.Response(text=HTML_ERROR_PAGE, status=200, content_type="text/html")
