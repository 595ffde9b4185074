"""The export job from start to end: checks, the lock, the portal client, the pipeline, the report.

`ExportJob` is one `run`: it validates the manifest before any request, locks the
output folder, builds the one client every request goes through, runs the pipeline
with progress shown, and writes the report however the run ends. The stages
themselves are in `exporter.jobs.pipeline`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from exporter.config import Config
from exporter.destination.base import Destination
from exporter.errors import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConfigError,
    FatalPortalError,
    Interrupted,
    OutputError,
    PortalUnavailableError,
    UsageError,
    exit_status,
    with_remedy,
)
from exporter.jobs.dryrun import seconds_at_limit
from exporter.jobs.pipeline import Pipeline
from exporter.jobs.progress import ProgressView, Snapshot, time_left
from exporter.jobs.report import Tally, build_report, report_bytes, write_report
from exporter.jobs.session import destination_for, http_session, portal_client
from exporter.jobs.state import RunState, validate_and_count
from exporter.model import RequestCounts
from exporter.portal.client import PortalClient
from exporter.portal.downloads import DownloadRule
from exporter.portal.ratelimit import BucketStore, Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """How a run ended."""

    exit_code: int
    report: dict[str, Any]
    report_path: Path
    aborted_by: str | None = None
    seconds: float = 0.0  # wall time of the run

    def summary(self) -> str:
        """The lines printed at the end of a run."""
        counts = self.report["counts"]
        requests = self.report["requests"]
        lines = [
            f"images: {counts['total']} total, {counts['exported']} exported, "
            f"{counts['skipped']} already done, {counts['failed']} failed",
            f"requests: {requests['rest']} REST ({requests['batch']} batches), "
            f"{requests['download']} downloads, {requests['rateLimited']} rate-limited, "
            f"{requests['retried']} retried",
        ]
        learned = self.report.get("downloadsShareLimit", {})
        if learned.get("learnedNow"):
            verdict = "count" if learned["counted"] else "do not count"
            lines.append(f"learned: downloads {verdict} in the request budget ({learned['why']})")
        elif learned.get("doubt"):
            lines.append(f"downloads waited for the request budget: {learned['doubt']}")
        if self.exit_code >= EXIT_INTERRUPTED:
            lines.append("interrupted: the next run resumes where this one stopped")
        lines.append(f"report: {self.report_path}")
        return "\n".join(lines)

    def summary_fields(self) -> dict[str, Any]:
        """The summary's figures, for a JSON log line: the report's counts and requests."""
        fields = {
            "counts": self.report["counts"],
            "requests": self.report["requests"],
            "exitCode": self.exit_code,
            "report": str(self.report_path),
            "seconds": round(self.seconds, 3),
        }
        if self.aborted_by:
            fields["abortedBy"] = self.aborted_by
        return fields


class ExportJob:
    """One run of the export over one manifest into one output folder."""

    def __init__(
        self,
        config: Config,
        *,
        force: bool = False,
        clock: Clock | None = None,
        budget: BucketStore | None = None,
        progress: ProgressView | None = None,
        discover: bool = False,
        recheck: bool = False,
        destination: Destination | None = None,
    ) -> None:
        """`budget` holds the limiter's state; by default a file shared by every exporter
        process on this machine that talks to the same portal. `progress` shows the
        run's counters as it goes. `discover` exports every image of the catalog,
        found by walking it, instead of the manifest's. `recheck` asks the portal about
        done images named by pairs too (metadata only), to find those gone.
        `destination` is where the files land; by default the one `output` configures."""
        self.config = config
        self.force = force
        self.discover = discover
        self.recheck = recheck
        self.result: ExportResult | None = None
        self._clock = clock
        self._budget = budget
        self._progress = progress
        self._destination = destination or destination_for(config)
        self._signal: int | None = None  # the signal that stopped the run, if one did

    def interrupt(self, signum: int) -> None:
        """A signal is about to cancel the run: its exit status says which (128 + N)."""
        self._signal = signum

    async def run(self) -> ExportResult:
        """Check, open the destination, export, write the report; returns how it ended.

        The report is written however the run ends, also when it could not start. A
        `UsageError` (nothing was requested) is raised after it is written, and so is a
        cancellation (a signal); `self.result` is set before either propagates.
        """
        config = self.config
        started = datetime.now(UTC)
        began = time.monotonic()
        tally = Tally()
        state = RunState(tally)
        counts = RequestCounts()
        stopped_by: BaseException | None = None
        opened = False
        snapshot: Callable[[], Snapshot] | None = None
        downloads: DownloadRule | None = None
        try:
            self._check_manifest(state)
            await self._destination.open()
            opened = True
            async with http_session(config) as session:
                client = self._client(session)
                counts, downloads = client.counts, client.downloads
                pipeline = Pipeline(
                    config, client, self._destination, state,
                    force=self.force, discover=self.discover, recheck=self.recheck,
                )  # fmt: skip

                def snapshot() -> Snapshot:
                    return _snapshot(state, client, config, time.monotonic() - began)

                await pipeline.run(self._progress, snapshot)
            stopped_by = state.verdict()
            if stopped_by is not None:
                log.error("aborted: %s", with_remedy(stopped_by))
        except STOPS_THE_RUN as exc:
            stopped_by = exc
            log.error("aborted: %s", with_remedy(exc))
        except BaseException as exc:
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            stopped_by = Interrupted(self._signal) if cancelled and self._signal else exc
            raise
        finally:
            if self._progress is not None and snapshot is not None:
                self._progress.close(snapshot())  # the bar ends its line before the summary
            tally.total = state.total  # the whole job's, also when it stopped early
            exit_code = exit_status(stopped_by, failed=state.failed)
            aborted_by = _aborted_by(stopped_by)
            report = build_report(
                started_at=started,
                finished_at=datetime.now(UTC),
                portal=config.portal.host,
                tally=tally,
                counts=counts,
                exit_code=exit_code,
                aborted_by=aborted_by,
                downloads=None if downloads is None else downloads.report(),
            )
            if not write_report(config.report, report) and exit_code == EXIT_OK:
                # A nightly run whose report cannot land has not told the truth: not 0.
                exit_code = report["exitCode"] = EXIT_INCOMPLETE
            if opened:
                with anyio.CancelScope(shield=True):
                    await self._destination.keep_report(report_bytes(report))
                    await self._destination.close()
            seconds = time.monotonic() - began
            self.result = ExportResult(exit_code, report, config.report, aborted_by, seconds)
        return self.result

    def _check_manifest(self, state: RunState) -> None:
        """Validate the manifest before any request (a whole-catalog run needs none), and
        count the images it names, so the job's total is known from the start."""
        config = self.config
        if self.discover:
            log.info("exporting every catalog image of %s into %s", config.portal.host,
                     config.output.where)  # fmt: skip
        elif config.manifest is None:
            raise ConfigError("no manifest: set `manifest` in the config or pass --manifest")
        else:
            rows, images = validate_and_count(config.manifest)
            state.expect(images)
            log.info("exporting %d manifest rows from %s into %s", rows, config.portal.host,
                     config.output.where)  # fmt: skip

    def _client(self, session: aiohttp.ClientSession) -> PortalClient:
        return portal_client(self.config, session, clock=self._clock, budget=self._budget)


# Errors that end a run early on purpose: the report and the exit code say why.
STOPS_THE_RUN = (FatalPortalError, OutputError, PortalUnavailableError)


def _aborted_by(stopped_by: BaseException | None) -> str | None:
    """Why a run stopped early, for the report: None when it finished or was interrupted."""
    if not isinstance(stopped_by, Exception) or isinstance(stopped_by, Interrupted):
        return None
    if isinstance(stopped_by, (*STOPS_THE_RUN, UsageError)):
        return str(stopped_by)
    return f"internal error: {type(stopped_by).__name__}"


def _snapshot(state: RunState, client: PortalClient, config: Config, elapsed: float) -> Snapshot:
    """The run's counters now, and the time left: the pace so far, but never less than
    the portal's limit allows for what is left (as the dry run reckons it)."""
    tally, counts = state.tally, client.counts
    total = state.total
    remaining = total - tally.exported - tally.skipped - tally.failed
    # Downloads count while it is not known whether they do: the longer estimate.
    counted = remaining if client.downloads.counted is not False else 0
    at_limit = seconds_at_limit(
        remaining / config.batch_size + counted, config.rate_limit, client.free_tokens
    )
    return Snapshot(
        total=total,
        exported=tally.exported,
        skipped=tally.skipped,
        failed=tally.failed,
        bytes=tally.bytes,
        requests=counts.rest + counts.download,
        rate_limited=counts.rate_limited,
        retried=counts.retried,
        elapsed=elapsed,
        eta=time_left(remaining, tally.exported + tally.failed, elapsed, at_limit),
    )
