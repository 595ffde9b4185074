"""Which faults the portal injects, and how often: a frozen settings object and its CLI form."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

# CLI name → field; "500" reads better on a command line than "error_500".
_NAMES = {
    "seed": "seed",
    "500": "error_500",
    "error_500": "error_500",
    "drop": "drop",
    "truncate": "truncate",
    "html": "html",
    "slow": "slow",
    "slow_seconds": "slow_seconds",
    "link_ttl": "link_ttl",
    "token_ttl": "token_ttl",
}
_PROBABILITIES = ("error_500", "drop", "truncate", "html", "slow")


@dataclass(frozen=True)
class FaultSettings:
    """Injected failures; every probability 0 and no TTL (the default) means none.

    Each decision is derived from ``seed``, the fault kind, a stable key of the
    request and how often that key has been seen, so the same requests meet the same
    faults whatever their interleaving.
    """

    seed: int = 0
    """Picks the fault pattern; the same seed and requests give the same faults."""
    error_500: float = 0.0
    """Probability a REST call or a download is answered 500 INTERNAL_SERVER_ERROR."""
    drop: float = 0.0
    """Probability the connection drops: REST before any answer, download mid-body."""
    truncate: float = 0.0
    """Probability a download sends its full Content-Length but fewer bytes, then closes."""
    html: float = 0.0
    """Probability of a 200 ``text/html`` error page instead of the answer (REST and download)."""
    slow: float = 0.0
    """Probability an answer starts only after ``slow_seconds``."""
    slow_seconds: float = 2.0
    """How long a slow answer is held back."""
    link_ttl: float | None = None
    """Seconds a downloadUrl works after the answer that issued it; None: no expiry."""
    token_ttl: float | None = None
    """Seconds an OAuth access token works after it was issued; None: no expiry."""

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault probability {name} must be in 0..1, got {value}")
        if not math.isfinite(self.slow_seconds) or self.slow_seconds < 0:
            raise ValueError(f"slow_seconds must not be negative, got {self.slow_seconds}")
        for name in ("link_ttl", "token_ttl"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, got {value}")

    @property
    def any_random(self) -> bool:
        """Whether any probabilistic fault is switched on."""
        return any(getattr(self, name) > 0 for name in _PROBABILITIES)

    def probability(self, kind: str) -> float:
        """The probability of a fault kind by its CLI name ("500", "drop", …)."""
        value: float = getattr(self, _NAMES[kind])
        return value

    @classmethod
    def parse(cls, text: str) -> FaultSettings:
        """Read ``"500=0.1,drop=0.05,slow=0.01,slow_seconds=1,link_ttl=60,seed=7"``.

        Each name at most once; an empty text means no faults. Unknown names and bad
        values raise ValueError with the accepted names.
        """
        try:
            return replace(cls(), **_pairs(text))
        except ValueError as error:
            raise ValueError(
                f"bad fault setting: {error}. Accepted, as NAME=VALUE separated by commas: "
                f"{', '.join(name for name in _NAMES if name != 'error_500')}"
            ) from None


def _pairs(text: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, raw = (piece.strip() for piece in item.partition("="))
        field = _NAMES.get(name.lower())
        if field is None:
            raise ValueError(f"unknown name {name!r}")
        if not sep:
            raise ValueError(f"{name!r} has no value")
        if field in values:
            raise ValueError(f"{name!r} is given twice")
        values[field] = _value(name, field, raw)
    return values


def _value(name: str, field: str, raw: str) -> Any:
    try:
        if field == "seed":
            return int(raw)
        value = float(raw)
    except ValueError:
        kind = "an integer" if field == "seed" else "a number"
        raise ValueError(f"{name!r} needs {kind}, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name!r} needs a finite number, got {raw!r}")
    return value
