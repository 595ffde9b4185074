"""``catalog.catalog.list``, ``catalog.product.list`` and ``.offer.list``: walking the catalog."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from . import errors
from .catalog import Catalog
from .context import CallContext, MethodResult
from .params import string_list

PAGE_SIZE = 50
_REQUIRED_SELECT = ("id", "iblockId")
_FILTER_KEY = re.compile(r"^(>=|<=|!=|>|<|=|!)?([A-Za-z]+)$")
_NO_LOWER_BOUND = -(2**63)
_NO_UPPER_BOUND = 2**63


@dataclass(frozen=True)
class Condition:
    """One filter entry, e.g. ``">id": 5`` → Condition(">", "id", (5,))."""

    op: str
    field: str
    values: tuple[int, ...]

    def matches(self, value: int) -> bool:
        """Whether ``value`` passes; a list means IN (or NOT IN for ``!``/``!=``)."""
        first = self.values[0]
        match self.op:
            case "" | "=":
                return value in self.values
            case "!" | "!=":
                return value not in self.values
            case ">":
                return value > first
            case ">=":
                return value >= first
            case "<":
                return value < first
            case _:  # "<="
                return value <= first


def catalog_list(params: dict[str, Any], context: CallContext) -> MethodResult:
    """``catalog.catalog.list``: the trade catalogs (product iblocks and their offers iblocks)."""
    context.check_catalog_access()
    catalogs = [
        {
            "iblockId": info.iblock_id,
            "iblockTypeId": "CRM_PRODUCT_CATALOG",
            "id": info.iblock_id,
            "lid": "s1",
            "name": info.name,
            "productIblockId": info.product_iblock_id,
            "skuPropertyId": info.sku_property_id,
            "subscription": "N",
            "vatId": None,
            "yandexExport": "N",
        }
        for info in context.catalog.catalogs()
    ]
    return MethodResult({"catalogs": catalogs}, total=len(catalogs))


def product_list(params: dict[str, Any], context: CallContext) -> MethodResult:
    """``catalog.product.list``: products of the filtered iblock, 50 per page."""
    return _list(params, context, "products")


def offer_list(params: dict[str, Any], context: CallContext) -> MethodResult:
    """``catalog.product.offer.list``: the same over an offers iblock, under ``offers``."""
    return _list(params, context, "offers")


def _list(params: dict[str, Any], context: CallContext, key: str) -> MethodResult:
    context.check_catalog_access()
    select = string_list(params.get("select"))
    missing = [name for name in _REQUIRED_SELECT if name not in select]
    if missing:
        raise errors.catalog_error(f"Required select fields: {', '.join(missing)}")
    conditions = _conditions(params.get("filter"))
    iblocks = [c for c in conditions if c.field == "iblockId" and c.op in ("", "=")]
    if not iblocks:
        raise errors.catalog_error("Required filter fields: iblockId")
    ids = _matching_ids(context, conditions)
    if _descending(params.get("order")):
        ids.reverse()
    start = _start(params.get("start"))
    offset = max(start, 0)
    page = [_product(context.catalog, pid, select) for pid in ids[offset : offset + PAGE_SIZE]]
    if start == -1:  # fast paging: no count, no next
        return MethodResult({key: page})
    following = offset + PAGE_SIZE
    return MethodResult(
        {key: page}, total=len(ids), next=following if following < len(ids) else None
    )


def _conditions(raw: Any) -> list[Condition]:
    if not isinstance(raw, dict):
        return []
    conditions = []
    for key, value in raw.items():
        match = _FILTER_KEY.match(str(key))
        if not match or match.group(2) not in _REQUIRED_SELECT:
            continue  # other fields are not simulated; they do not narrow the result
        items = value if isinstance(value, list) else _values(value)
        try:
            values = tuple(int(item) for item in items)
        except (TypeError, ValueError):
            raise errors.catalog_error(f"Invalid filter value for {key}") from None
        if values:
            conditions.append(Condition(match.group(1) or "", match.group(2), values))
    return conditions


def _values(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, dict) else [value]


def _matching_ids(context: CallContext, conditions: list[Condition]) -> list[int]:
    """Ascending ids passing every condition; id ranges are cut by bisection, not scanned."""
    low, high = _NO_LOWER_BOUND, _NO_UPPER_BOUND
    residual = []
    for condition in conditions:
        first = condition.values[0]
        if condition.field == "id" and condition.op == ">":
            low = max(low, first + 1)
        elif condition.field == "id" and condition.op == ">=":
            low = max(low, first)
        elif condition.field == "id" and condition.op == "<":
            high = min(high, first - 1)
        elif condition.field == "id" and condition.op == "<=":
            high = min(high, first)
        else:
            residual.append(condition)
    iblock_sets = [set(c.values) for c in conditions if c.field == "iblockId" and c.op in ("", "=")]
    iblocks = set.intersection(*iblock_sets)
    catalog = context.catalog
    ids: list[int] = []
    for iblock in sorted(iblocks):
        ids.extend(catalog.product_ids_between(iblock, low, high))
    if len(iblocks) > 1:
        ids.sort()
    for condition in residual:
        if condition.field == "id":
            ids = [pid for pid in ids if condition.matches(pid)]
        else:
            ids = [pid for pid in ids if condition.matches(catalog.iblock_of(pid))]
    return ids


def _descending(order: Any) -> bool:
    if not isinstance(order, dict):
        return False
    for key, direction in order.items():
        if str(key).lower() == "id":
            return str(direction).lower() == "desc"
    return False


def _start(raw: Any) -> int:
    try:
        return int(raw) if raw not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def _product(catalog: Catalog, product_id: int, select: list[str]) -> dict[str, Any]:
    known: dict[str, Any] = {
        "id": product_id,
        "iblockId": catalog.iblock_of(product_id),
        "name": f"Product {product_id}",
        "active": "Y",
        "type": catalog.product_type(product_id),
        "xmlId": str(product_id),
    }
    return {name: known[name] for name in select if name in known}
