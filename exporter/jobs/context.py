"""The products a run describes, kept out of memory: a run of a million images names
about 200,000 products, and each described product held as a `ProductInfo` costs about
330 bytes (its name and external code, the object, a dict slot) for the whole run.

`ProductContext` keeps them in a private temporary SQLite database instead (SQLite
deletes it when the connection closes, and holds only its page cache in memory); a
lookup is one indexed query, a few microseconds, once per image.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, MutableMapping

from exporter.model import ProductInfo

_SCHEMA = """
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    iblock_id INTEGER,
    name TEXT,
    xml_id TEXT,
    type INTEGER,
    parent_id INTEGER
)
"""
_COLUMNS = "id, iblock_id, name, xml_id, type, parent_id"


class ProductContext(MutableMapping[int, ProductInfo]):
    """Described products by id, in a temporary database; `close` deletes it."""

    def __init__(self) -> None:
        # "": a private temporary database, on disk once it outgrows its cache.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute(_SCHEMA)

    def __getitem__(self, product_id: int) -> ProductInfo:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM products WHERE id = ?", (product_id,)
        ).fetchone()
        if row is None:
            raise KeyError(product_id)
        return ProductInfo(*row)

    def __setitem__(self, product_id: int, info: ProductInfo) -> None:
        self._db.execute(
            f"INSERT OR REPLACE INTO products ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            _row(product_id, info),
        )

    def setdefault(self, product_id: int, default: ProductInfo | None = None) -> ProductInfo:
        """The product's entry, `default` stored first when there is none."""
        if default is None:
            raise TypeError("a product's default entry is a ProductInfo")
        self._db.execute(
            f"INSERT OR IGNORE INTO products ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            _row(product_id, default),
        )
        return self[product_id]

    def __delitem__(self, product_id: int) -> None:
        if self._db.execute("DELETE FROM products WHERE id = ?", (product_id,)).rowcount == 0:
            raise KeyError(product_id)

    def __contains__(self, product_id: object) -> bool:
        found = self._db.execute("SELECT 1 FROM products WHERE id = ?", (product_id,))
        return found.fetchone() is not None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM products").fetchone()[0])

    def __iter__(self) -> Iterator[int]:
        ids = self._db.execute("SELECT id FROM products ORDER BY id").fetchall()
        return (product_id for (product_id,) in ids)

    def clear(self) -> None:
        self._db.execute("DELETE FROM products")

    def close(self) -> None:
        self._db.close()


def _row(product_id: int, info: ProductInfo) -> tuple[object, ...]:
    if info.id != product_id:
        raise ValueError(f"product {info.id} filed as {product_id}")
    return (info.id, info.iblock_id, info.name, info.xml_id, info.type, info.parent_id)
