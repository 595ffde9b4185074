"""One request budget shared through a file by every exporter process on the machine."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exporter.portal.budget import FileStore, cache_dir, private_copy, shared_store
from exporter.portal.ratelimit import MemoryStore, TokenBucket

from .support import FakeClock


async def test_two_buckets_on_one_file_share_one_budget(tmp_path: Path) -> None:
    clock = FakeClock()
    store = tmp_path / "budget.json"
    first = TokenBucket(rate=2, burst=4, clock=clock, store=FileStore(store))
    second = TokenBucket(rate=2, burst=4, clock=clock, store=FileStore(store))
    stamps = []
    for bucket in (first, second, first, second, first, second):
        await bucket.acquire()
        stamps.append(clock.time - 1000.0)
    # Four tokens between them, then one every half second — not four each.
    assert stamps == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.5, 1.0])


async def test_a_new_run_inherits_what_the_last_one_spent(tmp_path: Path) -> None:
    clock = FakeClock()
    store = tmp_path / "budget.json"
    earlier = TokenBucket(rate=1, burst=5, clock=clock, store=FileStore(store))
    for _ in range(5):
        await earlier.acquire()
    clock.time += 2.0
    later = TokenBucket(rate=1, burst=5, clock=clock, store=FileStore(store))
    assert later.tokens == pytest.approx(2.0)


async def test_a_slow_down_is_shared_too(tmp_path: Path) -> None:
    clock = FakeClock()
    store = tmp_path / "budget.json"
    first = TokenBucket(rate=4, burst=5, clock=clock, store=FileStore(store))
    second = TokenBucket(rate=4, burst=5, clock=clock, store=FileStore(store))
    first.on_rate_limited()
    assert second.rate == pytest.approx(2.0)
    assert second.tokens == 0.0


async def test_a_damaged_state_file_starts_afresh(tmp_path: Path) -> None:
    store = tmp_path / "budget.json"
    store.write_text("{not json")
    bucket = TokenBucket(rate=2, burst=5, clock=FakeClock(), store=FileStore(store))
    assert bucket.tokens == 5.0
    assert bucket.rate == 2.0


async def test_a_clock_that_went_back_starts_afresh(tmp_path: Path) -> None:
    clock = FakeClock()
    store = tmp_path / "budget.json"
    bucket = TokenBucket(rate=1, burst=5, clock=clock, store=FileStore(store))
    for _ in range(5):
        await bucket.acquire()
    clock.time = 10.0  # after a reboot the monotonic clock starts low again
    assert bucket.tokens == 5.0


def test_the_shared_file_lives_under_the_user_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    store = shared_store("example.bitrix24.com:443")
    assert isinstance(store, FileStore)
    assert store.path == tmp_path / "c/b24-image-exporter/ratelimit-example.bitrix24.com_443.json"
    assert cache_dir() == tmp_path / "c/b24-image-exporter"


def test_without_a_writable_cache_the_budget_stays_in_memory_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with caplog.at_level(logging.WARNING, logger="exporter"):
        store = shared_store("example.bitrix24.com")
    assert isinstance(store, MemoryStore)
    assert "cannot share the request budget" in caplog.text


class TickingClock(FakeClock):
    """Every reading is a millisecond later than the one before, like a real clock."""

    def now(self) -> float:
        self.time += 0.001
        return self.time


async def test_state_moved_on_by_another_process_while_waiting_is_not_a_reboot(
    tmp_path: Path,
) -> None:
    clock = TickingClock()
    path = tmp_path / "budget.json"
    # Another process took the last token a moment after this one first read its clock,
    # while this one waited for the file lock.
    path.write_text(
        f'{{"tokens": 0.0, "updated": {clock.time + 0.0015}, "rate": 2.0, "slowed_at": -1}}'
    )
    bucket = TokenBucket(rate=2, burst=20, clock=clock, store=FileStore(path))
    assert bucket.tokens < 0.1  # not refilled to a full burst


async def test_a_raised_rate_takes_effect_at_once_in_the_next_run(tmp_path: Path) -> None:
    clock = FakeClock()
    store = tmp_path / "budget.json"
    await TokenBucket(rate=2, burst=5, clock=clock, store=FileStore(store)).acquire()
    assert '"rate": 2,' in store.read_text()
    assert TokenBucket(rate=5, burst=5, clock=clock, store=FileStore(store)).rate == 5.0


async def test_a_slow_down_survives_into_the_next_run(tmp_path: Path) -> None:
    clock = FakeClock()
    store = tmp_path / "budget.json"
    TokenBucket(rate=4, burst=5, clock=clock, store=FileStore(store)).on_rate_limited()
    assert TokenBucket(rate=4, burst=5, clock=clock, store=FileStore(store)).rate == 2.0


async def test_a_private_copy_waits_for_what_others_spent_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    clock = FakeClock()
    shared = shared_store("example.bitrix24.com")
    spender = TokenBucket(rate=2, burst=5, clock=clock, store=shared)
    for _ in range(5):
        await spender.acquire()
    assert isinstance(shared, FileStore)
    before = shared.path.read_bytes()
    copy = TokenBucket(rate=2, burst=5, clock=clock, store=private_copy("example.bitrix24.com"))
    await copy.acquire()
    assert clock.slept == pytest.approx(0.5)  # a token had to drip back first
    assert shared.path.read_bytes() == before


def test_a_private_copy_creates_no_cache_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert isinstance(private_copy("example.bitrix24.com"), MemoryStore)
    assert not (tmp_path / "c").exists()
