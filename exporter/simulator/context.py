"""What a REST method gets (the call's context) and gives back (its result)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import errors
from .auth import Caller
from .catalog import Catalog
from .links import DownloadLinks
from .operating import OperatingUsage
from .settings import PortalSettings
from .stats import Stats


@dataclass(frozen=True)
class MethodResult:
    """A method's success: its ``result`` value, plus ``total``/``next`` for list methods."""

    result: Any
    total: int | None = None
    next: int | None = None
    operating: OperatingUsage | None = None
    """The method's operating figures for the ``time`` block; None while the limiter is off."""


@dataclass
class RequestState:
    """What the calls of one HTTP request share (a batch's commands run in one request)."""

    image_catalog: int | None = None
    """The product catalog of the request's first productImage product lookup."""


@dataclass(frozen=True)
class CallContext:
    """What one method call may read: the catalog, the portal's settings, the caller."""

    catalog: Catalog
    settings: PortalSettings
    links: DownloadLinks
    caller: Caller
    request: RequestState
    """State of the HTTP request the call runs in."""
    stats: Stats
    """The portal's counters, for methods that count what they change."""

    def finds_product(self, product_id: int) -> bool:
        """Whether a productImage lookup finds the product in this request.

        With ``batch_first_catalog_only`` the first product found fixes the request's
        product catalog; products of any other product catalog are not found.
        """
        if not self.catalog.has_product(product_id):
            return False
        if not self.settings.batch_first_catalog_only:
            return True
        product_catalog = self.catalog.product_catalog_of(product_id)
        if self.request.image_catalog is None:
            self.request.image_catalog = product_catalog
        return self.request.image_catalog == product_catalog

    def check_catalog_access(self) -> None:
        """Refuse with 200040300010 when the caller may not read the trade catalog."""
        if self.settings.deny_all:
            raise errors.catalog_access_denied()

    def check_product_access(self, product_id: int) -> None:
        """Refuse with 200040300010 when the caller may not read this product."""
        self.check_catalog_access()
        if product_id in self.settings.denied_products:
            raise errors.catalog_access_denied()

    def check_product_write(self, product_id: int) -> None:
        """Refuse with 200040300020 when the caller may not modify this product."""
        self.check_catalog_access()
        if product_id in self.settings.write_denied_products:
            raise errors.catalog_write_denied()


Method = Callable[[dict[str, Any], CallContext], MethodResult]
