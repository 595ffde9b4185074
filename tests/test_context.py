"""The products a run describes, kept in a temporary database."""

from __future__ import annotations

import sqlite3

import pytest

from exporter.jobs.context import ProductContext
from exporter.model import ProductInfo

BOWL = ProductInfo(7, iblock_id=24, name="竹製 ボウル", xml_id="bb1e-d169", type=4, parent_id=3)


def test_a_product_comes_back_as_it_was_filed_and_others_are_not_there() -> None:
    context = ProductContext()
    context[7] = BOWL
    context[8] = ProductInfo(8)  # in no catalog: only its id
    assert context[7] == BOWL
    assert context.get(8) == ProductInfo(8)
    assert 7 in context and 9 not in context
    assert context.get(9) is None
    with pytest.raises(KeyError):
        context[9]
    assert len(context) == 2 and list(context) == [7, 8]
    context.close()


def test_setdefault_keeps_the_first_entry_and_clear_empties_it() -> None:
    context = ProductContext()
    assert context.setdefault(7, BOWL) == BOWL
    assert context.setdefault(7, ProductInfo(7, name="another")) == BOWL
    del context[7]
    assert 7 not in context
    with pytest.raises(KeyError):
        del context[7]
    context[1] = ProductInfo(1)
    context.clear()
    assert len(context) == 0
    context.close()


def test_a_product_filed_under_another_id_is_refused() -> None:
    context = ProductContext()
    with pytest.raises(ValueError, match="product 7 filed as 8"):
        context[8] = BOWL
    assert 8 not in context
    context.close()


def test_a_closed_context_is_gone() -> None:
    context = ProductContext()
    context[7] = BOWL
    context.close()
    with pytest.raises(sqlite3.ProgrammingError):
        context.get(7)
