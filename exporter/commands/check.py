"""`check`: test a configuration before the first run, one line per check, writing nothing."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from exporter.commands.shared import add_config_option
from exporter.jobs.check import Outcome, ReadinessCheck, Status, render, render_verdict
from exporter.redact import redact

if TYPE_CHECKING:
    from exporter.cli import Runner


HELP = "test a configuration before the first run: config, manifest, output, portal"
DESCRIPTION = (
    "Check that a run with this configuration can start: the configuration loads, the "
    "manifest parses, the output folder can be written and no run holds it, the portal "
    "accepts the credentials and the catalog scope, its clock agrees with this machine's "
    "and the manifest's first image can be read; then what `run --dry-run` estimates. "
    "One line per check, with what to do about a problem. Writes nothing, and sends the "
    "portal two requests when it answers (more only as retries.max_attempts allows)."
)
EPILOG = (
    "example:\n  b24-image-exporter check --config config.yaml\n\n"
    "exit codes:\n  0  ready (warnings allowed)\n"
    "  2  the configuration or the manifest cannot be used, or a run holds the output\n"
    "  3  the portal refuses the credentials, the scope or the right to read images\n"
    "  4  the output cannot be written, or the portal does not answer\n"
    "  (the code `run` would exit with for the first problem)"
)


def add_arguments(check: argparse.ArgumentParser) -> None:
    """The options of `check`."""
    add_config_option(check)


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Run the checks, printing each as it is known and the verdict last."""

    def show(outcome: Outcome) -> None:
        if not args.quiet or outcome.status is Status.PROBLEM:
            print(redact(render(outcome)), flush=True)

    readiness = runner.run(ReadinessCheck(args.config, show).run)
    if not args.quiet or readiness.exit_code:
        print(redact(render_verdict(readiness)))
    return readiness.exit_code
