"""How a simulated portal behaves: limits, credentials and injected refusals."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PortalSettings:
    """Knobs of one simulated portal; credentials are random per instance unless given.

    The credential fields are left out of ``repr`` so a settings object can be printed
    or logged without leaking them.
    """

    rps: float | None = 2.0
    """Leaky-bucket drain rate in requests/s; None switches the rate limit off."""
    burst: int = 50
    """Leaky-bucket threshold X: requests arriving above it get 503."""
    count_downloads: bool = True
    """Whether download GETs go through the leaky bucket too."""
    user_id: int = 1
    webhook_code: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)
    access_token: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    batch_allows_images: bool = True
    """False: catalog.productImage.* inside batch are refused per command."""
    denied_products: frozenset[int] = frozenset()
    """productImage get/list on these products answer 200040300010 Access Denied."""
    deny_all: bool = False
    """Every catalog.* call answers 200040300010 Access Denied."""
    require_download_headers: bool = True
    """Downloads without Referer or with a library-default User-Agent get an nginx 404."""
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    """HMAC key that signs download tokens."""

    def __post_init__(self) -> None:
        if self.rps is not None and self.rps <= 0:
            raise ValueError(f"rps must be positive or None, got {self.rps}")
        if self.burst < 0:
            raise ValueError(f"burst must not be negative, got {self.burst}")
        if self.user_id <= 0:
            raise ValueError(f"user_id must be positive, got {self.user_id}")
        if not self.webhook_code or "/" in self.webhook_code:
            raise ValueError("webhook_code must be a non-empty path segment")
        if not self.access_token:
            raise ValueError("access_token must not be empty")
        if not self.secret:
            raise ValueError("secret must not be empty")
