"""The per-method execution-time budget: accounting, expiry, 429, and the time block."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.simulator import Catalog, PortalSettings
from exporter.simulator.errors import ApiError
from exporter.simulator.operating import OperatingBudget, OperatingUsage

from .helpers import FakeClock, PortalClient, portal_client

LIST = "catalog.productImage.list"
FIELDS = "catalog.productImage.getFields"
BLOCKED = {
    "error": "OPERATION_TIME_LIMIT",
    "error_description": "Method is blocked due to operation time limit.",
}


# The budget on its own (window 10 s = ten 1 s buckets).


def _budget(clock: FakeClock) -> OperatingBudget:
    return OperatingBudget(window=10.0, clock=clock, wall=lambda: 50_000.0 + clock.now)


def test_sums_charges_per_account_and_method() -> None:
    budget = _budget(FakeClock())
    budget.charge("hook", LIST, 2.0)
    budget.charge("hook", LIST, 3.0)
    budget.charge("hook", FIELDS, 7.0)
    budget.charge("app", LIST, 11.0)
    assert budget.usage("hook", LIST).seconds == 5.0
    assert budget.usage("hook", FIELDS).seconds == 7.0
    assert budget.usage("app", LIST).seconds == 11.0


def test_a_bucket_leaves_the_sum_once_the_window_has_passed_it() -> None:
    clock = FakeClock(1000.0)
    budget = _budget(clock)
    budget.charge("hook", LIST, 2.0)
    clock.advance(5.0)
    budget.charge("hook", LIST, 3.0)
    clock.advance(4.9)
    assert budget.usage("hook", LIST).seconds == 5.0
    clock.advance(0.1)  # 1010: the bucket of 1000 is out
    assert budget.usage("hook", LIST).seconds == 3.0
    clock.advance(5.0)
    assert budget.usage("hook", LIST) == OperatingUsage(0.0, None)


def test_reset_at_is_when_the_oldest_bucket_expires_in_wall_time() -> None:
    clock = FakeClock(1000.5)
    budget = _budget(clock)
    budget.charge("hook", LIST, 1.0)
    clock.advance(3.0)
    budget.charge("hook", LIST, 1.0)
    # bucket [1000, 1001) leaves at 1010; wall time = 50_000 + clock
    assert budget.usage("hook", LIST).reset_at == 51_010


def test_check_refuses_only_above_the_limit() -> None:
    budget = _budget(FakeClock())
    budget.charge("hook", LIST, 480.0)
    budget.check("hook", LIST, limit=480.0)
    budget.charge("hook", LIST, 0.5)
    with pytest.raises(ApiError, match="OPERATION_TIME_LIMIT"):
        budget.check("hook", LIST, limit=480.0)
    budget.check("hook", FIELDS, limit=480.0)
    budget.check("app", LIST, limit=480.0)


# Over HTTP, with a fake clock.


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
async def limited(catalog: Catalog, clock: FakeClock) -> AsyncIterator[PortalClient]:
    """Each call costs 100 s of a 250 s budget per 10 s window."""
    settings = PortalSettings(
        rps=None, operating_cost=100.0, operating_limit=250.0, operating_window=10.0
    )
    async with portal_client(catalog, settings, clock=clock) as client:
        yield client


async def _list(client: PortalClient) -> Any:
    return await client.call(LIST, {"productId": 1})


async def test_the_call_that_crosses_the_limit_completes_and_the_next_is_429(
    limited: PortalClient,
) -> None:
    answers = [await _list(limited) for _ in range(4)]
    assert [answer.status for answer in answers] == [200, 200, 200, 429]
    assert answers[3].json == BLOCKED
    assert limited.stats.operation_limited == 1
    assert limited.stats.errors["OPERATION_TIME_LIMIT"] == 1


async def test_time_block_reports_the_methods_running_sum(limited: PortalClient) -> None:
    sums = [(await _list(limited)).json["time"]["operating"] for _ in range(3)]
    assert sums == [100.0, 200.0, 300.0]


async def test_reset_at_is_a_plausible_unix_time(limited: PortalClient) -> None:
    reset_at = (await _list(limited)).json["time"]["operating_reset_at"]
    assert isinstance(reset_at, int)
    assert time.time() + 9 <= reset_at <= time.time() + 12  # bucket of 1000 leaves at 1010


async def test_refused_calls_are_not_charged_and_expiry_unblocks(
    limited: PortalClient, clock: FakeClock
) -> None:
    for _ in range(5):
        await _list(limited)
    clock.advance(10.0)
    answer = await _list(limited)
    assert answer.status == 200
    assert answer.json["time"]["operating"] == 100.0


async def test_other_methods_and_the_oauth_app_keep_working(limited: PortalClient) -> None:
    for _ in range(3):
        await _list(limited)
    assert (await _list(limited)).status == 429
    assert (await limited.call(FIELDS)).status == 200
    assert (await limited.call_oauth(LIST, {"productId": 1})).status == 200


async def test_a_failing_call_uses_its_time_too(limited: PortalClient) -> None:
    await limited.call(LIST, {"productId": 99_999})
    assert (await _list(limited)).json["time"]["operating"] == 200.0


async def test_each_batch_command_is_checked_and_charged(limited: PortalClient) -> None:
    cmd = {key: f"{LIST}?productId={product}" for product, key in enumerate("abce", start=1)}
    cmd["d"] = FIELDS
    answer = await limited.call("batch", {"cmd": cmd})
    assert answer.status == 200
    result = answer.json["result"]
    assert set(result["result"]) == {"a", "b", "c", "d"}
    assert result["result_error"] == {"e": BLOCKED}
    assert [result["result_time"][key]["operating"] for key in "abcd"] == [100, 200, 300, 100]
    assert "operating_reset_at" in result["result_time"]["b"]
    assert answer.json["time"]["operating"] == 100.0  # repeats the last command's figures
    assert limited.stats.operation_limited == 1


async def test_batch_itself_is_never_blocked(limited: PortalClient) -> None:
    for _ in range(3):
        await _list(limited)
    answer = await limited.call("batch", {"cmd": {"a": f"{LIST}?productId=1"}})
    assert answer.status == 200
    assert answer.json["result"]["result_error"] == {"a": BLOCKED}


async def test_no_operating_fields_while_the_cost_is_zero(client: PortalClient) -> None:
    single = (await client.call(LIST, {"productId": 1})).json["time"]
    batch = (await client.call("batch", {"cmd": {"a": FIELDS}})).json
    for block in (single, batch["time"], batch["result"]["result_time"]["a"]):
        assert "operating" not in block
        assert "operating_reset_at" not in block


@pytest.mark.parametrize(
    "field", [{"operating_cost": -1.0}, {"operating_limit": -1.0}, {"operating_window": 0.0}]
)
def test_settings_refuse_invalid_operating_values(field: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PortalSettings(**field)  # type: ignore[arg-type]
