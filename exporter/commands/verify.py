"""`verify`: re-hash an export against its sidecars, list what is wrong, and repair on request."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.config import load_config
from exporter.destination.verify import render_json, render_text, repair_output, verify_output
from exporter.errors import UsageError, exit_status

if TYPE_CHECKING:
    from exporter.cli import Runner


DEFAULT_CONFIG = Path("config.yaml")  # in the working folder, taken when it exists

HELP = "re-hash an export against its sidecars (--repair: move corrupt files aside)"
DESCRIPTION = (
    "Re-hash every exported file against its sidecar and list what is wrong: "
    "corrupt files, files missing for their sidecars or the index, files without sidecars, "
    "temporaries left by a killed run. Writes nothing, unless --repair. "
    "The folder is DIR, --output DIR, or output.dir of --config FILE "
    f"(./{DEFAULT_CONFIG} when it exists and neither is given)."
)
EPILOG = (
    "examples:\n  b24-image-exporter verify /mnt/backup/export\n"
    "  b24-image-exporter verify --config config.yaml --repair\n\n"
    "--repair moves each corrupt file (size or SHA-256 differs from its sidecar, or the\n"
    "sidecar names another file) with its sidecar into .b24-image-exporter/repaired/<time>/\n"
    "and makes the index forget it, so the next run exports it again under its name.\n"
    "It deletes nothing, and leaves missing, orphaned, temporary and unreadable files as\n"
    "they are (listed only). It holds the run lock, so it never races a run.\n\n"
    "exit codes:\n  0  everything matches\n"
    "  1  something is wrong (listed; also when --repair moved it aside)\n"
    "  2  no such folder, no export in it (is the backup volume mounted?), no folder\n"
    "     given, a config that cannot be loaded, or a run is exporting into it"
)


def add_arguments(verify: argparse.ArgumentParser) -> None:
    """The options of `verify`."""
    where = verify.add_mutually_exclusive_group()
    where.add_argument(
        "dir", nargs="?", type=Path, metavar="DIR", help="the export folder to check"
    )
    where.add_argument(
        "-o", "--output", type=Path, metavar="DIR", help="the export folder (instead of DIR)"
    )
    where.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help=f"check output.dir of this config (default: ./{DEFAULT_CONFIG} if it exists)",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="move corrupt files and their sidecars aside and forget them (nothing else)",
    )


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Check every export, repairing on request; print the findings (JSON with --json)."""
    folder = _folder(args)
    result = repair_output(folder) if args.repair else verify_output(folder)
    if args.json:
        print(render_json(result))
    elif not (args.quiet and result.ok):
        print(render_text(result))
    return exit_status(failed=not result.ok)


def _folder(args: argparse.Namespace) -> Path:
    """The folder to check: DIR, --output, or output.dir of the config."""
    folder: Path | None = args.dir or args.output
    if folder is not None:
        return folder
    config = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    if config is None:
        raise UsageError(
            "verify needs the export folder: give DIR, --output DIR or --config FILE "
            f"(there is no ./{DEFAULT_CONFIG} to take it from)"
        )
    return load_config(config).output.dir
