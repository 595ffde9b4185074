"""`restore`: upload an export into a portal — the one it came from, or another — exactly once."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.commands.shared import add_config_option, config_file, level_of, positive
from exporter.config import is_store_url, load_config
from exporter.destination.base import Destination
from exporter.destination.index import STATE_DIR
from exporter.errors import ConfigError

if TYPE_CHECKING:
    from exporter.cli import Runner

TYPES = ("DETAIL_PICTURE", "PREVIEW_PICTURE", "MORE_PHOTO")

HELP = "upload an export back into a portal (the same one, or another)"
DESCRIPTION = (
    "Upload the images of an export into the portal the configuration names, with "
    "catalog.productImage.add: every image whose file still matches its sidecar (re-hashed "
    "first), to the product with the same id, the one --map names, or the one with the same "
    "external code (--match-by xmlId: a code no product or several products have fails, "
    "it is never guessed). Into the portal it "
    "came from, images still there are skipped, so a restore after a deletion brings back "
    "exactly what was deleted. A product's detail or preview picture is never replaced "
    "unless --replace-pictures. A journal in the export makes each upload happen once, "
    "also when an answer is lost or the run is killed."
)
EPILOG = (
    "examples:\n  b24-image-exporter restore --config config.yaml --from ./export\n"
    "  b24-image-exporter restore -c target.yaml --from ./export --match-by xmlId --verify\n"
    "  b24-image-exporter restore -c target.yaml --from ./export --map map.csv\n"
    "  b24-image-exporter restore -c config.yaml --from ./export --product 12 14 -n\n\n"
    "--map CSV has a header row, then sourceProductId,targetProductId per row.\n\n"
    "exit codes:\n  0  every chosen image is on the portal (restored, or there already)\n"
    "  1  some images failed (corrupt file, product not found, mapped or matched, refused)\n"
    "  2  usage or configuration error, or a run holds the export's lock\n"
    "  3  the portal refused the job as a whole\n"
    "  4  the portal stopped answering, or the export cannot be read"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `restore`."""
    add_config_option(parser)
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DIR|URL",
        help="the export: its folder, or its s3://bucket/prefix",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--map", type=Path, metavar="CSV", help="source product → target product, per row"
    )
    target.add_argument(
        "--match-by",
        choices=("xmlId",),
        help="the target product is the one with the source product's external code",
    )
    parser.add_argument(
        "--product", type=positive, nargs="+", metavar="ID", help="only these source products"
    )
    parser.add_argument(
        "--type", choices=TYPES, nargs="+", metavar="TYPE", help="only images of these types"
    )
    parser.add_argument(
        "--include-gone", action="store_true", help="also images gone from their portal"
    )
    parser.add_argument(
        "--replace-pictures",
        action="store_true",
        help="let a detail or preview picture replace the target product's",
    )
    parser.add_argument(
        "--verify", action="store_true", help="read every upload back and compare its SHA-256"
    )
    parser.add_argument(
        "-n", "--dry-run", action="store_true", help="say what would go where; upload nothing"
    )
    parser.add_argument(
        "--report", type=Path, metavar="FILE", help="report path (default: in the export)"
    )


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Restore the export; say the summary."""
    from exporter.jobs.restore import RestoreJob, RestoreOptions, read_map
    from exporter.jobs.session import destination_at, store_export_at

    config = load_config(config_file(args))
    source: Destination
    if is_store_url(args.source):
        store = store_export_at(args.source, config)
        source, state, name = store, store.state_dir, store.store.url
    else:
        folder = Path(args.source)
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise ConfigError(f"restore --from {folder}: {what}")
        source, state, name = destination_at(folder), folder / STATE_DIR, str(folder)
    options = RestoreOptions(
        products=frozenset(args.product) if args.product else None,
        types=frozenset(args.type) if args.type else None,
        include_gone=args.include_gone,
        product_map=read_map(args.map) if args.map else None,
        match_by_xml_id=args.match_by == "xmlId",
        replace_pictures=args.replace_pictures,
        verify=args.verify,
        dry_run=args.dry_run,
    )
    host = re.sub(r"[^A-Za-z0-9._-]", "_", config.portal.host)
    report = args.report or state / f"restore-report-{host}.json"
    job = RestoreJob(
        config,
        source,
        name,
        options,
        report=report,
        progress=None if args.dry_run else runner.progress_view(),
    )
    result = runner.run(job.run)
    if not args.quiet or result.exit_code:
        runner.console.say(
            result.summary(),
            topic="exporter.restore",
            level=level_of(result.exit_code),
            fields={"counts": result.report["counts"], "exitCode": result.exit_code},
        )
    return result.exit_code
