"""The error taxonomy: which Bitrix24 answer means retry, slow down, skip the image or stop."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from exporter.errors import (
    REMEDIES,
    AccessDeniedError,
    BatchRefusedError,
    ConfigError,
    ExpiredTokenError,
    FatalPortalError,
    ImageError,
    Interrupted,
    LockedError,
    ManifestError,
    NotFoundError,
    OperationTimeLimitError,
    OutputError,
    PortalError,
    PortalUnavailableError,
    RateLimitedError,
    TransientError,
    TransportError,
    classify_portal_error,
    exit_status,
    foreign_error_page,
    garbled_answer,
    unfit_answer,
    with_remedy,
)
from exporter.portal.transport import from_transport

SECRET = "SECRETCODE"
WEBHOOK_CALL = f"https://example.bitrix24.com/rest/1/{SECRET}/batch"
DOWNLOAD = (
    "https://example.bitrix24.com/rest/download.json?auth=ACCESSTOKEN1234"
    f"&token=catalog%7C{SECRET}%7Csig"
)


def classified(status: int | None, code: object, description: object = "") -> PortalError:
    return classify_portal_error(status, code, description)


# Rate and time limits: branch on the code, never on the status.


def test_query_limit_exceeded_is_a_rate_limit() -> None:
    error = classified(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
    assert type(error) is RateLimitedError


def test_overload_limit_is_fatal_although_it_is_also_a_503() -> None:
    error = classified(503, "OVERLOAD_LIMIT", "REST API is blocked due to overload")
    assert type(error) is FatalPortalError


def test_operation_time_limit_is_a_pause_of_that_method() -> None:
    text = "Method is blocked due to operation time limit."
    assert type(classified(429, "OPERATION_TIME_LIMIT", text)) is OperationTimeLimitError


def test_operation_time_limit_inside_a_batch_is_a_pause_too() -> None:
    assert type(classified(None, "OPERATION_TIME_LIMIT")) is OperationTimeLimitError


@pytest.mark.parametrize("code", ["expired_token", "EXPIRED_TOKEN", "Expired_Token"])
def test_expired_token_in_any_case_asks_for_a_refresh(code: str) -> None:
    error = classified(401, code, "The access token provided has expired")
    assert type(error) is ExpiredTokenError


# Refusals of the whole job.


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "NO_AUTH_FOUND"),
        (403, "INVALID_CREDENTIALS"),
        (401, "INVALID_CREDENTIALS"),
        (403, "ACCESS_DENIED"),
        (403, "insufficient_scope"),
        (401, "insufficient_scope"),
        (None, "insufficient_scope"),
        (403, "user_access_error"),
        (500, "PORTAL_DELETED"),
        (403, "PORTAL_DELETED"),
        (410, "PORTAL_DELETED"),
        (402, "PAYMENT_REQUIRED"),
        (400, "invalid_grant"),
    ],
)
def test_refusals_of_the_whole_job_are_fatal(status: int | None, code: str) -> None:
    assert type(classified(status, code)) is FatalPortalError


def test_fatal_codes_are_matched_case_insensitively() -> None:
    assert type(classified(401, "no_auth_found")) is FatalPortalError
    assert type(classified(403, "INSUFFICIENT_SCOPE")) is FatalPortalError


def test_an_unknown_code_on_401_or_403_is_fatal() -> None:
    assert type(classified(401, "SOMETHING_NEW")) is FatalPortalError
    assert type(classified(403, "")) is FatalPortalError


# Server faults: worth a retry.


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "INTERNAL_SERVER_ERROR"),
        (500, "ERROR_UNEXPECTED_ANSWER"),
        (None, "INTERNAL_SERVER_ERROR"),
        (502, "SOMETHING_NEW"),
        (504, ""),
        (500, 0),
    ],
)
def test_server_faults_are_transient(status: int | None, code: object) -> None:
    assert type(classified(status, code)) is TransientError


def test_a_5xx_without_a_code_names_the_status() -> None:
    assert classified(502, "").code == "HTTP_502"


# Per-image failures.


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, 0), (None, 0), (400, "0"), (400, 100), (None, 100), (None, ""), (None, None)],
    ids=["0", "0-in-batch", "0-as-text", "100", "100-in-batch", "empty-in-batch", "null"],
)
def test_catalog_numeric_codes_fail_only_that_image(status: int | None, code: object) -> None:
    assert type(classified(status, code, "Could not save image.")) is ImageError


@pytest.mark.parametrize("description", ["Product was not found", "Image does not exist"])
@pytest.mark.parametrize(("status", "code"), [(400, 0), (None, 0), (400, "0")])
def test_code_zero_saying_not_found_is_a_not_found_image(
    status: int | None, code: object, description: str
) -> None:
    error = classified(status, code, description)
    assert type(error) is NotFoundError
    assert isinstance(error, ImageError)  # still that image's failure, unless it is backed up


def test_code_zero_for_another_failure_is_not_taken_for_not_found() -> None:
    assert type(classified(400, 0, "Could not save image.")) is ImageError


@pytest.mark.parametrize("code", [200040300010, "200040300010"])
@pytest.mark.parametrize("status", [400, None])
def test_catalog_access_denied_fails_that_image_as_access_denied(
    status: int | None, code: object
) -> None:
    error = classified(status, code, "Access Denied")
    assert type(error) is AccessDeniedError
    assert isinstance(error, ImageError)  # one product, not the job


# Batch refusals.


@pytest.mark.parametrize("code", ["ERROR_BATCH_METHOD_NOT_ALLOWED", "ERROR_BATCH_LENGTH_EXCEEDED"])
def test_a_command_the_batch_refuses_must_be_sent_alone(code: str) -> None:
    assert type(classified(None, code)) is BatchRefusedError


def test_a_classified_error_keeps_code_description_and_status() -> None:
    error = classified(400, 0, "Image does not exist")
    assert (error.code, error.description, error.status) == ("0", "Image does not exist", 400)
    assert "Image does not exist" in str(error)


# Transport failures: typed, and never carrying the URL.


def request_info(url: str) -> aiohttp.RequestInfo:
    return aiohttp.RequestInfo(URL(url), "POST", CIMultiDictProxy(CIMultiDict()), URL(url))


def connection_key(host: str) -> aiohttp.client_reqrep.ConnectionKey:
    return aiohttp.client_reqrep.ConnectionKey(host, 443, True, True, None, None, None)


def test_response_error_message_drops_the_url() -> None:
    exc = aiohttp.ClientResponseError(request_info(WEBHOOK_CALL), (), status=500, message="x")
    assert SECRET in str(exc)  # aiohttp's own message does carry it
    error = from_transport(exc)
    assert isinstance(error, TransportError)
    assert SECRET not in str(error)
    assert "example.bitrix24.com" not in str(error)


def test_connect_failure_is_a_transient_connect_error() -> None:
    exc = aiohttp.ClientConnectorError(
        connection_key("example.bitrix24.com"), ConnectionRefusedError(111, "Connection refused")
    )
    error = from_transport(exc)
    assert isinstance(error, TransientError)
    assert error.code == "CONNECT_FAILED"
    assert "Connection refused" in error.description


def test_invalid_url_message_drops_the_url() -> None:
    exc = aiohttp.InvalidURL(DOWNLOAD)
    assert SECRET in str(exc)
    error = from_transport(exc)
    assert SECRET not in str(error)
    assert "ACCESSTOKEN1234" not in str(error)


def test_body_write_failure_message_drops_the_url() -> None:
    # Exactly what aiohttp raises when the socket dies while the body is sent
    # (client_reqrep.py, ClientRequest.write_bytes): the URL rides in strerror.
    exc = aiohttp.ClientOSError(32, f"Can not write request body for {WEBHOOK_CALL}")
    error = from_transport(exc)
    assert isinstance(error, TransportError)
    assert SECRET not in str(error)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (TimeoutError(), "TIMEOUT"),
        (aiohttp.ServerTimeoutError(f"Timeout on reading data from {DOWNLOAD}"), "TIMEOUT"),
        (aiohttp.ServerDisconnectedError(), "CONNECTION_DROPPED"),
        (aiohttp.ClientPayloadError(f"Response payload is not completed {DOWNLOAD}"), "SHORT_BODY"),
    ],
    ids=["timeout", "read-timeout", "dropped", "short-body"],
)
def test_transport_failures_are_transient_and_typed(exc: BaseException, code: str) -> None:
    error = from_transport(exc)
    assert isinstance(error, TransientError)
    assert error.code == code
    assert SECRET not in str(error)


def test_an_empty_code_inside_a_batch_does_not_invent_an_http_status() -> None:
    # `"error": ""` is what some methods send per command; there is no HTTP status.
    error = classified(None, "", "Not found")
    assert type(error) is ImageError
    assert "None" not in error.code
    assert "None" not in str(error)


# Exit codes travel with the errors; one function turns a run's end into the status.


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConfigError("bad key"), 2),
        (LockedError("held"), 2),
        (ManifestError("bad rows"), 2),
        (FatalPortalError("NO_AUTH_FOUND"), 3),
        (OutputError("disk full"), 4),
        (PortalUnavailableError("100 in a row"), 4),
        (Interrupted(signal.SIGTERM), 143),
        (Interrupted(signal.SIGINT), 130),
        (ImageError("0"), 1),
        (KeyboardInterrupt(), 130),
        (asyncio.CancelledError(), 130),
        (RuntimeError("a bug"), 1),
    ],
)
def test_a_run_stopped_by_an_error_exits_with_the_code_its_class_carries(
    error: BaseException, status: int
) -> None:
    assert exit_status(error) == status


def test_a_finished_run_exits_0_or_1_by_whether_anything_failed() -> None:
    assert exit_status() == 0
    assert exit_status(failed=True) == 1


@pytest.mark.parametrize(
    ("helper", "family"),
    [
        (lambda: garbled_answer(200, "an HTML page"), TransientError),
        (lambda: garbled_answer(None, "no entry for this command"), TransientError),
        (lambda: unfit_answer("another image"), ImageError),
        (lambda: foreign_error_page(404), FatalPortalError),
    ],
)
def test_every_unexpected_answer_has_the_one_code_and_the_class_its_intent_needs(
    helper: Any, family: type[PortalError]
) -> None:
    error = helper()
    assert error.code == "ERROR_UNEXPECTED_ANSWER"
    assert type(error) is family


def readme_remedies() -> dict[str, str]:
    """The troubleshooting table of the README: each code (upper case) and its remedy."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Troubleshooting: Bitrix24 error codes")[1].split("\n## ")[0]
    remedies = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        if row.startswith("| `") and len(cells) == 4:
            for code in re.findall(r"`([^`]+)`", cells[0]):
                remedies[code.upper()] = re.sub(r"[`*]", "", cells[3])
    return remedies


@pytest.mark.parametrize("code", sorted(REMEDIES))
def test_the_remedy_an_error_message_gives_is_the_readmes(code: str) -> None:
    assert REMEDIES[code] == readme_remedies()[code]


def test_a_refusal_is_told_with_what_to_do_about_it() -> None:
    refusal = classify_portal_error(401, "insufficient_scope", "catalog scope missing")
    assert with_remedy(refusal) == (
        "insufficient_scope: catalog scope missing (HTTP 401); "
        "what to do: edit the webhook, tick catalog"
    )


def test_an_error_without_a_known_remedy_is_told_as_it_is() -> None:
    assert with_remedy(OutputError("disk full")) == "disk full"
