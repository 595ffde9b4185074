"""`run`: the export job (or its dry run), its metrics file and its summary."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.commands.shared import (
    DEFAULT_CONFIG,
    EXIT_CODES,
    add_config_option,
    add_rate_options,
    config_file,
    level_of,
    say_summary,
)
from exporter.config import Config, load_config, portal_host_of
from exporter.errors import (
    EXIT_INCOMPLETE,
    FatalPortalError,
    UsageError,
    exit_status,
    with_remedy,
)
from exporter.jobs.export import ExportJob
from exporter.jobs.metrics import write_metrics
from exporter.jobs.report import usage_error_report, write_report
from exporter.jobs.session import destination_for
from exporter.manifest import formats_help

if TYPE_CHECKING:
    from exporter.cli import Runner


HELP = "export the images a manifest names"
DESCRIPTION = "Export the images a manifest names, skipping those already done."
EPILOG = (
    "examples:\n  b24-image-exporter run --config config.yaml\n"
    "  b24-image-exporter run -n          (./config.yaml, a dry run)\n"
    "  b24-image-exporter run --config config.yaml --dry-run=metadata\n"
    "  b24-image-exporter run --config config.yaml --discover --metrics-file b24.prom\n\n"
    + EXIT_CODES
)


def add_arguments(run: argparse.ArgumentParser) -> None:
    """The options of `run`."""
    add_config_option(run)
    run.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help=f"manifest ({formats_help(short=True)}); overrides manifest",
    )
    run.add_argument(
        "-o",
        "--output",
        metavar="DIR|URL",
        help="output folder or s3://bucket/prefix; overrides output.dir",
    )
    run.add_argument("--report", type=Path, metavar="FILE", help="report path; overrides report")
    add_rate_options(run)
    run.add_argument("--force", action="store_true", help="export again images already done")
    run.add_argument(
        "--reindex",
        action="store_true",
        help="an s3:// output: rebuild the local index of done images from the store's "
        "listing and sidecars",
    )
    run.add_argument(
        "--recheck",
        action="store_true",
        help="ask the portal about done images too (metadata only), to find those gone",
    )
    run.add_argument(
        "--dry-run",
        nargs="?",
        const="plan",
        choices=("plan", "metadata"),
        metavar="metadata",
        help="plan only: no download, no file written (=metadata: fetch the metadata too)",
    )
    run.add_argument(
        "-n", dest="dry_run", action="store_const", const="plan", help="same as --dry-run"
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


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Run the export (or plan it); the report and the metrics file land however it ends."""
    try:
        config = load_config(
            config_file(args),
            manifest=args.manifest,
            output_dir=args.output,
            report=args.report,
            rate=args.rate,
            burst=args.burst,
        )
    except UsageError as exc:
        _could_not_start(args, exc)
        raise
    if args.dry_run:
        return _dry_run(args, config, runner)
    job = ExportJob(
        config,
        force=args.force,
        destination=destination_for(config, reindex=args.reindex),
        progress=runner.progress_view(),
        discover=args.discover,
        recheck=args.recheck,
    )
    try:
        result = runner.run_job(job.run, lambda: job.result, job.interrupt)
    except UsageError:  # the job could not start; its report says why
        if args.metrics_file and job.result is not None:
            write_metrics(args.metrics_file, job.result.report, job.result.seconds)
        raise
    exit_code = result.exit_code
    if args.metrics_file and not write_metrics(args.metrics_file, result.report, result.seconds):
        exit_code = exit_code or EXIT_INCOMPLETE  # a monitor would not see this run
    if not args.quiet:
        say_summary(runner.console, result)
    return exit_code


def _could_not_start(args: argparse.Namespace, error: UsageError) -> None:
    """A configuration that cannot be used is a run that did not happen: say so where a
    monitor looks (the report given with --report, the metrics file), with the portal."""
    report = usage_error_report(portal_host_of(args.config or DEFAULT_CONFIG), str(error))
    if args.report:
        write_report(args.report, report)
    if args.metrics_file:
        write_metrics(args.metrics_file, report, 0.0)


def _dry_run(args: argparse.Namespace, config: Config, runner: Runner) -> int:
    from exporter.jobs.dryrun import dry_run, plan_fields, render_plan

    metadata = args.dry_run == "metadata"
    try:
        plan = runner.run(
            lambda: dry_run(
                config,
                discover=args.discover,
                metadata=metadata,
                force=args.force,
                recheck=args.recheck,
            )
        )
    except FatalPortalError as exc:
        fields = {"exitCode": exit_status(exc), "abortedBy": str(exc)}
        runner.console.say(
            f"aborted: {with_remedy(exc)}",
            topic="exporter.plan",
            level="error",
            fields=fields,
            to_stderr=True,
        )
        return exit_status(exc)
    exit_code = exit_status(failed=bool(plan.failures))
    runner.console.say(
        render_plan(plan, config),
        topic="exporter.plan",
        level=level_of(exit_code),
        fields={**plan_fields(plan, config), "exitCode": exit_code},
    )
    return exit_code
