"""`demo`: a real export against the built-in simulated portal, no setup, no network."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.commands.shared import positive, say_summary
from exporter.units import format_duration

if TYPE_CHECKING:
    from exporter.cli import Runner
    from exporter.jobs.demo import PortalFigures


TOPIC = "exporter.demo"  # the logger its JSON lines name

HELP = "run a real export against the built-in simulated portal"
DESCRIPTION = (
    "Start the simulated portal on loopback with a generated catalog, export "
    "from it under its rate limit, and print the summary. No network, no setup."
)
EPILOG = "example:\n  b24-image-exporter demo --images 500 --output /tmp/demo"


def add_arguments(demo: argparse.ArgumentParser) -> None:
    """The options of `demo`."""
    demo.add_argument(
        "--images", type=positive, default=200, metavar="N", help="images (default: 200)"
    )
    demo.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("b24-demo-export"),
        metavar="DIR",
        help="output folder (default: ./b24-demo-export)",
    )


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Run the demo; print the export's summary and what the simulated portal saw."""
    # The simulator is imported only here and for `simulate`: `run` starts faster.
    from exporter.jobs.demo import Demo

    demo = Demo(args.images, args.output, progress=runner.progress_view())
    result = runner.run_job(demo.run, lambda: demo.job.result if demo.job else None, demo.interrupt)
    if not args.quiet:
        say_summary(runner.console, result)
        f = demo.figures
        if f is not None:
            exported = result.report["counts"]["exported"] > 0
            figures = {"requests": f.requests, "refused": f.refused, "seconds": round(f.seconds, 3)}
            runner.console.say(_portal_line(f, exported=exported), topic=TOPIC, fields=figures)
        runner.console.say(
            f"files: {args.output}", topic=TOPIC, fields={"output": str(args.output)}
        )
    return result.exit_code


def _portal_line(f: PortalFigures, *, exported: bool) -> str:
    """What the simulated portal saw — its burst at once, then its rate — and how long the
    same requests take at a real portal's default limit (2 req/s, burst 50)."""
    from exporter.jobs.demo import DEMO_BURST, DEMO_RATE, seconds_on_the_default_plan

    if not exported:
        return (
            f"the portal served {f.requests} request{'s' if f.requests != 1 else ''} "
            f"and refused {f.refused}; "
            "images already in the output folder cost none"
        )
    steady = max(0, f.requests - DEMO_BURST) / f.seconds if f.seconds > 0 else 0.0
    at_default = seconds_on_the_default_plan(f.requests)
    real = f"about {format_duration(at_default)}" if at_default else "no longer than its burst"
    return (
        f"the simulated portal allows {DEMO_RATE:g} requests/s after a burst of {DEMO_BURST}: "
        f"it served {f.requests} requests in {f.seconds:.1f}s (the burst at once, then "
        f"{steady:.1f}/s) and refused {f.refused} with QUERY_LIMIT_EXCEEDED; on a real "
        f"portal's default plan (2 requests/s, burst 50) the same job takes {real}"
    )
