"""What an object store holds under an export's prefix: each object's size, by key, at
16 bytes an object.

A nightly run into a store asks, image by image, whether its object is there at the
size the index records and whether its sidecar is beside it. A dict of every key and
size costs about 250 bytes an object (the key's string, its int, the table's slot):
half a gigabyte for a million images with their sidecars. `Listing` keeps a 64-bit hash
of each key and the size in two sorted arrays of machine integers instead; what changes
during the run (objects written or removed) waits in a small dict (about 100 bytes an
entry) that is merged into the arrays when it outgrows a quarter of them: a first
export peaks at about 40 bytes an object just before a merge. Two keys sharing a hash is a chance of
about one in ten million for two million keys, and also needs the same size to make a
missing object look present.

`ListingReader` builds one from a store's listing as its pages come, and tells which
files have their sidecar beside them on the way (a store lists keys in order, so a
sidecar comes just after its file; another order costs time, never a wrong answer).
"""

from __future__ import annotations

import hashlib
import heapq
from array import array
from bisect import bisect_left
from collections.abc import Callable

from exporter.destination.sidecar import SIDECAR_SUFFIX

_MERGE_AT_LEAST = 4096  # changes held in the small dict before any merge
_RUN = 65536  # objects read from a listing are sorted this many at a time, then merged
_GONE = -1  # the size of a removed object, until the next merge drops it


def object_key(name: str) -> int:
    """A store key as a signed 64-bit number."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little", signed=True)


class Listing:
    """Sizes of objects by key; set, looked up and removed."""

    __slots__ = ("_keys", "_recent", "_sizes")

    def __init__(self) -> None:
        self._keys = array("q")
        self._sizes = array("q")
        self._recent: dict[int, int] = {}

    def get(self, name: str) -> int | None:
        """The size of the object `name`, or None when the store does not hold it."""
        key = object_key(name)
        size = self._recent.get(key)
        if size is None:
            at = bisect_left(self._keys, key)
            if at < len(self._keys) and self._keys[at] == key:
                size = self._sizes[at]
        return None if size is None or size == _GONE else size

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def set(self, name: str, size: int) -> None:
        if size < 0:
            raise ValueError(f"an object cannot be {size} bytes")
        self._change(object_key(name), size)

    def discard(self, name: str) -> None:
        self._change(object_key(name), _GONE)

    def _change(self, key: int, size: int) -> None:
        keys = self._keys
        if not self._recent and size != _GONE and (not keys or key > keys[-1]):
            keys.append(key)  # keys coming in order need no merge
            self._sizes.append(size)
            return
        self._recent[key] = size
        if len(self._recent) >= max(_MERGE_AT_LEAST, len(keys) >> 2):
            self._merge()

    def _merge(self) -> None:
        """The changes merged into the arrays in one pass (removed objects dropped)."""
        keys, sizes = array("q"), array("q")
        changes = sorted(self._recent.items())
        old_keys, old_sizes = self._keys, self._sizes
        i = j = 0
        while i < len(old_keys) or j < len(changes):
            if j == len(changes) or (i < len(old_keys) and old_keys[i] < changes[j][0]):
                key, size = old_keys[i], old_sizes[i]
                i += 1
            else:
                key, size = changes[j]
                if i < len(old_keys) and old_keys[i] == key:
                    i += 1  # the change replaces what the arrays held
                j += 1
            if size != _GONE:
                keys.append(key)
                sizes.append(size)
        self._keys, self._sizes, self._recent = keys, sizes, {}


class ListingReader:
    """A store's listing read page by page into a `Listing`, with the files that have
    their sidecar beside them (those `wanted` says, all when None) and the lone sidecars
    (whose file is not there). Objects are sorted `_RUN` at a time, then merged."""

    def __init__(self, wanted: Callable[[str], bool] | None = None) -> None:
        self._wanted = wanted
        self._runs: list[tuple[array[int], array[int]]] = []
        self._run: dict[int, int] = {}
        self.pairs: list[str] = []
        self._lone: set[str] = set()  # files whose sidecar came first, or whose never came

    def add(self, name: str, size: int) -> None:
        run = self._run
        run[object_key(name)] = size
        if len(run) >= _RUN:
            self._runs.append(_sorted_run(run))
            self._run = {}
        if name in self._lone:  # its sidecar came before it
            self._lone.discard(name)
            self._pair(name)
        if name.endswith(SIDECAR_SUFFIX):
            file = name[: -len(SIDECAR_SUFFIX)]
            key = object_key(file)
            # In a store's order the file came just before: in this run, or the last.
            if key in self._run or any(_holds(r, key) for r in reversed(self._runs)):
                self._pair(file)
            else:
                self._lone.add(file)

    def _pair(self, file: str) -> None:
        if self._wanted is None or self._wanted(file):
            self.pairs.append(file)

    def finish(self) -> tuple[Listing, list[str]]:
        """The listing, and the files whose sidecar is there but not they."""
        runs = [*self._runs, _sorted_run(self._run)]
        self._runs, self._run = [], {}
        listing = Listing()
        if len(runs) == 1:
            listing._keys, listing._sizes = runs[0]
        else:
            for key, size in heapq.merge(*(zip(keys, sizes, strict=True) for keys, sizes in runs)):
                listing._keys.append(key)
                listing._sizes.append(size)
        return listing, sorted(self._lone)


def _sorted_run(run: dict[int, int]) -> tuple[array[int], array[int]]:
    items = sorted(run.items())
    return array("q", (key for key, _ in items)), array("q", (size for _, size in items))


def _holds(run: tuple[array[int], array[int]], key: int) -> bool:
    keys = run[0]
    at = bisect_left(keys, key)
    return at < len(keys) and keys[at] == key
