"""One run at a time per output folder, so an overlapping cron job cannot corrupt a backup.

The lock is an `flock` on a file in the output's state folder: the kernel releases it
when the holder dies, so a lock left by a killed run is simply taken over. Commands
that only read the folder (`verify`, `check`) probe it with `lock_holder` instead.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from exporter.errors import LockedError, OutputError

LOCK_NAME = "lock"


class RunLock:
    """Held for the whole run: `with RunLock(state_dir): ...`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create the run lock {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(
                f"another run (pid {holder}) is exporting into {self.path.parent.parent}; "
                f"it holds the lock {self.path}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def lock_holder(state_dir: Path) -> str | None:
    """The pid of the run holding the lock now (or "unknown"), else None; probed without
    creating or taking the lock, so a reader writes nothing into the folder."""
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None  # no lock file: no run has ever held it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    except OSError:
        return None  # flock unsupported here (some network filesystems): not held, as far as known
    finally:
        os.close(fd)
    return None
