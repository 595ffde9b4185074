"""One retry policy for every loop that asks the portal again.

`RetryPolicy` is a frozen value built once from the `retries:` configuration;
`RetryPolicy.next_step` is a pure function from an error and what this call has been
through so far (`Tries`) to what the loop does next. The loops hold the mechanism —
the client's REST calls and downloads, the metadata fetcher's batch rounds, the
catalog walk's pages, the export's renewal of a refused download link — and the
policy alone decides whether and how long:

* a transient failure (5xx, an HTML page, a timeout, a dropped connection) is asked
  again after an exponential backoff with full jitter, up to `max_attempts` sends;
* 503 `QUERY_LIMIT_EXCEEDED` slows the limiter down, and 429 `OPERATION_TIME_LIMIT`
  waits for the method's time budget; neither is a failed attempt, but both are bounded
  so a portal that never lets up cannot hold a call for ever;
* `expired_token` refreshes the credentials once, a refused download link is renewed
  with fresh metadata once, a command the portal will not run inside a batch is sent on
  its own, and one that answered "not found" inside a batch is asked once more alone;
* anything else is given up at once: the error is the answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from exporter.config import RetryConfig
from exporter.errors import (
    BatchRefusedError,
    ExpiredTokenError,
    NotFoundError,
    OperationTimeLimitError,
    RateLimitedError,
    StaleLinkError,
    TransientError,
    TransportError,
)

# What a request ends with when the policy gave up asking again: not the job's refusal,
# not the item's own failure, but a portal that did not answer in time.
GAVE_UP = (TransientError, RateLimitedError, OperationTimeLimitError)


class Action(enum.Enum):
    """What a loop does with a failed call."""

    RETRY = "retry"  # ask again after a backoff below `Step.backoff`
    SLOW_DOWN = "slow down"  # the portal's bucket is full: slow the limiter, ask again
    WAIT = "wait"  # the method's time budget is spent: ask again once it frees up
    REFRESH = "refresh"  # the credentials expired: refresh them, ask again
    RENEW_LINK = "renew link"  # a download link was refused: fresh metadata, fetch again
    ALONE = "alone"  # refused inside a batch: send it as a request of its own
    TRY_ALONE = "try alone"  # "not found" inside a batch: ask once more on its own
    GIVE_UP = "give up"  # the error is the call's outcome


@dataclass(frozen=True, slots=True)
class Tries:
    """What one call has been through so far, by kind of failure."""

    failures: int = 0  # transient failures
    rate_limited: int = 0  # 503 QUERY_LIMIT_EXCEEDED answers
    waits: int = 0  # 429 OPERATION_TIME_LIMIT answers
    refreshes: int = 0  # credential refreshes
    renewals: int = 0  # download links renewed
    alone: int = 0  # times asked again on its own after "not found" in a batch


@dataclass(frozen=True, slots=True)
class Step:
    """The policy's answer: the action, the call's tries after it, and how long to wait.

    `backoff` is a ceiling: a loop that waits sleeps a random time below it (full
    jitter), so many calls failing together do not come back together.
    """

    action: Action
    tries: Tries
    backoff: float = 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a failing call is tried again; see the module docstring."""

    max_attempts: int = 6  # sends of one call that fails transiently
    backoff_base: float = 0.5  # seconds; the ceiling doubles with each failure
    backoff_cap: float = 30.0  # the ceiling never grows beyond this
    max_rate_limited: int = 100  # 503s for one call before it is given up
    max_operating_waits: int = 20  # 429s for one call before it is given up
    max_refreshes: int = 1  # credential refreshes for one call
    max_renewals: int = 1  # fresh download links for one image
    max_alone: int = 1  # a batched "not found" asked again alone (a portal quirk, §5c)

    @classmethod
    def from_config(cls, retries: RetryConfig) -> RetryPolicy:
        """The policy the `retries:` section asks for."""
        return cls(max_attempts=retries.max_attempts)

    def backoff(self, failures: int) -> float:
        """The ceiling of the wait after `failures` failures: doubling, up to `backoff_cap`."""
        return min(self.backoff_cap, self.backoff_base * 2.0**failures)

    def next_step(self, error: Exception, tries: Tries, *, idempotent: bool = True) -> Step:
        """What to do after `error` ended a send of a call that has been through `tries`.

        A call that is not `idempotent` (an upload: the portal has no idempotency key) is
        asked again only after failures that prove it was not carried out: the portal's
        refusals (503, 429, an expired token) and a connection never made. After any
        other failure its outcome is unknown, and giving up hands that to the caller.
        """
        if not idempotent and isinstance(error, TransientError) and not _never_sent(error):
            return Step(Action.GIVE_UP, tries)
        if isinstance(error, RateLimitedError):
            step = _counted(tries, "rate_limited", self.max_rate_limited, Action.SLOW_DOWN)
            return replace(step, backoff=self.backoff(step.tries.rate_limited))
        if isinstance(error, OperationTimeLimitError):
            return _counted(tries, "waits", self.max_operating_waits, Action.WAIT)
        if isinstance(error, ExpiredTokenError):
            return _counted(tries, "refreshes", self.max_refreshes, Action.REFRESH)
        if isinstance(error, StaleLinkError):
            return _counted(tries, "renewals", self.max_renewals, Action.RENEW_LINK)
        if isinstance(error, BatchRefusedError):
            return Step(Action.ALONE, tries)
        if isinstance(error, NotFoundError):
            # In one batch, images of a second product catalog may answer "not found";
            # the same call alone does not. A call that was alone already is exhausted.
            return _counted(tries, "alone", self.max_alone, Action.TRY_ALONE)
        if isinstance(error, TransientError):
            # max_attempts counts sends: the last failure allowed is the one before it.
            step = _counted(tries, "failures", self.max_attempts - 1, Action.RETRY)
            return replace(step, backoff=self.backoff(step.tries.failures))
        return Step(Action.GIVE_UP, tries)


def _never_sent(error: TransientError) -> bool:
    """Whether a transient failure happened before the request could reach the portal."""
    return isinstance(error, TransportError) and error.code == "CONNECT_FAILED"


def _counted(tries: Tries, kind: str, bound: int, action: Action) -> Step:
    """Count one more failure of `kind`: `action` while there are at most `bound` of them."""
    counted = replace(tries, **{kind: getattr(tries, kind) + 1})
    return Step(action if getattr(counted, kind) <= bound else Action.GIVE_UP, counted)
