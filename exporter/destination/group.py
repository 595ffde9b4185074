"""Group commit: commits that arrive while one is under way are made durable together.

The first commit to arrive leads: it takes every commit waiting, hands them to one call
(`commit_group`, which runs them in one worker-thread call), and on its return hands the
lead to the next commit waiting. No commit waits for a timer or for a group to fill: a
group is whatever queued up while the one before it was being made durable, one commit
alone when nothing else is going on. So the fsyncs of a folder, the thread hops and the
index appends are shared by as many files as arrive together, and never delay one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")
R = TypeVar("R")


class _Waiting(Generic[T, R]):
    """One commit in the queue: its item, then its outcome."""

    __slots__ = ("finished", "item", "outcome", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.outcome: R | BaseException | None = None
        self.finished = False
        self.wake = anyio.Event()  # set when it is finished, or when it is its turn to lead


class GroupCommit(Generic[T, R]):
    """Runs `commit_group` over groups of the items `commit` is awaited with.

    `commit_group` gets a group in arrival order and returns one outcome per item: the
    result, or the exception that item's `commit` raises. An exception out of
    `commit_group` itself fails every item of its group.
    """

    def __init__(
        self, commit_group: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]
    ) -> None:
        self._commit_group = commit_group
        self._waiting: list[_Waiting[T, R]] = []
        self._leading = False

    async def commit(self, item: T) -> R:
        """Commit `item` with whatever else is waiting; shielded from cancellation, since
        the commits of others may ride on it."""
        entry: _Waiting[T, R] = _Waiting(item)
        self._waiting.append(entry)
        with anyio.CancelScope(shield=True):
            while not entry.finished:
                if self._leading:
                    await entry.wake.wait()
                    if not entry.finished:
                        entry.wake = anyio.Event()  # woken to lead: the next wake-up is new
                    continue
                await self._lead()
        outcome = entry.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]  # finished without an error: a result

    async def _lead(self) -> None:
        self._leading = True
        group, self._waiting = self._waiting, []
        try:
            outcomes = await self._commit_group([entry.item for entry in group])
            for entry, outcome in zip(group, outcomes, strict=True):
                entry.outcome = outcome
        except BaseException as exc:
            for entry in group:
                entry.outcome = exc
            raise
        finally:
            for entry in group:
                entry.finished = True
                entry.wake.set()
            self._leading = False
            if self._waiting:
                self._waiting[0].wake.set()  # the next group's leader
