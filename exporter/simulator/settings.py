"""How a simulated portal behaves: limits, credentials and injected refusals."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .faults import FaultSettings


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
    """The user the webhook belongs to (the number in its URL)."""
    webhook_code: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)
    """The webhook's secret path segment."""
    access_token: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    """The OAuth application's first access token; refreshes replace it (see ``tokens``)."""
    client_id: str = "app.sim"
    """The OAuth application's client_id; its calls share one operating budget."""
    client_secret: str = field(default_factory=lambda: secrets.token_hex(25), repr=False)
    """The OAuth application's client_secret, checked by the token endpoint."""
    refresh_token: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    """The first refresh token; each refresh rotates it."""
    batch_allows_images: bool = True
    """False: catalog.productImage.* inside batch are refused per command."""
    batch_refused_whole: bool = False
    """True: a batch naming any catalog.productImage.* method is refused as a whole (HTTP 405
    ERROR_BATCH_METHOD_NOT_ALLOWED); single calls still work. The reference documents the
    refusal per command only; a whole refusal hedges the docs' ambiguous "a file upload or
    download" wording (UNCONFIRMED)."""
    batch_refuses_add: bool = False
    """True: catalog.productImage.add inside batch is refused per command with
    ERROR_BATCH_METHOD_NOT_ALLOWED; single calls still work. The source allows it in batch
    while the docs' "a file upload or download" wording is ambiguous: "handle a refusal by
    falling back to single calls"."""
    variations_answer_for_parent: bool = False
    """True: productImage get/list/add/delete with a parent's productId answer for its newest
    variation (highest id) — "the product's SKU collection, whose first element is its newest
    variation (ID DESC)" — with that variation's productId and images: get and delete find
    only those, add attaches to it (INFERENCE from the source, unconfirmed on a live portal).
    False: a parent answers its own images."""
    batch_first_catalog_only: bool = False
    """True: within one batch, productImage commands for products of a product catalog other
    than the first one the batch's productImage commands looked a product up in answer 0
    "Product was not found": the product repository "is built once per PHP request for the
    first iblock it sees" (INFERENCE from the source, unconfirmed on a live portal). A variation
    counts as its offers catalog's product catalog; the same calls alone succeed."""
    denied_products: frozenset[int] = frozenset()
    """productImage get/list on these products answer 200040300010 Access Denied."""
    write_denied_products: frozenset[int] = frozenset()
    """productImage add/delete on these products (the productId asked for) answer
    200040300020, "no right to modify catalog/product"."""
    products_without_more_photo: frozenset[int] = frozenset()
    """Products without a MORE_PHOTO property: a MORE_PHOTO add (any type other than the
    detail and preview pictures) answers 0 "Image product property does not exists.
    CreateMORE_PHOTO property" (sic)."""
    lost_add_answers: float = 0.0
    """Share (0..1) of requests carrying an add (a catalog.productImage.add call, or a batch
    naming one) that are fully processed and then lose their answer: the connection closes
    before it, success or error alike, so the client cannot tell which ("a client-side
    timeout may hide a success, and a retry then makes a duplicate"). Decided per request
    from ``faults.seed``, like the other faults."""
    max_request_bytes: int | None = None
    """Request bodies above this many bytes get HTTP 413 with the front server's nginx page
    before anything else happens (the page is an assumption: the reference reports only a
    414 for a batch of adds sent in the URL); None leaves only the cloud's limit ("a POST
    is limited to 2 GB in the cloud")."""
    deny_all: bool = False
    """Every catalog.* call answers 200040300010 Access Denied."""
    require_download_headers: bool = True
    """Downloads without Referer or with a library-default User-Agent get an nginx 404."""
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    """HMAC key that signs download tokens."""
    operating_cost: float = 0.0
    """Execution seconds charged per executed catalog.* call (batch commands each); 0 = off."""
    operating_limit: float = 480.0
    """Per method and webhook/app: calls are refused (429) while the window's sum is above it."""
    operating_window: float = 600.0
    """Seconds the execution time is summed over, kept as 10 equal buckets."""
    competitor_share: float = 0.0
    """Share of ``rps`` another client of the portal spends while it is served (0..1)."""
    faults: FaultSettings = field(default_factory=FaultSettings)
    """Injected failures and link/token lifetimes; the default injects nothing."""

    def __post_init__(self) -> None:
        if self.rps is not None and self.rps <= 0:
            raise ValueError(f"rps must be positive or None, got {self.rps}")
        if self.operating_cost < 0:
            raise ValueError(f"operating_cost must not be negative, got {self.operating_cost}")
        if self.operating_limit < 0:
            raise ValueError(f"operating_limit must not be negative, got {self.operating_limit}")
        if self.operating_window <= 0:
            raise ValueError(f"operating_window must be positive, got {self.operating_window}")
        if not 0.0 <= self.competitor_share <= 1.0:
            raise ValueError(f"competitor_share must be in 0..1, got {self.competitor_share}")
        if not 0.0 <= self.lost_add_answers <= 1.0:
            raise ValueError(f"lost_add_answers must be in 0..1, got {self.lost_add_answers}")
        if self.max_request_bytes is not None and self.max_request_bytes <= 0:
            raise ValueError(
                f"max_request_bytes must be positive or None, got {self.max_request_bytes}"
            )
        if self.burst < 0:
            raise ValueError(f"burst must not be negative, got {self.burst}")
        if self.user_id <= 0:
            raise ValueError(f"user_id must be positive, got {self.user_id}")
        if not self.webhook_code or "/" in self.webhook_code:
            raise ValueError("webhook_code must be a non-empty path segment")
        for name in ("access_token", "client_id", "client_secret", "refresh_token"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if not self.secret:
            raise ValueError("secret must not be empty")
