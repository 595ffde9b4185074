"""Fixtures for every test: a private cache folder, and aioresponses that works."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses


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
