"""Benchmarks of b24-image-exporter against its simulated portal. Prints figures, asserts nothing.

    python bench/run.py rate --images 2000 --rps 20 --burst 50
    python bench/run.py rate --images 2000 --rps 20 --burst 50 --competitor 0.3
    python bench/run.py rate --images 2000 --rps 20 --burst 50 --processes 2
    python bench/run.py rate --images 500 --rps 20 --operating-cost 0.05 \\
        --operating-limit 5 --operating-window 10
    python bench/run.py rate --images 100000 --size 200-400 --rps 0 --no-baseline
    python bench/run.py throughput --images 200 --size 5M --parallel 8
    python bench/run.py restore --images 2000 --size 20K-200K --rps 20 --burst 50
    python bench/run.py s3 --images 200 --size 5M --parallel 8
    python bench/run.py auto --images-free 1500 --images-counted 700 --rps 20 --burst 50
    python bench/run.py peer --images 3000 --size 2k-20k --rps 20   # needs the bench extra
    python bench/run.py memory --images 100000 --size 200-400

Every mode first compiles the exporter to bytecode, as `pip install` does, so that no run
pays for compiling it.
`rate` starts the simulated portal with the given limit, runs the exporter against it
(as a separate process, so its wall time and peak memory are its own) and, in the same
run, a naive client (one `get` per image, one request at a time, no batch), and prints
one row for each, compared with the ideal: the time the portal's limit allows for the
requests the job strictly needs. `throughput` leaves downloads out of the portal's
limit and compares download throughput with curl fetching the same links with the same
parallelism, and with curl followed by `sync` (the exporter fsyncs every file; curl
leaves its files in the page cache), and with the least an aiohttp client does that keeps
the same promise about the bytes (stream, hash, write, fsync each file: `aiohttp loop`).
Each round also prints the CPU seconds per GB of
the exporter, of curl, and of the simulated portal serving each: on a small machine
the three share the same cores; and the bound for any client that fsyncs each file:
its start-up plus the time the disk takes to make the same bytes durable. `restore`
exports a simulated portal's images, then uploads the export into a fresh target that
has the same products and none of the images: the exporter's `restore`, the same
request bodies sent again without a limit (the bytes floor), and a naive client (one
`add` per image, one request at a time), each a process of its own; it prints each
row against the ideal the limit allows and the floor, and checks every image arrived
once, byte for byte. `s3` exports into a local SeaweedFS (tests/seaweed.py) and, in
the same round, copies the same files from a local folder into the same server with
`rclone copy` (Debian's rclone) as the reference: MiB/s, CPU seconds per GB, peak RSS.
`peer` runs the same job (small images, downloads outside the limit) with the exporter
and with a short script on fast_bitrix24 (bench/peer_fast_bitrix24.py, the `bench`
extra), each a process of its own, exports on tmpfs where /dev/shm is: wall, CPU seconds
and CPU milliseconds per image of each, and their ratios.
`memory` exports tiny images from a portal without a limit (downloads not counted) and
samples the exporter's resident memory as images are done: RSS at the first image, the
peak, and the growth per image done; then it runs the same job again, every image done,
and prints how long that re-run took and how many requests it sent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import compileall
import contextlib
import hashlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.typedefs import Handler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.s3_clients import rclone_env
from exporter.config import MAX_BATCH_SIZE
from exporter.destination.index import STATE_DIR
from exporter.destination.sidecar import SIDECAR_SUFFIX
from exporter.portal.upload import DEFAULT_BUDGET, base64_size
from exporter.simulator import (
    Catalog,
    PortalSettings,
    RunningPortal,
    SimulatedPortal,
    serve_in_thread,
)
from tests.seaweed import ACCESS_KEY as SEAWEED_ACCESS_KEY
from tests.seaweed import REGION as SEAWEED_REGION
from tests.seaweed import SECRET_KEY as SEAWEED_SECRET_KEY
from tests.seaweed import SeaweedFS

BATCH = MAX_BATCH_SIZE  # commands per batch: the ideal packs every one full
UNLIMITED = {"requests_per_second": 100_000, "burst": 100_000}


def stats_of(portal: RunningPortal) -> dict[str, Any]:
    return json.loads(json.dumps(portal.stats.as_dict()))


async def aiohttp_loop(urls_file: Path, out: Path, parallel: int, referer: str) -> None:
    """The least a client on aiohttp does with a large download and still keeps the
    exporter's promise about the bytes: stream each body, hash it, write it, fsync it."""
    import aiohttp

    urls = urls_file.read_text().split()
    headers = {"User-Agent": "aiohttp-loop/1.0", "Referer": referer}
    gate = asyncio.Semaphore(parallel)

    async def one(session: aiohttp.ClientSession, number: int, url: str) -> None:
        async with gate, session.get(url, headers=headers) as answer:
            answer.raise_for_status()
            digest = hashlib.sha256()
            fd = os.open(out / str(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                async for piece, _ in answer.content.iter_chunks():
                    digest.update(piece)
                    os.write(fd, piece)
                await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)
            digest.hexdigest()

    out.mkdir()
    async with aiohttp.ClientSession(read_bufsize=1024 * 1024) as session:
        await asyncio.gather(*(one(session, n, url) for n, url in enumerate(urls)))


def delta(after: dict[str, Any], before: dict[str, Any], key: str) -> int:
    value = after.get(key, 0)
    if isinstance(value, dict):
        return int(sum(value.values()) - sum(before.get(key, {}).values()))
    return int(value - before.get(key, 0))


# Processes, timed, with their peak memory.


@dataclass
class Finished:
    wall: float
    rss_mb: float
    exit_code: int
    cpu: float = 0.0  # user + system seconds of the process


def run_processes(commands: list[list[str]], env: dict[str, str]) -> list[Finished]:
    start = time.monotonic()
    procs = [subprocess.Popen(cmd, env=env) for cmd in commands]
    done: dict[int, Finished] = {}
    while len(done) < len(procs):
        pid, status, usage = os.wait4(-1, 0)
        for index, proc in enumerate(procs):
            if proc.pid == pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                done[index] = Finished(
                    time.monotonic() - start,
                    usage.ru_maxrss / 1024,
                    proc.returncode,
                    usage.ru_utime + usage.ru_stime,
                )
    return [done[i] for i in range(len(procs))]


# A child's ru_maxrss is at least its parent's resident size when it was spawned (Linux
# keeps the high-water mark of the address space it replaces at exec). Where this
# process holds much (the simulated portals' images), a bare interpreter starts the
# process to be measured and reports its wall time, CPU and peak memory.
MEASURE = """\
import json, os, sys, time
began = time.monotonic()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump([time.monotonic() - began, usage.ru_maxrss / 1024,
               os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime], out)
"""


def run_measured(command: list[str], env: dict[str, str], result: Path) -> Finished:
    """One process, started by a bare interpreter: its own wall time, CPU and peak RSS."""
    subprocess.run([sys.executable, "-S", "-c", MEASURE, str(result), *command], env=env)
    wall, rss_mb, exit_code, cpu = json.loads(result.read_text())
    return Finished(wall, rss_mb, exit_code, cpu)


def exporter_command(config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "exporter",
        "-q",
        "--log-format",
        "json",
        "run",
        "--config",
        str(config),
    ]


def write_config(
    path: Path,
    portal: RunningPortal,
    manifest: Path,
    out: Path,
    args: argparse.Namespace,
    share_downloads: bool | None,
) -> Path:
    limit = (
        {"requests_per_second": args.rps, "burst": args.burst} if args.rps > 0 else dict(UNLIMITED)
    )
    raw = {
        "portal": {"webhook_url": portal.webhook_url},
        "manifest": str(manifest),
        "output": {"dir": str(out)},
        "rate_limit": {
            **limit,
            "downloads_share_limit": "auto" if share_downloads is None else share_downloads,
        },
        "concurrency": {"downloads": args.concurrency},
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def write_manifest(path: Path, pairs: list[tuple[int, int]]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("productId,id\n")
        out.writelines(f"{p},{i}\n" for p, i in pairs)
    return path


# The table.


@dataclass
class Row:
    label: str
    images: int
    wall: float
    ideal: float | None
    rest: int
    batches: int
    commands: int
    refused_503: int
    refused_429: int
    download_bytes: int
    rss_mb: float
    exit_codes: str

    def cells(self) -> list[str]:
        eff = f"{self.ideal / self.wall:.3f}" if self.ideal and self.wall else "-"
        fill = f"{self.commands / self.batches:.1f}" if self.batches else "-"
        return [
            self.label,
            str(self.images),
            f"{self.wall:.1f}",
            f"{self.ideal:.1f}" if self.ideal is not None else "-",
            eff,
            f"{self.rest / self.images:.3f}" if self.images else "-",
            fill,
            str(self.refused_503),
            str(self.refused_429),
            f"{self.download_bytes / 1e6 / self.wall:.1f}" if self.wall else "-",
            f"{self.rss_mb:.0f}",
            self.exit_codes,
        ]


HEADERS = [
    "run",
    "images",
    "wall s",
    "ideal s",
    "efficiency",
    "REST/image",
    "batch fill",
    "503s",
    "429s",
    "MB/s",
    "peak RSS MB",
    "exit",
]


def print_table(rows: list[Row], notes: list[str]) -> None:
    print_rows([HEADERS, *(row.cells() for row in rows)])
    for note in notes:
        print(note)


def print_rows(table: list[list[str]]) -> None:
    """A header line, a rule, then the rows: the first column left, the others right."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for n, line in enumerate(table):
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def ideal_seconds(args: argparse.Namespace, images: int, counted: bool) -> float | None:
    """What the portal allows for the requests the job strictly needs.

    The request rate bounds it; so does the operating-time budget of
    `catalog.productImage.get` when the simulator charges for each call.
    """
    if args.rps <= 0:
        return None
    needed = math.ceil(images / BATCH) + (images if counted else 0)
    available = args.rps * (1 - args.competitor)
    by_rate = max(0.0, needed - args.burst) / available
    if not args.operating_cost:
        return by_rate
    spend = images * args.operating_cost  # seconds of execution time the gets cost
    by_operating = max(0.0, spend - args.operating_limit) / (
        args.operating_limit / args.operating_window
    )
    return max(by_rate, by_operating)


# The rate benchmark.


def size_range(text: str) -> tuple[int, int]:
    def one(part: str) -> int:
        units = {"k": 1_000, "K": 1_024, "m": 1_000_000, "M": 1_048_576, "G": 1_073_741_824}
        return int(float(part[:-1]) * units[part[-1]]) if part[-1] in units else int(part)

    low, _, high = text.partition("-")
    return one(low), one(high or low)


def portal_settings(args: argparse.Namespace, count_downloads: bool) -> PortalSettings:
    extra: dict[str, Any] = {}
    if args.competitor:
        extra["competitor_share"] = args.competitor
    if args.operating_cost:
        extra.update(
            operating_cost=args.operating_cost,
            operating_limit=args.operating_limit,
            operating_window=args.operating_window,
        )
    return PortalSettings(
        rps=args.rps if args.rps > 0 else None,
        burst=args.burst,
        count_downloads=count_downloads,
        **extra,
    )


def bench_rate(args: argparse.Namespace) -> None:
    lo, hi = size_range(args.size)
    catalog = Catalog.generate(
        products=max(1, args.images // 5), images=args.images, seed=args.seed, image_size=(lo, hi)
    )
    counted = not args.downloads_uncounted
    pairs = catalog.pairs()
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="b24-bench-") as scratch_name:
        scratch = Path(scratch_name)
        env = {**os.environ, "XDG_CACHE_HOME": str(scratch / "cache")}
        with serve_in_thread(catalog, portal_settings(args, counted)) as portal:
            # The exporter, as one process or several sharing the portal.
            parts = [pairs[i :: args.processes] for i in range(args.processes)]
            commands = []
            for n, part in enumerate(parts):
                manifest = write_manifest(scratch / f"m{n}.csv", part)
                config = write_config(
                    scratch / f"c{n}.yaml",
                    portal,
                    manifest,
                    scratch / f"out{n}",
                    args,
                    share_downloads=counted,
                )
                commands.append(exporter_command(config))
            before = stats_of(portal)
            finished = run_processes(commands, env)
            after = stats_of(portal)
            label = "exporter" if args.processes == 1 else f"exporter x{args.processes}"
            rows.append(row_from(label, len(pairs), finished, before, after, args, counted))
            failed = sum(
                count_failures(scratch / f"out{n}" / "report.json") for n in range(len(parts))
            )
            sent = delta(after, before, "rest_requests") + delta(after, before, "download_requests")
            refused = delta(after, before, "rate_limited")
            notes.append(
                f"exporter: {failed} images failed; {sent} requests (REST and downloads), "
                f"{refused} of them 503 ({refused / max(sent, 1):.1%}); "
                f"competitor sent {delta(after, before, 'competitor_requests')} requests"
            )
            if not args.no_baseline:
                time.sleep(args.burst / args.rps if args.rps > 0 else 0)  # let the bucket drain
                manifest = scratch / "m0.csv"
                before = stats_of(portal)
                naive = [
                    sys.executable,
                    __file__,
                    "_naive",
                    portal.webhook_url,
                    str(manifest),
                    str(scratch / "naive"),
                    str(args.rps),
                ]
                finished = run_processes([naive], env)
                after = stats_of(portal)
                rows.append(
                    row_from("naive baseline", len(pairs), finished, before, after, args, counted)
                )
    print_table(rows, notes)


def row_from(
    label: str,
    images: int,
    finished: list[Finished],
    before: dict[str, Any],
    after: dict[str, Any],
    args: argparse.Namespace,
    counted: bool,
) -> Row:
    return Row(
        label=label,
        images=images,
        wall=max(f.wall for f in finished),
        ideal=ideal_seconds(args, images, counted),
        rest=delta(after, before, "rest_requests"),
        batches=delta(after, before, "batches"),
        commands=delta(after, before, "commands"),
        refused_503=delta(after, before, "rate_limited"),
        refused_429=delta(after, before, "operation_limited"),
        download_bytes=delta(after, before, "download_bytes"),
        rss_mb=max(f.rss_mb for f in finished),
        exit_codes=",".join(str(f.exit_code) for f in finished),
    )


def count_failures(report: Path) -> int:
    try:
        return int(json.loads(report.read_text())["counts"]["failed"])
    except (OSError, ValueError, KeyError):
        return -1


# The naive client: what a first script would do.


def pacer(rps: float) -> Callable[[], Awaitable[None]]:
    """Waits so that requests leave at most `rps` a second, evenly (no burst)."""
    interval = 1 / rps if rps > 0 else 0.0
    next_slot = time.monotonic()

    async def polite() -> None:
        nonlocal next_slot
        now = time.monotonic()
        if now < next_slot:
            await asyncio.sleep(next_slot - now)
        next_slot = max(now, next_slot) + interval

    return polite


async def naive_client(webhook: str, manifest: Path, out: Path, rps: float) -> None:
    import aiohttp

    out.mkdir(parents=True, exist_ok=True)
    headers = {"User-Agent": "naive-script/1.0", "Referer": webhook.split("/rest/")[0] + "/"}
    polite = pacer(rps)
    async with aiohttp.ClientSession() as session:
        rows = manifest.read_text().splitlines()[1:]
        for row in rows:
            product_id, image_id = row.split(",")
            while True:
                await polite()
                async with session.post(
                    f"{webhook}catalog.productImage.get",
                    json={"productId": int(product_id), "id": int(image_id)},
                ) as answer:
                    if answer.status == 503:
                        await asyncio.sleep(1)
                        continue
                    url = (await answer.json())["result"]["productImage"]["downloadUrl"]
                    break
            while True:
                await polite()
                async with session.get(url, headers=headers) as answer:
                    if answer.status == 503:
                        await asyncio.sleep(1)
                        continue
                    (out / image_id).write_bytes(await answer.read())
                    break


# The throughput benchmark.


async def download_urls(webhook: str, pairs: list[tuple[int, int]]) -> list[str]:
    import aiohttp

    urls: list[str] = []
    async with aiohttp.ClientSession() as session:
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start : start + BATCH]
            cmd = {f"p{p}_i{i}": f"catalog.productImage.get?productId={p}&id={i}" for p, i in chunk}
            async with session.post(f"{webhook}batch", json={"halt": 0, "cmd": cmd}) as answer:
                result = (await answer.json())["result"]["result"]
            urls += [result[key]["productImage"]["downloadUrl"] for key in cmd]
    return urls


def bench_throughput(args: argparse.Namespace) -> None:
    lo, hi = size_range(args.size)
    catalog = Catalog.generate(
        products=max(1, args.images // 5), images=args.images, seed=args.seed, image_size=(lo, hi)
    )
    settings = PortalSettings(rps=20, burst=50, count_downloads=False)
    sizes = [catalog.image(i).size for _, i in catalog.pairs()]
    mb = sum(sizes) / 1e6
    gb = mb / 1000
    print(
        f"{args.images} images, {mb:.0f} MB, {args.parallel} parallel, downloads outside the limit"
    )
    start_up = exporter_start_up()
    ratios: list[tuple[float, float, float, float, float]] = []
    with serve_in_thread(catalog, settings) as portal:
        for number in range(1, args.repeat + 1):
            with tempfile.TemporaryDirectory(prefix="b24-bench-") as scratch_name:
                round_ = throughput_round(args, catalog, portal, Path(scratch_name))
                disk = disk_alone(Path(scratch_name) / "disk", sizes, args.parallel)
            exporter, curl = round_.exporter, round_.curl
            print(
                f"  round {number}: exporter {mb / exporter.wall:6.1f} MB/s "
                f"(peak RSS {exporter.rss_mb:.0f} MB, exit {exporter.exit_code}, files fsynced)  "
                f"curl {mb / curl.wall:6.1f} MB/s (exit {curl.exit_code})  "
                f"curl + sync {mb / round_.curl_synced:6.1f} MB/s  "
                f"disk alone {mb / disk:6.1f} MB/s  "
                f"aiohttp loop {mb / round_.loop.wall:6.1f} MB/s (exit {round_.loop.exit_code})\n"
                f"    CPU s/GB: exporter {exporter.cpu / gb:.2f}, curl {curl.cpu / gb:.2f}, "
                f"aiohttp loop {round_.loop.cpu / gb:.2f}, "
                f"simulated portal {round_.portal_cpu[0] / gb:.2f} (serving the exporter), "
                f"{round_.portal_cpu[1] / gb:.2f} (serving curl)"
            )
            took = exporter.wall
            # No client that fsyncs each file and starts up as slowly can beat this.
            bound = start_up + disk
            print(
                f"    bound for a client that fsyncs and starts in {start_up:.2f} s: "
                f"{mb / bound:6.1f} MB/s = {curl.wall / bound:.2f} of curl"
            )
            ratios.append((
                curl.wall / took, round_.curl_synced / took, disk / took, bound / took,
                round_.loop.wall / took,
            ))  # fmt: skip
    print(
        f"  median exporter / curl: {statistics.median(r[0] for r in ratios):.2f}   "
        f"exporter / (curl + sync): {statistics.median(r[1] for r in ratios):.2f}   "
        f"exporter / disk alone: {statistics.median(r[2] for r in ratios):.2f}   "
        f"exporter / bound: {statistics.median(r[3] for r in ratios):.2f}   "
        f"exporter / aiohttp loop: {statistics.median(r[4] for r in ratios):.2f}\n"
        "  disk alone: the same bytes written from memory and fsynced file by file, with the "
        "same parallelism (the most a client that fsyncs can reach here)\n"
        "  aiohttp loop: a 30-line aiohttp client that streams, hashes, writes and fsyncs "
        "each file, and nothing else (no index, sidecar or temporary)\n"
        f"  the exporter's start-up (`--version`) takes {start_up:.2f} s of each run; "
        "bound = start-up + disk alone"
    )


def exporter_start_up() -> float:
    """Seconds `exporter --version` takes: interpreter and imports, the floor of any run."""
    took = []
    for _ in range(3):
        began = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "exporter", "--version"], check=True, capture_output=True
        )
        took.append(time.monotonic() - began)
    return statistics.median(took)


@dataclass
class ThroughputRound:
    exporter: Finished
    curl: Finished
    curl_synced: float  # curl's wall time with a `sync` after it
    loop: Finished  # the least an aiohttp client that hashes and fsyncs does
    portal_cpu: tuple[float, float]  # the portal's CPU seconds serving each


def throughput_round(
    args: argparse.Namespace, catalog: Catalog, portal: RunningPortal, scratch: Path
) -> ThroughputRound:
    """One exporter run and one curl run over the same links."""
    env = {**os.environ, "XDG_CACHE_HOME": str(scratch / "cache")}
    args.rps, args.burst, args.concurrency = 20, 50, args.parallel
    manifest = write_manifest(scratch / "m.csv", catalog.pairs())
    config = write_config(scratch / "c.yaml", portal, manifest, scratch / "out", args, False)
    # Each contender starts with nothing of another's left to write back (the last
    # round's files, just deleted, included), as disk alone does.
    subprocess.run(["sync", "-f", str(scratch)], check=True)
    cpu_before = _own_cpu()
    [exported] = run_processes([exporter_command(config)], env)
    serving_exporter = _own_cpu() - cpu_before
    urls = asyncio.run(download_urls(portal.webhook_url, catalog.pairs()))
    curl_config = scratch / "curl.txt"
    (scratch / "curl").mkdir()
    with curl_config.open("w") as out:
        for n, url in enumerate(urls):
            out.write(f'url = "{url}"\noutput = "{scratch / "curl" / str(n)}"\n')
    curl = ["curl", "--silent", "--show-error", "--fail", "--no-progress-meter",
            "--parallel", "--parallel-max", str(args.parallel),
            "-H", "User-Agent: curl-bench/1.0", "-H", f"Referer: {portal.base_url}/",
            "--config", str(curl_config)]  # fmt: skip
    subprocess.run(["sync", "-f", str(scratch)], check=True)
    cpu_before = _own_cpu()
    [fetched] = run_processes([curl], env)
    serving_curl = _own_cpu() - cpu_before
    # The exporter fsyncs every file before it counts as done; curl does not. `sync`
    # afterwards gives curl the same durability, for the like-for-like figure.
    began = time.monotonic()
    subprocess.run(["sync", "-f", str(scratch / "curl")], check=True)
    synced = fetched.wall + time.monotonic() - began
    (scratch / "urls.txt").write_text("\n".join(urls))
    loop = [sys.executable, __file__, "_loop", str(scratch / "urls.txt"), str(scratch / "loop"),
            str(args.parallel), f"{portal.base_url}/"]  # fmt: skip
    subprocess.run(["sync", "-f", str(scratch)], check=True)
    [looped] = run_processes([loop], env)
    return ThroughputRound(exported, fetched, synced, looped, (serving_exporter, serving_curl))


def disk_alone(folder: Path, sizes: list[int], parallel: int) -> float:
    """Seconds to write files of these sizes from memory and fsync each, `parallel` at once."""
    folder.mkdir()
    block = os.urandom(1024 * 1024)

    def write(number: int, size: int) -> None:
        fd = os.open(folder / str(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            for start in range(0, size, len(block)):
                os.write(fd, block[: size - start])
            os.fsync(fd)
        finally:
            os.close(fd)

    subprocess.run(["sync", "-f", str(folder)], check=True)
    began = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(write, range(len(sizes)), sizes))
    return time.monotonic() - began


# The peer benchmark: the same job as a short fast_bitrix24 script.

PEER_SCRIPT = Path(__file__).resolve().parent / "peer_fast_bitrix24.py"


def fast_scratch(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A scratch folder on tmpfs (/dev/shm) when there is one, so the disk is not measured."""
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix=prefix, dir=where)


def exported_files(out: Path) -> int:
    """Image files with a sidecar under `out` (the state folder and the report left out)."""
    return sum(
        1
        for sidecar in out.rglob("*.json")
        if STATE_DIR not in sidecar.relative_to(out).parts
        and sidecar.parent != out
        and sidecar.with_suffix("").is_file()
    )


def bench_peer(args: argparse.Namespace) -> None:
    """The exporter against a fast_bitrix24 script on the same job, round after round,
    downloads outside the portal's limit: wall and CPU of each, and their ratios."""
    try:
        import fast_bitrix24  # noqa: F401
    except ImportError:
        sys.exit("fast_bitrix24 is not installed: pip install -e '.[bench]'")
    lo, hi = size_range(args.size)
    catalog = Catalog.generate(
        products=max(1, args.images // 5), images=args.images, seed=args.seed, image_size=(lo, hi)
    )
    pairs = catalog.pairs()
    images = len(pairs)
    settings = PortalSettings(rps=args.rps, burst=args.burst, count_downloads=False)
    start_up = exporter_start_up()
    walls: list[float] = []
    cpus: list[float] = []
    with fast_scratch("b24-bench-peer-") as scratch_name:
        scratch = Path(scratch_name)
        on = "tmpfs (/dev/shm)" if scratch_name.startswith("/dev/shm") else scratch_name
        print(
            f"{images} images of {args.size} B, {args.rps:g} req/s, burst {args.burst}, "
            f"downloads outside the limit, {args.concurrency} downloads at a time; exports "
            f"on {on}"
        )
        manifest = write_manifest(scratch / "m.csv", pairs)
        with serve_in_thread(catalog, settings) as portal:
            for number in range(1, args.repeat + 1):
                env = {**os.environ, "XDG_CACHE_HOME": str(scratch / f"cache{number}")}
                out = scratch / f"exporter{number}"
                config = write_config(
                    scratch / f"c{number}.yaml", portal, manifest, out, args, False
                )
                peer_out = scratch / f"peer{number}"
                peer = [sys.executable, str(PEER_SCRIPT), portal.webhook_url, str(manifest),
                        str(peer_out), "--rps", str(args.rps), "--burst", str(args.burst),
                        "--parallel", str(args.concurrency)]  # fmt: skip
                runs = [
                    ("exporter", lambda c=config: exporter_command(c)),
                    ("fast_bitrix24", lambda p=peer: p),
                ]
                if number % 2 == 0:
                    runs.reverse()  # neither always runs on a warmer machine
                finished: dict[str, Finished] = {}
                serving: dict[str, float] = {}
                for label, command in runs:
                    time.sleep(args.burst / args.rps)  # the portal's bucket drained
                    cpu_before = _own_cpu()
                    finished[label] = run_measured(command(), env, scratch / "r.json")
                    serving[label] = _own_cpu() - cpu_before
                ours, theirs = finished["exporter"], finished["fast_bitrix24"]
                table = [["run", "wall s", "CPU s", "CPU ms/image", "portal CPU s", "files",
                          "exit"]]  # fmt: skip
                for label, done, folder in (
                    ("exporter", ours, out),
                    ("fast_bitrix24", theirs, peer_out),
                ):
                    table.append([
                        f"  round {number}: {label}",
                        f"{done.wall:.2f}",
                        f"{done.cpu:.2f}",
                        f"{done.cpu * 1000 / images:.2f}",
                        f"{serving[label]:.2f}",
                        str(exported_files(folder)),
                        str(done.exit_code),
                    ])  # fmt: skip
                print_rows(table)
                walls.append(theirs.wall / ours.wall)
                cpus.append(theirs.cpu / ours.cpu)
                print(
                    f"    fast_bitrix24 / exporter: wall {walls[-1]:.2f}, CPU {cpus[-1]:.2f}"
                    f"   (the exporter's start-up is {start_up:.2f} s of its wall)"
                )
                shutil.rmtree(out)
                shutil.rmtree(peer_out)
    print(
        f"  median fast_bitrix24 wall / exporter wall: {statistics.median(walls):.2f}   "
        f"CPU: {statistics.median(cpus):.2f}  (above 1: the exporter is faster)\n"
        "  the exporter fsyncs each file and sidecar and keeps its index; the script writes "
        "files and sidecars plainly (no temporaries, no fsync, no index)\n"
        f"  the simulated portal serves both from this process, on the same {os.cpu_count()} "
        "cores (portal CPU s); no client can finish before the portal has served it"
    )


# The restore benchmark.

ADD = "catalog.productImage.add"


def limit_seconds(requests: int, rps: float, burst: int) -> float | None:
    """Seconds a leaky bucket of `rps` and `burst` takes to let `requests` through."""
    if rps <= 0:
        return None
    return max(0.0, requests - burst) / rps


def restore_need(products: int, sizes: list[int], budget: int = DEFAULT_BUDGET) -> tuple[int, int]:
    """The fewest REST requests a restore of images of these sizes into empty products
    needs: one list command per product, 50 per batch, to learn what the target has; the
    adds, at most 50 per batch and `budget` bytes of base64, an image above it alone."""
    alone = sum(1 for size in sizes if base64_size(size) > budget)
    rest = [base64_size(size) for size in sizes if base64_size(size) <= budget]
    packed = max(math.ceil(len(rest) / BATCH), math.ceil(sum(rest) / budget)) if rest else 0
    return math.ceil(products / BATCH), alone + packed


@dataclass
class Seen:
    """One REST request a target portal answered."""

    method: str
    status: int
    body_bytes: int
    commands: Counter[str]  # batch commands run, by method
    adds: int  # images it stored
    base64_bytes: int  # the base64 those images took
    arrived: float  # monotonic clock: its headers in
    read: float  # its body in
    answered: float  # its answer made


class Recorder:
    """A middleware on a simulated target: each REST request's method, status and body
    size, the images it stored and their base64 bytes; with `keep`, the bodies of those
    answered 200 too, in order, for the replay."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.seen: list[Seen] = []
        self.bodies: list[tuple[str, str, bytes]] = []  # (method, content type, body)

    def prepare(self, portal: SimulatedPortal, loop: asyncio.AbstractEventLoop) -> None:
        catalog, stats = portal.catalog, portal.stats

        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            method = request.match_info.get("method", "").rstrip("/")
            if not request.path.startswith("/rest/") or method.lower() == "download":
                return await handler(request)
            arrived = time.monotonic()
            body = await request.read()  # kept by aiohttp: the handler reads it again
            read = time.monotonic()
            # From here to the answer the handler does not yield (no fault is injected),
            # so what the counters gain is this request's doing.
            before, commands = Counter(stats.adds_by_product), Counter(stats.commands)
            answer = await handler(request)
            gained = Counter(stats.adds_by_product)
            gained.subtract(before)
            ran = Counter(stats.commands)
            ran.subtract(commands)
            new = [
                image
                for product_id, count in gained.items()
                if count > 0
                for image in catalog.images_of(product_id)[-count:]
            ]
            self.seen.append(
                Seen(
                    method,
                    answer.status,
                    len(body),
                    +ran,
                    len(new),
                    sum(base64_size(image.size) for image in new),
                    arrived,
                    read,
                    time.monotonic(),
                )
            )
            if self.keep and answer.status == 200:
                self.bodies.append((method, request.headers.get("Content-Type", ""), body))
            return answer

        portal.app.middlewares.append(web.middleware(record))


@dataclass
class Checks:
    """The target after a restore, against the source."""

    exact: int  # images on their product with the source's bytes, each counted once
    missing: int
    extra: int  # images on the target beyond those (a second copy, or bytes not the source's)
    duplicates: int  # the simulator's duplicate adds

    def text(self, images: int) -> str:
        return (
            f"byte-exact {self.exact}/{images}, missing {self.missing}, extra {self.extra}, "
            f"duplicates {self.duplicates}"
        )


def checks_of(wanted: Counter[tuple[int, str]], target: Catalog, duplicates: int) -> Checks:
    got = Counter((p, target.image_sha256(i)) for p, i in target.pairs())
    exact = sum((wanted & got).values())
    return Checks(exact, wanted.total() - exact, got.total() - exact, duplicates)


@dataclass
class RestoreRun:
    label: str
    started: float  # monotonic clock
    finished: Finished
    seen: list[Seen]
    stats: dict[str, Any]
    portal_cpu: float  # CPU seconds of the simulated target serving it
    checks: Checks
    bodies: list[tuple[str, str, bytes]]


def timed_restore(
    label: str,
    fresh: Callable[[], Catalog],
    settings: PortalSettings,
    command: Callable[[RunningPortal], list[str]],
    wanted: Counter[tuple[int, str]],
    env: dict[str, str],
    result: Path,
    keep: bool = False,
) -> RestoreRun:
    """One restore process into a fresh target portal, timed, and the target checked."""
    target = fresh()
    recorder = Recorder(keep)
    with serve_in_thread(target, settings, recorder.prepare) as portal:
        cmd = command(portal)
        cpu_before = _own_cpu()
        started = time.monotonic()
        finished = run_measured(cmd, env, result)
        portal_cpu = _own_cpu() - cpu_before
        stats = stats_of(portal)
    checks = checks_of(wanted, target, stats["duplicate_adds"])
    return RestoreRun(
        label, started, finished, recorder.seen, stats, portal_cpu, checks, recorder.bodies
    )


def time_split(run: RestoreRun) -> tuple[float, float, float, float, float]:
    """Where a run's wall time went, as the target saw it: before its first request,
    receiving bodies, handling them, between requests, after the last answer."""
    seen = run.seen
    if not seen:
        return run.finished.wall, 0.0, 0.0, 0.0, 0.0
    receiving = sum(s.read - s.arrived for s in seen)
    handling = sum(s.answered - s.read for s in seen)
    between = seen[-1].answered - seen[0].arrived - receiving - handling
    before = seen[0].arrived - run.started
    after = run.started + run.finished.wall - seen[-1].answered
    return before, receiving, handling, between, after


def timeline(run: RestoreRun) -> str:
    """The line of `time_split`."""
    if not run.seen:
        return f"{run.label}: no request"
    before, receiving, handling, between, after = time_split(run)
    return (
        f"{run.label}: {before:.1f} s before its first request, then the target "
        f"{receiving:.1f} s receiving bodies, {handling:.1f} s handling them, "
        f"{between:.1f} s waiting between requests; {after:.1f} s after the last answer"
    )


RESTORE_HEADERS = [
    "run",
    "images",
    "wall s",
    "ideal s",
    "wall/ideal",
    "floor s",
    "wall/floor",
    "REST",
    "REST/image",
    "adds/req",
    "b64/req",
    "503s",
    "MB/s",
    "CPU s",
    "peak RSS MB",
    "exit",
]


def restore_cells(
    run: RestoreRun, images: int, image_bytes: int, ideal: float | None, floor: float
) -> list[str]:
    wall = run.finished.wall
    adding = [seen for seen in run.seen if seen.adds]
    adds = sum(seen.adds for seen in adding)
    b64 = sum(seen.base64_bytes for seen in adding)
    return [
        run.label,
        str(images),
        f"{wall:.1f}",
        f"{ideal:.1f}" if ideal is not None else "-",
        f"{wall / ideal:.2f}" if ideal else "-",
        f"{floor:.1f}",
        f"{wall / floor:.2f}" if floor else "-",
        str(run.stats["rest_requests"]),
        f"{run.stats['rest_requests'] / images:.3f}",
        f"{adds / len(adding):.1f}" if adding else "-",
        f"{b64 / len(adding) / DEFAULT_BUDGET:.1%}" if adding else "-",
        str(run.stats["rate_limited"]),
        f"{image_bytes / 1e6 / wall:.1f}",
        f"{run.finished.cpu:.1f}",
        f"{run.finished.rss_mb:.0f}",
        str(run.finished.exit_code),
    ]


def write_restore_config(path: Path, portal: RunningPortal, scratch: Path, args: Any) -> Path:
    limit = (
        {"requests_per_second": args.rps, "burst": args.burst} if args.rps > 0 else dict(UNLIMITED)
    )
    raw = {
        "portal": {"webhook_url": portal.webhook_url},
        "manifest": str(scratch / "unused.csv"),  # restore reads the export, not a manifest
        "output": {"dir": str(scratch / "unused")},
        "rate_limit": limit,
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def bench_restore(args: argparse.Namespace) -> None:
    """An export put back into an empty target portal: the exporter, the bytes floor and
    a naive client, each as a process of its own into a fresh target; the exporter's and
    the naive client's with the given limit, the floor's without one.

    The target has the source's products (the same ids) and none of its images. Two
    references, both for the same images:

    ideal: what the portal's limit allows for the fewest REST requests a restore needs
      (one list command per target product, 50 per batch, to learn what is there; the
      adds in batches of at most 50 and 8 MiB of base64): with rate r and burst b,
      N requests take max(0, (N - b) / r) s. A few thousand images need few requests,
      so this is often 0: the limit is not what bounds them.
    floor: the exporter's own requests (every one the target answered 200, lists and
      add batches, byte for byte) sent again, already built, one after another as the
      exporter sends them, by a process that does nothing else, into a fresh target
      without a limit: what moving those bodies over loopback and the simulated portal's
      decoding and storing them cost on this machine, with no reading, hashing or
      encoding on the client. The simulated portal shares the machine's cores with the
      client; its CPU seconds serving each run are printed.

    Checks after each run, as figures: every source image on its product exactly once
    with the source's bytes (SHA-256 of what the simulator stored), none extra, and the
    simulator's duplicate adds.
    """
    lo, hi = size_range(args.size)
    products = max(1, args.images // 5)

    def generated() -> Catalog:
        return Catalog.generate(
            products=products, images=args.images, seed=args.seed, image_size=(lo, hi)
        )

    def empty_target() -> Catalog:
        target = generated()
        for _, image_id in target.pairs():
            target.remove_image(image_id)
        return target

    source = generated()
    pairs = source.pairs()
    images = len(pairs)
    sizes = [source.image(i).size for _, i in pairs]
    image_bytes = sum(sizes)
    wanted = Counter((p, source.image_sha256(i)) for p, i in pairs)
    lists, adds = restore_need(products, sizes)
    ideal = limit_seconds(lists + adds, args.rps, args.burst)
    limited = PortalSettings(
        rps=args.rps if args.rps > 0 else None, burst=args.burst, count_downloads=False
    )
    unlimited = PortalSettings(rps=None, count_downloads=False)
    print(
        f"{images} images on {products} products, {image_bytes / 1e6:.0f} MB "
        f"({sum(map(base64_size, sizes)) / 1e6:.0f} MB of base64); target limit "
        + (f"{args.rps:g} req/s, burst {args.burst}" if args.rps > 0 else "none")
    )
    start_up = exporter_start_up()
    with tempfile.TemporaryDirectory(prefix="b24-bench-") as scratch_name:
        scratch = Path(scratch_name)
        export = scratch / "export"

        def env(name: str) -> dict[str, str]:
            return {**os.environ, "XDG_CACHE_HOME": str(scratch / f"cache-{name}")}

        with serve_in_thread(source, unlimited) as portal:
            manifest = write_manifest(scratch / "m.csv", pairs)
            settings = argparse.Namespace(rps=0, burst=0, concurrency=args.concurrency)
            config = write_config(
                scratch / "source.yaml", portal, manifest, export, settings, False
            )
            [exported] = run_processes([exporter_command(config)], env("export"))
        print(
            f"export (no limit): {exported.wall:.1f} s, "
            f"{count_failures(export / 'report.json')} failed, exit {exported.exit_code}"
        )

        def exporter_restore(portal: RunningPortal) -> list[str]:
            config = write_restore_config(scratch / "target.yaml", portal, scratch, args)
            return [sys.executable, "-m", "exporter", "-q", "--log-format", "json", "restore",
                    "--config", str(config), "--from", str(export),
                    "--report", str(scratch / "restore-report.json")]  # fmt: skip

        ours = timed_restore(
            "exporter",
            empty_target,
            limited,
            exporter_restore,
            wanted,
            env("exporter"),
            scratch / "exporter.json",
            keep=True,
        )
        replay_dir = scratch / "replay"
        replay_dir.mkdir()
        for n, (_, _, body) in enumerate(ours.bodies):
            (replay_dir / f"{n:05d}.body").write_bytes(body)
        index = [[method, content_type] for method, content_type, _ in ours.bodies]
        (replay_dir / "index.json").write_text(json.dumps(index))
        ours.bodies.clear()
        replayed = scratch / "replayed.json"

        def replay_of(portal: RunningPortal) -> list[str]:
            return [sys.executable, __file__, "_replay", portal.webhook_url,
                    str(replay_dir), str(replayed)]  # fmt: skip

        def naive_of(portal: RunningPortal) -> list[str]:
            return [sys.executable, __file__, "_naive_restore", portal.webhook_url,
                    str(export), str(args.rps)]  # fmt: skip

        floor_run = timed_restore(
            "bytes floor (replay)",
            empty_target,
            unlimited,
            replay_of,
            wanted,
            env("replay"),
            scratch / "replay.json",
        )
        replay_answers = json.loads(replayed.read_text())
        floor = float(replay_answers["seconds"])
        naive = None
        if not args.no_baseline:
            naive = timed_restore(
                "naive restore",
                empty_target,
                limited,
                naive_of,
                wanted,
                env("naive"),
                scratch / "naive.json",
            )
        report = json.loads((scratch / "restore-report.json").read_text())
    runs = [ours, floor_run] + ([naive] if naive else [])
    table = [RESTORE_HEADERS] + [
        restore_cells(run, images, image_bytes, ideal, floor) for run in runs
    ]
    print_rows(table)
    print(
        f"ideal: {lists} list + {adds} add requests = {lists + adds}: "
        + (
            f"max(0, {lists + adds} - {args.burst}) / {args.rps:g} = {ideal:.1f} s"
            if ideal is not None
            else "no limit"
        )
    )
    print(
        f"floor: the exporter's {len(ours.seen)} requests "
        f"({sum(s.body_bytes for s in ours.seen) / 1e6:.0f} MB of bodies) sent again into a "
        f"target without a limit: {floor:.1f} s, answered "
        + ", ".join(f"{n} HTTP {status}" for status, n in replay_answers["statuses"].items())
        + " (the replay row's wall adds its start-up and loading the bodies)"
    )
    listing = [s for s in ours.seen if s.commands.get("catalog.productImage.list")]
    adding = [s for s in ours.seen if s.commands.get(ADD)]
    fills = [s.commands[ADD] for s in adding]
    shares = [s.base64_bytes / DEFAULT_BUDGET for s in adding]
    print(
        f"exporter: batches listing products: {len(listing)} "
        f"({sum(s.commands['catalog.productImage.list'] for s in listing)} products); "
        f"batches of adds: {len(adding)} ({min(fills, default=0)}-{max(fills, default=0)} "
        f"adds, base64 {min(shares, default=0):.1%}-{max(shares, default=0):.1%} of 8 MiB); "
        f"other requests: {len(ours.seen) - len(listing) - len(adding)}; report: "
        f"{report['counts']['restored']} restored, {report['counts']['failed']} failed"
    )
    print("checks:")
    for run in runs:
        print(f"  {run.label}: {run.checks.text(images)}")
    print("time, as the target saw it:")
    for run in runs:
        print(f"  {timeline(run)}")
    print(
        "simulated target's CPU s while serving: "
        + ", ".join(f"{run.label} {run.portal_cpu:.1f}" for run in runs)
    )
    print(f"the exporter's start-up (`--version`) takes {start_up:.2f} s of its wall time")
    between = time_split(ours)[3]
    print(
        f"exporter against both: {ours.finished.wall:.1f} s for "
        + (f"{ideal:.1f} s the limit allows" if ideal is not None else "no limit")
        + f" and the floor's {floor:.1f} s ({ours.finished.wall / floor:.2f}x); "
        f"{between:.1f} s of it with no request at the target, the client preparing the "
        "next one"
    )
    if naive is not None:
        print(
            f"exporter / naive: wall {ours.finished.wall / naive.finished.wall:.3f}, "
            f"REST requests {ours.stats['rest_requests'] / naive.stats['rest_requests']:.3f}, "
            f"CPU {ours.finished.cpu / max(naive.finished.cpu, 1e-9):.2f}, "
            f"peak RSS {ours.finished.rss_mb / naive.finished.rss_mb:.2f}"
        )


async def naive_restore(webhook: str, export: Path, rps: float) -> None:
    """What a first restore script would do: each exported file, by its sidecar, as one
    `catalog.productImage.add` of its own, one at a time, polite to the limit."""
    import aiohttp

    polite = pacer(rps)
    sidecars = sorted(
        p
        for p in export.rglob("*.json")
        if STATE_DIR not in p.relative_to(export).parts and p.parent != export
    )
    async with aiohttp.ClientSession() as session:
        for sidecar in sidecars:
            image = json.loads(sidecar.read_text(encoding="utf-8"))["productImage"]
            content = sidecar.with_suffix("").read_bytes()
            body = {
                "fields": {"productId": int(image["productId"]), "type": image["type"]},
                "fileContent": [image["name"], base64.b64encode(content).decode("ascii")],
            }
            while True:
                await polite()
                async with session.post(f"{webhook}{ADD}", json=body) as answer:
                    await answer.read()
                    if answer.status == 503:
                        await asyncio.sleep(1)
                        continue
                    break


async def replay(webhook: str, folder: Path, result: Path) -> None:
    """Send recorded request bodies again, in order, one at a time; time only the sending."""
    import aiohttp

    index = json.loads((folder / "index.json").read_text())
    bodies = [
        (method, content_type, (folder / f"{n:05d}.body").read_bytes())
        for n, (method, content_type) in enumerate(index)
    ]
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession() as session:
        began = time.monotonic()
        for method, content_type, body in bodies:
            headers = {"Content-Type": content_type}
            async with session.post(f"{webhook}{method}", data=body, headers=headers) as answer:
                await answer.read()
                statuses[answer.status] += 1
        took = time.monotonic() - began
    result.write_text(json.dumps({"seconds": took, "statuses": statuses}))


def run_fast(work: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed, as the exporter does."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(work)
    else:
        uvloop.run(work)


def _own_cpu() -> float:
    """CPU seconds of this process (the simulated portal's thread does nearly all of it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_s3(args: argparse.Namespace) -> None:
    """The exporter into a local SeaweedFS against `rclone copy` of the same files from a
    local folder into the same server, round after round."""
    lo, hi = size_range(args.size)
    catalog = Catalog.generate(
        products=max(1, args.images // 5), images=args.images, seed=args.seed, image_size=(lo, hi)
    )
    settings = PortalSettings(rps=20, burst=50, count_downloads=False)
    sizes = [catalog.image(i).size for _, i in catalog.pairs()]
    mb = sum(sizes) / 1024**2
    gb = sum(sizes) / 1024**3
    rclone = shutil.which("rclone")
    print(f"{args.images} images, {mb:.0f} MiB, {args.parallel} parallel, into a local SeaweedFS")
    ratios = []
    with tempfile.TemporaryDirectory(prefix="b24-bench-s3-") as scratch_name:
        scratch = Path(scratch_name)
        server = SeaweedFS.start(scratch / "seaweed", buckets=("bench",))
        try:
            files = scratch / "files"
            files.mkdir()
            for product_id, image_id in catalog.pairs():
                (files / f"{product_id}-{image_id}.bin").write_bytes(catalog.image_bytes(image_id))
            env = {
                **os.environ,
                "XDG_CACHE_HOME": str(scratch / "cache"),
                "AWS_ACCESS_KEY_ID": SEAWEED_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SEAWEED_SECRET_KEY,
            }
            with serve_in_thread(catalog, settings) as portal:
                for number in range(1, args.repeat + 1):
                    args.rps, args.burst, args.concurrency = 20, 50, args.parallel
                    manifest = write_manifest(scratch / "m.csv", catalog.pairs())
                    config = write_config(
                        scratch / "c.yaml", portal, manifest, scratch / "unused", args, False
                    )
                    raw = yaml.safe_load(config.read_text())
                    raw["output"] = {
                        "dir": f"s3://bench/exporter-{number}",
                        "s3": {"endpoint_url": server.endpoint, "region": SEAWEED_REGION},
                    }
                    config.write_text(yaml.safe_dump(raw))
                    exporter = run_measured(exporter_command(config), env, scratch / "r.json")
                    line = (
                        f"  round {number}: exporter {mb / exporter.wall:6.1f} MiB/s, "
                        f"{exporter.cpu / gb:.2f} CPU-s/GB, peak RSS {exporter.rss_mb:.0f} MB "
                        f"(exit {exporter.exit_code})"
                    )
                    if rclone:
                        copy = [rclone, "copy", "--transfers", str(args.parallel), str(files),
                                f"B:bench/rclone-{number}"]  # fmt: skip
                        copied = run_measured(copy, rclone_env(server), scratch / "r.json")
                        line += (
                            f"   rclone copy {mb / copied.wall:6.1f} MiB/s, "
                            f"{copied.cpu / gb:.2f} CPU-s/GB, peak RSS {copied.rss_mb:.0f} MB "
                            f"(exit {copied.exit_code})   exporter / rclone: "
                            f"{copied.wall / exporter.wall:.2f}"
                        )
                        ratios.append(copied.wall / exporter.wall)
                    print(line)
        finally:
            server.stop()
    if ratios:
        print(f"  median exporter MB/s / rclone copy MB/s: {statistics.median(ratios):.2f}")
    else:
        print("  rclone is not installed (apt-get install rclone): no reference run")
    print(
        "  the exporter downloads each image from the simulated portal and uploads it as it "
        "comes, with its sidecar; rclone copies the same bytes from a local folder"
    )


# Learning whether downloads count (downloads_share_limit: auto).


def intact_images(out: Path, catalog: Catalog) -> int:
    """Exported files whose bytes match their sidecar's SHA-256 and the portal's image."""
    good = 0
    for sidecar in out.rglob("*" + SIDECAR_SUFFIX):
        if STATE_DIR in sidecar.parts or sidecar.name == "report.json":
            continue
        document = json.loads(sidecar.read_text(encoding="utf-8"))
        data = sidecar.with_name(sidecar.name.removesuffix(SIDECAR_SUFFIX)).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        image_id = int(document["productImage"]["id"])
        good += digest == document["file"]["sha256"] == catalog.image_sha256(image_id)
    return good


def learned_of(report: Path) -> str:
    """What the report says about downloads and the budget, in a few words."""
    try:
        known = json.loads(report.read_text())["downloadsShareLimit"]
    except (OSError, ValueError, KeyError):
        return "-"
    if known["setting"] != "auto":
        return f"set: {str(known['setting']).lower()}"
    counted = {True: "counted", False: "not counted", None: "not known"}[known["counted"]]
    return f"{counted} ({'learned now' if known.get('learnedNow') else 'recalled'})"


def bench_auto(args: argparse.Namespace) -> None:
    """Per portal (counting downloads or not): `false`/`true` as a reference, then `auto`
    with a fresh cache, then `auto` again over new images with what it learned, then the
    reference once more; wall/ref is against the faster reference, so that neither a cold
    first run nor a warm last one flatters `auto`."""
    headers = ["portal", "run", "images", "wall s", "ideal s", "efficiency", "wall/ref",
               "503s", "intact", "downloads", "exit"]  # fmt: skip
    table = [headers]
    for counted, images in ((False, args.images_free), (True, args.images_counted)):
        lo, hi = size_range(args.size)
        catalog = Catalog.generate(
            products=max(1, images // 5), images=2 * images, seed=args.seed, image_size=(lo, hi)
        )
        pairs = catalog.pairs()
        first, second = pairs[:images], pairs[images:]
        portal_name = "counts downloads" if counted else "does not count"
        reference = "reference: " + str(counted).lower()
        with (
            tempfile.TemporaryDirectory(prefix="b24-bench-") as scratch_name,
            serve_in_thread(catalog, portal_settings(args, counted)) as portal,
        ):
            scratch = Path(scratch_name)
            runs = [(reference, first, counted, "ref"),
                    ("auto, fresh cache", first, None, "cache"),
                    ("auto, learned", second, None, "cache"),
                    (reference + " (again)", first, counted, "ref")]  # fmt: skip
            done: list[tuple[str, int, Finished, int, str, str]] = []
            for n, (label, part, setting, cache) in enumerate(runs):
                time.sleep(args.burst / args.rps)  # the portal's bucket drains between runs
                env = {**os.environ, "XDG_CACHE_HOME": str(scratch / cache)}
                manifest = write_manifest(scratch / f"m{n}.csv", part)
                out = scratch / f"out{n}"
                config = write_config(scratch / f"c{n}.yaml", portal, manifest, out, args, setting)
                before = stats_of(portal)
                [finished] = run_processes([exporter_command(config)], env)
                after = stats_of(portal)
                intact = f"{intact_images(out, catalog)}/{len(part)}"
                refused = delta(after, before, "rate_limited")
                done.append(
                    (label, len(part), finished, refused, intact, learned_of(out / "report.json"))
                )
        reference_wall = min(f.wall for label, _, f, *_ in done if label.startswith(reference))
        for label, count, finished, refused, intact, learned in done:
            ideal = ideal_seconds(args, count, counted) or 0.0
            table.append([
                portal_name, label, str(count), f"{finished.wall:.1f}", f"{ideal:.1f}",
                f"{ideal / finished.wall:.3f}" if ideal else "-",
                f"{finished.wall / reference_wall:.2f}", str(refused), intact, learned,
                str(finished.exit_code),
            ])  # fmt: skip
    print_rows(table)
    print(
        "wall/ref: against the faster of the two reference runs of the same images with the "
        "setting that is right for that portal; efficiency: ideal/wall, the ideal being what "
        "the limit allows"
    )


# The memory benchmark.

# As MEASURE, and the spawned process's pid in `<result>.pid` first, so that its
# resident memory can be sampled while it runs.
MEASURE_SAMPLED = MEASURE.replace(
    "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n",
    "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
    "with open(sys.argv[1] + '.pid', 'w') as out:\n"
    "    out.write(str(pid))\n",
)


def resident_mb(pid: int) -> float | None:
    """A running process's resident set, from /proc (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


@dataclass
class Sampled:
    finished: Finished
    samples: list[tuple[int, float]]  # (images downloaded by then, RSS MB)


def run_sampled(
    command: list[str], env: dict[str, str], result: Path, portal: RunningPortal
) -> Sampled:
    """One process, as `run_measured`, its RSS sampled against the downloads the portal served."""
    pid_file = Path(str(result) + ".pid")
    pid_file.unlink(missing_ok=True)
    wrapper = subprocess.Popen(
        [sys.executable, "-S", "-c", MEASURE_SAMPLED, str(result), *command], env=env
    )
    samples: list[tuple[int, float]] = []
    pid = None
    while wrapper.poll() is None:
        time.sleep(0.1)
        if pid is None:
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
        downloads = portal.stats.download_requests
        rss = resident_mb(pid)
        if rss is not None:
            samples.append((downloads, rss))
    wall, rss_mb, exit_code, cpu = json.loads(result.read_text())
    return Sampled(Finished(wall, rss_mb, exit_code, cpu), samples)


def bench_memory(args: argparse.Namespace) -> None:
    lo, hi = size_range(args.size)
    catalog = Catalog.generate(
        products=max(1, args.images // 5), images=args.images, seed=args.seed, image_size=(lo, hi)
    )
    args.rps, args.burst, args.competitor, args.operating_cost = 0, 50, 0.0, 0.0
    settings = PortalSettings(rps=None, count_downloads=False)
    into = "a local SeaweedFS" if args.store else "a folder"
    print(
        f"{args.images} images of {args.size} bytes into {into}, no rate limit, "
        "downloads not counted"
    )
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="b24-bench-mem-")))
        env = {**os.environ, "XDG_CACHE_HOME": str(scratch / "cache")}
        portal = stack.enter_context(serve_in_thread(catalog, settings))
        manifest = write_manifest(scratch / "m.csv", catalog.pairs())
        config = write_config(scratch / "c.yaml", portal, manifest, scratch / "out", args, False)
        if args.store:
            server = SeaweedFS.start(scratch / "seaweed", buckets=("bench",))
            stack.callback(server.stop)
            raw = yaml.safe_load(config.read_text())
            raw["output"] = {
                "dir": "s3://bench/memory",
                "s3": {"endpoint_url": server.endpoint, "region": SEAWEED_REGION},
            }
            raw["report"] = str(scratch / "out" / "report.json")
            config.write_text(yaml.safe_dump(raw))
            env |= {"AWS_ACCESS_KEY_ID": SEAWEED_ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY": SEAWEED_SECRET_KEY}  # fmt: skip
        began = portal.stats.download_requests
        first = run_sampled(exporter_command(config), env, scratch / "r.json", portal)
        done = count_exported(scratch / "out" / "report.json")
        during = [(n - began, rss) for n, rss in first.samples if n > began]
        print(
            f"  export: {done} images done in {first.finished.wall:.1f} s "
            f"({first.finished.cpu:.1f} CPU-s, exit {first.finished.exit_code})"
        )
        if during:
            rss0, n1 = during[0][1], during[-1][0]
            marks = " / ".join(_rss_at(during, share * n1) for share in (0.25, 0.5, 0.75, 1))
            print(
                f"  RSS: {rss0:.1f} MB at the first image done; at 25/50/75/100 % of the "
                f"images: {marks} MB; peak {first.finished.rss_mb:.1f} MB\n"
                f"  growth: {growth_per_image(during, n1):.3f} KB per image done "
                "(the slope of RSS over images done, from 5 % to 95 % of them)"
            )
        else:
            print(f"  RSS: no sample taken; peak {first.finished.rss_mb:.1f} MB")
        before = stats_of(portal)
        again = run_measured(exporter_command(config), env, scratch / "r.json")
        after = stats_of(portal)
        sent = delta(after, before, "rest_requests") + delta(after, before, "download_requests")
        skipped = count_skipped(scratch / "out" / "report.json")
        print(
            f"  re-run of {skipped} done images: {again.wall:.2f} s wall, {again.cpu:.2f} "
            f"CPU-s, peak RSS {again.rss_mb:.1f} MB, {sent} requests, exit {again.exit_code}"
        )


def _rss_at(samples: list[tuple[int, float]], images: float) -> str:
    """The first sampled RSS once `images` were downloaded."""
    return next((f"{rss:.1f}" for n, rss in samples if n >= images), "-")


def growth_per_image(samples: list[tuple[int, float]], images: int) -> float:
    """KB of RSS per image done: the least-squares slope over the middle of the run (the
    start-up before it, the report and the exit after it, left out)."""
    middle = [(n, rss) for n, rss in samples if 0.05 * images <= n <= 0.95 * images]
    if len(middle) < 2:
        return math.nan
    mean_n = statistics.fmean(n for n, _ in middle)
    mean_rss = statistics.fmean(rss for _, rss in middle)
    spread = sum((n - mean_n) ** 2 for n, _ in middle)
    if not spread:
        return math.nan
    slope = sum((n - mean_n) * (rss - mean_rss) for n, rss in middle) / spread
    return slope * 1024


def count_exported(report: Path) -> int:
    try:
        return int(json.loads(report.read_text())["counts"]["exported"])
    except (OSError, ValueError, KeyError):
        return -1


def count_skipped(report: Path) -> int:
    try:
        return int(json.loads(report.read_text())["counts"]["skipped"])
    except (OSError, ValueError, KeyError):
        return -1


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_naive":
        webhook, manifest, out, rps = sys.argv[2:6]
        asyncio.run(naive_client(webhook, Path(manifest), Path(out), float(rps)))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_naive_restore":
        webhook, export, rps = sys.argv[2:5]
        asyncio.run(naive_restore(webhook, Path(export), float(rps)))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_loop":
        urls, out, parallel, referer = sys.argv[2:6]
        asyncio.run(aiohttp_loop(Path(urls), Path(out), int(parallel), referer))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_replay":
        webhook, folder, result = sys.argv[2:5]
        run_fast(replay(webhook, Path(folder), Path(result)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    rate = modes.add_parser(
        "rate", help="the exporter against the rate limit, and a naive baseline"
    )
    rate.add_argument("--images", type=int, default=2000)
    rate.add_argument(
        "--size", default="2k-20k", help="image sizes, e.g. 2k-20k, 5M, 1G (default 2k-20k)"
    )
    rate.add_argument("--rps", type=float, default=20.0, help="portal limit; 0 = none (default 20)")
    rate.add_argument("--burst", type=int, default=50)
    rate.add_argument(
        "--downloads-uncounted", action="store_true", help="downloads outside the limit"
    )
    rate.add_argument(
        "--competitor", type=float, default=0.0, help="share of the budget another client takes"
    )
    rate.add_argument(
        "--processes", type=int, default=1, help="exporter processes sharing the portal"
    )
    rate.add_argument(
        "--operating-cost", type=float, default=0.0, help="seconds charged per command"
    )
    rate.add_argument("--operating-limit", type=float, default=480.0)
    rate.add_argument("--operating-window", type=float, default=600.0)
    rate.add_argument("--concurrency", type=int, default=8)
    rate.add_argument("--seed", type=int, default=1)
    rate.add_argument("--no-baseline", action="store_true")
    rate.set_defaults(run=bench_rate)
    thr = modes.add_parser(
        "throughput", help="download throughput against curl, downloads uncounted"
    )
    thr.add_argument("--images", type=int, default=200)
    thr.add_argument("--size", default="5M")
    thr.add_argument("--parallel", type=int, default=8)
    thr.add_argument("--seed", type=int, default=1)
    thr.add_argument("--repeat", type=int, default=3, help="rounds, alternating (default 3)")
    thr.set_defaults(run=bench_throughput, competitor=0.0, operating_cost=0.0)
    peer = modes.add_parser(
        "peer", help="the exporter against a fast_bitrix24 script, downloads uncounted"
    )
    peer.add_argument("--images", type=int, default=3000)
    peer.add_argument("--size", default="2k-20k", help="image sizes (default 2k-20k)")
    peer.add_argument("--rps", type=float, default=20.0, help="portal limit (default 20)")
    peer.add_argument("--burst", type=int, default=50)
    peer.add_argument("--concurrency", type=int, default=8, help="downloads at a time")
    peer.add_argument("--seed", type=int, default=1)
    peer.add_argument("--repeat", type=int, default=2, help="rounds, alternating (default 2)")
    peer.set_defaults(run=bench_peer)
    res = modes.add_parser(
        "restore", help="an export uploaded into an empty target, a naive client, the floor"
    )
    res.add_argument("--images", type=int, default=2000)
    res.add_argument("--size", default="20K-200K", help="image sizes (default 20K-200K)")
    res.add_argument(
        "--rps", type=float, default=20.0, help="the target's limit; 0 = none (default 20)"
    )
    res.add_argument("--burst", type=int, default=50)
    res.add_argument("--concurrency", type=int, default=8, help="downloads of the export")
    res.add_argument("--seed", type=int, default=1)
    res.add_argument("--no-baseline", action="store_true", help="no naive restore")
    res.set_defaults(run=bench_restore)
    s3 = modes.add_parser("s3", help="the exporter into a local SeaweedFS, against rclone copy")
    s3.add_argument("--images", type=int, default=200)
    s3.add_argument("--size", default="5M")
    s3.add_argument("--parallel", type=int, default=8)
    s3.add_argument("--seed", type=int, default=1)
    s3.add_argument("--repeat", type=int, default=2, help="rounds (default 2)")
    s3.set_defaults(run=bench_s3, competitor=0.0, operating_cost=0.0)
    auto = modes.add_parser(
        "auto", help="downloads_share_limit: auto learning, portals counting downloads or not"
    )
    auto.add_argument("--images-free", type=int, default=1500, help="portal not counting")
    auto.add_argument("--images-counted", type=int, default=700, help="portal counting")
    auto.add_argument("--size", default="2k-20k")
    auto.add_argument("--rps", type=float, default=20.0)
    auto.add_argument("--burst", type=int, default=50)
    auto.add_argument("--concurrency", type=int, default=8)
    auto.add_argument("--seed", type=int, default=1)
    auto.set_defaults(run=bench_auto, competitor=0.0, operating_cost=0.0)
    mem = modes.add_parser(
        "memory", help="the exporter's RSS per image done over a long run, and its re-run"
    )
    mem.add_argument("--images", type=int, default=100_000)
    mem.add_argument("--size", default="200-400", help="image sizes (default 200-400)")
    mem.add_argument("--concurrency", type=int, default=8)
    mem.add_argument("--seed", type=int, default=1)
    mem.add_argument("--store", action="store_true", help="into a local SeaweedFS")
    mem.set_defaults(run=bench_memory)
    args = parser.parse_args()
    compile_exporter()
    args.run(args)


def compile_exporter() -> None:
    """Compile the exporter's modules to bytecode first, as `pip install` does.

    An editable install writes bytecode on first import, unless PYTHONDONTWRITEBYTECODE
    is set; then every run would compile the package again (about 80 ms here), a cost no
    installed copy pays. The libraries it is compared with were compiled by pip."""
    package = Path(__file__).resolve().parent.parent / "exporter"
    compileall.compile_dir(package, quiet=1)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("(exporter compiled to bytecode first: PYTHONDONTWRITEBYTECODE is set here)")


if __name__ == "__main__":
    main()
