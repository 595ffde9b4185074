"""Parking one method while the portal's operating-time budget for it is spent."""

from __future__ import annotations

import pytest

from exporter.portal.operating import MAX_PROBE, RESET_MARGIN, WINDOW, OperatingBudget

from .support import FakeClock

GET = "catalog.productImage.get"
LIST = "catalog.productImage.list"


class Wall:
    """Unix time, set by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_refused_method_waits_until_the_announced_reset() -> None:
    clock, wall = FakeClock(), Wall()
    budget = OperatingBudget(clock, wall)
    budget.answered(GET, {"operating": 470.0, "operating_reset_at": int(wall.now) + 40})
    budget.refused(GET)
    await budget.wait(GET)
    assert clock.sleeps == [pytest.approx(40 + RESET_MARGIN)]


@pytest.mark.parametrize("skew", [-300.0, 0.0, 3600.0])
async def test_the_wait_is_measured_on_the_portals_clock_whatever_this_machines_says(
    skew: float,
) -> None:
    clock, wall = FakeClock(), Wall()
    budget = OperatingBudget(clock, wall)
    portal_now = wall.now + skew
    budget.answered(GET, {"finish": portal_now, "operating_reset_at": int(portal_now) + 40})
    await clock.sleep(15)  # the refusal comes 15 s after that answer
    budget.refused(GET)
    await budget.wait(GET)
    assert clock.sleeps == [15, pytest.approx(25 + RESET_MARGIN)]


async def test_a_reset_beyond_the_ten_minute_window_is_waited_for_at_most_the_window() -> None:
    clock, wall = FakeClock(), Wall()
    budget = OperatingBudget(clock, wall)
    # Without `finish`, a portal clock hours ahead of this one looks like a far reset.
    budget.answered(GET, {"operating_reset_at": int(wall.now) + 3 * 3600})
    budget.refused(GET)
    await budget.wait(GET)
    assert clock.sleeps == [pytest.approx(WINDOW + RESET_MARGIN)]


async def test_other_methods_are_not_held_up() -> None:
    clock = FakeClock()
    budget = OperatingBudget(clock, Wall())
    budget.refused(GET)
    await budget.wait(LIST)
    assert clock.sleeps == []


async def test_a_reset_already_past_is_probed_at_doubling_intervals_up_to_a_minute() -> None:
    clock, wall = FakeClock(), Wall()
    budget = OperatingBudget(clock, wall)
    budget.answered(GET, {"operating_reset_at": wall.now - 5})
    for _ in range(9):
        budget.refused(GET)
        await budget.wait(GET)
    assert clock.sleeps == pytest.approx([1, 2, 4, 8, 16, 32, MAX_PROBE, MAX_PROBE, MAX_PROBE])


async def test_a_good_answer_starts_the_probing_over() -> None:
    clock = FakeClock()
    budget = OperatingBudget(clock, Wall())
    budget.refused(GET)
    await budget.wait(GET)
    budget.refused(GET)
    await budget.wait(GET)
    budget.answered(GET, {"operating": 1.0})
    budget.refused(GET)
    await budget.wait(GET)
    assert clock.sleeps == pytest.approx([1, 2, 1])


async def test_a_method_is_waited_for_once_per_refusal() -> None:
    clock = FakeClock()
    budget = OperatingBudget(clock, Wall())
    budget.refused(GET)
    await budget.wait(GET)
    await budget.wait(GET)
    assert clock.sleeps == pytest.approx([1])


async def test_answers_without_a_usable_reset_time_fall_back_to_probing() -> None:
    clock = FakeClock()
    budget = OperatingBudget(clock, Wall())
    budget.answered(GET, {"start": 1.0, "duration": 0.1})
    budget.answered(GET, {"operating_reset_at": True})  # not a number
    budget.refused(GET)
    await budget.wait(GET)
    assert clock.sleeps == pytest.approx([1])
