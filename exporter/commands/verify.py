"""`verify`: re-hash an export against its sidecars, list what is wrong, and repair on request."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from exporter.commands.shared import (
    DEFAULT_CONFIG,
    add_folder_arguments,
    export_folder,
    level_of,
    store_export_named,
)
from exporter.destination.verify import (
    render_text,
    repair_output,
    verification_document,
    verify_output,
)
from exporter.errors import UsageError, exit_status

if TYPE_CHECKING:
    from exporter.cli import Runner


HELP = "re-hash an export against its sidecars (--repair: move corrupt files aside)"
DESCRIPTION = (
    "Re-hash every exported file against its sidecar and list what is wrong: "
    "corrupt files, files missing for their sidecars or the index, files without sidecars, "
    "temporaries left by a killed run. Writes nothing, unless --repair. "
    "The folder is DIR, --output DIR, or output.dir of --config FILE "
    f"(./{DEFAULT_CONFIG} when it exists and neither is given). "
    "An export in an object store (DIR s3://bucket/prefix, or an s3:// output.dir) is "
    "checked object by object, by the SHA-256 the store kept where it has one, else by "
    "reading the object; it is reached as the config's output.s3 says, or as "
    "AWS_ENDPOINT_URL_S3 does."
)
EPILOG = (
    "examples:\n  b24-image-exporter verify /mnt/backup/export\n"
    "  b24-image-exporter verify s3://b24-backups/shop-a\n"
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
    add_folder_arguments(verify, "check")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="move corrupt files and their sidecars aside and forget them (nothing else)",
    )


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Check every export, repairing on request; print the findings (JSON with --json)."""
    named: str | None = args.dir or args.output
    store = store_export_named(args, named)
    if store is not None:
        if args.repair:
            raise UsageError("verify --repair works on a folder only")
        from exporter.destination.store import verify_store

        result = runner.run(lambda: verify_store(store))
    else:
        folder = export_folder(args, "verify")
        result = repair_output(folder) if args.repair else verify_output(folder)
    exit_code = exit_status(failed=not result.ok)
    if args.json:
        runner.console.document(verification_document(result))
    elif not (args.quiet and result.ok):
        fields = {**verification_document(result), "exitCode": exit_code}
        runner.console.say(
            render_text(result), topic="exporter.verify", level=level_of(exit_code), fields=fields
        )
    return exit_code
