"""Product context: which product an image belongs to, as the catalog tells it.

The four list methods of the catalog (reference §7) describe products by `id`, `iblockId`,
`name`, `xmlId` and `type`; an offers catalog's rows also name their parent. Known ids
(an export's products) and known external codes (a migration's `xmlId`s) are looked
up 50 per page command (`filter` with a list means IN; codes 49 per command) and 50
commands per `batch`, so about 2,500 products cost one request per catalog. A page of
codes that comes back full is followed by the next one with the fast paging (`>id`,
`start=-1`), so nothing is missed when one code names several products. A whole
catalog is walked with `walk_rows` instead.

Product catalogs are asked first and offers catalogs only for the ids still unknown. A
catalog that cannot be read leaves the lookup incomplete: its products are not known,
which is not the same as known to be in no catalog.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.config import MAX_BATCH_SIZE
from exporter.errors import ImageError, PortalError, PortalUnavailableError
from exporter.model import ProductInfo
from exporter.portal.batch import BatchCall
from exporter.portal.catalog import (
    PAGE_SIZE,
    DiscoveryProgress,
    TradeCatalog,
    as_id,
    page_call,
    page_rows,
    trade_catalogs,
    walk_rows,
)
from exporter.portal.client import PortalClient
from exporter.portal.metadata import MetadataFetcher
from exporter.portal.retry import GAVE_UP

log = logging.getLogger(__name__)

CONTEXT_SELECT = ("id", "iblockId", "name", "xmlId", "type")
ID_CHUNK = 50  # ids per page command: an id names one row at most, a page holds them all
# Codes per page command: one fewer than a page, so a full page shows that some code names
# more than one product, and only then is the next page asked for.
CODE_CHUNK = 49
SLICE_CALLS = 2 * MAX_BATCH_SIZE  # page commands sent before their rows are read


def select_for(catalog: TradeCatalog) -> Sequence[str]:
    """The fields asked of a catalog's rows: an offers catalog also names the parent."""
    return (*CONTEXT_SELECT, "parentId") if catalog.offers else CONTEXT_SELECT


def product_info(row: Mapping[str, Any]) -> ProductInfo | None:
    """A list row as a ProductInfo; None without a valid id. `parentId` is an offer's
    `{value, valueId}` (the parent's id is `value`), or a plain id."""
    product_id = as_id(row.get("id"))
    if product_id is None:
        return None
    parent = row.get("parentId")
    if isinstance(parent, Mapping):
        parent = parent.get("value")
    name, xml_id, kind = row.get("name"), row.get("xmlId"), row.get("type")
    return ProductInfo(
        product_id,
        iblock_id=as_id(row.get("iblockId")),
        name=name if isinstance(name, str) else None,
        xml_id=xml_id if isinstance(xml_id, str) and xml_id else None,
        type=as_id(kind),
        parent_id=as_id(parent),
    )


@dataclass
class Lookup:
    """What a lookup found, and the catalogs it could not read."""

    found: list[ProductInfo] = field(default_factory=list)  # by `find_products`
    failed: list[tuple[int, PortalError]] = field(default_factory=list)  # iblock (0: all), why

    @property
    def complete(self) -> bool:
        """Every catalog answered: what was not found is in no catalog."""
        return not self.failed


async def describe_products(
    client: PortalClient,
    product_ids: Iterable[int],
    *,
    batch_size: int = MAX_BATCH_SIZE,
    into: MutableMapping[int, ProductInfo] | None = None,
) -> tuple[MutableMapping[int, ProductInfo], Lookup]:
    """Each product the catalog has among `product_ids`, by id (filed into `into` as it
    is found, when given); and the lookup's record (its `found` left empty)."""
    remaining = sorted(set(product_ids))
    described: MutableMapping[int, ProductInfo] = {} if into is None else into
    record = Lookup()
    if not remaining:
        return described, record
    fetcher = MetadataFetcher(client, batch_size=batch_size)
    for catalog in await _catalogs(client, record):
        if not remaining:
            break
        async for info in _lookup(fetcher, catalog, "id", remaining, record):
            described.setdefault(info.id, info)
        remaining = [pid for pid in remaining if pid not in described]
    return described, record


async def find_products(
    client: PortalClient,
    field_name: str,
    values: Iterable[str],
    *,
    batch_size: int = MAX_BATCH_SIZE,
) -> tuple[dict[str, list[ProductInfo]], Lookup]:
    """Every product of every catalog whose `field_name` is one of `values` (all of them,
    so that a value naming two products is seen to be ambiguous)."""
    wanted = sorted(set(values))
    matches: dict[str, list[ProductInfo]] = {}
    record = Lookup()
    if not wanted:
        return matches, record
    fetcher = MetadataFetcher(client, batch_size=batch_size)
    for catalog in await _catalogs(client, record):
        async for info in _lookup(fetcher, catalog, field_name, wanted, record):
            value = info.xml_id if field_name == "xmlId" else str(info.id)
            if value is not None:
                matches.setdefault(value, []).append(info)
    record.found = [info for infos in matches.values() for info in infos]
    return matches, record


async def walk_described(
    client: PortalClient,
    *,
    batch_size: int = MAX_BATCH_SIZE,
    progress: DiscoveryProgress | None = None,
) -> AsyncIterator[list[ProductInfo]]:
    """Every product of every catalog, described, page by page (the fast paging walk);
    a request with no answer after every retry stops it (`PortalUnavailableError`)."""
    try:
        catalogs = await trade_catalogs(client, progress)
        pages = walk_rows(client, catalogs, select_for, batch_size=batch_size, progress=progress)
        async for rows in pages:
            infos = [product_info(row) for _, row in rows]
            yield [info for info in infos if info is not None]
    except GAVE_UP as exc:
        raise PortalUnavailableError(f"the catalog could not be walked: {exc}") from None


async def _catalogs(client: PortalClient, record: Lookup) -> list[TradeCatalog]:
    """The trade catalogs; none when the portal refuses to list them (recorded)."""
    try:
        return await trade_catalogs(client, required=False)
    except ImageError as exc:
        log.warning("the catalogs are not listed: %s", exc)
        record.failed.append((0, exc))
        return []


async def _lookup(
    fetcher: MetadataFetcher,
    catalog: TradeCatalog,
    field_name: str,
    values: Sequence[int] | Sequence[str],
    record: Lookup,
) -> AsyncIterator[ProductInfo]:
    """The rows of one catalog whose `field_name` is in `values`, every page of them,
    yielded as each slice of whole batches is read: the answers (every field the catalog
    sent) and what they describe are held for one slice, not for the whole lookup."""
    size = ID_CHUNK if field_name == "id" else CODE_CHUNK
    queries: list[tuple[Sequence[Any], int]] = [
        (values[start : start + size], 0) for start in range(0, len(values), size)
    ]
    while queries:
        following: list[tuple[Sequence[Any], int]] = []
        for begin in range(0, len(queries), SLICE_CALLS):
            some = queries[begin : begin + SLICE_CALLS]
            calls = [
                _narrowed(catalog, field_name, chunk, after, begin + number)
                for number, (chunk, after) in enumerate(some)
            ]
            outcomes = await fetcher.run(calls)
            for (chunk, after), call in zip(some, calls, strict=True):
                try:
                    rows = page_rows(outcomes[call.key], catalog.rows_key, after)
                except PortalError as exc:
                    log.warning(
                        "catalog iblock %d: products not looked up: %s", catalog.iblock, exc
                    )
                    record.failed.append((catalog.iblock, exc))
                    return  # the rest of this catalog would fail the same way
                for _, row in rows:
                    if (info := product_info(row)) is not None:
                        yield info
                if len(rows) >= PAGE_SIZE and field_name != "id":
                    following.append((chunk, rows[-1][0]))
            del outcomes
        queries = following


def _narrowed(
    catalog: TradeCatalog, field_name: str, chunk: Sequence[Any], after: int, number: int
) -> BatchCall:
    narrow = {field_name: list(chunk)}
    return page_call(catalog, select_for(catalog), after, narrow, key=f"c{catalog.iblock}_{number}")
