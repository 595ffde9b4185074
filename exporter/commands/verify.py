"""`verify`: re-hash an export against its sidecars and list what is wrong."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.destination.verify import render_json, render_text, verify_output
from exporter.errors import exit_status

if TYPE_CHECKING:
    from exporter.cli import Runner


HELP = "re-hash an export against its sidecars"
DESCRIPTION = (
    "Re-hash every exported file against its sidecar and list what is wrong: "
    "corrupt files, files missing for their sidecars or the index, files without sidecars, "
    "temporaries left by a killed run. Writes nothing."
)
EPILOG = (
    "example:\n  b24-image-exporter verify --output ./export\n\n"
    "exit codes:\n  0  everything matches\n  1  something is wrong (listed)\n"
    "  2  no such folder, no export in it (is the backup volume mounted?),\n"
    "     or a run is exporting into it"
)


def add_arguments(verify: argparse.ArgumentParser) -> None:
    """The options of `verify`."""
    verify.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="the export folder to check"
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Check every export; print the findings (JSON with --json)."""
    result = verify_output(args.output)
    if args.json:
        print(render_json(result))
    elif not (args.quiet and result.ok):
        print(render_text(result))
    return exit_status(failed=not result.ok)
