"""Signed ``downloadUrl`` links: issued by productImage calls, checked by the download route.

Token: ``catalog|<base64("id=<imageId>&_=<32 random alnum>&t=<issued>")>|<signature>``,
where ``issued`` is the portal clock when the link was made (seconds, 3 decimals) and
the signature is urlsafe-base64 HMAC-SHA256 over method, scope, query and the auth of
the call that produced the link — so the link only works with that same auth, and its
issue time cannot be changed to make it live longer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote

from .auth import Caller

_SCOPE = "catalog"
_METHOD = "download"
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class IssuedLink:
    """What a genuine token says: which image, and when the link was issued."""

    image_id: int
    issued_at: float
    """Portal clock reading when the answer carrying the link was made."""


class DownloadLinks:
    """Issues and verifies download tokens with one HMAC key."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.monotonic) -> None:
        self._secret = secret
        self._clock = clock

    def url_for(self, image_id: int, caller: Caller) -> str:
        """The downloadUrl a productImage call by ``caller`` returns for this image."""
        token = quote(self.token_for(image_id, caller), safe="")
        if caller.is_webhook:
            endpoint = f"{caller.base_url}/rest/{caller.user_id}/{caller.credential}"
            return f"{endpoint}/download/?token={token}"
        auth = quote(caller.credential, safe="")
        return f"{caller.base_url}/rest/download.json?auth={auth}&token={token}"

    def token_for(self, image_id: int, caller: Caller) -> str:
        """A fresh token (new random part each time) bound to ``caller``'s auth."""
        nonce = "".join(secrets.choice(_ALNUM) for _ in range(32))
        issued = f"{self._clock():.3f}"
        query = base64.b64encode(f"id={image_id}&_={nonce}&t={issued}".encode()).decode()
        return f"{_SCOPE}|{query}|{self._signature(query, caller)}"

    def verify(self, token: str | None, caller: Caller) -> IssuedLink | None:
        """What a genuine token presented with ``caller``'s auth says, else None."""
        if not token:
            return None
        parts = token.split("|")
        if len(parts) != 3 or parts[0] != _SCOPE:
            return None
        _, query, signature = parts
        expected = self._signature(query, caller)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        try:
            fields = parse_qs(base64.b64decode(query, validate=True).decode())
            return IssuedLink(int(fields["id"][0]), float(fields["t"][0]))
        except (binascii.Error, UnicodeDecodeError, KeyError, ValueError):
            return None

    def _signature(self, query: str, caller: Caller) -> str:
        message = "|".join((_METHOD, _SCOPE, query, caller.signing_auth)).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()
