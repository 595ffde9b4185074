"""`prune`: remove the images gone from the portal for longer than DAYS, and nothing else."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from exporter.commands.shared import add_folder_arguments, export_folder, store_export_named
from exporter.destination.base import Destination
from exporter.errors import ConfigError, exit_status
from exporter.jobs.prune import prune
from exporter.jobs.session import destination_at

if TYPE_CHECKING:
    from exporter.cli import Runner

HELP = "remove images gone from the portal for longer than DAYS"
DESCRIPTION = (
    "Remove from the backup the files and sidecars of images that have been gone from "
    "the portal for longer than DAYS (a run marks an image gone when the portal no longer "
    "has it: its pair answers not found, or its product no longer lists it). Nothing "
    "that is not gone is ever removed. --dry-run lists them and changes nothing."
)
EPILOG = (
    "examples:\n  b24-image-exporter prune ./export --gone-for 30 --dry-run\n"
    "  b24-image-exporter prune --config config.yaml --gone-for 90\n\n"
    "exit codes:\n  0  done (or nothing to remove)\n"
    "  2  no such folder, no folder given, or a run is exporting into it\n"
    "  4  a file could not be removed"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `prune`."""
    add_folder_arguments(parser, "prune")
    parser.add_argument(
        "--gone-for",
        type=float,
        required=True,
        metavar="DAYS",
        help="remove images gone for longer than this many days (0: every gone image)",
    )
    parser.add_argument(
        "-n", "--dry-run", action="store_true", help="list what would be removed; change nothing"
    )


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Prune the export; print each image removed and a summary."""
    if args.gone_for < 0:
        raise ConfigError("prune --gone-for: DAYS must not be negative")
    store = store_export_named(args, args.dir or args.output)
    destination: Destination
    if store is not None:
        destination = store
    else:
        folder = export_folder(args, "prune")
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise ConfigError(f"prune: {folder} {what}")
        destination = destination_at(folder)
    result = runner.run(
        lambda: prune(destination, gone_for_days=args.gone_for, dry_run=args.dry_run)
    )
    verb = "would remove" if result.dry_run else "removed"
    console = runner.console
    if not args.quiet:
        for pruned in result.removed:
            fields = {"productId": pruned.ref.product_id, "id": pruned.ref.image_id,
                      "file": pruned.key, "goneSince": pruned.since}  # fmt: skip
            console.say(f"{verb} {pruned.key} ({pruned.ref}, gone since {pruned.since})",
                        topic="exporter.prune", fields=fields)  # fmt: skip
        count = len(result.removed)
        console.say(
            f"{verb} {count} gone image{'s' if count != 1 else ''}"
            f"; kept {result.kept} gone for less than {args.gone_for:g} days",
            topic="exporter.prune",
            fields={"removed": count, "kept": result.kept, "dryRun": result.dry_run},
        )
    return exit_status()
