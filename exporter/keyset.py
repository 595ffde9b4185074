"""A set of 64-bit keys at 8 bytes each, for what a run remembers image by image.

A Python set of ints costs about 60 bytes a key (the int object and the table's slot);
100,000 images is 6 MB, a million 60 MB. `KeySet` keeps its keys in a sorted array of
machine integers instead: keys that come in order (a sorted manifest) are appended to
it at once, the others wait in a small set that is merged into the array (a streaming
merge, never a list of every key) when it outgrows a quarter of it. A lookup is a
binary search: a microsecond, and no system call (it never releases the GIL, which a
database lookup does).
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable

_MERGE_AT_LEAST = 4096  # keys held in the small set before any merge

KEY_BITS = 64
_LOW, _HIGH = -(2 ** (KEY_BITS - 1)), 2 ** (KEY_BITS - 1)


class KeySet:
    """Signed 64-bit keys, added and looked up; none is ever removed."""

    __slots__ = ("_recent", "_sorted")

    def __init__(self, ordered: Iterable[int] = ()) -> None:
        """`ordered` must be ascending (a database's ORDER BY): read as it streams."""
        self._sorted = array("q", ordered)
        self._recent: set[int] = set()

    def __contains__(self, key: int) -> bool:
        if key in self._recent:
            return True
        at = bisect_left(self._sorted, key)
        return at < len(self._sorted) and self._sorted[at] == key

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def add(self, key: int) -> None:
        if not _LOW <= key < _HIGH:
            raise OverflowError(f"{key} is not a signed {KEY_BITS}-bit key")
        keys = self._sorted
        if not self._recent and (not keys or key > keys[-1]):
            keys.append(key)  # keys coming in order (a sorted manifest) need no merge
            return
        if key in self:
            return
        self._recent.add(key)
        if len(self._recent) >= max(_MERGE_AT_LEAST, len(keys) >> 2):
            self._sorted = array("q", heapq.merge(keys, sorted(self._recent)))
            self._recent = set()


def pair_key(first: int, second: int) -> int | None:
    """Two ids as one key (None when either does not fit in 31 bits: not packed)."""
    if 0 <= first < 1 << 31 and 0 <= second < 1 << 32:
        return first << 32 | second
    return None
