"""`discover`: find every image of some products, or of the whole catalog, for a manifest.

The whole catalog is walked iblock by iblock with the fast paging Bitrix24 documents
for big lists (`>id` filter, id ascending, `start=-1`, so the portal counts no total):
each iblock's next page depends on the last id of its previous one, so every round
packs one page command per unfinished iblock into a `batch`. The product ids found are
resolved to images with `catalog.productImage.list`, 50 products per batch, and the
manifest is streamed to a temporary file that replaces the target only when complete.
"""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, TypeVar

from exporter.config import MAX_BATCH_SIZE
from exporter.errors import (
    AccessDeniedError,
    BatchRefusedError,
    FatalPortalError,
    ImageError,
    OperationTimeLimitError,
    PortalError,
    PortalUnavailableError,
    garbled_answer,
    unfit_answer,
)
from exporter.model import ImageRef
from exporter.portal.batch import BatchCall
from exporter.portal.client import PortalClient
from exporter.portal.metadata import ROUND_STEPS, MetadataFetcher
from exporter.portal.retry import GAVE_UP, Tries

log = logging.getLogger(__name__)

T = TypeVar("T")

CATALOG_LIST_METHOD = "catalog.catalog.list"
PRODUCT_LIST_METHOD = "catalog.product.list"
OFFER_LIST_METHOD = "catalog.product.offer.list"
ID_SELECT = ("id", "iblockId")
PAGE_SIZE = 50  # catalog.product.list always answers 50 per page; fewer means the last one


@dataclass
class DiscoveryProgress:
    """What a discovery found so far, and what it had to skip; `on_change` sees each step."""

    catalogs: int = 0  # iblocks to walk
    products: int = 0  # distinct product ids handed to discover_images
    images: int = 0  # image refs found
    requests: int = 0  # REST requests the client has sent
    skipped_iblocks: list[tuple[int, PortalError]] = field(default_factory=list)
    failed_products: list[tuple[int, PortalError]] = field(default_factory=list)
    on_change: Callable[[DiscoveryProgress], None] | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        """Whether nothing was skipped: the manifest names every image discovered."""
        return not self.skipped_iblocks and not self.failed_products

    def notify(self, client: PortalClient) -> None:
        """Take the client's request count and tell `on_change`."""
        self.requests = client.counts.rest
        if self.on_change is not None:
            self.on_change(self)


@dataclass(frozen=True, slots=True)
class TradeCatalog:
    """One iblock of the trade catalog: products, or the variations (offers) of one."""

    iblock: int
    offers: bool  # an offers catalog: its rows name their parent product

    @property
    def list_method(self) -> str:
        return OFFER_LIST_METHOD if self.offers else PRODUCT_LIST_METHOD

    @property
    def rows_key(self) -> str:
        return "offers" if self.offers else "products"


async def trade_catalogs(
    client: PortalClient, progress: DiscoveryProgress | None = None, *, required: bool = True
) -> list[TradeCatalog]:
    """Every trade catalog: product catalogs first, then offers (variation) catalogs.

    A refusal here (no right to read the trade catalog) refuses the whole discovery
    (`FatalPortalError`), or, when the catalogs are not `required`, is raised as it came.
    """
    found: dict[int, TradeCatalog] = {}
    start: object = 0
    while True:
        params = {"start": start} if start else {}
        try:
            answer = await client.call(CATALOG_LIST_METHOD, params)
        except ImageError as exc:
            if not required:
                raise
            raise FatalPortalError(
                exc.code, f"cannot list the catalogs: {exc.description}"
            ) from None
        result = answer.get("result")
        catalogs = result.get("catalogs") if isinstance(result, Mapping) else None
        if not isinstance(catalogs, list):
            raise garbled_answer(200, "a catalog list without catalogs")
        for entry in catalogs:
            fields = entry if isinstance(entry, Mapping) else {}
            iblock = as_id(fields.get("iblockId"))
            if iblock is None:
                raise garbled_answer(200, "a catalog without an iblockId")
            offers = as_id(fields.get("productIblockId")) is not None
            found[iblock] = TradeCatalog(iblock, offers)
        start = answer.get("next")
        if not start or not catalogs:
            break
    ordered = sorted(found.values(), key=lambda catalog: catalog.offers)
    if progress is not None:
        progress.catalogs = len(ordered)
        progress.notify(client)
    return ordered


async def catalog_iblocks(
    client: PortalClient, progress: DiscoveryProgress | None = None
) -> list[int]:
    """Every trade catalog's iblock id: product catalogs and offers (variation) catalogs."""
    return [catalog.iblock for catalog in await trade_catalogs(client, progress)]


async def walk_products(
    client: PortalClient,
    iblocks: Iterable[int],
    *,
    batch_size: int = MAX_BATCH_SIZE,
    progress: DiscoveryProgress | None = None,
) -> AsyncIterator[list[int]]:
    """Pages of the product ids of every iblock, walked side by side, one page per round.

    An iblock whose page fails for good (access denied, not found, still failing after
    as many rounds as the retry policy allows) is skipped with a warning and recorded in
    `progress`; a `FatalPortalError` propagates, and so does one raised when every
    iblock was denied.
    """
    catalogs = [TradeCatalog(iblock, offers=False) for iblock in iblocks]
    pages = walk_rows(client, catalogs, _ids_only, batch_size=batch_size, progress=progress)
    async for rows in pages:
        yield [row_id for row_id, _ in rows]


async def walk_rows(
    client: PortalClient,
    catalogs: Sequence[TradeCatalog],
    select: Callable[[TradeCatalog], Sequence[str]],
    *,
    batch_size: int = MAX_BATCH_SIZE,
    progress: DiscoveryProgress | None = None,
) -> AsyncIterator[list[tuple[int, Mapping[str, Any]]]]:
    """Pages of `(id, row)` of every catalog with the fields `select` names for it, ids ascending;
    the catalogs are walked side by side with the fast paging, one page each per round.
    Failures as `walk_products` says."""
    progress = progress or DiscoveryProgress()
    last_id = dict.fromkeys(catalogs, 0)  # unfinished catalog → last id seen
    walked = len(last_id)
    denied: list[PortalError] = []
    tries: dict[TradeCatalog, Tries] = {}
    alone = batch_size <= 1
    while last_id:
        outcomes, refused = await _page_round(
            client, last_id, select, min(batch_size, MAX_BATCH_SIZE), alone
        )
        alone = alone or refused
        for catalog, outcome in outcomes.items():
            if isinstance(outcome, FatalPortalError):
                raise outcome
            if isinstance(outcome, PortalError):
                step = client.retry.next_step(outcome, tries.get(catalog, Tries()))
                tries[catalog] = step.tries
                if step.action in ROUND_STEPS:
                    continue  # asked again next round (alone, if refused in a batch)
            try:
                rows = page_rows(outcome, catalog.rows_key, last_id[catalog])
            except PortalError as exc:
                log.warning("catalog iblock %d skipped: %s", catalog.iblock, exc)
                progress.skipped_iblocks.append((catalog.iblock, exc))
                if isinstance(exc, AccessDeniedError):
                    denied.append(exc)
                del last_id[catalog]
                continue
            if rows:
                last_id[catalog] = rows[-1][0]
                yield rows
            if len(rows) < PAGE_SIZE:
                del last_id[catalog]
        progress.notify(client)
    if walked and len(denied) == walked:
        raise FatalPortalError(denied[0].code, "access denied to every catalog")


async def walk_catalog(
    client: PortalClient,
    *,
    batch_size: int = MAX_BATCH_SIZE,
    progress: DiscoveryProgress | None = None,
) -> AsyncIterator[list[int]]:
    """Pages of the product ids of every catalog: `catalog_iblocks`, then `walk_products`.

    A request that gets no answer after every retry stops the walk: without its pages
    the catalog cannot be known (`PortalUnavailableError`).
    """
    progress = progress or DiscoveryProgress()
    try:
        iblocks = await catalog_iblocks(client, progress)
        async for page in walk_products(client, iblocks, batch_size=batch_size, progress=progress):
            yield page
    except GAVE_UP as exc:
        raise PortalUnavailableError(f"the catalog could not be walked: {exc}") from None


async def discover_images(
    client: PortalClient,
    fetcher: MetadataFetcher,
    product_pages: AsyncIterable[Sequence[int]] | Iterable[Sequence[int]],
    *,
    chunk: int = MAX_BATCH_SIZE,
    progress: DiscoveryProgress | None = None,
) -> AsyncIterator[ImageRef]:
    """Every image of the given products, listed `chunk` products per request.

    Pages are regrouped into full chunks, so small last pages of many iblocks cost no
    extra requests; a repeated product id is listed once. A product whose list fails
    is logged and recorded in `progress.failed_products`, never silently dropped.
    """
    progress = progress or DiscoveryProgress()
    seen: set[int] = set()
    pending: list[int] = []
    async for page in _each(product_pages):
        fresh = [pid for pid in page if pid not in seen]
        seen.update(fresh)
        pending.extend(fresh)
        progress.products += len(fresh)
        while len(pending) >= chunk:
            head, pending = pending[:chunk], pending[chunk:]
            for ref in await _list(client, fetcher, head, progress):
                yield ref
    if pending:
        for ref in await _list(client, fetcher, pending, progress):
            yield ref


# Helpers


async def _page_round(
    client: PortalClient,
    last_id: Mapping[TradeCatalog, int],
    select: Callable[[TradeCatalog], Sequence[str]],
    batch_size: int,
    alone: bool,
) -> tuple[dict[TradeCatalog, Any | PortalError], bool]:
    """One page of each unfinished catalog; also whether the portal refused them in batch."""
    calls = [
        (catalog, page_call(catalog, select(catalog), after)) for catalog, after in last_id.items()
    ]
    outcomes: dict[TradeCatalog, Any | PortalError] = {}
    refused = False
    size = 1 if alone else batch_size
    for begin in range(0, len(calls), size):
        chunk = calls[begin : begin + size]
        if len(chunk) == 1:
            catalog, call = chunk[0]
            try:
                answer = await client.call(call.method, call.as_params())
            except (ImageError, OperationTimeLimitError) as exc:
                outcomes[catalog] = exc
            else:
                outcomes[catalog] = answer.get("result")
            continue
        try:
            batch = await client.batch([call for _, call in chunk])
        except BatchRefusedError as exc:  # refused as a whole (HTTP 405)
            outcomes.update((catalog, exc) for catalog, _ in chunk)
            refused = True
            continue
        for catalog, call in chunk:
            outcomes[catalog] = outcome = batch.outcomes[call.key]
            refused = refused or isinstance(outcome, BatchRefusedError)
    return outcomes, refused


def page_call(
    catalog: TradeCatalog,
    select: Sequence[str],
    after: int,
    narrow: Mapping[str, Any] | None = None,
    key: str = "",
) -> BatchCall:
    """The fast-paging query: rows of one catalog with ids above `after`, no count;
    `narrow` adds filter entries (an id or xmlId list)."""
    params = {
        "select": list(select),
        "filter": {"iblockId": catalog.iblock, **(narrow or {}), ">id": after},
        "order": {"id": "asc"},
        "start": -1,
    }
    return BatchCall.of(key or f"iblock{catalog.iblock}", catalog.list_method, params)


def page_rows(
    result: Any | PortalError, rows_key: str, after: int
) -> list[tuple[int, Mapping[str, Any]]]:
    """The rows of one page by ascending id, checked to move past `after`."""
    if isinstance(result, PortalError):
        raise result
    entries = result.get(rows_key) if isinstance(result, Mapping) else None
    if not isinstance(entries, list):
        raise garbled_answer(200, f"a product list without {rows_key}")
    rows: list[tuple[int, Mapping[str, Any]]] = []
    for entry in entries:
        row_id = as_id(entry.get("id") if isinstance(entry, Mapping) else None)
        if row_id is None or not isinstance(entry, Mapping):
            raise garbled_answer(200, "a product without an id")
        rows.append((row_id, entry))
    rows.sort(key=lambda row: row[0])
    if rows and rows[0][0] <= after:
        # The portal ignored the >id filter: walking on would repeat this page forever.
        raise unfit_answer(f"the portal repeated products up to id {after}")
    return rows


async def _list(
    client: PortalClient, fetcher: MetadataFetcher, ids: list[int], progress: DiscoveryProgress
) -> list[ImageRef]:
    refs: list[ImageRef] = []
    for product_id, outcome in await fetcher.list_products(ids):
        if isinstance(outcome, PortalError):
            log.warning("product %d: images not listed: %s", product_id, outcome)
            progress.failed_products.append((product_id, outcome))
            continue
        refs.extend(image.ref for image in outcome)
    progress.images += len(refs)
    progress.notify(client)
    return refs


async def _each(items: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T]:
    """Iterate a sync or async iterable the same way."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _ids_only(catalog: TradeCatalog) -> Sequence[str]:
    return ID_SELECT


def as_id(value: object) -> int | None:
    """A positive id from an int or a string of digits; None for anything else."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None
