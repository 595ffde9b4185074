"""What a run did, for the cron job: counts, requests, failures, and the exit code.

The report is written at the end of every run that started (also a failed, aborted or
interrupted one), atomically, with every text passed through the redactor.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.atomic import write_atomic_sync
from exporter.errors import EXIT_USAGE
from exporter.model import RequestCounts
from exporter.redact import redact

log = logging.getLogger(__name__)


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


@dataclass
class Tally:
    """Running counts of a job."""

    total: int = 0
    exported: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what was left out, not per image

    def fail(self, failure: Failure) -> None:
        self.failed += 1
        self.failures.append(failure)


def build_report(
    *,
    started_at: datetime,
    finished_at: datetime,
    portal: str,
    tally: Tally,
    counts: RequestCounts,
    exit_code: int,
    aborted_by: str | None = None,
) -> dict[str, Any]:
    """The report document of the spec, plus the exit code and why a run stopped early."""
    report: dict[str, Any] = {
        "startedAt": _iso(started_at),
        "finishedAt": _iso(finished_at),
        "portal": portal,
        "counts": {
            "total": tally.total,
            "exported": tally.exported,
            "skipped": tally.skipped,
            "failed": tally.failed,
        },
        "requests": {
            "rest": counts.rest,
            "batch": counts.batch,
            "download": counts.download,
            "rateLimited": counts.rate_limited,
            "retried": counts.retried,
        },
        "failures": [
            {
                "productId": f.product_id,
                "id": f.image_id,
                "error": redact(f.error),
                "description": redact(f.description),
            }
            for f in tally.failures
        ],
        "bytes": tally.bytes,
        "exitCode": exit_code,
    }
    if tally.warnings:
        report["warnings"] = [redact(warning) for warning in tally.warnings]
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


def write_report(path: Path, report: dict[str, Any]) -> bool:
    """Write the report atomically; a failure to write is logged, not raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(report, ensure_ascii=False, indent=2) + "\n"
        write_atomic_sync(path, text.encode("utf-8"))
    except OSError as exc:
        log.error("cannot write the report %s: %s", path, exc.strerror)
        return False
    return True


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
