"""The OAuth server's ``/oauth/token/`` route: ``grant_type=refresh_token`` only.

On the real service this is ``oauth.bitrix.info``, a separate server; here it shares
the portal's address but stays outside its counters, rate limit and faults.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .auth import base_url_of
from .params import read_params
from .tokens import DEFAULT_LIFETIME
from .wire import error_response, json_response

if TYPE_CHECKING:
    from .app import SimulatedPortal

_REQUIRED = ("grant_type", "client_id", "client_secret", "refresh_token")


async def serve_token_request(portal: SimulatedPortal, request: web.Request) -> web.Response:
    """Refresh the token pair (GET query or POST form); refused with an OAuth error code."""
    params = await read_params(request)
    try:
        for name in _REQUIRED:
            if not isinstance(params.get(name), str) or not params[name]:
                raise errors.invalid_request(f"Missing parameter {name}")
        if params["grant_type"] != "refresh_token":
            raise errors.invalid_request("Unsupported grant_type; only refresh_token is known")
        portal.tokens.refresh(params["client_id"], params["client_secret"], params["refresh_token"])
    except errors.ApiError as error:
        portal.stats.refused_refreshes += 1
        return error_response(error)
    portal.stats.token_refreshes += 1
    return json_response(token_answer(portal, request))


def token_answer(portal: SimulatedPortal, request: web.Request) -> dict[str, Any]:
    """The documented refresh answer for the portal's current token pair."""
    settings = portal.settings
    ttl = settings.faults.token_ttl
    lifetime = DEFAULT_LIFETIME if ttl is None else max(1, math.ceil(ttl))
    base = base_url_of(request)
    return {
        "access_token": portal.current_access_token,
        "expires": int(time.time()) + lifetime,
        "expires_in": lifetime,
        "scope": "catalog",
        "domain": request.host,
        "server_endpoint": f"{base}/oauth/rest/",
        "status": "L",
        "client_endpoint": f"{base}/rest/",
        "member_id": hashlib.sha256(b"member:" + settings.secret).hexdigest()[:32],
        "user_id": settings.user_id,
        "refresh_token": portal.current_refresh_token,
    }
