"""How requests prove who they are: an inbound webhook, or an OAuth app's access token.

A webhook puts its secret code in the URL path and cannot refresh anything. An OAuth
app passes `auth=<access token>` and, on `expired_token`, refreshes the pair once for
every request in flight; refresh tokens rotate, so the new pair is written back to
`token_file` (atomically, mode 0600) for the next run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import anyio

from exporter.atomic import write_atomic_sync
from exporter.config import OAuthConfig, PortalConfig
from exporter.errors import ConfigError, FatalPortalError
from exporter.portal.transport import from_transport
from exporter.redact import redact

log = logging.getLogger(__name__)


class Auth(Protocol):
    """Where a method is called and which parameters carry the credentials."""

    def method_url(self, method: str) -> str: ...

    def params(self) -> dict[str, str]: ...

    async def refresh(self, stale: dict[str, str]) -> None:
        """Renew credentials that the portal called expired (`stale` = what was sent)."""
        ...


class WebhookAuth:
    """Calls `https://<portal>/rest/<user>/<code>/<method>`; nothing to refresh."""

    def __init__(self, webhook_url: str) -> None:
        self._base = webhook_url

    def method_url(self, method: str) -> str:
        return f"{self._base}{method}"

    def params(self) -> dict[str, str]:
        return {}

    async def refresh(self, stale: dict[str, str]) -> None:
        raise FatalPortalError("expired_token", "a webhook's code cannot be refreshed")


class OAuthAuth:
    """Calls `https://<portal>/rest/<method>` with `auth`; refreshes once when expired."""

    def __init__(self, base_url: str, oauth: OAuthConfig, session: aiohttp.ClientSession) -> None:
        self._base = base_url
        self._oauth = oauth
        self._session = session
        self._access = oauth.access_token
        self._refresh_token = oauth.refresh_token
        self._lock = anyio.Lock()
        stored = _read_token_file(oauth.token_file)
        if stored:
            self._access, self._refresh_token = stored
        redact.add(self._access, self._refresh_token, oauth.client_secret)

    def method_url(self, method: str) -> str:
        return f"{self._base}/rest/{method}"

    def params(self) -> dict[str, str]:
        return {"auth": self._access}

    async def refresh(self, stale: dict[str, str]) -> None:
        async with self._lock:
            if stale.get("auth") != self._access:
                return  # another request refreshed while this one waited
            query = {
                "grant_type": "refresh_token",
                "client_id": self._oauth.client_id,
                "client_secret": self._oauth.client_secret,
                "refresh_token": self._refresh_token,
            }
            try:
                async with self._session.get(
                    self._oauth.token_url, params=query, allow_redirects=False
                ) as response:
                    status = response.status
                    body = await response.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise from_transport(exc) from None
            answer = _parse_token_answer(status, body)
            self._access = answer["access_token"]
            self._refresh_token = answer["refresh_token"]
            redact.add(self._access, self._refresh_token)
            log.info("OAuth access token refreshed")
            if self._oauth.token_file is not None:
                _write_token_file(self._oauth.token_file, self._access, self._refresh_token)


def make_auth(portal: PortalConfig, session: aiohttp.ClientSession) -> Auth:
    """The credentials the configuration names."""
    if portal.webhook_url is not None:
        return WebhookAuth(portal.webhook_url)
    assert portal.oauth is not None
    return OAuthAuth(portal.base_url, portal.oauth, session)


def _parse_token_answer(status: int, body: str) -> dict[str, str]:
    try:
        data: Any = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise FatalPortalError("ERROR_OAUTH", "the token endpoint did not answer JSON", status)
    if "error" in data or status != 200:
        code = str(data.get("error") or f"HTTP_{status}")
        description = redact(str(data.get("error_description") or "token refresh refused"))
        raise FatalPortalError(code, f"cannot refresh the OAuth token: {description}", status)
    access, refresh = data.get("access_token"), data.get("refresh_token")
    if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
        raise FatalPortalError("ERROR_OAUTH", "the token answer lacks the new token pair", status)
    return {"access_token": access, "refresh_token": refresh}


def _read_token_file(path: Path | None) -> tuple[str, str] | None:
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["access_token"]), str(data["refresh_token"])
    except (OSError, ValueError, KeyError, TypeError):
        problem = f"portal.oauth.token_file: cannot read a token pair from {path}"
        raise ConfigError(problem) from None


def _write_token_file(path: Path, access: str, refresh: str) -> None:
    payload = json.dumps({"access_token": access, "refresh_token": refresh}, indent=2)
    write_atomic_sync(path, payload.encode(), mode=0o600)
