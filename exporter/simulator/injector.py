"""Deciding which request meets which fault, reproducibly from the seed.

One shared random stream would make the pattern depend on the order concurrent
requests arrive in. Instead each decision hashes (seed, fault kind, request key, how
often that key was seen before), so the n-th time a given request arrives it meets the
same fate whatever else is in flight.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .faults import FaultSettings

REST_FAULTS = ("500", "drop", "html")
"""Faults that replace a REST answer, in the order they are tried."""
DOWNLOAD_FAULTS = ("500", "drop", "truncate", "html")
"""Faults that replace or cut a download, in the order they are tried."""


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request: held back first, and/or one fault instead of the answer."""

    slow: bool = False
    kind: str | None = None
    """One of REST_FAULTS / DOWNLOAD_FAULTS, or None for the normal answer."""


NO_FAULT = FaultDecision()


class FaultInjector:
    """Rolls the dice for each request and counts the faults it hands out in ``counts``."""

    def __init__(self, faults: FaultSettings, counts: Counter[str]) -> None:
        self._faults = faults
        self._counts = counts
        self._seen: Counter[str] = Counter()

    def decide(self, key: str, kinds: tuple[str, ...]) -> FaultDecision:
        """The fate of this arrival of request ``key``; kinds are tried in order."""
        if not self._faults.any_random:
            return NO_FAULT
        occurrence = self._seen[key]
        self._seen[key] += 1
        slow = self._roll("slow", key, occurrence) < self._faults.slow
        kind = next(
            (k for k in kinds if self._roll(k, key, occurrence) < self._faults.probability(k)),
            None,
        )
        if slow:
            self._counts["slow"] += 1
        if kind is not None:
            self._counts[kind] += 1
        return FaultDecision(slow, kind)

    def happens(self, kind: str, key: str, probability: float) -> bool:
        """Whether a failure ``kind`` that FaultSettings does not hold meets this arrival of
        ``key`` (same seed and hashing as the others; not counted in ``counts``)."""
        if probability <= 0:
            return False
        seen = f"{kind}\x1f{key}"
        occurrence = self._seen[seen]
        self._seen[seen] += 1
        return self._roll(kind, key, occurrence) < probability

    def _roll(self, kind: str, key: str, occurrence: int) -> float:
        """A number in [0, 1) fixed by (seed, kind, key, occurrence)."""
        text = f"{self._faults.seed}\x1f{kind}\x1f{key}\x1f{occurrence}"
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


def rest_key(method: str, params: dict[str, Any]) -> str:
    """A REST request's identity: method and parameters, without the rotating ``auth``.

    Hashed, so remembering a long run's batches stays small.
    """
    stable = {name: value for name, value in params.items() if name != "auth"}
    text = f"{method.lower()}?{json.dumps(stable, sort_keys=True, default=str)}"
    return "rest:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def download_key(image_id: int) -> str:
    """A download's identity: the image (its links change on every call, the image does not)."""
    return f"download:{image_id}"
