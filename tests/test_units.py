"""Sizes and durations as a person reads them: one unit system everywhere."""

from __future__ import annotations

import pytest

from exporter.units import format_bytes, format_duration


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (48_213, "48.2 KB"),
        (6_200_000, "6.2 MB"),
        (1_300_000_000, "1.3 GB"),
        (2_000_000_000_000, "2.0 TB"),
    ],
)
def test_sizes_are_decimal_with_one_unit_each(count: int, shown: str) -> None:
    assert format_bytes(count) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"), [(12.4, "12s"), (247, "4m07s"), (11_100, "3h05m"), (0, "0s")]
)
def test_durations_read_in_the_largest_two_units(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown
