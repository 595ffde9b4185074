"""The OAuth application's live token pair: checked on every call, rotated by refreshes."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from . import errors
from .auth import same_secret
from .settings import PortalSettings

DEFAULT_LIFETIME = 3600
"""``expires_in`` of a refreshed token when the portal sets no ``token_ttl`` (1 hour)."""


class OAuthTokens:
    """The one live access token and refresh token, as the portal and its OAuth server see them.

    A refresh replaces both: the old refresh token is spent (refresh tokens rotate) and
    the old access token stops working at once — the stricter behaviour of the old
    official course, which the reference leaves open. A retired access token answers
    ``expired_token``; one the portal never issued answers ``NO_AUTH_FOUND``.
    """

    def __init__(self, settings: PortalSettings, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._client_id = settings.client_id
        self._client_secret = settings.client_secret
        self._access = settings.access_token
        self._refresh = settings.refresh_token
        self._issued_at = clock()
        self._retired: set[str] = set()

    @property
    def access_token(self) -> str:
        """The access token that works now."""
        return self._access

    @property
    def refresh_token(self) -> str:
        """The refresh token that works now."""
        return self._refresh

    @property
    def issued_at(self) -> float:
        """When (portal clock) the current access token was issued."""
        return self._issued_at

    def check(self, token: object, ttl: float | None) -> str:
        """Return the token if it is the current, unexpired one; else raise.

        expired_token for a token past ``ttl`` or replaced by a refresh, NO_AUTH_FOUND
        for anything the portal never issued.
        """
        if not isinstance(token, str):
            raise errors.no_auth()
        if same_secret(token, self._access):
            if ttl is not None and self._clock() - self._issued_at >= ttl:
                raise errors.expired_token()
            return token
        if token in self._retired:
            raise errors.expired_token()
        raise errors.no_auth()

    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> None:
        """Swap the pair for a new one; invalid_client or invalid_grant when refused."""
        if not (
            same_secret(client_id, self._client_id)
            and same_secret(client_secret, self._client_secret)
        ):
            raise errors.invalid_client()
        if not same_secret(refresh_token, self._refresh):
            raise errors.invalid_grant()
        self._retired.add(self._access)
        self._access = secrets.token_hex(32)
        self._refresh = secrets.token_hex(32)
        self._issued_at = self._clock()
