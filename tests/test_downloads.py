"""`downloads_share_limit`: as configured, or learned from the portal's own answers."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path

import pytest

from exporter.portal.budget import FindingFile, recalled_finding, shared_finding
from exporter.portal.downloads import DownloadRule, Finding, KeptInMemory, Pacing
from exporter.portal.ratelimit import TokenBucket

from .support import FakeClock

TODAY = date(2026, 12, 3)


def rule_of(
    setting: bool | None = None,
    *,
    rate: float = 20,
    burst: int = 50,
    memory: KeptInMemory | None = None,
    today: date = TODAY,
) -> tuple[DownloadRule, TokenBucket, FakeClock, KeptInMemory]:
    clock = FakeClock()
    limiter = TokenBucket(rate=rate, burst=burst, clock=clock)
    memory = memory if memory is not None else KeptInMemory()
    rule = DownloadRule(setting, limiter, clock=clock, memory=memory, today=lambda: today)
    return rule, limiter, clock, memory


async def test_a_setting_decides_and_nothing_is_learned() -> None:
    paced, _, _, _ = rule_of(True)
    assert (paced.pacing, paced.counted) == (Pacing.PACED, True)
    free, _, _, memory = rule_of(False)
    assert (free.pacing, free.counted) == (Pacing.FREE, False)
    for _ in range(200):
        free.admitted(await free.send())
    free.refused(await free.send())
    assert free.pacing is Pacing.FREE and free.finding is None
    assert memory.recall() is None
    assert free.report() == {"setting": False, "counted": False}


async def test_auto_without_a_finding_learns_and_takes_tokens_without_waiting() -> None:
    rule, limiter, clock, _ = rule_of(None, rate=20, burst=50)
    assert rule.pacing is Pacing.LEARNING and rule.counted is None
    start = limiter.tokens
    tickets = [await rule.send() for _ in range(10)]
    assert clock.sleeps == []  # none waited for the limiter
    assert limiter.tokens == pytest.approx(start - 10)  # but the budget saw them
    assert all(ticket.through_limiter for ticket in tickets)


async def test_more_downloads_than_the_bucket_holds_without_a_503_means_free() -> None:
    rule, limiter, clock, memory = rule_of(None, rate=20, burst=50)
    full = limiter.tokens
    tickets = [await rule.send() for _ in range(60)]
    clock.time += 0.25  # 50 + 20/s * 0.25 s = 55 is what a counting bucket could hold
    for ticket in tickets[:55]:
        rule.admitted(ticket)
    assert rule.pacing is Pacing.LEARNING  # 55 is not more than 55
    rule.admitted(tickets[55])
    assert rule.pacing is Pacing.FREE and rule.counted is False
    assert rule.learned_now
    kept = memory.recall()
    assert kept is not None and kept.counted is False and kept.learned_on == TODAY
    assert "56 downloads" in kept.why
    # The tokens the learning downloads took are given back: REST calls do not wait for them.
    assert limiter.tokens == pytest.approx(full)
    assert rule.report()["learnedNow"] is True and rule.report()["counted"] is False


async def test_a_503_on_a_download_while_learning_means_counted() -> None:
    rule, limiter, _, memory = rule_of(None, rate=20, burst=50)
    for _ in range(30):
        rule.admitted(await rule.send())
    ticket = await rule.send()
    rule.refused(ticket)
    assert rule.pacing is Pacing.PACED and rule.counted is True
    assert limiter.rate == pytest.approx(10)  # the limiter slowed down as for any 503
    kept = memory.recall()
    assert kept is not None and kept.counted is True
    assert "refused a download" in kept.why
    # From now on a download waits for a token.
    assert (await rule.send()).pacing is Pacing.PACED


async def test_a_rest_503_its_own_calls_cannot_explain_means_counted() -> None:
    rule, _, clock, memory = rule_of(None, rate=20, burst=50)
    for _ in range(5):
        rule.rest_sent(clock.now())
    rule.rest_refused(clock.now())
    assert rule.counted is True
    kept = memory.recall()
    assert kept is not None and kept.counted is True and "REST call" in kept.why


async def test_a_rest_503_its_own_calls_explain_teaches_nothing() -> None:
    rule, _, clock, memory = rule_of(None, rate=20, burst=10)
    tickets = [await rule.send() for _ in range(8)]
    for _ in range(12):  # more REST calls at once than the bucket holds
        rule.rest_sent(clock.now())
    rule.rest_refused(clock.now())
    assert rule.pacing is Pacing.LEARNING and memory.recall() is None
    # The downloads admitted before the 503 prove nothing: the window starts again.
    clock.time += 0.1
    for ticket in tickets:
        rule.admitted(ticket)
    assert rule.pacing is Pacing.LEARNING
    later = [await rule.send() for _ in range(13)]
    for ticket in later:
        rule.admitted(ticket)
    assert rule.pacing is Pacing.FREE  # 13 > 10 + 20/s * 0 s


async def test_a_rest_503_with_downloads_known_free_is_doubt_paced_and_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    known = KeptInMemory(Finding(False, TODAY - timedelta(days=3), "served 60 downloads"))
    rule, _, clock, memory = rule_of(None, memory=known)
    assert rule.pacing is Pacing.FREE and not rule.learned_now
    assert not (await rule.send()).through_limiter
    with caplog.at_level(logging.WARNING):
        rule.rest_refused(clock.now())
    assert rule.pacing is Pacing.PACED and rule.counted is True
    assert memory.recall() is None  # learned again on the next run
    assert rule.report()["doubt"].startswith("the portal refused a REST call")
    assert "learned again next run" in caplog.text


async def test_a_503_on_a_download_known_free_turns_the_finding_round() -> None:
    known = KeptInMemory(Finding(False, TODAY - timedelta(days=3), "served 60 downloads"))
    rule, limiter, _, memory = rule_of(None, memory=known)
    ticket = await rule.send()
    rule.refused(ticket)
    assert rule.counted is True
    kept = memory.recall()
    assert kept is not None and kept.counted is True and kept.learned_on == TODAY
    assert limiter.rate == pytest.approx(20)  # it took no token: the limiter is untouched


async def test_a_finding_is_learned_again_after_30_days() -> None:
    old = KeptInMemory(Finding(True, TODAY - timedelta(days=30), "refused a download"))
    rule, _, _, _ = rule_of(None, memory=old)
    assert rule.pacing is Pacing.LEARNING
    recent = KeptInMemory(Finding(True, TODAY - timedelta(days=29), "refused a download"))
    rule, _, _, _ = rule_of(None, memory=recent)
    assert rule.pacing is Pacing.PACED
    assert "learned on 2026-11-04" in rule.describe()


async def test_a_finding_recalled_is_reported_but_not_as_learned_now() -> None:
    known = KeptInMemory(Finding(True, TODAY - timedelta(days=1), "refused a download"))
    rule, _, _, _ = rule_of(None, memory=known)
    assert rule.report() == {
        "setting": "auto",
        "counted": True,
        "learnedNow": False,
        "learnedOn": "2026-12-02",
        "why": "refused a download",
    }


async def test_too_few_downloads_decide_nothing() -> None:
    rule, _, clock, memory = rule_of(None, rate=20, burst=50)
    for _ in range(40):
        ticket = await rule.send()
        clock.time += 0.01
        rule.admitted(ticket)
    assert rule.pacing is Pacing.LEARNING and memory.recall() is None
    assert rule.report() == {"setting": "auto", "counted": None, "learnedNow": False}


def test_a_finding_file_round_trips_private_and_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    memory = shared_finding("example.bitrix24.com")
    assert memory.recall() is None
    finding = Finding(False, TODAY, "the portal served 56 downloads")
    memory.keep(finding)
    path = tmp_path / "cache" / "b24-image-exporter" / "downloads-example.bitrix24.com.json"
    assert json.loads(path.read_text()) == {
        "counted": False,
        "learnedOn": "2026-12-03",
        "why": "the portal served 56 downloads",
    }
    assert path.stat().st_mode & 0o777 == 0o600
    assert shared_finding("example.bitrix24.com").recall() == finding
    # A process that writes nothing gets a copy: forgetting it leaves the file.
    copy = recalled_finding("example.bitrix24.com")
    copy.forget()
    assert copy.recall() is None and path.exists()
    memory.forget()
    assert not path.exists() and memory.recall() is None


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"counted": "yes", "learnedOn": "2026-12-03", "why": "x"}',
     b'{"counted": true, "learnedOn": "yesterday", "why": "x"}'],
)  # fmt: skip
def test_a_damaged_finding_file_is_learned_again(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "downloads.json"
    path.write_bytes(content)
    assert FindingFile(path).recall() is None


def test_a_finding_that_cannot_be_kept_is_a_warning_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    memory = FindingFile(blocker / "downloads.json")  # its folder is a file
    with caplog.at_level(logging.WARNING):
        memory.keep(Finding(True, TODAY, "refused a download"))
    assert "cannot keep what was learned" in caplog.text
    assert memory.recall() is None
