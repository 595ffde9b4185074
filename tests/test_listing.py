"""A store's listing held compactly: sizes by key, changes merged, sidecars paired."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from exporter.destination import listing as listing_module
from exporter.destination.listing import Listing, ListingReader


def read(
    objects: list[tuple[str, int]], wanted: Callable[[str], bool] | None = None
) -> tuple[Listing, list[str], list[str]]:
    reader = ListingReader(wanted)
    for name, size in objects:
        reader.add(name, size)
    listing, lone = reader.finish()
    return listing, reader.pairs, lone


def test_sizes_are_found_by_key_and_unknown_keys_are_not() -> None:
    listing, _, _ = read([("1/a.png", 10), ("1/a.png.json", 400), ("2/b.jpg", 0)])
    assert listing.get("1/a.png") == 10
    assert listing.get("2/b.jpg") == 0  # an empty object is there
    assert "1/a.png.json" in listing
    assert listing.get("1/A.png") is None  # keys are case-sensitive, as the store's
    assert "3/c.png" not in listing


def test_changes_set_replace_and_remove_across_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing_module, "_MERGE_AT_LEAST", 8)
    rng = random.Random(7)
    model: dict[str, int] = {}
    listing = Listing()
    for step in range(3000):
        name = f"{rng.randrange(400)}/{rng.randrange(5)}.png"
        if rng.random() < 0.25:
            listing.discard(name)
            model.pop(name, None)
        else:
            listing.set(name, step)
            model[name] = step
        if step % 97 == 0:
            for probe in (name, f"{rng.randrange(400)}/{rng.randrange(5)}.png"):
                assert listing.get(probe) == model.get(probe), probe
    for number in range(400):
        for image in range(5):
            name = f"{number}/{image}.png"
            assert listing.get(name) == model.get(name), name


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="-1 bytes"):
        Listing().set("a", -1)


def test_files_are_paired_with_their_sidecars_in_the_stores_order() -> None:
    objects = sorted([("1/a.png", 1), ("1/a.png.json", 2), ("1/a.png-2.png", 3),
                      ("1/a.png-2.png.json", 4), ("1/orphan.png", 5)])  # fmt: skip
    _, pairs, lone = read(objects)
    assert sorted(pairs) == ["1/a.png", "1/a.png-2.png"]
    assert lone == []


def test_a_sidecar_listed_before_its_file_still_pairs_and_one_without_a_file_is_lone() -> None:
    objects = [("b.png.json", 1), ("a.png.json", 2), ("b.png", 3)]
    _, pairs, lone = read(objects)
    assert pairs == ["b.png"]
    assert lone == ["a.png"]


def test_an_image_named_like_a_sidecar_has_both_roles() -> None:
    objects = [("x", 1), ("x.json", 2), ("x.json.json", 3)]
    _, pairs, lone = read(objects)
    assert sorted(pairs) == ["x", "x.json"]
    assert lone == []


def test_only_the_wanted_pairs_are_returned() -> None:
    objects = [("a.png", 1), ("a.png.json", 2), ("b.png", 3), ("b.png.json", 4)]
    _, pairs, _ = read(objects, wanted=lambda key: key.startswith("b"))
    assert pairs == ["b.png"]


def test_a_long_listing_read_in_runs_is_one_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing_module, "_RUN", 16)
    objects = sorted(
        item
        for n in range(300)
        for item in ((f"{n:04d}.png", n), (f"{n:04d}.png.json", 1000 + n))
        if n % 7 or not item[0].endswith(".json")  # every 7th file has no sidecar
    )
    listing, pairs, lone = read(objects)
    assert sorted(pairs) == [f"{n:04d}.png" for n in range(300) if n % 7]
    assert lone == []
    for name, size in objects:
        assert listing.get(name) == size
    assert listing.get("0007.png.json") is None
