"""Benchmarks of b24-image-exporter against its simulated portal. Prints figures, asserts nothing.

    python bench/run.py rate --images 2000 --rps 20 --burst 50
    python bench/run.py rate --images 2000 --rps 20 --burst 50 --competitor 0.3
    python bench/run.py rate --images 2000 --rps 20 --burst 50 --processes 2
    python bench/run.py rate --images 500 --rps 20 --operating-cost 0.05 \\
        --operating-limit 5 --operating-window 10
    python bench/run.py rate --images 100000 --size 200-400 --rps 0 --no-baseline
    python bench/run.py throughput --images 200 --size 5M --parallel 8

`rate` starts the simulated portal with the given limit, runs the exporter against it
(as a separate process, so its wall time and peak memory are its own) and, in the same
run, a naive client (one `get` per image, one request at a time, no batch), and prints
one row for each, compared with the ideal: the time the portal's limit allows for the
requests the job strictly needs. `throughput` leaves downloads out of the portal's
limit and compares download throughput with curl fetching the same links with the same
parallelism, and with curl followed by `sync` (the exporter fsyncs every file; curl
leaves its files in the page cache). Each round also prints the CPU seconds per GB of
the exporter, of curl, and of the simulated portal serving each: on a small machine
the three share the same cores; and the bound for any client that fsyncs each file:
its start-up plus the time the disk takes to make the same bytes durable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.config import MAX_BATCH_SIZE
from exporter.simulator import Catalog, PortalSettings, RunningPortal, serve_in_thread

BATCH = MAX_BATCH_SIZE  # commands per batch: the ideal packs every one full
UNLIMITED = {"requests_per_second": 100_000, "burst": 100_000}


def stats_of(portal: RunningPortal) -> dict[str, Any]:
    return json.loads(json.dumps(portal.stats.as_dict()))


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
    share_downloads: bool,
) -> Path:
    limit = (
        {"requests_per_second": args.rps, "burst": args.burst} if args.rps > 0 else dict(UNLIMITED)
    )
    raw = {
        "portal": {"webhook_url": portal.webhook_url},
        "manifest": str(manifest),
        "output": {"dir": str(out)},
        "rate_limit": {**limit, "downloads_share_limit": share_downloads},
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
    table = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    for n, line in enumerate(table):
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for note in notes:
        print(note)


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


async def naive_client(webhook: str, manifest: Path, out: Path, rps: float) -> None:
    import aiohttp

    out.mkdir(parents=True, exist_ok=True)
    interval = 1 / rps if rps > 0 else 0.0
    headers = {"User-Agent": "naive-script/1.0", "Referer": webhook.split("/rest/")[0] + "/"}
    next_slot = time.monotonic()

    async def polite() -> None:
        nonlocal next_slot
        now = time.monotonic()
        if now < next_slot:
            await asyncio.sleep(next_slot - now)
        next_slot = max(now, next_slot) + interval

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
    ratios: list[tuple[float, float, float, float]] = []
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
                f"disk alone {mb / disk:6.1f} MB/s\n"
                f"    CPU s/GB: exporter {exporter.cpu / gb:.2f}, curl {curl.cpu / gb:.2f}, "
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
            ratios.append((curl.wall / took, round_.curl_synced / took, disk / took, bound / took))
    print(
        f"  median exporter / curl: {statistics.median(r[0] for r in ratios):.2f}   "
        f"exporter / (curl + sync): {statistics.median(r[1] for r in ratios):.2f}   "
        f"exporter / disk alone: {statistics.median(r[2] for r in ratios):.2f}   "
        f"exporter / bound: {statistics.median(r[3] for r in ratios):.2f}\n"
        "  disk alone: the same bytes written from memory and fsynced file by file, with the "
        "same parallelism (the most a client that fsyncs can reach here)\n"
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
    portal_cpu: tuple[float, float]  # the portal's CPU seconds serving each


def throughput_round(
    args: argparse.Namespace, catalog: Catalog, portal: RunningPortal, scratch: Path
) -> ThroughputRound:
    """One exporter run and one curl run over the same links."""
    env = {**os.environ, "XDG_CACHE_HOME": str(scratch / "cache")}
    args.rps, args.burst, args.concurrency = 20, 50, args.parallel
    manifest = write_manifest(scratch / "m.csv", catalog.pairs())
    config = write_config(scratch / "c.yaml", portal, manifest, scratch / "out", args, False)
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
    cpu_before = _own_cpu()
    [fetched] = run_processes([curl], env)
    serving_curl = _own_cpu() - cpu_before
    # The exporter fsyncs every file before it counts as done; curl does not. `sync`
    # afterwards gives curl the same durability, for the like-for-like figure.
    began = time.monotonic()
    subprocess.run(["sync", "-f", str(scratch / "curl")], check=True)
    synced = fetched.wall + time.monotonic() - began
    return ThroughputRound(exported, fetched, synced, (serving_exporter, serving_curl))


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


def _own_cpu() -> float:
    """CPU seconds of this process (the simulated portal's thread does nearly all of it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_naive":
        webhook, manifest, out, rps = sys.argv[2:6]
        asyncio.run(naive_client(webhook, Path(manifest), Path(out), float(rps)))
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
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
