"""The one retry policy: from an error and what a call went through to the next step."""

from __future__ import annotations

import pytest

from exporter.config import RetryConfig
from exporter.errors import (
    AccessDeniedError,
    BatchRefusedError,
    DownloadError,
    ExpiredTokenError,
    FatalPortalError,
    ImageError,
    OperationTimeLimitError,
    RateLimitedError,
    StaleLinkError,
    TransientError,
    TransportError,
)
from exporter.portal.retry import Action, RetryPolicy, Step, Tries


def steps(policy: RetryPolicy, error: Exception, times: int) -> list[Step]:
    """The steps of a call that meets the same error `times` times in a row."""
    tries = Tries()
    taken = []
    for _ in range(times):
        step = policy.next_step(error, tries)
        taken.append(step)
        tries = step.tries
    return taken


def test_the_policy_is_built_from_the_retries_section() -> None:
    assert RetryPolicy.from_config(RetryConfig(max_attempts=9)).max_attempts == 9
    assert RetryPolicy.from_config(RetryConfig(max_attempts=6)) == RetryPolicy()


def test_a_transient_failure_is_retried_until_max_attempts_sends() -> None:
    taken = steps(RetryPolicy(max_attempts=4), TransientError("HTTP_500"), 4)
    assert [s.action for s in taken] == [Action.RETRY] * 3 + [Action.GIVE_UP]
    assert taken[-1].tries.failures == 4


def test_a_dropped_connection_is_transient_too() -> None:
    step = RetryPolicy().next_step(TransportError("CONNECTION_DROPPED"), Tries())
    assert step.action is Action.RETRY


def test_one_attempt_means_no_retry() -> None:
    step = RetryPolicy(max_attempts=1).next_step(TransientError("TIMEOUT"), Tries())
    assert step.action is Action.GIVE_UP


def test_backoff_doubles_per_failure_up_to_its_cap() -> None:
    policy = RetryPolicy(max_attempts=100)
    ceilings = [s.backoff for s in steps(policy, TransientError("HTTP_502"), 8)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_rate_limited_slows_down_and_is_bounded_apart_from_failures() -> None:
    policy = RetryPolicy(max_attempts=2, max_rate_limited=3)
    taken = steps(policy, RateLimitedError("QUERY_LIMIT_EXCEEDED"), 4)
    assert [s.action for s in taken] == [Action.SLOW_DOWN] * 3 + [Action.GIVE_UP]
    assert taken[-1].tries.failures == 0  # a 503 is not a failed attempt
    assert taken[0].backoff == 1.0  # for a call that does not wait for the limiter


def test_operation_time_limit_waits_for_the_budget_a_bounded_number_of_times() -> None:
    taken = steps(RetryPolicy(max_operating_waits=20), OperationTimeLimitError("X"), 21)
    assert [s.action for s in taken] == [Action.WAIT] * 20 + [Action.GIVE_UP]


def test_an_expired_token_is_refreshed_once() -> None:
    taken = steps(RetryPolicy(), ExpiredTokenError("expired_token"), 2)
    assert [s.action for s in taken] == [Action.REFRESH, Action.GIVE_UP]


def test_a_refused_download_link_is_renewed_once() -> None:
    taken = steps(RetryPolicy(), StaleLinkError("HTTP_403", "refused"), 2)
    assert [s.action for s in taken] == [Action.RENEW_LINK, Action.GIVE_UP]


def test_a_command_refused_inside_a_batch_goes_alone_without_counting() -> None:
    step = RetryPolicy().next_step(BatchRefusedError("ERROR_BATCH_METHOD_NOT_ALLOWED"), Tries())
    assert step.action is Action.ALONE
    assert step.tries == Tries()


@pytest.mark.parametrize(
    "error",
    [
        ImageError("0", "Product was not found"),
        AccessDeniedError("200040300010"),
        FatalPortalError("NO_AUTH_FOUND"),
        DownloadError("HTTP_400", "refused"),
    ],
)
def test_anything_else_is_given_up_at_once(error: Exception) -> None:
    assert RetryPolicy().next_step(error, Tries()).action is Action.GIVE_UP


def test_kinds_of_failure_are_counted_apart() -> None:
    policy = RetryPolicy(max_attempts=2)
    tries = policy.next_step(RateLimitedError("QUERY_LIMIT_EXCEEDED"), Tries()).tries
    tries = policy.next_step(OperationTimeLimitError("OPERATION_TIME_LIMIT"), tries).tries
    step = policy.next_step(TransientError("HTTP_500"), tries)
    assert step.action is Action.RETRY  # the first failure, whatever came before
    assert step.tries == Tries(failures=1, rate_limited=1, waits=1)


@pytest.mark.parametrize(
    "error",
    [
        TransientError("HTTP_500"),
        TransportError("TIMEOUT"),
        TransportError("CONNECTION_DROPPED"),
        TransportError("SHORT_BODY"),
    ],
)
def test_an_upload_whose_outcome_is_unknown_is_never_sent_again(error: Exception) -> None:
    step = RetryPolicy().next_step(error, Tries(), idempotent=False)
    assert step.action is Action.GIVE_UP  # the caller finds out what happened instead


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (TransportError("CONNECT_FAILED"), Action.RETRY),  # it never left
        (RateLimitedError("QUERY_LIMIT_EXCEEDED"), Action.SLOW_DOWN),  # refused, not run
        (OperationTimeLimitError("OPERATION_TIME_LIMIT"), Action.WAIT),
        (ExpiredTokenError("expired_token"), Action.REFRESH),
    ],
)
def test_an_upload_the_portal_refused_unrun_is_sent_again(error: Exception, action: Action) -> None:
    assert RetryPolicy().next_step(error, Tries(), idempotent=False).action is action
