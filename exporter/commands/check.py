"""`check`: test a configuration before the first run, one line per check, writing nothing."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from exporter.commands.shared import add_config_option, config_file, level_of

if TYPE_CHECKING:
    from exporter.cli import Runner
    from exporter.jobs.check import Outcome


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
    """Run the checks, saying each as it is known and the verdict last."""
    from exporter.jobs.check import ReadinessCheck, Status, render, render_verdict

    console = runner.console

    def show(outcome: Outcome) -> None:
        if not args.quiet or outcome.status is Status.PROBLEM:
            level = {Status.PROBLEM: "error", Status.WARNING: "warning"}.get(outcome.status)
            fields = {"check": outcome.subject, "status": outcome.status.value}
            if outcome.remedy:
                fields["remedy"] = outcome.remedy
            console.say(render(outcome), topic="exporter.check", level=level or "info",
                        fields=fields)  # fmt: skip

    readiness = runner.run(ReadinessCheck(config_file(args), show).run)
    if not args.quiet or readiness.exit_code:
        fields = {"requests": readiness.requests, "exitCode": readiness.exit_code}
        console.say(
            render_verdict(readiness),
            topic="exporter.check",
            level=level_of(readiness.exit_code),
            fields=fields,
        )
    return readiness.exit_code
