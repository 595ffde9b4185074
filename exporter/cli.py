"""The command line: arguments → configuration → a job, and the job's end → an exit code."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import anyio

from exporter import __version__
from exporter.config import Config, load_config
from exporter.errors import (
    EXIT_INTERRUPTED,
    ExporterError,
    FatalPortalError,
    OutputError,
    UsageError,
    exit_status,
    primary_exception,
)
from exporter.jobs.discovery import DiscoveryJob
from exporter.jobs.dryrun import dry_run, render_plan
from exporter.jobs.export import ExportJob, ExportResult
from exporter.jobs.metrics import write_metrics
from exporter.jobs.progress import ProgressView, choose_view, discovery_reporter
from exporter.jobs.report import usage_error_report
from exporter.logs import configure_logging
from exporter.redact import redact

log = logging.getLogger("exporter.cli")

T = TypeVar("T")

EXIT_CODES = """\
exit codes:
  0    every image is exported or was already done (verify: all files match)
  1    some images failed, or the run stopped early (full disk, portal
       unreachable); the report says which
  2    usage, configuration or manifest error: nothing was requested
  3    the portal refused the job as a whole (credentials, scope, plan, block)
  130  interrupted (SIGINT/SIGTERM); the report is still written
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `b24-image-exporter` and `python -m exporter`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbosity = -1 if args.quiet else min(args.verbose, 1)
    configure_logging(verbosity, args.log_format)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (UsageError, OutputError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt as exc:
        print("interrupted", file=sys.stderr)
        return exit_status(exc)
    except Exception as exc:
        # A bug, not a situation: say so through the log, whose formatter redacts
        # the message and the traceback alike.
        log.exception("internal error (please report it)")
        return exit_status(exc)


def _common_options(*, defaults: bool) -> argparse.ArgumentParser:
    """Options every command takes; subcommands leave unset ones to the top level."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=default(0), help="log every request"
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="only errors"
    )
    common.add_argument(
        "--no-progress",
        action="store_true",
        default=default(False),
        help="no progress bar or status lines",
    )
    common.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default("text"),
        help="log as text or JSON lines (default: text)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="b24-image-exporter",
        description="Back up Bitrix24 catalog product images: batched, rate-limited, resumable.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        parents=[common],
        help="export the images a manifest names",
        description="Export the images a manifest names, skipping those already done.",
        epilog="examples:\n  b24-image-exporter run --config config.yaml\n"
        "  b24-image-exporter run --config config.yaml --dry-run=metadata\n"
        "  b24-image-exporter run --config config.yaml --discover --metrics-file b24.prom\n\n"
        + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="YAML configuration file"
    )
    run.add_argument(
        "--manifest", type=Path, metavar="FILE", help="manifest (.csv/.yaml); overrides manifest"
    )
    run.add_argument(
        "--output", type=Path, metavar="DIR", help="output folder; overrides output.dir"
    )
    run.add_argument("--report", type=Path, metavar="FILE", help="report path; overrides report")
    run.add_argument("--force", action="store_true", help="export again images already done")
    run.add_argument(
        "--dry-run",
        nargs="?",
        const="plan",
        choices=("plan", "metadata"),
        metavar="metadata",
        help="plan only: no download, no file written",
    )
    run.add_argument(
        "--discover",
        action="store_true",
        help="export the whole catalog (walked), not a manifest",
    )
    run.add_argument(
        "--metrics-file",
        type=Path,
        metavar="FILE",
        help="write Prometheus metrics (node_exporter textfile)",
    )
    run.set_defaults(handler=_run_command)

    discover = commands.add_parser(
        "discover",
        parents=[common],
        help="write a manifest of every image of some products, or of the catalog",
        description=(
            "Write a manifest naming every image of the given products "
            "(catalog.productImage.list), or of the whole catalog: every catalog, product "
            "and variation (catalog.product.list, fast paging), then their images — all "
            "in batches and under the configured rate limit."
        ),
        epilog="examples:\n"
        "  b24-image-exporter discover --config config.yaml --all --out manifest.csv\n"
        "  b24-image-exporter discover --config config.yaml --product 12 14 --out m.yaml\n\n"
        "exit codes:\n  0  every image found is in the manifest\n"
        "  1  some catalogs or products could not be read (named in the log)\n"
        "  2  usage or configuration error\n  3  the portal refused the job as a whole",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    discover.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="YAML configuration file"
    )
    which = discover.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--product", type=_positive, nargs="+", metavar="ID", help="these products' images"
    )
    which.add_argument("--all", action="store_true", help="every image of the whole catalog")
    discover.add_argument(
        "--out", type=Path, required=True, metavar="MANIFEST", help="manifest to write (.csv/.yaml)"
    )
    discover.set_defaults(handler=_discover_command)

    verify = commands.add_parser(
        "verify",
        parents=[common],
        help="re-hash an export against its sidecars",
        description=(
            "Re-hash every exported file against its sidecar and list what is wrong: "
            "corrupt files, files missing for their sidecars, files without sidecars, "
            "temporaries left by a killed run. Writes nothing."
        ),
        epilog="example:\n  b24-image-exporter verify --output ./export\n\n"
        "exit codes:\n  0  everything matches\n  1  something is wrong (listed)\n"
        "  2  no such folder, or a run is exporting into it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="the export folder to check"
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=_verify_command)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run a real export against the built-in simulated portal",
        description=(
            "Start the simulated portal on loopback with a generated catalog, export "
            "from it under its rate limit, and print the summary. No network, no setup."
        ),
        epilog="example:\n  b24-image-exporter demo --images 500 --output /tmp/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--images", type=_positive, default=200, metavar="N", help="images (default: 200)"
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("b24-demo-export"),
        metavar="DIR",
        help="output folder (default: ./b24-demo-export)",
    )
    demo.set_defaults(handler=_demo_command)

    simulate = commands.add_parser(
        "simulate",
        parents=[common],
        help="serve the simulated portal until Ctrl-C",
        description="Serve the simulated portal on loopback and print its webhook URL.",
        epilog=(
            "examples:\n  b24-image-exporter simulate --port 8024 --manifest-out manifest.csv\n"
            "  (then set portal.webhook_url to the URL it prints)\n"
            "  b24-image-exporter simulate --rps 5 --burst 250 --faults \\\n"
            "      500=0.1,drop=0.05,truncate=0.05,html=0.02,slow=0.01,link_ttl=60,seed=7"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    option = simulate.add_argument
    option("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    option(
        "--rps",
        type=float,
        default=2.0,
        metavar="R",
        help="requests/s allowed, 0 = no limit (default: 2)",
    )
    option("--burst", type=_positive, default=50, metavar="B", help="burst allowed (default: 50)")
    option("--products", type=_positive, default=100, metavar="N", help="products (default: 100)")
    option("--images", type=_positive, default=500, metavar="N", help="images (default: 500)")
    option("--seed", type=int, default=1, help="seed of the generated catalog (default: 1)")
    option("--manifest-out", type=Path, metavar="FILE", help="write a CSV manifest of every image")
    option(
        "--downloads-uncounted",
        action="store_true",
        help="downloads outside the limit (default: inside)",
    )
    option(
        "--competitor",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="another client's share of the rate, 0-1 (default: 0)",
    )
    option(
        "--faults",
        metavar="SPEC",
        help="faults to inject, see the example (default: none)",
    )
    simulate.set_defaults(handler=_simulate_command)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _run_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(
            args.config, manifest=args.manifest, output_dir=args.output, report=args.report
        )
        if args.dry_run:
            return _dry_run(args, config)
        job = ExportJob(
            config, force=args.force, progress=_progress_view(args), discover=args.discover
        )
        result = run_job(job.run, lambda: job.result)
    except UsageError:
        if args.metrics_file:  # a monitor must see a broken configuration too
            write_metrics(args.metrics_file, usage_error_report(), 0.0)
        raise
    if args.metrics_file:
        write_metrics(args.metrics_file, result.report, result.seconds)
    if not args.quiet:
        print(summary(result))
    return result.exit_code


def _progress_view(args: argparse.Namespace) -> ProgressView | None:
    """A bar on a terminal, status lines in the log otherwise; none with -q/--no-progress."""
    return choose_view(enabled=not (args.quiet or args.no_progress))


def _dry_run(args: argparse.Namespace, config: Config) -> int:
    metadata = args.dry_run == "metadata"
    try:
        plan = _run(lambda: dry_run(config, discover=args.discover, metadata=metadata))
    except FatalPortalError as exc:
        print(f"aborted: {redact(str(exc))}", file=sys.stderr)
        return exit_status(exc)
    print(redact(render_plan(plan, config)))
    return exit_status(failed=bool(plan.failures))


def _discover_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    enabled = not (args.quiet or args.no_progress)
    job = DiscoveryJob(
        config, args.out, products=args.product, on_change=discovery_reporter(enabled)
    )
    result = _run(job.run)
    if not args.quiet:
        found = result.found
        print(
            f"discovered {result.rows} images of {found.products} products"
            + (f" in {found.catalogs} catalogs" if args.all else "")
            + f" with {found.requests} requests; manifest: {args.out}"
        )
        for product_id, error in found.failed_products:
            print(f"  product {product_id}: {redact(str(error))}")
        if result.aborted_by:
            print(f"aborted: {redact(result.aborted_by)}")
    return result.exit_code


def _verify_command(args: argparse.Namespace) -> int:
    from exporter.destination.verify import render_json, render_text, verify_output

    result = verify_output(args.output)
    if args.json:
        print(render_json(result))
    elif not (args.quiet and result.ok):
        print(render_text(result))
    return exit_status(failed=not result.ok)


def _demo_command(args: argparse.Namespace) -> int:
    # The simulator is imported only here and for `simulate`: `run` starts faster.
    from exporter.jobs.demo import DEMO_BURST, DEMO_RATE, Demo

    demo = Demo(args.images, args.output, progress=_progress_view(args))
    result = run_job(demo.run, lambda: demo.job.result if demo.job else None)
    if not args.quiet:
        print(summary(result))
        f = demo.figures
        if f is not None and result.report["counts"]["exported"]:
            print(
                f"portal limit {DEMO_RATE:g} req/s, burst {DEMO_BURST}: it served "
                f"{f.requests} requests in {f.seconds:.1f}s ({f.requests / f.seconds:.1f} req/s) "
                f"and refused {f.refused} with QUERY_LIMIT_EXCEEDED"
            )
        elif f is not None:
            print(
                f"the portal served {f.requests} request{'s' if f.requests != 1 else ''} "
                f"and refused {f.refused}; "
                "images already in the output folder cost none"
            )
        print(f"files: {args.output}")
    return result.exit_code


def _simulate_command(args: argparse.Namespace) -> int:
    from exporter.jobs.demo import serve_until_stopped, write_manifest
    from exporter.simulator import Catalog, FaultSettings, PortalSettings

    catalog = Catalog.generate(
        products=args.products, images=max(args.images, args.products), seed=args.seed
    )
    try:
        settings = PortalSettings(
            rps=args.rps if args.rps > 0 else None,
            burst=args.burst,
            count_downloads=not args.downloads_uncounted,
            competitor_share=args.competitor,
            faults=FaultSettings.parse(args.faults) if args.faults else FaultSettings(),
        )
    except ValueError as exc:
        raise UsageError(f"simulate: {exc}") from None
    announce = []
    if args.manifest_out:
        write_manifest(catalog, args.manifest_out)
        announce.append(f"manifest: {args.manifest_out}")
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve_until_stopped, catalog, settings, args.port, announce)
    return 0


# uvloop's event loop (installed with the exporter except on Windows) receives a
# download with about a tenth less CPU than asyncio's own; either runs the same code.
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def _run(work: Callable[[], Awaitable[T]]) -> T:
    """Run async work on a fresh event loop; a task group's error comes out unwrapped."""
    try:
        return anyio.run(work, backend_options={"use_uvloop": HAVE_UVLOOP})
    except BaseExceptionGroup as group:
        raise primary_exception(group) from None


def run_job(
    start: Callable[[], Awaitable[ExportResult]], result_of: Callable[[], ExportResult | None]
) -> ExportResult:
    """Run a job on the event loop; SIGINT/SIGTERM cancel it, and its report still lands."""

    async def supervise() -> ExportResult | None:
        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for received in signals:
                        log.warning("%s received: stopping", signal.Signals(received).name)
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch_signals)
            outcome = await start()
            tg.cancel_scope.cancel()
            return outcome
        return result_of()

    result = _run(supervise)
    if result is None:
        raise ExporterError("the run stopped before it could write its report")
    return result


def summary(result: ExportResult) -> str:
    """The lines printed at the end of a run."""
    counts = result.report["counts"]
    requests = result.report["requests"]
    lines = [
        f"images: {counts['total']} total, {counts['exported']} exported, "
        f"{counts['skipped']} already done, {counts['failed']} failed",
        f"requests: {requests['rest']} REST ({requests['batch']} batches), "
        f"{requests['download']} downloads, {requests['rateLimited']} rate-limited, "
        f"{requests['retried']} retried",
    ]
    if result.aborted_by:
        lines.append(f"aborted: {redact(result.aborted_by)}")
    if result.exit_code == EXIT_INTERRUPTED:
        lines.append("interrupted: the next run resumes where this one stopped")
    lines.append(f"report: {result.report_path}")
    return "\n".join(lines)
