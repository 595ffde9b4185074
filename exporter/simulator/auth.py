"""Who is calling: webhook path credentials or an OAuth ``auth`` parameter."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import errors
from .settings import PortalSettings


@dataclass(frozen=True)
class Caller:
    """The credentials a request came with; they pick the downloadUrl form and sign it."""

    base_url: str
    """Scheme and host of the incoming request, e.g. ``http://127.0.0.1:8080``."""
    credential: str = ""
    """The webhook code or the OAuth access token."""
    user_id: int | None = None
    """Set for webhook calls only."""

    @property
    def is_webhook(self) -> bool:
        """Whether the call came through the webhook URL form."""
        return self.user_id is not None

    @property
    def signing_auth(self) -> str:
        """The auth part a download signature covers."""
        if self.is_webhook:
            return f"webhook:{self.user_id}:{self.credential}"
        return f"auth:{self.credential}"


def base_url_of(request: web.Request) -> str:
    """Scheme and host as the client addressed us (the portal builds links from them)."""
    return f"{request.scheme}://{request.host}"


def webhook_caller(request: web.Request, settings: PortalSettings) -> Caller:
    """Check ``/rest/<user_id>/<code>/…``; NO_AUTH_FOUND when either part is wrong."""
    user_id = request.match_info.get("user_id", "")
    code = request.match_info.get("code", "")
    if user_id != str(settings.user_id) or not _same(code, settings.webhook_code):
        raise errors.no_auth()
    return Caller(base_url_of(request), code, settings.user_id)


def oauth_caller(request: web.Request, settings: PortalSettings, params: dict[str, Any]) -> Caller:
    """Check the ``auth`` parameter of ``/rest/<method>``; NO_AUTH_FOUND when wrong or absent."""
    token = params.get("auth")
    if not isinstance(token, str) or not _same(token, settings.access_token):
        raise errors.no_auth()
    return Caller(base_url_of(request), token)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
