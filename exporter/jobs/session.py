"""What the jobs set up the same way: the HTTP session, the portal client, the destination."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from exporter.config import (
    DEFAULT_LAYOUT,
    Config,
    OutputConfig,
    StoreConfig,
    parse_store_url,
    store_state_dir,
)
from exporter.destination.base import Destination
from exporter.destination.folder import FolderDestination
from exporter.errors import ConfigError
from exporter.portal.auth import make_auth
from exporter.portal.budget import shared_finding, shared_store
from exporter.portal.client import PortalClient
from exporter.portal.downloads import FindingMemory
from exporter.portal.ratelimit import BucketStore, Clock, TokenBucket
from exporter.portal.retry import RetryPolicy

if TYPE_CHECKING:  # an export into a store imports it when it needs it
    from exporter.destination.store import StoreDestination

READ_BUFFER_BYTES = 1024 * 1024


def portal_client(
    config: Config,
    session: aiohttp.ClientSession,
    *,
    clock: Clock | None = None,
    budget: BucketStore | None = None,
    learned: FindingMemory | None = None,
) -> PortalClient:
    """The client a job talks to the portal through: one limiter, one budget, one auth.

    `budget` holds the limiter's state and `learned` whether downloads count (with
    `downloads_share_limit: auto`); by default both are files next to each other in the
    user's cache folder, shared by every exporter process talking to that portal."""
    rate = config.rate_limit
    return PortalClient(
        base_url=config.portal.base_url,
        auth=make_auth(config.portal, session),
        session=session,
        limiter=TokenBucket(
            rate.requests_per_second,
            rate.burst,
            clock,
            budget or shared_store(config.portal.host),
        ),
        retry=RetryPolicy.from_config(config.retries),
        timeout_seconds=config.portal.timeout_seconds,
        downloads_share_limit=rate.downloads_share_limit,
        clock=clock,
        learned=shared_finding(config.portal.host) if learned is None else learned,
    )


def http_session(config: Config) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=config.download_concurrency + 4, ttl_dns_cache=300)
    # A larger read buffer means fewer pauses of the socket for big downloads.
    return aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFFER_BYTES)


def destination_for(config: Config, *, reindex: bool = False) -> Destination:
    """Where `output` says the export lands (the run's report is no image's place)."""
    if config.output.store is not None:
        from exporter.destination.store import StoreDestination

        return StoreDestination(
            config.output, config.portal.host, retries=config.retries, reindex=reindex
        )
    return FolderDestination(config.output, config.portal.host, reserved=[config.report])


def destination_at(folder: Path) -> Destination:
    """An existing export named by its folder alone (`prune`), its layout the default."""
    return FolderDestination(OutputConfig(folder, DEFAULT_LAYOUT), portal_host="")


def store_export_at(url: str, config: Config | None) -> StoreDestination:
    """An existing export in an object store, named by its s3:// URL (`restore --from`):
    reached as `config`'s own output.s3 says when its output is a store too, else as the
    standard AWS variables say (AWS_ENDPOINT_URL_S3, AWS_REGION); every sidecar is read
    when it opens. `ConfigError` for a URL that names no bucket."""
    parsed = parse_store_url(url)
    if isinstance(parsed, str):
        raise ConfigError(f"{url}: {parsed}")
    bucket, prefix = parsed
    own = config.output.store if config is not None else None
    store = StoreConfig.of(
        bucket, prefix, own.endpoint_url if own else None, own.region if own else None
    )
    output = OutputConfig(store_state_dir(store, os.environ), DEFAULT_LAYOUT, store)
    retries = config.retries if config is not None else None
    from exporter.destination.store import StoreDestination

    return StoreDestination(output, portal_host="", retries=retries, every_sidecar=True)
