"""Progress while a run goes: a live bar on a terminal, a status line in the log otherwise.

The operator of a migration watches a bar (tqdm): images done of those known so far,
bytes, rate, ETA, and the 503s and retries so far. A cron job has no terminal: it gets
one status line in the log every ten seconds instead. Both read the same snapshot of
the run's counters; neither changes what the run does.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import anyio

from exporter.logs import LOGGER_NAME
from exporter.units import format_bytes, format_duration

log = logging.getLogger(__name__)

BAR_INTERVAL = 0.5
LOG_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The run's counters at one moment."""

    total: int  # the job's images: the manifest's, and those of products listed so far
    exported: int
    skipped: int
    failed: int
    bytes: int
    requests: int  # REST requests and downloads sent
    rate_limited: int
    retried: int
    elapsed: float
    eta: float | None = None  # seconds left, as the job reckons them (None: from the rate)
    verb: str = "exported"  # what the job does to an image: "exported", "restored"

    @property
    def done(self) -> int:
        return self.exported + self.skipped + self.failed

    @property
    def rate(self) -> float:
        """Images worked on per second: exported or failed, not those already done (a
        re-run skips thousands at once, which says nothing about the pace)."""
        worked = self.exported + self.failed
        return worked / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def time_left(self) -> float | None:
        """Seconds left: the job's reckoning, else the remaining images at the pace so far."""
        remaining = self.total - self.done
        if remaining <= 0:
            return 0.0
        if self.eta is not None:
            return self.eta
        return remaining / self.rate if self.rate > 0 else None


def time_left(remaining: int, worked: int, elapsed: float, at_the_limit: float) -> float:
    """Seconds left for `remaining` images: the pace so far (`worked` in `elapsed`), but
    never less than the portal's limit allows (`at_the_limit`) — early in a run the burst
    makes the pace look faster than the limit will let it stay."""
    pace = remaining * elapsed / worked if worked else 0.0
    return max(pace, at_the_limit) if remaining > 0 else 0.0


class ProgressView(Protocol):
    """Shows snapshots every `interval` seconds, and once more at the end."""

    interval: float

    def show(self, snap: Snapshot) -> None: ...

    def close(self, snap: Snapshot) -> None: ...


class BarView:
    """A tqdm bar on the terminal; log lines print above it instead of through it."""

    interval = BAR_INTERVAL

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bar: Any = None
        self._redirect: Any = None

    def _open(self) -> Any:
        from tqdm import tqdm  # loaded only when a bar is shown
        from tqdm.contrib.logging import logging_redirect_tqdm

        self._redirect = logging_redirect_tqdm(loggers=[logging.getLogger(LOGGER_NAME)])
        self._redirect.__enter__()
        # Counts, elapsed and our own ETA and pace: tqdm's would count the images already
        # done as work, and ignore the portal's limit.
        return tqdm(
            total=0,
            unit="img",
            file=self._stream,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {postfix}]",
        )

    def show(self, snap: Snapshot) -> None:
        bar = self._bar = self._bar or self._open()
        if snap.total != bar.total:
            bar.total = snap.total
        bar.update(snap.done - bar.n)
        bar.set_postfix_str(
            f"ETA {_eta(snap)}, {snap.rate:.1f} img/s, {format_bytes(snap.bytes)}, "
            f"{snap.failed} failed, 503s {snap.rate_limited}, retries {snap.retried}",
            refresh=True,
        )

    def close(self, snap: Snapshot) -> None:
        if self._bar is None:
            return  # the run ended before the first tick: the summary says it all
        self.show(snap)
        self._bar.close()
        self._redirect.__exit__(None, None, None)


class LogView:
    """One status line in the log every ten seconds (no terminal: cron, systemd)."""

    interval = LOG_INTERVAL

    def show(self, snap: Snapshot) -> None:
        log.info(
            "progress: %d/%d images (%d %s, %d %s, %d failed), %s, "
            "%.1f images/s, ETA %s, %d requests, 503s %d, retries %d",
            snap.done,
            snap.total,
            snap.exported,
            snap.verb,
            snap.skipped,
            "already done" if snap.verb == "exported" else "skipped",
            snap.failed,
            format_bytes(snap.bytes),
            snap.rate,
            _eta(snap),
            snap.requests,
            snap.rate_limited,
            snap.retried,
        )

    def close(self, snap: Snapshot) -> None:
        """The summary at the end says it all; nothing more here."""


async def show_progress(view: ProgressView, snapshot: Callable[[], Snapshot]) -> None:
    """Show `snapshot()` every `view.interval` seconds, until cancelled."""
    while True:
        await anyio.sleep(view.interval)
        view.show(snapshot())


def _eta(snap: Snapshot) -> str:
    left = snap.time_left
    return "-" if left is None else format_duration(left)


def choose_view(
    enabled: bool, stream: TextIO | None = None, *, bar: bool = True
) -> ProgressView | None:
    """A bar on a terminal (unless not `bar`: JSON logs), status lines elsewhere, nothing
    when disabled."""
    if not enabled:
        return None
    stream = stream or sys.stderr
    return BarView(stream) if bar and stream.isatty() else LogView()


class DiscoveryFigures(Protocol):
    """What a discovery has found so far (see `exporter.portal.catalog.DiscoveryProgress`)."""

    catalogs: int
    products: int
    images: int
    requests: int


def discovery_reporter(
    enabled: bool, stream: TextIO | None = None, *, bar: bool = True
) -> Callable[[DiscoveryFigures], None] | None:
    """A counter on a terminal (unless not `bar`: JSON logs), a log line every ten seconds
    elsewhere, or nothing."""
    if not enabled:
        return None
    stream = stream or sys.stderr
    if bar and stream.isatty():
        from tqdm import tqdm

        counter = tqdm(unit=" products", file=stream, dynamic_ncols=True)

        def on_terminal(found: DiscoveryFigures) -> None:
            counter.update(found.products - counter.n)
            counter.set_postfix_str(f"{found.images} images, {found.requests} requests")

        return on_terminal
    last = [time.monotonic()]

    def in_log(found: DiscoveryFigures) -> None:
        if time.monotonic() - last[0] >= LOG_INTERVAL:
            last[0] = time.monotonic()
            log.info("discovery: %d catalogs, %d products, %d images so far, %d requests",
                     found.catalogs, found.products, found.images, found.requests)  # fmt: skip

    return in_log
