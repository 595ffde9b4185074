"""Fixtures: a small generated catalog served over loopback, with the rate limit off."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from exporter.simulator import Catalog, PortalSettings

from .helpers import PortalClient, portal_client


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.generate(products=6, images=20, seed=7)


@pytest.fixture
def settings() -> PortalSettings:
    return PortalSettings(rps=None)


@pytest.fixture
async def client(catalog: Catalog, settings: PortalSettings) -> AsyncIterator[PortalClient]:
    async with portal_client(catalog, settings) as client:
        yield client
