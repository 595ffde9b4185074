"""`simulate`: serve the simulated portal on loopback until Ctrl-C, for trying the tool by hand."""

from __future__ import annotations

import argparse
import contextlib
import errno
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from exporter.commands.shared import port_number, positive
from exporter.errors import UsageError

if TYPE_CHECKING:
    from exporter.cli import Runner
    from exporter.simulator import Catalog, PortalSettings


TOPIC = "exporter.simulate"  # the logger its JSON lines name

HELP = "serve the simulated portal until Ctrl-C"
DESCRIPTION = "Serve the simulated portal on loopback and print its webhook URL."
EPILOG = (
    "examples:\n  b24-image-exporter simulate --port 8024 --manifest-out manifest.csv\n"
    "  (then set portal.webhook_url to the URL it prints)\n"
    "  b24-image-exporter simulate --port 8025 --first-id 50001 --empty\n"
    "  (another portal with the same products under other ids and no images: a target\n"
    "  for restore --match-by xmlId)\n"
    "  b24-image-exporter simulate --rps 5 --burst 250 --faults \\\n"
    "      500=0.1,drop=0.05,truncate=0.05,html=0.02,slow=0.01,link_ttl=60,seed=7"
)


def add_arguments(simulate: argparse.ArgumentParser) -> None:
    """The options of `simulate`."""
    option = simulate.add_argument
    option("--port", type=port_number, default=0, help="port on 127.0.0.1 (default: any free one)")
    option(
        "--rps",
        type=float,
        default=2.0,
        metavar="R",
        help="requests/s allowed, 0 = no limit (default: 2)",
    )
    option("--burst", type=positive, default=50, metavar="B", help="burst allowed (default: 50)")
    option("--products", type=positive, default=100, metavar="N", help="products (default: 100)")
    option("--images", type=positive, default=500, metavar="N", help="images (default: 500)")
    option("--seed", type=int, default=1, help="seed of the generated catalog (default: 1)")
    option(
        "--first-id",
        type=positive,
        default=1,
        metavar="ID",
        help="first product id; the same seed gives the same products (names, xmlIds) "
        "under other ids, as another portal would (default: 1)",
    )
    option(
        "--empty",
        action="store_true",
        help="the products without any image: a target to restore or migrate into",
    )
    option("--manifest-out", type=Path, metavar="FILE", help="write a CSV manifest of every image")
    option(
        "--downloads-uncounted",
        action="store_true",
        help="downloads outside the limit (default: inside)",
    )
    option(
        "--competitor",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="another client's share of the rate, 0-1 (default: 0)",
    )
    option(
        "--faults",
        metavar="SPEC",
        help="faults to inject, see the example (default: none)",
    )


def handle(args: argparse.Namespace, runner: Runner) -> int:
    """Generate the catalog, serve it until interrupted."""
    from exporter.jobs.demo import write_manifest
    from exporter.simulator import Catalog, FaultSettings, PortalSettings

    images = 0 if args.empty else max(args.images, args.products)
    catalog = Catalog.generate(
        products=args.products, images=images, seed=args.seed, first_id=args.first_id
    )
    try:
        settings = PortalSettings(
            rps=args.rps if args.rps > 0 else None,
            burst=args.burst,
            count_downloads=not args.downloads_uncounted,
            competitor_share=args.competitor,
            faults=FaultSettings.parse(args.faults) if args.faults else FaultSettings(),
        )
    except ValueError as exc:
        raise UsageError(f"simulate: {exc}") from None
    announce = []
    if args.manifest_out:
        write_manifest(catalog, args.manifest_out)
        announce.append(f"manifest: {args.manifest_out}")
    with contextlib.suppress(KeyboardInterrupt):
        runner.run(lambda: _serve_until_stopped(catalog, settings, args.port, announce, runner))
    return 0


async def _serve_until_stopped(
    catalog: Catalog, settings: PortalSettings, port: int, announce: list[str], runner: Runner
) -> None:
    """Serve the simulated portal until cancelled; print where it is."""
    from exporter.simulator import serve_portal

    async with contextlib.AsyncExitStack() as stack:
        try:
            portal = await stack.enter_async_context(serve_portal(catalog, settings, port=port))
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            problem = "is in use" if in_use else f"cannot be listened on: {exc.strerror}"
            raise UsageError(f"port {port} {problem}") from None
        say = runner.console.say
        images, products = len(catalog.pairs()), len(catalog.product_ids())
        size = {"images": images, "products": products}
        say(f"simulated portal: {images} images in {products} products", topic=TOPIC, fields=size)
        # The simulated portal's own made-up code: the user copies this URL into a config.
        url = portal.webhook_url
        say(f"webhook URL: {url}", topic=TOPIC, fields={"webhookUrl": url}, verbatim=True)
        for line in announce:
            say(line, topic=TOPIC)
        say("Ctrl-C to stop", topic=TOPIC)
        await anyio.sleep_forever()
