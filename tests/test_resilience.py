"""Resilience end to end: faults on the wire, kill -9, Ctrl-C, expiring links and tokens, a lock.

Every test runs a real export over loopback against the simulated portal. Nothing
waits for wall-clock time to pass: retry backoff runs on a `FakeClock`, link and token
lifetimes on a portal clock the test moves, and moments such as "after the first
download" are reached by polling the portal's counters or the output folder, or by
holding the portal's downloads behind a gate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from aiohttp import web
from aiohttp.typedefs import Handler

from exporter.cli import main
from exporter.config import Config, parse_config
from exporter.destination.base import Sink
from exporter.destination.folder import FolderDestination
from exporter.destination.index import INDEX_NAME, STATE_DIR
from exporter.jobs.export import ExportJob
from exporter.model import ProductImage, SavedFile
from exporter.simulator import (
    Catalog,
    FaultSettings,
    PortalSettings,
    RunningPortal,
    SimulatedPortal,
    Stats,
    serve,
)

from .support import (
    FakeClock,
    export_config,
    exported_files,
    index_rows,
    portal_for,
    portal_in_thread,
    raw_config,
    sidecar_of,
    write_manifest,
)

MiB = 1024 * 1024
PARTIAL = "*.b24-partial"


# Serving a simulated portal the test can steer.


def once_after_answer(
    stats: Stats, condition: Callable[[Stats], bool], action: Callable[[], None]
) -> Any:
    """A middleware that runs `action` once, right after the first answer that leaves the
    portal's stats meeting `condition` (before that answer reaches the client)."""
    fired = [False]

    @web.middleware
    async def watch(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not fired[0] and condition(stats):
            fired[0] = True
            action()
        return response

    return watch


class DownloadGate:
    """Portal-side middleware: lets `passes` downloads through (None: all), holds the rest
    until `open()`; `delay` holds back every download answer by that many real seconds."""

    def __init__(self, passes: int | None = None, delay: float = 0.0) -> None:
        self.passes = passes
        self.delay = delay
        self.loop: asyncio.AbstractEventLoop | None = None
        self._opened: asyncio.Event | None = None

    @property
    def middleware(self) -> Any:
        @web.middleware
        async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._pass(request, handler)

        return gate

    async def _pass(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if "/download" in request.path:
            if self.passes is not None and self.passes > 0:
                self.passes -= 1
            elif self.passes is not None:
                if self._opened is None:
                    self._opened = asyncio.Event()
                await self._opened.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
        return await handler(request)

    def open(self) -> None:
        """Let every download through from now on, held ones included."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:  # runs in the portal's loop, like the middleware
        self.passes = None
        if self._opened is not None:
            self._opened.set()


@contextmanager
def portal_thread(
    catalog: Catalog, settings: PortalSettings, gate: DownloadGate | None = None
) -> Iterator[RunningPortal]:
    """A portal on its own thread and loop (behind `gate`, if any)."""

    def prepare(portal: SimulatedPortal, loop: asyncio.AbstractEventLoop) -> None:
        if gate is not None:
            portal.app.middlewares.append(gate.middleware)
            gate.loop = loop

    with portal_in_thread(catalog, settings, prepare) as running:
        yield running


# Running the exporter as a process.


def write_config(tmp_path: Path, portal: RunningPortal, manifest: Path, **extra: Any) -> Path:
    raw = raw_config(portal.webhook_url, manifest, tmp_path / "out", **extra)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def start_exporter(tmp_path: Path, config: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "exporter", "-q", "run", "--config", str(config)]
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_exporter(tmp_path: Path, config: Path, name: str) -> int:
    proc = start_exporter(tmp_path, config, name)
    try:
        return proc.wait(60)
    finally:
        proc.kill()


def wait_until(
    condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until `condition` holds; fail if it takes over 30 s or the exporter exits."""
    deadline = time.monotonic() + 30
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the exporter exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def kill_9_when(tmp_path: Path, config: Path, condition: Callable[[], bool], what: str) -> None:
    """Start the exporter, wait until `condition` holds, and kill it with -9."""
    proc = start_exporter(tmp_path, config, "killed")
    try:
        wait_until(condition, what, proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()


# What is on disk.


def done_on_disk(out: Path) -> set[int]:
    """Image ids that count as done by the contract: a sidecar, and a file of its size."""
    done: set[int] = set()
    for sidecar in out.rglob("*.json"):
        if STATE_DIR in sidecar.parts or sidecar.name.startswith("."):
            continue
        try:
            document = json.loads(sidecar.read_text(encoding="utf-8"))
            image_id, size = document["productImage"]["id"], document["file"]["size"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # the report, or a sidecar being renamed into place right now
        file = sidecar.with_name(sidecar.name.removesuffix(".json"))
        if file.is_file() and file.stat().st_size == size:
            done.add(image_id)
    return done


def index_lines(out: Path) -> int:
    return len(index_rows(out / STATE_DIR))


def assert_every_file_matches_its_sidecar(out: Path, catalog: Catalog) -> set[int]:
    """No temporaries; each file has a sidecar whose size and SHA-256 are the file's, and
    its bytes are the portal's. Returns the image ids on disk."""
    assert list(out.rglob(PARTIAL)) == []
    ids: set[int] = set()
    for file in exported_files(out):
        assert file.with_name(file.name + ".json").exists(), f"{file} has no sidecar"
        data = file.read_bytes()
        sidecar = sidecar_of(file)
        image_id = sidecar["productImage"]["id"]
        assert sidecar["file"]["size"] == len(data), file
        assert sidecar["file"]["sha256"] == hashlib.sha256(data).hexdigest(), file
        assert data == catalog.image_bytes(image_id), file
        ids.add(image_id)
    return ids


def report_of(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report


def all_ids(catalog: Catalog) -> set[int]:
    return {image_id for _, image_id in catalog.pairs()}


# 1. Faults on the wire.


async def test_a_large_run_through_every_kind_of_fault_exports_every_byte(tmp_path: Path) -> None:
    catalog = Catalog.generate(products=200, images=2000, seed=21, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    faults = FaultSettings(seed=7, error_500=0.10, drop=0.05, truncate=0.05, html=0.02)
    out = tmp_path / "out"
    async with portal_for(catalog, PortalSettings(rps=None, faults=faults)) as portal:
        # About one request in five meets a fault, so twelve in a row for one request
        # happen with p ≈ 0.2**12 ≈ 4e-9 (≈ 1e-5 over the run's ~2,100 requests); the seed
        # fixes the pattern, so this run is the same every time.
        config = export_config(portal.webhook_url, manifest, out, retries={"max_attempts": 12})
        result = await ExportJob(config, clock=FakeClock()).run()
        stats = portal.stats
    assert result.exit_code == 0
    assert result.report["counts"] == {
        "total": 2000,
        "exported": 2000,
        "skipped": 0,
        "failed": 0,
        "gone": 0,
    }
    assert assert_every_file_matches_its_sidecar(out, catalog) == all_ids(catalog)
    assert result.report["requests"]["retried"] > 0
    for kind in ("500", "drop", "truncate", "html"):
        assert stats.faults[kind] > 0, f"no {kind} fault was injected: {stats.faults}"


# 2. kill -9, then a re-run that downloads exactly what was not done.


def rerun_after_kill(tmp_path: Path, config: Path, catalog: Catalog) -> set[int]:
    """Re-run into the killed run's output: it exits 0, leaves every image whole, and
    downloads exactly the images that were not done. Returns those that were done.

    The re-run's own report counts its downloads: the portal's counters would also see
    requests of the killed run still held at the portal."""
    out = tmp_path / "out"
    done_before = done_on_disk(out)
    code = run_exporter(tmp_path, config, "rerun")
    assert code == 0, (tmp_path / "rerun.log").read_text()
    assert assert_every_file_matches_its_sidecar(out, catalog) == all_ids(catalog)
    total = len(all_ids(catalog))
    report = report_of(out)
    assert report["counts"]["skipped"] == len(done_before)
    assert report["counts"]["exported"] == total - len(done_before)
    assert report["requests"]["download"] == total - len(done_before)
    return done_before


def test_kill_right_after_the_first_download_then_rerun_fetches_only_the_rest(
    tmp_path: Path,
) -> None:
    catalog = Catalog.generate(products=20, images=200, seed=31, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    gate = DownloadGate(passes=1)  # one download gets through; the others wait at the portal
    with portal_thread(catalog, PortalSettings(rps=None), gate) as portal:
        config = write_config(tmp_path, portal, manifest)
        out = tmp_path / "out"
        # Done, and recorded in the index: the moment between the sidecar and its
        # index line is the separate test of a kill right after a sidecar lands.
        kill_9_when(
            tmp_path, config, lambda: bool(done_on_disk(out)) and index_lines(out) >= 1, "1 done"
        )
        gate.open()
        done_before = rerun_after_kill(tmp_path, config, catalog)
    assert len(done_before) == 1


def test_kill_in_the_middle_of_a_run_then_rerun_fetches_only_the_rest(tmp_path: Path) -> None:
    catalog = Catalog.generate(products=30, images=300, seed=32, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    gate = DownloadGate(delay=0.02)  # downloads keep flowing, slowly enough to stop midway
    with portal_thread(catalog, PortalSettings(rps=None), gate) as portal:
        config = write_config(tmp_path, portal, manifest)
        out = tmp_path / "out"
        kill_9_when(tmp_path, config, lambda: len(done_on_disk(out)) >= 150, "half of the images")
        gate.delay = 0.0
        done_before = rerun_after_kill(tmp_path, config, catalog)
    assert 150 <= len(done_before) < 300


def test_verify_and_check_read_the_index_a_killed_run_left_in_its_write_ahead_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = Catalog.generate(products=20, images=200, seed=33, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    gate = DownloadGate(delay=0.02)
    with portal_thread(catalog, PortalSettings(rps=None), gate) as portal:
        config = write_config(tmp_path, portal, manifest)
        out = tmp_path / "out"
        kill_9_when(tmp_path, config, lambda: len(done_on_disk(out)) >= 60, "some images")
        wal = out / STATE_DIR / (INDEX_NAME + "-wal")
        assert wal.stat().st_size > 0  # the rows are in the log, not yet in the database
        done = done_on_disk(out)
        capsys.readouterr()
        assert main(["verify", "--json", str(out)]) in (0, 1)
        verified = json.loads(capsys.readouterr().out)
        # Rows may be ahead of the disk after a kill (never behind): those are missing.
        assert verified["checked"] >= len(done)
        assert all(finding["kind"] == "missing" for finding in verified["findings"])
        assert main(["check", "--config", str(config)]) in (0, 1)
        said = capsys.readouterr().out
        exported = int(re.search(r"holds an export of (\d+) images", said)[1])  # type: ignore[index]
        assert exported >= len(done)
        gate.delay = 0.0
        rerun_after_kill(tmp_path, config, catalog)


def test_kill_during_a_large_download_then_rerun_fetches_only_the_rest(tmp_path: Path) -> None:
    catalog = Catalog(seed=33)
    big = catalog.add_image(1, name="poster.png", size=64 * MiB)
    for n in range(12):
        catalog.add_image(2 + n % 3, name=f"small {n}.png", size=300 + 100 * n)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_thread(catalog, PortalSettings(rps=None)) as portal:
        config = write_config(tmp_path, portal, manifest)
        out = tmp_path / "out"

        def big_partial_growing() -> bool:
            return any(p.stat().st_size > MiB for p in out.rglob(PARTIAL) if p.exists())

        kill_9_when(tmp_path, config, big_partial_growing, "a temporary over 1 MiB")
        assert list(out.rglob(PARTIAL)) != []  # a kill -9 leaves its temporary behind
        assert big not in done_on_disk(out)
        done_before = rerun_after_kill(tmp_path, config, catalog)
    assert big not in done_before


class SimulatedKill(Exception):
    """Stands in for kill -9 at one exact moment of a run."""


async def test_an_image_whose_sidecar_landed_just_before_a_kill_is_not_fetched_again(
    tmp_path: Path,
) -> None:
    # kill -9 can land anywhere; this pins it to the moment right after the third
    # sidecar is in place, when that image counts as done by the contract.
    class KilledAfterTheThirdExport(FolderDestination):
        exports = 0

        async def commit(self, image: ProductImage, sink: Sink) -> SavedFile:
            saved = await super().commit(image, sink)
            self.exports += 1
            if self.exports == 3:
                raise SimulatedKill
            return saved

    catalog = Catalog.generate(products=2, images=10, seed=34, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        config = export_config(portal.webhook_url, manifest, out, concurrency={"downloads": 1})
        dying = KilledAfterTheThirdExport(config.output, config.portal.host)
        with pytest.raises(SimulatedKill):
            await ExportJob(config, destination=dying).run()
        done_before = done_on_disk(out)
        portal.stats.reset()
        result = await ExportJob(config).run()
        stats = portal.stats
    assert len(done_before) == 3
    assert result.exit_code == 0
    assert stats.downloads == 10 - len(done_before)
    assert result.report["counts"]["skipped"] == len(done_before)
    assert assert_every_file_matches_its_sidecar(out, catalog) == all_ids(catalog)


# 3. SIGINT and SIGTERM.


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_exits_128_plus_its_number_with_a_report_and_no_half_files(
    tmp_path: Path, signum: signal.Signals
) -> None:
    catalog = Catalog.generate(products=20, images=200, seed=41, image_size=(50_000, 400_000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    gate = DownloadGate(delay=0.02)
    with portal_thread(catalog, PortalSettings(rps=None), gate) as portal:
        config = write_config(tmp_path, portal, manifest)
        out = tmp_path / "out"
        proc = start_exporter(tmp_path, config, "interrupted")
        try:
            wait_until(lambda: len(done_on_disk(out)) >= 5, "5 images done", proc)
            proc.send_signal(signum)
            sent = time.monotonic()
            code = proc.wait(10)
            took = time.monotonic() - sent
        finally:
            proc.kill()
    assert code == 128 + signum, (tmp_path / "interrupted.log").read_text()  # 130, 143
    assert took < 2.0
    report = report_of(out)
    assert report["exitCode"] == 128 + signum
    assert report["counts"]["exported"] < 200  # it really was stopped midway
    assert report["counts"]["total"] == 200  # the whole job's, not what happened to be queued
    assert list(out.rglob(PARTIAL)) == []
    assert len(assert_every_file_matches_its_sidecar(out, catalog)) == report["counts"]["exported"]


async def test_a_signal_right_after_a_file_is_renamed_still_leaves_its_sidecar(
    tmp_path: Path,
) -> None:
    # A signal can land anywhere; this pins it to the moment right after the third file
    # got its final name, before its sidecar. An export is the file and its sidecar.
    signal_received = anyio.CancelScope()  # the CLI cancels the job's scope on a signal
    renamed = [0]

    class SignalAfterTheThirdRename(FolderDestination):
        async def open_sink(self, image: ProductImage, content_type: str) -> Sink:
            return SignalOnCommit(await super().open_sink(image, content_type))

    class SignalOnCommit:
        def __init__(self, inner: Sink) -> None:
            self.inner = inner
            self.key = inner.key

        size = property(lambda self: self.inner.size)
        sha256 = property(lambda self: self.inner.sha256)

        async def write(self, pieces: Sequence[bytes]) -> None:
            await self.inner.write(pieces)

        async def commit(self) -> SavedFile:
            saved = await self.inner.commit()
            renamed[0] += 1
            if renamed[0] == 3:
                signal_received.cancel()
            return saved

        def discard(self) -> None:
            self.inner.discard()

    catalog = Catalog.generate(products=2, images=10, seed=42, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        config = export_config(portal.webhook_url, manifest, out)
        destination = SignalAfterTheThirdRename(config.output, config.portal.host)
        job = ExportJob(config, destination=destination)
        with signal_received:
            await job.run()
    assert job.result is not None
    assert job.result.exit_code == 130
    assert report_of(out)["exitCode"] == 130
    assert len(assert_every_file_matches_its_sidecar(out, catalog)) >= 3


# 4. Download links that expire between metadata and download.


async def test_links_expired_before_their_download_are_fetched_afresh_once(
    tmp_path: Path,
) -> None:
    catalog = Catalog.generate(products=10, images=120, seed=51, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    now = [1000.0]  # the portal's clock stands still unless the test moves it

    def two_seconds_pass() -> None:
        now[0] += 2.0

    settings = PortalSettings(rps=None, faults=FaultSettings(link_ttl=1.0))
    portal = SimulatedPortal(catalog, settings, clock=lambda: now[0])
    # Every link the first batch carries is dead before the client can use it.
    after_first_batch = once_after_answer(portal.stats, lambda s: s.batches >= 1, two_seconds_pass)
    portal.app.middlewares.append(after_first_batch)
    async with serve(portal) as running:
        config = export_config(running.webhook_url, manifest, tmp_path / "out")
        result = await ExportJob(config, clock=FakeClock()).run()
    stats = portal.stats
    assert result.exit_code == 0
    assert result.report["counts"] == {
        "total": 120,
        "exported": 120,
        "skipped": 0,
        "failed": 0,
        "gone": 0,
    }
    assert stats.expired_links > 0
    assert stats.by_method["catalog.productImage.get"] == stats.expired_links
    assert stats.download_requests == 120 + stats.expired_links
    assert set(stats.download_by_image.values()) == {1}
    assert assert_every_file_matches_its_sidecar(tmp_path / "out", catalog) == all_ids(catalog)


# 5. OAuth: an access token that expires mid-run, and one that cannot be refreshed.


def oauth_config(running: RunningPortal, manifest: Path, out: Path, **oauth: Any) -> Config:
    settings = running.portal.settings
    raw = raw_config("unused", manifest, out)
    raw["portal"] = {
        "oauth": {
            "portal_url": running.base_url,
            "access_token": settings.access_token,
            "refresh_token": settings.refresh_token,
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "token_url": running.token_url,
            **oauth,
        }
    }
    return parse_config(raw, base_dir=out.parent, env={})


async def test_an_access_token_expiring_mid_run_is_refreshed_once_and_saved(
    tmp_path: Path,
) -> None:
    catalog = Catalog.generate(products=10, images=120, seed=52, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    now = [1000.0]

    def token_lifetime_passes() -> None:
        now[0] += 100.0

    settings = PortalSettings(rps=None, faults=FaultSettings(token_ttl=100.0))
    portal = SimulatedPortal(catalog, settings, clock=lambda: now[0])
    after_ten = once_after_answer(portal.stats, lambda s: s.downloads >= 10, token_lifetime_passes)
    portal.app.middlewares.append(after_ten)
    token_file = tmp_path / "tokens.json"
    async with serve(portal) as running:
        config = oauth_config(running, manifest, tmp_path / "out", token_file=str(token_file))
        result = await ExportJob(config, clock=FakeClock()).run()
    stats = portal.stats
    assert result.exit_code == 0
    assert result.report["counts"] == {
        "total": 120,
        "exported": 120,
        "skipped": 0,
        "failed": 0,
        "gone": 0,
    }
    assert stats.token_refreshes == 1
    assert stats.expired_tokens > 0
    assert json.loads(token_file.read_text(encoding="utf-8")) == {
        "access_token": portal.current_access_token,
        "refresh_token": portal.current_refresh_token,
    }
    assert token_file.stat().st_mode & 0o777 == 0o600
    # Links signed with the old token were refused at download and fetched afresh.
    refused_downloads = stats.download_requests - stats.downloads
    assert refused_downloads > 0
    assert stats.by_method["catalog.productImage.get"] >= refused_downloads
    assert assert_every_file_matches_its_sidecar(tmp_path / "out", catalog) == all_ids(catalog)


async def test_an_expired_token_with_a_wrong_refresh_token_aborts_with_exit_3(
    tmp_path: Path,
) -> None:
    catalog = Catalog.generate(products=4, images=40, seed=53, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    now = [1000.0]
    settings = PortalSettings(rps=None, faults=FaultSettings(token_ttl=1.0))
    portal = SimulatedPortal(catalog, settings, clock=lambda: now[0])
    now[0] += 2.0  # the configured access token has expired before the run starts
    async with serve(portal) as running:
        config = oauth_config(running, manifest, tmp_path / "out", refresh_token="not-the-one")
        result = await ExportJob(config, clock=FakeClock()).run()
    stats = portal.stats
    assert result.exit_code == 3
    assert result.report["exitCode"] == 3
    assert stats.token_refreshes == 0
    assert stats.refused_refreshes >= 1
    assert stats.downloads == 0
    assert exported_files(tmp_path / "out") == []


# 6. Two runs into one output.


def test_a_second_run_into_the_same_output_is_refused_naming_the_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = Catalog.generate(products=4, images=40, seed=61, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    gate = DownloadGate(passes=3)  # the first run is mid-way, holding the lock, until opened
    with portal_thread(catalog, PortalSettings(rps=None), gate) as portal:
        config = write_config(tmp_path, portal, manifest)
        out = tmp_path / "out"
        first = start_exporter(tmp_path, config, "first")
        try:
            wait_until(lambda: len(done_on_disk(out)) >= 3, "3 images done", first)
            second = main(["run", "--config", str(config)])
            err = capsys.readouterr().err
            assert first.poll() is None  # still running while the second was refused
            gate.open()
            first_code = first.wait(60)
        finally:
            first.kill()
    assert second == 2
    assert str(out / STATE_DIR / "lock") in err
    assert f"pid {first.pid}" in err
    assert first_code == 0, (tmp_path / "first.log").read_text()
    assert assert_every_file_matches_its_sidecar(out, catalog) == all_ids(catalog)
    assert report_of(out)["counts"]["exported"] == 40
