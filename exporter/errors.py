"""Every error the exporter raises, as one tree, and the one place that classifies them.

The tree tells a caller what to do with a failure:

* `UsageError` — the job cannot start (configuration, manifest, lock); exit 2.
* `PortalError` — the portal answered with an error, split by what the exporter does
  about it: retry (`TransientError`), slow down (`RateLimitedError`), wait for a
  method's time budget (`OperationTimeLimitError`), refresh the token
  (`ExpiredTokenError`), send alone (`BatchRefusedError`), record the image and go on
  (`ImageError`), or stop the run (`FatalPortalError`, exit 3).
* `DownloadError` / `OutputError` — fetching or saving one file went wrong.

Each class carries the exit code a run stopped by it ends with, and `exit_status` is
the one place that turns how a run ended into the process's exit status.
`classify_portal_error` maps an HTTP status and a Bitrix24 error code onto the tree
(the portal part maps its HTTP library's exceptions, at its edge), so no other module
branches on codes; `REMEDIES` says, by code, what the user can do about a refusal.
Messages never carry URLs: a webhook URL and every `downloadUrl` contain credentials.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from typing import ClassVar

# Exit statuses of the process (the README's table).
EXIT_OK = 0
EXIT_FAILURES = 1  # the run finished, some images failed
EXIT_USAGE = 2  # configuration, manifest or lock: nothing was requested
EXIT_ABORTED = 3  # the portal refused the job as a whole
EXIT_INCOMPLETE = 4  # the backup did not complete: the output or the portal gave out
EXIT_INTERRUPTED = 130  # SIGINT; any signal N is 128 + N (SIGTERM: 143)


class ExporterError(Exception):
    """Base of every error the exporter raises on purpose."""

    exit_code: ClassVar[int] = EXIT_FAILURES  # of a run this error stops


# Usage errors: raised before the first request; the run exits with 2.


class UsageError(ExporterError):
    """The job cannot start as asked; nothing was requested from the portal."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A configuration key, value or command-line flag is invalid."""


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """One invalid manifest row: where it is and what is wrong with it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ManifestError(UsageError):
    """The manifest cannot be used; `problems` names bad rows, `omitted` counts the rest."""

    def __init__(
        self, summary: str, problems: tuple[ManifestProblem, ...] = (), omitted: int = 0
    ) -> None:
        lines = [summary, *(f"  {problem}" for problem in problems)]
        if omitted:
            lines.append(f"  ... and {omitted} more invalid row{'s' if omitted != 1 else ''}")
        super().__init__("\n".join(lines))
        self.summary = summary
        self.problems = problems
        self.omitted = omitted


class LockedError(UsageError):
    """Another run holds the lock of the output directory."""


# Errors answered by the portal.


class PortalError(ExporterError):
    """The portal answered with an error code (or with something that is not an answer)."""

    def __init__(self, code: str, description: str = "", status: int | None = None) -> None:
        text = f"{code}: {description}" if description else code
        super().__init__(f"{text} (HTTP {status})" if status is not None else text)
        self.code = code
        self.description = description
        self.status = status

    @property
    def remedy(self) -> str | None:
        """What the user can do about this code, when the troubleshooting table knows."""
        return REMEDIES.get(self.code.upper())


class TransientError(PortalError):
    """A failure worth retrying: 5xx, an HTML error page, a timeout, a dropped connection."""


class TransportError(TransientError):
    """The HTTP exchange itself failed (connect, timeout, connection cut, short body)."""


class RateLimitedError(PortalError):
    """HTTP 503 `QUERY_LIMIT_EXCEEDED`: the portal's request bucket is full; slow down."""

    paced: bool = True  # whether it took a token (the limiter has slowed down for it)


class OperationTimeLimitError(PortalError):
    """HTTP 429 `OPERATION_TIME_LIMIT`: this method's time budget is spent until a reset."""


class ExpiredTokenError(PortalError):
    """HTTP 401 `expired_token`: the OAuth access token must be refreshed."""

    stale_auth: dict[str, str] | None = None  # the credentials the refused request carried


class BatchRefusedError(PortalError):
    """The portal would not run a command inside `batch`; it must be sent on its own."""


class RequestTooLargeError(PortalError):
    """HTTP 413: the request's body is more than the portal (or a proxy) takes; send less."""


class ImageError(PortalError):
    """This one image cannot be exported (not found, no access); record it and go on."""


class AccessDeniedError(ImageError):
    """`200040300010`: no right to read this product (fatal when it is every product)."""


class NotFoundError(ImageError):
    """`0` "Product was not found" / "Image does not exist": the portal has no such image
    (an image already backed up is then gone, not failed)."""


class FatalPortalError(PortalError):
    """The portal refuses the job as a whole (credentials, scope, plan, block); exit 3."""

    exit_code = EXIT_ABORTED


# Errors of a single download or of the local disk.


class DownloadError(ExporterError):
    """A file could not be fetched intact; `code` goes into the report."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class StaleLinkError(DownloadError):
    """The portal refused a `downloadUrl` (401/403/404): fresh metadata may fix it."""


class OutputError(ExporterError):
    """Writing under the output directory failed (disk full, read-only, not a folder)."""

    exit_code = EXIT_INCOMPLETE


class PortalUnavailableError(ExporterError):
    """The portal stopped answering: image after image failed transiently with no success
    between, or nothing it was asked got an answer."""

    exit_code = EXIT_INCOMPLETE


class Interrupted(ExporterError):
    """A signal stopped the run; it exits with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


# The classification of portal answers.

_RATE_LIMIT = "QUERY_LIMIT_EXCEEDED"
_OPERATION_LIMIT = "OPERATION_TIME_LIMIT"
_EXPIRED_TOKEN = "EXPIRED_TOKEN"
_TRANSIENT = frozenset({"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER"})
_BATCH_REFUSED = frozenset({"ERROR_BATCH_METHOD_NOT_ALLOWED", "ERROR_BATCH_LENGTH_EXCEEDED"})
_ACCESS_DENIED = "200040300010"
# `0` is also "any other failure": only these descriptions say the thing is not there.
_NOT_FOUND = "0"
_NOT_FOUND_WORDS = ("not found", "does not exist")
# Refusals that would repeat for every image: credentials, rights, scope, plan, blocks.
_FATAL = frozenset(
    {
        "NO_AUTH_FOUND",
        "INVALID_CREDENTIALS",
        "ACCESS_DENIED",
        "INSUFFICIENT_SCOPE",
        "INVALID_SCOPE",
        "USER_ACCESS_ERROR",
        "PORTAL_DELETED",
        "OVERLOAD_LIMIT",
        "PAYMENT_REQUIRED",
        "INVALID_TOKEN",
        "INVALID_GRANT",
        "INVALID_CLIENT",
        "ERROR_OAUTH",
        "APPLICATION_NOT_FOUND",
        "WRONG_AUTH_TYPE",
        "AUTHORIZATION_ERROR",
        "ALLOWED_ONLY_INTRANET_USER",
        "ACCESS_ERROR",
        "INVALID_REQUEST",
        "ERROR_METHOD_NOT_FOUND",
        "METHOD_CONFIRM_WAITING",
        "METHOD_CONFIRM_DENIED",
        "WRONG_ENCODING",
    }
)


# What to do when the portal refuses the job as a whole: the troubleshooting table of the
# README, by error code (upper case, as Bitrix24 spells codes either way).
REMEDIES = {
    "NO_AUTH_FOUND": "copy the webhook URL again from Bitrix24",
    "INSUFFICIENT_SCOPE": "edit the webhook, tick catalog",
    "200040300010": "use an administrator's webhook, or grant catalog read rights",
    "INVALID_CREDENTIALS": "use an administrator's webhook, or grant catalog read rights",
    "ACCESS_DENIED": "REST needs a commercial plan",
    "USER_ACCESS_ERROR": "give the app's user access",
    "OVERLOAD_LIMIT": "contact Bitrix24 support",
    "EXPIRED_TOKEN": "OAuth: set token_file so refreshed tokens are kept",
    "INVALID_GRANT": "authorize the app again, store the new pair in token_file",
    "PAYMENT_REQUIRED": "renew the portal's subscription",
    "PORTAL_DELETED": "check the portal's address",
    "PORTAL_MOVED": "put the new address in webhook_url",
}


def with_remedy(error: BaseException) -> str:
    """An error as the user reads it: what went wrong, then what to do when that is known."""
    remedy = error.remedy if isinstance(error, PortalError) else None
    return f"{error}; what to do: {remedy}" if remedy else str(error)


def classify_portal_error(
    status: int | None, code: object, description: object = ""
) -> PortalError:
    """Map an error answer (HTTP status, `error`, `error_description`) onto the tree.

    Branches on the code, never on the status alone: `QUERY_LIMIT_EXCEEDED` and
    `OVERLOAD_LIMIT` are both 503, and Bitrix24 codes come in upper or lower case.
    `status` is None for a command that failed inside a `batch`.
    """
    text = "" if code is None else str(code)
    key = text.upper()
    desc = "" if description is None else str(description)
    if key == _RATE_LIMIT:
        return RateLimitedError(text, desc, status)
    if key == _OPERATION_LIMIT:
        return OperationTimeLimitError(text, desc, status)
    if key == _EXPIRED_TOKEN:
        return ExpiredTokenError(text, desc, status)
    if key in _FATAL:
        return FatalPortalError(text, desc, status)
    if key in _BATCH_REFUSED:
        return BatchRefusedError(text, desc, status)
    if key in _TRANSIENT or (status is not None and status >= 500):
        return TransientError(text or f"HTTP_{status}", desc, status)
    if key == _ACCESS_DENIED:
        return AccessDeniedError(text, desc, status)
    if status in (401, 403):
        # An auth refusal with a code we do not know still refuses every request.
        return FatalPortalError(text or f"HTTP_{status}", desc, status)
    if key == _NOT_FOUND and any(words in desc.lower() for words in _NOT_FOUND_WORDS):
        return NotFoundError(text, desc, status)
    # Numeric codes of catalog methods (`0` for other failures too, `100` bad parameter)
    # and anything else a single call can fail with: record the image and go on.
    return ImageError(text or (f"HTTP_{status}" if status is not None else "ERROR"), desc, status)


# Answers that are not what the method returns ("ERROR_UNEXPECTED_ANSWER"), by what
# they mean for the run: ask again, fail this image, or stop.

UNEXPECTED_ANSWER = "ERROR_UNEXPECTED_ANSWER"


def garbled_answer(status: int | None, what: str) -> TransientError:
    """An answer cut short or mangled on the way (an HTML page, JSON without its result):
    asking again may get the real one. `status` is None for a command inside a batch."""
    return TransientError(UNEXPECTED_ANSWER, what, status)


def unfit_answer(what: str) -> ImageError:
    """A well-formed answer that does not fit what was asked (fields missing, another
    image, a page that does not move on): that image or product fails, the run goes on."""
    return ImageError(UNEXPECTED_ANSWER, what)


def foreign_error_page(status: int) -> FatalPortalError:
    """A 4xx page that is no Bitrix24 answer at all: the address is wrong for every request."""
    problem = "a non-JSON error page; is the portal address right?"
    return FatalPortalError(UNEXPECTED_ANSWER, problem, status)


def primary_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception that stopped a task group: fatal ones first, cancellation last."""
    flat: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            flat.append(exc)

    walk(group)
    # Cancellation is a BaseException, so it is chosen only when nothing else is there.
    for preferred in (FatalPortalError, UsageError, OutputError, Exception):
        for exc in flat:
            if isinstance(exc, preferred):
                return exc
    return flat[0] if flat else group


def exit_status(stopped_by: BaseException | None = None, *, failed: bool = False) -> int:
    """The process's exit status for how a run ended.

    `stopped_by` is what ended it early: an error of the tree carries its code, a
    signal is 128 + its number (Ctrl-C without one: 130), anything else is a bug (1).
    A run that finished is 1 when anything `failed`, else 0.
    """
    if stopped_by is None:
        return EXIT_FAILURES if failed else EXIT_OK
    if isinstance(stopped_by, Interrupted):
        return 128 + stopped_by.signum
    if isinstance(stopped_by, ExporterError):
        return stopped_by.exit_code
    if isinstance(stopped_by, KeyboardInterrupt | asyncio.CancelledError):
        return EXIT_INTERRUPTED
    return EXIT_FAILURES
