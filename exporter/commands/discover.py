"""`discover`: a manifest of every image of some products, or of the whole catalog."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.commands.shared import (
    add_config_option,
    add_rate_options,
    config_file,
    level_of,
    positive,
)
from exporter.config import load_config
from exporter.errors import UsageError
from exporter.jobs.discovery import DiscoveryJob, DiscoveryResult
from exporter.manifest import formats_help

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
    "  b24-image-exporter discover --config config.yaml --product 12 14 --out m.yaml\n"
    "  b24-image-exporter discover --all     (./config.yaml, into its manifest)\n\n"
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
        metavar="MANIFEST",
        help=f"manifest to write ({formats_help(short=True)}; default: the config's manifest)",
    )
    add_rate_options(discover)


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Discover, write the manifest, print what was found."""
    config = load_config(config_file(args), rate=args.rate, burst=args.burst)
    out = args.out or config.manifest
    if out is None:
        raise UsageError("discover needs --out MANIFEST: the config names no manifest")
    job = DiscoveryJob(config, out, products=args.product, on_change=runner.discovery_reporter())
    result = runner.run(job.run)
    if not args.quiet:
        _say_found(runner, result, out, walked=args.all)
    return result.exit_code


def _say_found(runner: Runner, result: DiscoveryResult, out: Path, *, walked: bool) -> None:
    """What the discovery found and where it wrote it (why it stopped is in the log)."""
    found = result.found
    lines = [
        f"discovered {result.rows} images of {found.products} products"
        + (f" in {found.catalogs} catalogs" if walked else "")
        + f" with {found.requests} requests; manifest: {out}"
    ]
    lines += [f"  product {product_id}: {error}" for product_id, error in found.failed_products]
    fields = {
        "images": result.rows,
        "products": found.products,
        "catalogs": found.catalogs,
        "requests": found.requests,
        "manifest": str(out),
        "failedProducts": [
            {"productId": product_id, "error": str(error)}
            for product_id, error in found.failed_products
        ],
        "exitCode": result.exit_code,
    }
    if result.aborted_by:
        fields["abortedBy"] = result.aborted_by
    runner.console.say(
        "\n".join(lines), topic="exporter.discover", level=level_of(result.exit_code), fields=fields
    )
