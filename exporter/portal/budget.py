"""One request budget for every exporter process on this machine that talks to one portal.

The portal counts requests per portal and source IP, so a nightly backup and an ad-hoc
migration running side by side share one limit. Each keeps its token bucket's state in
the same small file under the user's cache folder, read and written under an `flock`
for each request, so together they stay under the limit. The file also outlives a run:
a run started right after another one does not spend a burst the portal has not yet
drained.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from exporter.atomic import write_atomic_sync
from exporter.portal.downloads import Finding, FindingMemory, KeptInMemory
from exporter.portal.ratelimit import BucketState, BucketStore, MemoryStore

log = logging.getLogger(__name__)

APP_DIR = "b24-image-exporter"


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/b24-image-exporter`, else `~/.cache/b24-image-exporter`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / APP_DIR


class FileStore:
    """Bucket state in a JSON file, locked for each read-modify-write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def locked(self, fresh: BucketState) -> Iterator[BucketState]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for microseconds by any other process
            state = _decode(os.pread(fd, 4096, 0)) or fresh
            yield state
            data = json.dumps(asdict(state)).encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)  # releases the lock


def shared_store(portal_host: str) -> BucketStore:
    """The store for `portal_host`: a shared file, or memory when no file can be made."""
    path = _state_path(portal_host)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        log.warning(
            "cannot share the request budget through %s (%s); "
            "other exporter processes on this machine will not be accounted for",
            path,
            exc.strerror,
        )
        return MemoryStore()
    return FileStore(path)


def private_copy(portal_host: str) -> BucketStore:
    """The shared budget of `portal_host` as it is now, kept in memory from then on.

    For a process that writes nothing (`check`): its few requests wait for what the
    others have spent, but the file is neither created nor changed, so they never see them.
    """
    try:
        fd = os.open(_state_path(portal_host), os.O_RDONLY)
    except OSError:
        return MemoryStore()
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return MemoryStore(_decode(os.pread(fd, 4096, 0)))
    finally:
        os.close(fd)


class FindingFile:
    """Whether downloads count, as learned for one portal, in a small JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def recall(self) -> Finding | None:
        try:
            return Finding.from_dict(json.loads(self.path.read_bytes()))
        except (OSError, ValueError):
            return None  # none yet, unreadable or damaged: learned again

    def keep(self, finding: Finding) -> None:
        data = json.dumps(finding.as_dict(), ensure_ascii=False).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic_sync(self.path, data, mode=0o600)
        except OSError as exc:
            log.warning("cannot keep what was learned in %s (%s)", self.path, exc.strerror)

    def forget(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot forget what was learned in %s (%s)", self.path, exc.strerror)


def shared_finding(portal_host: str) -> FindingMemory:
    """Where whether `portal_host` counts downloads is kept, next to its bucket state."""
    return FindingFile(_finding_path(portal_host))


def recalled_finding(portal_host: str) -> FindingMemory:
    """The kept finding of `portal_host`, in memory: for a process that writes nothing."""
    return KeptInMemory(FindingFile(_finding_path(portal_host)).recall())


def _finding_path(portal_host: str) -> Path:
    return cache_dir() / f"downloads-{_safe(portal_host)}.json"


def _safe(portal_host: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", portal_host)


def _state_path(portal_host: str) -> Path:
    return cache_dir() / f"ratelimit-{_safe(portal_host)}.json"


def _decode(data: bytes) -> BucketState | None:
    try:
        raw = json.loads(data)
        state = BucketState(
            tokens=float(raw["tokens"]),
            updated=float(raw["updated"]),
            rate=float(raw["rate"]),
            slowed_at=float(raw["slowed_at"]),
            ceiling=float(raw.get("ceiling", 0.0)),
        )
    except (ValueError, KeyError, TypeError):
        return None  # empty (new) or damaged: start from a fresh state
    return state if state.rate > 0 else None
