"""The leaky bucket, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from exporter.simulator import LeakyBucket

from .helpers import FakeClock


def test_accepts_capacity_plus_one_requests_before_refusing() -> None:
    bucket = LeakyBucket(rate=2.0, capacity=5, clock=FakeClock())
    accepted = [bucket.try_acquire() for _ in range(8)]
    assert accepted == [True] * 6 + [False] * 2


def test_refused_requests_do_not_raise_the_level() -> None:
    bucket = LeakyBucket(rate=2.0, capacity=3, clock=FakeClock())
    for _ in range(10):
        bucket.try_acquire()
    assert bucket.level == 4.0


def test_level_drains_by_rate_times_elapsed() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(rate=2.0, capacity=10, clock=clock)
    for _ in range(6):
        bucket.try_acquire()
    clock.advance(1.5)
    assert bucket.level == pytest.approx(3.0)


def test_level_never_drains_below_zero() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(rate=2.0, capacity=10, clock=clock)
    bucket.try_acquire()
    clock.advance(100.0)
    assert bucket.level == 0.0


def test_full_bucket_accepts_again_once_drained_to_the_threshold() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(rate=2.0, capacity=4, clock=clock)
    while bucket.try_acquire():
        pass
    clock.advance(0.5)  # level 5 → 4: no longer above the threshold
    assert bucket.try_acquire()
    assert not bucket.try_acquire()


def test_sustained_rate_is_accepted_indefinitely() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(rate=2.0, capacity=0, clock=clock)
    results = []
    for _ in range(100):
        results.append(bucket.try_acquire())
        clock.advance(0.5)
    assert all(results)


def test_clock_going_backwards_does_not_fill_the_bucket() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(rate=2.0, capacity=10, clock=clock)
    bucket.try_acquire()
    clock.advance(-5.0)
    assert bucket.level == 1.0


@pytest.mark.parametrize(("rate", "capacity"), [(0.0, 5), (-1.0, 5), (1.0, -1)])
def test_rejects_invalid_configuration(rate: float, capacity: int) -> None:
    with pytest.raises(ValueError):
        LeakyBucket(rate=rate, capacity=capacity, clock=FakeClock())
