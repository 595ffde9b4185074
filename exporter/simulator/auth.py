"""Who is calling: webhook path credentials or an OAuth ``auth`` parameter."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .settings import PortalSettings

if TYPE_CHECKING:
    from .tokens import OAuthTokens


@dataclass(frozen=True)
class Caller:
    """The credentials a request came with; they pick the downloadUrl form and sign it."""

    base_url: str
    """Scheme and host of the incoming request, e.g. ``http://127.0.0.1:8080``."""
    credential: str = ""
    """The webhook code or the OAuth access token."""
    user_id: int | None = None
    """Set for webhook calls only."""
    account: str = ""
    """Whom the operating budget is charged to: the webhook, or the OAuth application."""

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
    if user_id != str(settings.user_id) or not same_secret(code, settings.webhook_code):
        raise errors.no_auth()
    account = f"webhook:{settings.user_id}:{code}"
    return Caller(base_url_of(request), code, settings.user_id, account)


def oauth_caller(
    request: web.Request, settings: PortalSettings, tokens: OAuthTokens, params: dict[str, Any]
) -> Caller:
    """Check the ``auth`` parameter of ``/rest/<method>``.

    NO_AUTH_FOUND when wrong or absent; expired_token when past ``token_ttl`` or
    replaced by a refresh.
    """
    token = tokens.check(params.get("auth"), settings.faults.token_ttl)
    return Caller(base_url_of(request), token, account=f"app:{settings.client_id}")


def same_secret(given: str, expected: str) -> bool:
    """Compare a presented secret in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())
