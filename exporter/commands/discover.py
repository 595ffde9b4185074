"""`discover`: a manifest of every image of some products, or of the whole catalog."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.commands.shared import add_config_option, positive
from exporter.config import load_config
from exporter.jobs.discovery import DiscoveryJob
from exporter.jobs.progress import discovery_reporter
from exporter.manifest import formats_help
from exporter.redact import redact

if TYPE_CHECKING:
    from exporter.cli import Runner


HELP = "write a manifest of every image of some products, or of the catalog"
DESCRIPTION = (
    "Write a manifest naming every image of the given products "
    "(catalog.productImage.list), or of the whole catalog: every catalog, product "
    "and variation (catalog.product.list, fast paging), then their images — all "
    "in batches and under the configured rate limit."
)
EPILOG = (
    "examples:\n"
    "  b24-image-exporter discover --config config.yaml --all --out manifest.csv\n"
    "  b24-image-exporter discover --config config.yaml --product 12 14 --out m.yaml\n\n"
    "exit codes:\n  0  every image found is in the manifest\n"
    "  1  some catalogs or products could not be read (named in the log)\n"
    "  2  usage or configuration error\n  3  the portal refused the job as a whole"
)


def add_arguments(discover: argparse.ArgumentParser) -> None:
    """The options of `discover`."""
    add_config_option(discover)
    which = discover.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--product", type=positive, nargs="+", metavar="ID", help="these products' images"
    )
    which.add_argument("--all", action="store_true", help="every image of the whole catalog")
    discover.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="MANIFEST",
        help=f"manifest to write ({formats_help(short=True)})",
    )


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Discover, write the manifest, print what was found."""
    config = load_config(args.config)
    job = DiscoveryJob(
        config, args.out, products=args.product, on_change=discovery_reporter(runner.progress)
    )
    result = runner.run(job.run)
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
