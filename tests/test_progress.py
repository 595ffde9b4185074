"""Progress: a bar on a terminal, status lines in the log otherwise, nothing when asked."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from exporter.jobs.export import ExportJob
from exporter.jobs.progress import BarView, LogView, Snapshot, choose_view

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
    assert "10.2 images/s" in line
    assert "ETA 10s" in line
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
    assert view.closed.requests == 41
    done = [snap.done for snap in view.shown]
    assert done == sorted(done)  # never goes backwards
