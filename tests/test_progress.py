"""Progress: a bar on a terminal, status lines in the log otherwise, nothing when asked."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from exporter.jobs.export import ExportJob
from exporter.jobs.progress import BarView, LogView, Snapshot, choose_view, time_left

from .support import catalog_of, export_config, portal_for, write_manifest

SNAP = Snapshot(
    total=200, exported=90, skipped=10, failed=2, bytes=12_345_678, requests=150,
    rate_limited=1, retried=3, elapsed=10.0,
)  # fmt: skip


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_a_pipe_gets_status_lines() -> None:
    assert isinstance(choose_view(True, Terminal()), BarView)
    assert isinstance(choose_view(True, io.StringIO()), LogView)
    assert choose_view(False, Terminal()) is None


def test_the_bar_shows_counts_bytes_and_trouble_so_far() -> None:
    screen = Terminal()
    bar = BarView(screen)
    bar.show(SNAP)
    bar.close(SNAP)
    text = screen.getvalue()
    assert "102/200" in text
    assert "12.3 MB" in text
    assert "2 failed" in text
    assert "503s 1" in text
    assert "retries 3" in text


def test_a_status_line_says_where_the_run_is(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="exporter"):
        LogView().show(SNAP)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("progress: 102/200 images (90 exported, 10 already done, 2 failed)")
    assert "12.3 MB" in line
    assert "9.2 images/s" in line  # exported and failed ones: those done before cost no time
    assert "ETA 11s" in line  # 98 left at that pace
    assert "503s 1, retries 3" in line


class Recorder:
    """A view that keeps what it was shown."""

    interval = 0.01

    def __init__(self) -> None:
        self.shown: list[Snapshot] = []
        self.closed: Snapshot | None = None

    def show(self, snap: Snapshot) -> None:
        self.shown.append(snap)

    def close(self, snap: Snapshot) -> None:
        self.closed = snap


async def test_a_run_shows_its_progress_and_ends_with_the_final_counts(tmp_path: Path) -> None:
    catalog = catalog_of(5, 40)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    view = Recorder()
    async with portal_for(catalog) as portal:
        config = export_config(portal.webhook_url, manifest, tmp_path / "out")
        result = await ExportJob(config, progress=view).run()
    assert result.exit_code == 0
    assert view.closed is not None
    assert (view.closed.total, view.closed.exported, view.closed.done) == (40, 40, 40)
    assert view.closed.requests == 41 + 2  # the catalogs listed, the products described
    done = [snap.done for snap in view.shown]
    assert done == sorted(done)  # never goes backwards


async def test_the_total_is_the_whole_jobs_from_the_first_frame(tmp_path: Path) -> None:
    catalog = catalog_of(5, 40)
    product = catalog.product_ids()[0]
    pairs = [pair for pair in catalog.pairs() if pair[0] != product]
    manifest = write_manifest(tmp_path / "m.csv", [*pairs, *pairs[:7], (product, None)])
    view = Recorder()
    async with portal_for(catalog) as portal:
        config = export_config(portal.webhook_url, manifest, tmp_path / "out")
        await ExportJob(config, progress=view).run()
    assert view.shown, "no frame was shown"
    assert all(snap.total >= len(pairs) for snap in view.shown)  # never only what is queued
    assert view.closed is not None and view.closed.total == 40  # and the product's images


def test_time_left_follows_the_pace_but_never_beats_the_limit() -> None:
    assert time_left(remaining=100, worked=100, elapsed=10.0, at_the_limit=1.0) == 10.0
    # Early in a run the burst makes 100 images in 1 s look like the pace; the portal's
    # limit says the 1,000 left take at least 50 s.
    assert time_left(remaining=1000, worked=100, elapsed=1.0, at_the_limit=50.0) == 50.0
    assert time_left(remaining=0, worked=100, elapsed=1.0, at_the_limit=50.0) == 0.0


def test_images_done_before_the_run_do_not_make_a_wild_pace() -> None:
    resumed = Snapshot(
        total=100_010, exported=0, skipped=100_000, failed=0, bytes=0, requests=0,
        rate_limited=0, retried=0, elapsed=0.2,
    )  # fmt: skip
    assert resumed.rate == 0.0
    assert resumed.time_left is None  # not known yet, rather than "ETA 0s"
