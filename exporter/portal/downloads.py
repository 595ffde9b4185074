"""Whether downloads draw from the portal's request budget: as configured, or learned.

Nobody documents whether the portal's leaky bucket counts `downloadUrl` GETs, and the
answer decides how long a job takes (10,000 images at 2 requests/s: about 85 minutes
when downloads count, about 2 when they do not). With `downloads_share_limit: auto`
`DownloadRule` learns it from the portal's own answers, once per portal, and keeps the
finding for 30 days (`FindingMemory`, next to the shared bucket state):

* until it knows, downloads go without waiting for the limiter, but each still takes a
  token from it, so this run's REST calls and other processes see the budget spent;
* a 503 `QUERY_LIMIT_EXCEEDED` on a download, or on a REST call while this run's own
  REST calls were under the limit, means downloads count — and so does any doubt: a
  competing client's 503s end here too, the answer that costs time, never a ban;
* more downloads admitted than the bucket could hold at that pace (`burst` + rate *
  the seconds since the first), without one 503, means they do not: the tokens they
  took are given back.

Learning costs at most the 503s of the requests in flight when the bucket fills, a
burst's worth at worst. A run that learned nothing (too few downloads) decides nothing.

    rule = DownloadRule(None, limiter, memory=FindingMemory(path))
    ticket = await rule.send()                 # before each download
    rule.admitted(ticket) | rule.refused(ticket)
    rule.rest_sent(sent_at); rule.rest_refused(sent_at)   # for each REST call
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from exporter.portal.ratelimit import Clock, MonotonicClock, TokenBucket

log = logging.getLogger(__name__)

LEARN_AGAIN_AFTER = timedelta(days=30)


class Pacing(Enum):
    """How the next download is sent."""

    PACED = "paced"  # waits for the limiter: downloads count
    FREE = "free"  # outside the limiter: only the concurrency bounds downloads
    LEARNING = "learning"  # at once, but taking a token: not known yet


@dataclass(frozen=True, slots=True)
class Finding:
    """What was learned about one portal, when, and from what."""

    counted: bool
    learned_on: date
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"counted": self.counted, "learnedOn": self.learned_on.isoformat(), "why": self.why}

    @classmethod
    def from_dict(cls, raw: Any) -> Finding | None:
        """The finding a file holds; None for anything that is not one."""
        try:
            counted, learned_on, why = raw["counted"], raw["learnedOn"], raw["why"]
            if not isinstance(counted, bool) or not isinstance(why, str):
                return None
            return cls(counted, date.fromisoformat(learned_on), why)
        except (KeyError, TypeError, ValueError):
            return None


class FindingMemory(Protocol):
    """Where a finding outlives the run (`exporter.portal.budget.FindingFile`)."""

    def recall(self) -> Finding | None: ...

    def keep(self, finding: Finding) -> None: ...

    def forget(self) -> None: ...


class KeptInMemory:
    """A finding kept by this process only (tests, or when no file can be written)."""

    def __init__(self, finding: Finding | None = None) -> None:
        self.finding = finding

    def recall(self) -> Finding | None:
        return self.finding

    def keep(self, finding: Finding) -> None:
        self.finding = finding

    def forget(self) -> None:
        self.finding = None


def fresh(memory: FindingMemory, today: date | None = None) -> Finding | None:
    """The finding `memory` keeps, unless it is old enough to be learned again."""
    finding = memory.recall()
    today = today or datetime.now(UTC).date()
    if finding is None or today - finding.learned_on >= LEARN_AGAIN_AFTER:
        return None
    return finding


@dataclass(frozen=True, slots=True)
class Ticket:
    """One download's admission: when it was sent and whether it took a token."""

    sent_at: float
    pacing: Pacing

    @property
    def through_limiter(self) -> bool:
        return self.pacing is not Pacing.FREE


class DownloadRule:
    """Sends downloads through the limiter or past it, as configured or as learned."""

    def __init__(
        self,
        setting: bool | None,
        limiter: TokenBucket,
        *,
        clock: Clock | None = None,
        memory: FindingMemory | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        """`setting` is `downloads_share_limit`: True, False, or None for auto."""
        self.setting = setting
        self._limiter = limiter
        self._clock: Clock = clock or MonotonicClock()
        self._memory: FindingMemory = memory or KeptInMemory()
        self._today = today or (lambda: datetime.now(UTC).date())
        self.finding: Finding | None = None  # what is known, learned now or recalled
        self.learned_now = False
        self.doubt: str | None = None  # why this run paces downloads against its finding
        # A shadow of the portal's bucket filled by this run's REST calls alone.
        self._rest_level = 0.0
        self._rest_at = float("-inf")
        # The learning window: downloads admitted since the first, tokens they took.
        self._first_sent: float | None = None
        self._admitted = 0
        self._taken = 0
        if setting is None:
            self.finding = fresh(self._memory, self._today())
        self.pacing = self._pacing()

    def _pacing(self) -> Pacing:
        if self.setting is not None:
            return Pacing.PACED if self.setting else Pacing.FREE
        if self.doubt is not None:
            return Pacing.PACED
        if self.finding is None:
            return Pacing.LEARNING
        return Pacing.PACED if self.finding.counted else Pacing.FREE

    @property
    def counted(self) -> bool | None:
        """Whether downloads count in this run: None while it is being learned."""
        if self.pacing is Pacing.LEARNING:
            return None
        return self.pacing is Pacing.PACED

    async def send(self) -> Ticket:
        """Wait as the pacing says before one download; returns its ticket."""
        pacing = self.pacing
        if pacing is Pacing.PACED:
            return Ticket(await self._limiter.acquire(), pacing)
        now = self._clock.now()
        if pacing is Pacing.LEARNING:
            self._limiter.take()
            self._taken += 1
            if self._first_sent is None:
                self._first_sent = now
        return Ticket(now, pacing)

    def admitted(self, ticket: Ticket) -> None:
        """The portal served a download (its answer was the file)."""
        if ticket.pacing is Pacing.PACED:
            self._limiter.on_success()
        if ticket.pacing is not Pacing.LEARNING or self.pacing is not Pacing.LEARNING:
            return
        if self._first_sent is None or ticket.sent_at < self._first_sent:
            return  # sent before the window restarted
        self._admitted += 1
        seconds = self._clock.now() - self._first_sent
        holds = self._limiter.burst + self._limiter.max_rate * seconds
        if self._admitted > holds:
            why = (
                f"the portal served {self._admitted} downloads in {seconds:.1f} s without one "
                f"QUERY_LIMIT_EXCEEDED, more than its bucket holds at that pace "
                f"({self._limiter.burst} + {self._limiter.max_rate:g}/s * {seconds:.1f} s)"
            )
            self._limiter.give(self._taken)  # they were never the portal's to count
            self._conclude(counted=False, why=why)

    def refused(self, ticket: Ticket) -> None:
        """The portal answered a download with 503 `QUERY_LIMIT_EXCEEDED`."""
        if ticket.through_limiter:
            self._limiter.on_rate_limited(ticket.sent_at)
        if self.setting is not None or self.pacing is Pacing.PACED:
            return
        self._conclude(counted=True, why="the portal refused a download with QUERY_LIMIT_EXCEEDED")

    def rest_sent(self, sent_at: float) -> None:
        """A REST call took its token at `sent_at` (the shadow bucket fills)."""
        self._rest_level = self._rest_level_at(sent_at) + 1.0
        self._rest_at = max(self._rest_at, sent_at)

    def rest_refused(self, sent_at: float) -> None:
        """The portal answered the REST call sent at `sent_at` with 503
        `QUERY_LIMIT_EXCEEDED`."""
        if self.setting is not None or self.pacing is Pacing.PACED:
            return
        if self._rest_level_at(sent_at) >= self._limiter.burst:
            # This run's REST calls alone fill the bucket: nothing learned, and the
            # downloads admitted so far prove nothing either.
            self._first_sent, self._admitted = None, 0
            return
        why = (
            "the portal refused a REST call with QUERY_LIMIT_EXCEEDED while this run's own "
            "REST calls were under the limit (downloads, or another client, filled its bucket)"
        )
        if self.pacing is Pacing.LEARNING:
            self._conclude(counted=True, why=why)
            return
        # Downloads were known not to count: paced from now on, and learned again next run.
        self.doubt = why
        self._memory.forget()
        self.pacing = self._pacing()
        log.warning("downloads now wait for the request budget: %s; learned again next run", why)

    def describe(self) -> str:
        """One line for a person: whether downloads count, and how that is known."""
        if self.setting is not None:
            counted = "counted in" if self.setting else "not counted in"
            return f"downloads {counted} the request budget (downloads_share_limit: {self.setting})"
        if self.finding is None:
            return (
                "whether downloads count in the request budget is not known yet "
                "(learned on the first run)"
            )
        counted = "count" if self.finding.counted else "do not count"
        return (
            f"downloads {counted} in the request budget (learned on "
            f"{self.finding.learned_on.isoformat()}: {self.finding.why})"
        )

    def report(self) -> dict[str, Any]:
        """The report's `downloadsShareLimit`: the setting, what is known and why."""
        setting: str | bool = "auto" if self.setting is None else self.setting
        fields: dict[str, Any] = {"setting": setting, "counted": self.counted}
        if self.setting is None:
            fields["learnedNow"] = self.learned_now
            if self.finding is not None:
                fields.update(self.finding.as_dict())
            if self.doubt is not None:
                fields["doubt"] = self.doubt
        return fields

    def _conclude(self, *, counted: bool, why: str) -> None:
        self.finding = Finding(counted, self._today(), why)
        self.learned_now = True
        self.pacing = self._pacing()
        self._memory.keep(self.finding)
        verdict = "count" if counted else "do not count"
        log.info("learned that downloads %s in the portal's request budget: %s", verdict, why)

    def _rest_level_at(self, at: float) -> float:
        drained = max(0.0, at - self._rest_at) * self._limiter.max_rate
        return max(0.0, self._rest_level - drained)
