"""The ``download`` route: checks a signed link and streams the image bytes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from . import errors
from .auth import Caller
from .injector import DOWNLOAD_FAULTS, download_key
from .params import parse_php_query
from .wire import nginx_not_found

if TYPE_CHECKING:
    from .app import SimulatedPortal

# User-Agents of HTTP libraries used as-is ("Python/3.11 aiohttp/3.9", "python-requests/2.31").
_LIBRARY_AGENTS = ("python/", "python-", "aiohttp/")


def has_expected_headers(headers: Mapping[str, str]) -> bool:
    """Whether a download sends a Referer and a User-Agent of its own (not a library default)."""
    agent = headers.get("User-Agent", "").strip().lower()
    referer = headers.get("Referer", "").strip()
    return bool(agent) and bool(referer) and not agent.startswith(_LIBRARY_AGENTS)


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 name (RFC 6266)."""
    fallback = "".join(char if " " <= char <= "~" and char not in '"\\' else "_" for char in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def serve_download(
    portal: SimulatedPortal,
    request: web.Request,
    authenticate: Callable[[dict[str, Any]], Caller],
) -> web.StreamResponse:
    """Answer one download GET; large images are streamed in 64 KiB blocks.

    Checks, in order: the front server's header filter (nginx 404 page), the leaky
    bucket (when downloads count), the auth, the link's signature and age, the image.
    Injected faults then apply to what would have been a good download.
    """
    stats = portal.stats
    stats.download_requests += 1
    settings = portal.settings
    if settings.require_download_headers and not has_expected_headers(request.headers):
        stats.rejected_downloads += 1
        return nginx_not_found()
    params = parse_php_query(request.query_string)
    try:
        if settings.count_downloads:
            portal.admit()
        caller = authenticate(params)
        token = params.get("token")
        link = portal.links.verify(token if isinstance(token, str) else None, caller)
        if link is None:
            raise errors.link_check_failed()
        ttl = settings.faults.link_ttl
        if ttl is not None and portal.clock() - link.issued_at >= ttl:
            stats.expired_links += 1
            # An OAuth link is bound to its access token; a webhook link just fails its check.
            raise errors.link_check_failed() if caller.is_webhook else errors.expired_token()
        if not portal.catalog.has_image(link.image_id):
            raise errors.file_not_found()
    except errors.ApiError as error:
        return portal.error(error)
    fault = portal.faults.decide(download_key(link.image_id), DOWNLOAD_FAULTS)
    if fault.slow:
        await portal.sleep(settings.faults.slow_seconds)
    if fault.kind in ("500", "html"):
        return portal.fault_answer(request, fault.kind)
    return await _send_image(portal, request, link.image_id, cut=fault.kind)


async def _send_image(
    portal: SimulatedPortal, request: web.Request, image_id: int, *, cut: str | None
) -> web.StreamResponse:
    """Stream the file; ``cut`` "drop" resets mid-body, "truncate" closes a little short.

    Either way the headers announce the full Content-Length, as a real cut would.
    """
    image = portal.catalog.image(image_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": image.content_type,
            "Content-Disposition": content_disposition(image.name),
        }
    )
    response.content_length = image.size
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return response
    limit = _cut_at(image.size, cut)
    written = 0
    try:
        for piece in portal.catalog.iter_image_bytes(image_id):
            piece = piece[: limit - written]
            await response.write(piece)
            written += len(piece)
            if written >= limit:
                break
        if cut is not None:
            _hang_up(request, abort=cut == "drop")
            return response
        await response.write_eof()
    except ConnectionResetError:  # the client went away mid-body: not a success
        return response
    stats = portal.stats
    stats.downloads += 1
    stats.download_bytes += written
    stats.download_by_image[image_id] += 1
    return response


def _cut_at(size: int, cut: str | None) -> int:
    """How many body bytes to send: all, half ("drop") or all but the last tenth ("truncate")."""
    if cut == "drop":
        return size // 2
    if cut == "truncate":
        return size - max(1, size // 10)
    return size


def _hang_up(request: web.Request, *, abort: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    if abort:
        transport.abort()  # like a reset: what is still buffered is lost
    else:
        transport.close()  # a clean close, after the short body
