"""What a run did, for the cron job: counts, requests, failures, and the exit code.

The report is written at the end of every run that started (also a failed, aborted or
interrupted one), atomically, with every text passed through the redactor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.atomic import write_atomic_sync
from exporter.errors import EXIT_USAGE
from exporter.jsontext import indented_json
from exporter.model import ImageRef, RequestCounts
from exporter.redact import redact

log = logging.getLogger(__name__)

MAX_LISTED = 10_000  # images of each kind a report lists by name


@dataclass(frozen=True, slots=True)
class Failure:
    """One image (or product, when `image_id` is None) that could not be exported."""

    product_id: int
    image_id: int | None
    error: str
    description: str

    @classmethod
    def of(cls, product_id: int, image_id: int | None, error: BaseException) -> Failure:
        """A failure from an error of the tree (its code and description when it has them)."""
        code = getattr(error, "code", type(error).__name__)
        description = getattr(error, "description", str(error))
        return cls(product_id, image_id, str(code), str(description))

    def as_dict(self) -> dict[str, Any]:
        """As the report lists it, redacted."""
        return {
            "productId": self.product_id,
            "id": self.image_id,
            "error": redact(self.error),
            "description": redact(self.description),
        }


@dataclass
class Tally:
    """Running counts of a job, and what it changed in the backup image by image (the
    first `MAX_LISTED` of each kind; `cut` says when there were more)."""

    total: int = 0
    exported: int = 0
    skipped: int = 0
    failed: int = 0
    gone: int = 0  # images found gone from the portal by this run
    bytes: int = 0
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what was left out, not per image
    notices: list[str] = field(default_factory=list)  # what fell short, with nothing left out
    exported_list: list[dict[str, Any]] = field(default_factory=list)
    gone_list: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, failure: Failure) -> None:
        self.failed += 1
        self.failures.append(failure)

    def export(self, ref: ImageRef, key: str, size: int) -> None:
        self.exported += 1
        self.bytes += size
        if len(self.exported_list) < MAX_LISTED:
            self.exported_list.append(_change(ref, key))

    def find_gone(self, ref: ImageRef, key: str, since: str) -> None:
        self.gone += 1
        if len(self.gone_list) < MAX_LISTED:
            self.gone_list.append({**_change(ref, key), "since": since})

    @property
    def cut(self) -> dict[str, bool]:
        """Which lists hold fewer images than the run changed."""
        return {
            "exported": self.exported > len(self.exported_list),
            "gone": self.gone > len(self.gone_list),
        }


def _change(ref: ImageRef, key: str) -> dict[str, Any]:
    return {"productId": ref.product_id, "id": ref.image_id, "file": key}


def build_report(
    *,
    started_at: datetime,
    finished_at: datetime,
    portal: str,
    tally: Tally,
    counts: RequestCounts,
    exit_code: int,
    aborted_by: str | None = None,
    downloads: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report document of the spec, plus the exit code and why a run stopped early.

    `downloads` is what the run knew about downloads and the request budget
    (`DownloadRule.report`): the setting, and with `auto` what was learned and why.
    """
    report: dict[str, Any] = {
        "startedAt": _iso(started_at),
        "finishedAt": _iso(finished_at),
        "portal": portal,
        "counts": {
            "total": tally.total,
            "exported": tally.exported,
            "skipped": tally.skipped,
            "failed": tally.failed,
            "gone": tally.gone,
        },
        "requests": {
            "rest": counts.rest,
            "batch": counts.batch,
            "download": counts.download,
            "rateLimited": counts.rate_limited,
            "retried": counts.retried,
        },
        "failures": [failure.as_dict() for failure in tally.failures],
        "changes": {
            "exported": tally.exported_list,
            "gone": tally.gone_list,
            "cut": tally.cut,
        },
        "bytes": tally.bytes,
        "exitCode": exit_code,
    }
    if downloads is not None:
        report["downloadsShareLimit"] = downloads
    if tally.warnings:
        report["warnings"] = [redact(warning) for warning in tally.warnings]
    if tally.notices:
        report["notices"] = [redact(notice) for notice in tally.notices]
    if aborted_by is not None:
        report["abortedBy"] = redact(aborted_by)
    return report


def usage_error_report(portal: str, reason: str) -> dict[str, Any]:
    """The report of a run that could not start (exit 2): nothing counted, nothing sent."""
    now = datetime.now(UTC)
    return build_report(
        started_at=now,
        finished_at=now,
        portal=portal,
        tally=Tally(),
        counts=RequestCounts(),
        exit_code=EXIT_USAGE,
        aborted_by=reason,
    )


def report_bytes(report: dict[str, Any]) -> bytes:
    """The report as the file holds it."""
    return (indented_json(report) + "\n").encode("utf-8")


def write_report(path: Path, report: dict[str, Any]) -> bool:
    """Write the report atomically; a failure to write is logged, not raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_sync(path, report_bytes(report))
    except OSError as exc:
        log.error("cannot write the report %s: %s", path, exc.strerror)
        return False
    return True


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
