"""A simulated Bitrix24 portal: catalog images, batch, signed downloads, limits, faults, OAuth.

It also takes images back (``catalog.productImage.add``/``.delete``) for restore and
migration tests, and two portals can be served side by side.

Built from the Bitrix24 reference alone and independent of the exporter's client code,
so the two sides check each other. Backs the ``demo`` and ``simulate`` commands and
the integration tests.
"""

from .app import SimulatedPortal
from .bucket import LeakyBucket
from .catalog import Catalog, SimImage
from .faults import FaultSettings
from .png import MIN_PNG_SIZE
from .server import RunningPortal, serve, serve_in_thread, serve_portal
from .settings import PortalSettings
from .stats import Stats

__all__ = [
    "MIN_PNG_SIZE",
    "Catalog",
    "FaultSettings",
    "LeakyBucket",
    "PortalSettings",
    "RunningPortal",
    "SimImage",
    "SimulatedPortal",
    "Stats",
    "serve",
    "serve_in_thread",
    "serve_portal",
]
