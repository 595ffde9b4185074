"""Fixtures for every test: a private cache folder, and aioresponses that works."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from tests.seaweed import ACCESS_KEY, SECRET_KEY, TEST_BUCKET, SeaweedFS


class _SentRequest:
    """Stands in for the request writer aiohttp ≥ 3.14 hands every response."""

    output_size = 0


class _MockedResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.x builds responses without the `stream_writer` aiohttp 3.14
    requires (pnuckowski/aioresponses#289); supply one until it does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentRequest())
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets its own cache folder, so shared request budgets never leak between tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """`main()` attaches a handler to the exporter's logger; no test inherits another's."""
    logger = logging.getLogger("exporter")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses, working with the installed aiohttp."""
    monkeypatch.setattr("aioresponses.core.ClientResponse", _MockedResponse)
    with aioresponses() as mocked:
        yield mocked


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One real S3-compatible server for the whole session (each test its own prefix)."""
    server = SeaweedFS.start(tmp_path_factory.mktemp("seaweed"), buckets=(TEST_BUCKET,))
    try:
        yield server
    finally:
        server.stop()


def use_seaweed_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The store's identity from the standard variables; no profile of the machine's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
