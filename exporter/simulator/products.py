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
_NUMBER_FIELDS = ("id", "iblockId", "type")
_TEXT_FIELDS = ("xmlId", "name")
_EQUALITY = ("", "=")
_NO_LOWER_BOUND = -(2**63)
_NO_UPPER_BOUND = 2**63


@dataclass(frozen=True)
class Condition:
    """One filter entry, e.g. ``">id": 5`` → Condition(">", "id", (5,)).

    Values are ints for ``id``, ``iblockId`` and ``type``, strings for ``xmlId`` and
    ``name``.
    """

    op: str
    field: str
    values: tuple[Any, ...]

    def matches(self, value: Any) -> bool:
        """Whether ``value`` passes; a list means IN (or NOT IN for ``!``/``!=``)."""
        first = self.values[0]
        match self.op:
            case "" | "=":
                return value in self.values
            case "!" | "!=":
                return value not in self.values
            case ">":
                return bool(value > first)
            case ">=":
                return bool(value >= first)
            case "<":
                return bool(value < first)
            case _:  # "<="
                return bool(value <= first)


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
    """``catalog.product.list``: products of the filtered iblock, 50 per page.

    ``select`` "must include id and iblockId" and ``filter`` "must include iblockId"
    (error 0 otherwise). The filter knows ``id``, ``iblockId``, ``type``, ``xmlId`` and
    ``name`` with the prefixes ``=``, ``!``, ``!=``, ``>``, ``>=``, ``<``, ``<=``;
    "arrays mean IN / NOT IN". ``start=-1`` sends neither ``total`` nor ``next``.
    """
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
    iblocks = [c for c in conditions if c.field == "iblockId" and c.op in _EQUALITY]
    if not iblocks:
        raise errors.catalog_error("Required filter fields: iblockId")
    ids = _matching_ids(context, conditions)
    if _descending(params.get("order")):
        ids.reverse()
    start = _start(params.get("start"))
    offset = max(start, 0)
    rows = ids[offset : offset + PAGE_SIZE]
    page = [_product(context.catalog, pid, select, key) for pid in rows]
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
        if not match or match.group(2) not in (*_NUMBER_FIELDS, *_TEXT_FIELDS):
            continue  # other fields are not simulated; they do not narrow the result
        op, field = match.group(1) or "", match.group(2)
        items = value if isinstance(value, list) else _values(value)
        try:
            values = tuple(int(item) if field in _NUMBER_FIELDS else str(item) for item in items)
        except (TypeError, ValueError):
            raise errors.catalog_error(f"Invalid filter value for {key}") from None
        if values:
            conditions.append(Condition(op, field, values))
    return conditions


def _values(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, dict) else [value]


def _matching_ids(context: CallContext, conditions: list[Condition]) -> list[int]:
    """Ascending ids passing every condition.

    An id list (IN) is looked up id by id and id ranges are cut by bisection, so
    neither scans the iblock.
    """
    low, high = _NO_LOWER_BOUND, _NO_UPPER_BOUND
    residual = []
    wanted: set[int] | None = None
    for condition in conditions:
        first = condition.values[0]
        if condition.field == "id" and condition.op in _EQUALITY:
            chosen = set(condition.values)
            wanted = chosen if wanted is None else wanted & chosen
        elif condition.field == "id" and condition.op == ">":
            low = max(low, first + 1)
        elif condition.field == "id" and condition.op == ">=":
            low = max(low, first)
        elif condition.field == "id" and condition.op == "<":
            high = min(high, first - 1)
        elif condition.field == "id" and condition.op == "<=":
            high = min(high, first)
        elif condition.field != "iblockId" or condition.op not in _EQUALITY:
            residual.append(condition)
    iblock_sets = [set(c.values) for c in conditions if c.field == "iblockId" and c.op in _EQUALITY]
    iblocks = set.intersection(*iblock_sets)
    catalog = context.catalog
    ids: list[int] = []
    if wanted is not None:
        ids = sorted(
            pid
            for pid in wanted
            if low <= pid <= high and catalog.has_product(pid) and catalog.iblock_of(pid) in iblocks
        )
    else:
        for iblock in sorted(iblocks):
            ids.extend(catalog.product_ids_between(iblock, low, high))
        if len(iblocks) > 1:
            ids.sort()
    for condition in residual:
        ids = [pid for pid in ids if condition.matches(_field_value(catalog, pid, condition.field))]
    return ids


def _field_value(catalog: Catalog, product_id: int, field: str) -> Any:
    match field:
        case "id":
            return product_id
        case "iblockId":
            return catalog.iblock_of(product_id)
        case "type":
            return catalog.product_type(product_id)
        case "xmlId":
            return catalog.product_info(product_id).xml_id
        case _:  # "name"
            return catalog.product_info(product_id).name


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


def _product(catalog: Catalog, product_id: int, select: list[str], key: str) -> dict[str, Any]:
    """A list row with the selected fields; offers also answer ``parentId``.

    ``parentId`` is ``{value, valueId}`` with the parent's id as ``value`` ("each row
    has parentId: {value, valueId}"); for an offer without a parent it is null, which
    the reference does not say (UNCONFIRMED).
    """
    info = catalog.product_info(product_id)
    known: dict[str, Any] = {
        "id": product_id,
        "iblockId": catalog.iblock_of(product_id),
        "name": info.name,
        "active": "Y",
        "type": catalog.product_type(product_id),
        "xmlId": info.xml_id,
    }
    if key == "offers":
        link = catalog.parent_link(product_id)
        known["parentId"] = (
            None if link is None else {"value": link.value, "valueId": link.value_id}
        )
    return {name: known[name] for name in select if name in known}
