"""The token bucket, driven by a fake clock: nothing here sleeps."""

from __future__ import annotations

import itertools

import anyio
import pytest

from exporter.portal.ratelimit import TokenBucket

from .support import FakeClock


async def times_of(bucket: TokenBucket, clock: FakeClock, n: int) -> list[float]:
    stamps = []
    for _ in range(n):
        await bucket.acquire()
        stamps.append(clock.time - 1000.0)
    return stamps


async def test_burst_goes_out_at_once_then_requests_are_spaced_by_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    stamps = await times_of(bucket, clock, 6)
    assert stamps[:3] == [0.0, 0.0, 0.0]
    assert stamps[3:] == pytest.approx([0.5, 1.0, 1.5])


async def test_idle_time_refills_tokens_up_to_the_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    await times_of(bucket, clock, 5)
    clock.time += 100.0  # a long pause refills, but never beyond the burst
    assert bucket.tokens == pytest.approx(5.0)
    start = clock.time
    await times_of(bucket, clock, 6)
    assert clock.time - start == pytest.approx(0.1)


async def test_sustained_rate_never_exceeds_the_configured_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=10, clock=clock)
    stamps = await times_of(bucket, clock, 110)
    # 10 at once, then 100 more at 5/s: 20 s in all.
    assert stamps[-1] == pytest.approx(20.0)
    for earlier, later in itertools.pairwise(stamps[10:]):
        assert later - earlier == pytest.approx(0.2)


async def test_rate_limited_answer_empties_the_bucket_and_halves_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=50, clock=clock)
    bucket.on_rate_limited()
    assert bucket.tokens == 0.0
    assert bucket.rate == pytest.approx(2.0)
    start = clock.time
    await bucket.acquire()
    assert clock.time - start == pytest.approx(0.5)  # one token at the halved rate


async def test_rate_never_drops_below_its_floor() -> None:
    bucket = TokenBucket(rate=2, burst=1, clock=FakeClock())
    for _ in range(50):
        bucket.on_rate_limited()
    assert bucket.rate == pytest.approx(2 / 20)


async def test_successes_climb_back_to_the_configured_rate_and_no_further() -> None:
    bucket = TokenBucket(rate=2, burst=1, clock=FakeClock())
    bucket.on_rate_limited()
    assert bucket.rate < 2
    for _ in range(500):
        bucket.on_success()
    assert bucket.rate == pytest.approx(2.0)


async def test_recovery_is_gradual_not_a_jump() -> None:
    bucket = TokenBucket(rate=2, burst=1, clock=FakeClock())
    bucket.on_rate_limited()
    halved = bucket.rate
    bucket.on_success()
    assert bucket.rate == pytest.approx(halved * 1.01)


async def test_a_503_for_a_request_sent_before_the_slow_down_does_not_slow_again() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=8, burst=20, clock=clock)
    early = [await bucket.acquire() for _ in range(3)]  # three requests in flight
    clock.time += 0.01
    for sent_at in early:  # all three come back 503
        bucket.on_rate_limited(sent_at)
    assert bucket.rate == pytest.approx(4.0)  # one slow-down for the episode
    late = await bucket.acquire()
    bucket.on_rate_limited(late)  # a request sent after the slow-down: a new episode
    assert bucket.rate == pytest.approx(2.0)


async def test_acquire_returns_the_time_the_token_was_taken() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert await bucket.acquire() == 1000.0
    assert await bucket.acquire() == pytest.approx(1001.0)


def test_a_large_burst_keeps_a_little_headroom_for_jitter() -> None:
    assert TokenBucket(rate=2, burst=50, clock=FakeClock()).tokens == 48.0
    assert TokenBucket(rate=2, burst=5, clock=FakeClock()).tokens == 5.0


async def test_waiters_are_served_in_arrival_order() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    order: list[int] = []

    async def take(n: int) -> None:
        await bucket.acquire()
        order.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(take, n)
            await anyio.lowlevel.checkpoint()
    assert order == [0, 1, 2, 3, 4]
    assert clock.time - 1000.0 == pytest.approx(4.0)


def test_nonsense_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=5)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0)
