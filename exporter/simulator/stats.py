"""What the simulated portal has seen: counters tests and the demo read live."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Stats:
    """Request counters, updated by the portal as requests arrive."""

    http_requests: int = 0
    """Every HTTP request received, except the simulator's own routes (stats, deletions) and
    the OAuth token endpoint."""
    rest_requests: int = 0
    """HTTP requests to REST methods, batch included, downloads excluded."""
    by_method: Counter[str] = field(default_factory=Counter)
    """HTTP-level REST method name → requests."""
    commands: Counter[str] = field(default_factory=Counter)
    """Method name → commands executed inside batches."""
    batches: int = 0
    download_requests: int = 0
    """Every request to the download route."""
    downloads: int = 0
    """Downloads answered 200 with the full body written."""
    download_bytes: int = 0
    """Body bytes of the successful downloads."""
    rejected_downloads: int = 0
    """Downloads refused with the nginx 404 page (missing or library-default headers)."""
    rate_limited: int = 0
    """503 QUERY_LIMIT_EXCEEDED answers."""
    operation_limited: int = 0
    """429 OPERATION_TIME_LIMIT answers, batch commands included."""
    competitor_requests: int = 0
    """Requests the competing client sent into the leaky bucket (accepted or not)."""
    competitor_refused: int = 0
    """Those of them the bucket refused."""
    faults: Counter[str] = field(default_factory=Counter)
    """Injected fault kind ("500", "drop", "truncate", "html", "slow") → times injected."""
    expired_links: int = 0
    """Downloads refused because the link outlived ``link_ttl``."""
    expired_tokens: int = 0
    """REST calls and downloads refused with expired_token for their access token."""
    token_refreshes: int = 0
    """Successful refreshes at the OAuth token endpoint."""
    refused_refreshes: int = 0
    """Refused requests to the OAuth token endpoint."""
    errors: Counter[str | int] = field(default_factory=Counter)
    """Error code → error answers, batch commands included."""
    download_by_image: Counter[int] = field(default_factory=Counter)
    """Image id → successful downloads."""
    adds_by_product: Counter[int] = field(default_factory=Counter)
    """Product id → images catalog.productImage.add stored on it, batch commands included."""
    duplicate_adds: int = 0
    """Adds whose decoded bytes' SHA-256 equals an image the product already had (one that a
    replacing add then removes included): the same upload sent again."""
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    """(productId, hex SHA-256) of each duplicate add, in order."""
    replaced_images: int = 0
    """Images removed because a DETAIL_PICTURE or PREVIEW_PICTURE add replaced them."""
    deletes: int = 0
    """Images removed by catalog.productImage.delete."""
    lost_answers: int = 0
    """Requests carrying an add that were processed and then lost their answer."""
    oversized_requests: int = 0
    """Requests refused with 413 for a body above ``max_request_bytes``."""

    def record_add(self, product_id: int, sha256: str, *, duplicate: bool) -> None:
        """Count one stored upload, and a duplicate when the product already had its bytes."""
        self.adds_by_product[product_id] += 1
        if duplicate:
            self.duplicate_adds += 1
            self.duplicates.append((product_id, sha256))

    def reset(self) -> None:
        """Zero every counter in place, so live references stay valid."""
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, (Counter, list)):
                value.clear()
            else:
                setattr(self, spec.name, 0)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able copy; counter keys become strings, pairs become lists."""
        out: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, Counter):
                out[spec.name] = {str(key): count for key, count in value.items()}
            elif isinstance(value, list):
                out[spec.name] = [list(item) for item in value]
            else:
                out[spec.name] = value
        return out
