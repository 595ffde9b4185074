"""`prune`: remove from the backup the images gone from the portal for longer than a while.

Only images whose sidecar says `gone` are candidates, and only when the first run that
saw them gone is older than the limit; nothing else is ever removed. A dry run lists
them and changes nothing (it takes no lock either).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from exporter.destination.base import Destination
from exporter.model import ImageRef


@dataclass(frozen=True, slots=True)
class Pruned:
    """One image removed from the backup (or that a dry run would remove)."""

    ref: ImageRef
    key: str
    since: str


@dataclass
class PruneResult:
    """What `prune` removed, and how many gone images it kept (gone too recently)."""

    removed: list[Pruned] = field(default_factory=list)
    kept: int = 0
    dry_run: bool = False


async def prune(
    destination: Destination, *, gone_for_days: float, dry_run: bool, now: datetime | None = None
) -> PruneResult:
    """Remove the images gone for longer than `gone_for_days` days (list them: `dry_run`)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=gone_for_days)
    result = PruneResult(dry_run=dry_run)
    await destination.open(write=not dry_run)
    try:
        for ref, since in sorted(destination.gone_images()):
            if _parse(since) > cutoff:
                result.kept += 1
                continue
            key = destination.key_of(ref) if dry_run else await destination.remove(ref)
            result.removed.append(Pruned(ref, key, since))
    finally:
        await destination.close()
    return result


def _parse(since: str) -> datetime:
    """A `gone.since` time; one that cannot be read counts as just now (kept, not removed)."""
    try:
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
