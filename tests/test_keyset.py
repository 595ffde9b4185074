"""Keys at 8 bytes each: what a run remembers image by image, without a Python object each."""

from __future__ import annotations

import random

import pytest

from exporter.jobs.state import SeenImages
from exporter.keyset import KeySet, pair_key


def test_every_key_added_is_found_across_merges_and_no_other() -> None:
    rng = random.Random(7)
    keys = rng.sample(range(-(2**40), 2**40), 30_000)
    found = KeySet(sorted(keys[:5_000]))
    for key in keys[5_000:]:
        found.add(key)
    assert all(key in found for key in keys)
    assert len(found) == len(keys)
    absent = set(rng.sample(range(-(2**40), 2**40), 2_000)) - set(keys)
    assert not any(key in found for key in absent)


def test_a_key_added_twice_counts_once() -> None:
    found = KeySet([1, 5])
    found.add(5)
    found.add(3)
    found.add(3)
    assert len(found) == 3
    assert 3 in found and 4 not in found


def test_the_extremes_of_64_bits_are_keys_and_beyond_them_is_refused() -> None:
    found = KeySet()
    found.add(-(2**63))
    found.add(2**63 - 1)
    assert -(2**63) in found and 2**63 - 1 in found
    with pytest.raises(OverflowError):
        found.add(2**63)


def test_two_ids_pack_in_their_order_and_those_too_large_do_not_pack() -> None:
    assert pair_key(1, 2) is not None and pair_key(1, 3) is not None
    assert pair_key(1, 2**32 - 1) < pair_key(2, 0)  # type: ignore[operator]
    assert pair_key(2**31, 1) is None
    assert pair_key(1, 2**32) is None


def test_an_image_is_seen_once_whatever_its_ids() -> None:
    seen = SeenImages()
    assert seen.add(1, 7) and not seen.add(1, 7)
    assert seen.add(2**40, 7) and not seen.add(2**40, 7)
    assert seen.add(7, 1)
    assert len(seen) == 3


def test_keys_in_order_then_out_of_order_are_all_found() -> None:
    found = KeySet()
    for key in range(0, 20_000, 2):
        found.add(key)
    for key in range(19_999, 0, -2):
        found.add(key)
    found.add(10)
    assert len(found) == 20_000
    assert all(key in found for key in range(20_000))
    assert 20_000 not in found and -1 not in found
