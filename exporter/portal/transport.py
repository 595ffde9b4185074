"""The HTTP library's exceptions mapped onto the error tree, at the edge of the portal part.

Only this module (and the client that uses it) knows aiohttp's exception types; every
other module sees `TransportError`, a transient error of the tree.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp

from exporter.errors import TransportError


def from_transport(exc: BaseException) -> TransportError:
    """Map an aiohttp / asyncio transport exception onto `TransportError`.

    aiohttp's own messages often include the request URL, which carries the webhook
    code or a download token, so only the exception type and the OS error survive.
    """
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return TransportError("TIMEOUT", "the portal did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        reason = os.strerror(os_error.errno) if os_error.errno else type(os_error).__name__
        return TransportError("CONNECT_FAILED", f"cannot connect to the portal: {reason}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError("CONNECTION_DROPPED", "the portal closed the connection")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError("SHORT_BODY", "the answer ended before its announced length")
    if isinstance(exc, aiohttp.ClientOSError):
        # Not `strerror`: aiohttp puts the request URL there ("Can not write request body
        # for https://…/rest/1/<code>/batch").
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        return TransportError("CONNECTION_FAILED", f"connection error: {reason}")
    return TransportError("HTTP_FAILED", f"HTTP exchange failed ({type(exc).__name__})")
