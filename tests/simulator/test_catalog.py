"""The generated catalog: deterministic, realistic, and open to hand-made images."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from exporter.simulator import Catalog


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.generate(products=100, images=500, seed=1, image_size=(2_000, 20_000))


def test_same_seed_generates_the_same_catalog() -> None:
    first = Catalog.generate(products=20, images=60, seed=3)
    second = Catalog.generate(products=20, images=60, seed=3)
    assert first.pairs() == second.pairs()
    assert [first.image(i) for _, i in first.pairs()] == [
        second.image(i) for _, i in second.pairs()
    ]
    assert first.image_bytes(first.pairs()[5][1]) == second.image_bytes(second.pairs()[5][1])


def test_other_seed_generates_another_catalog() -> None:
    first = Catalog.generate(products=20, images=60, seed=3)
    second = Catalog.generate(products=20, images=60, seed=4)
    assert [first.image(i).name for _, i in first.pairs()] != [
        second.image(i).name for _, i in second.pairs()
    ]


def test_generates_the_requested_counts(catalog: Catalog) -> None:
    assert catalog.product_ids() == list(range(1, 101))
    assert len(catalog.pairs()) == 500


def test_every_product_has_an_image_when_images_outnumber_products(catalog: Catalog) -> None:
    assert all(catalog.images_of(product_id) for product_id in catalog.product_ids())


def test_fewer_images_than_products_leaves_some_products_empty() -> None:
    catalog = Catalog.generate(products=10, images=4, seed=2)
    assert len(catalog.pairs()) == 4
    assert sum(1 for pid in catalog.product_ids() if catalog.images_of(pid)) == 4


def test_image_ids_are_distinct_and_do_not_start_at_product_ids(catalog: Catalog) -> None:
    image_ids = [image_id for _, image_id in catalog.pairs()]
    assert len(set(image_ids)) == len(image_ids)
    assert min(image_ids) == 1001


def test_sizes_fall_in_the_inclusive_range(catalog: Catalog) -> None:
    sizes = [catalog.image(image_id).size for _, image_id in catalog.pairs()]
    assert all(2_000 <= size <= 20_000 for size in sizes)
    assert len(set(sizes)) > 100


def test_names_are_varied_and_include_non_ascii(catalog: Catalog) -> None:
    names = {catalog.image(image_id).name for _, image_id in catalog.pairs()}
    assert len(names) >= 10
    assert any(not name.isascii() for name in names)
    assert any(" " in name for name in names)


def test_some_products_have_duplicate_image_names(catalog: Catalog) -> None:
    def has_duplicates(product_id: int) -> bool:
        names = Counter(image.name for image in catalog.images_of(product_id))
        return any(count > 1 for count in names.values())

    assert any(has_duplicates(product_id) for product_id in catalog.product_ids())


def test_all_three_image_types_occur(catalog: Catalog) -> None:
    types = {catalog.image(image_id).type for _, image_id in catalog.pairs()}
    assert types == {"DETAIL_PICTURE", "PREVIEW_PICTURE", "MORE_PHOTO"}


def test_create_time_is_iso8601_with_offset(catalog: Catalog) -> None:
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
    assert all(pattern.match(catalog.image(i).create_time) for _, i in catalog.pairs())


def test_pairs_name_each_image_with_its_product(catalog: Catalog) -> None:
    assert all(catalog.image(image_id).product_id == pid for pid, image_id in catalog.pairs())


@pytest.mark.parametrize(
    "name", ["../../x.png", "a/b\\c.png", "ctl\x00\x07\n.png", "x" * 300, "", "CON"]
)
def test_add_image_accepts_any_name(name: str) -> None:
    catalog = Catalog()
    catalog.add_product(1)
    image_id = catalog.add_image(1, name=name, size=500)
    assert catalog.image(image_id).name == name
    assert len(catalog.image_bytes(image_id)) == 500


def test_add_image_with_explicit_id_and_type() -> None:
    catalog = Catalog()
    catalog.add_product(3)
    assert catalog.add_image(3, name="a.png", image_id=77, type="DETAIL_PICTURE") == 77
    assert catalog.image(77).type == "DETAIL_PICTURE"
    assert catalog.pairs() == [(3, 77)]


def test_add_image_refuses_a_duplicate_id() -> None:
    catalog = Catalog()
    catalog.add_image(1, name="a.png", image_id=5)
    with pytest.raises(ValueError):
        catalog.add_image(1, name="b.png", image_id=5)


def test_add_product_keeps_its_iblock() -> None:
    catalog = Catalog()
    catalog.add_product(9, iblock_id=26)
    assert catalog.iblock_of(9) == 26
    assert catalog.product_ids(26) == [9]


def test_images_added_without_an_id_get_the_next_free_one() -> None:
    catalog = Catalog.generate(products=2, images=3, seed=1)
    assert catalog.add_image(1, name="new.png") == 1004
    assert catalog.add_image(2, name="other.png") == 1005


def test_a_variation_is_created_in_the_offers_catalog_of_its_parent() -> None:
    catalog = Catalog()
    catalog.add_product(1)
    catalog.add_variation(1, 40)
    assert catalog.iblock_of(40) == 26
    assert catalog.parent_of(40) == 1


@pytest.mark.parametrize(
    ("parent_id", "variation_id"),
    [(99, 40), (2, 41), (1, 3), (1, 40), (40, 42)],
    ids=["unknown parent", "no offers catalog", "not an offer", "second parent", "offer as parent"],
)
def test_add_variation_refuses_what_cannot_be_a_parent_and_variation(
    parent_id: int, variation_id: int
) -> None:
    catalog = Catalog()
    catalog.add_product(1)
    catalog.add_product(2, iblock_id=30)
    catalog.add_product(3)
    catalog.add_product(4)
    catalog.add_variation(4, 40)
    with pytest.raises(ValueError):
        catalog.add_variation(parent_id, variation_id)


def test_remove_product_returns_the_ids_of_the_images_it_took() -> None:
    catalog = Catalog()
    first = catalog.add_image(1, name="a.png")
    second = catalog.add_image(1, name="b.png")
    catalog.add_image(2, name="c.png")
    assert catalog.remove_product(1) == [first, second]
    assert not catalog.has_product(1) and not catalog.has_image(first)
    with pytest.raises(KeyError):
        catalog.remove_product(1)
