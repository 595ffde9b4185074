"""The index of done images of an export, so a re-run asks the portal nothing for them.

Sidecars are the truth; the index is a fast path to them. It maps each exported image
to its relative path and size (whether the portal still has it, and whether its
sidecar has the product block), one row per image, written as each file completes. It
is an SQLite database (`index.sqlite`) and not a dictionary in memory: a run holds none
of it but SQLite's page cache, so memory does not grow with the size of the backup, and
opening it reads nothing up front. A change is told at once from memory and written in
write-ahead logging, in one transaction for all the changes waiting: by the worker
thread that lands a group of exports, before their sidecars (so a kill leaves the index
ahead of the disk, never behind it), else within a moment by a thread of the index's
own. A power loss costs at most the rows since the last checkpoint, and the database
stays whole either way (an image whose row is lost costs one metadata lookup, after
which its sidecar on disk is recognised as done).

An index is rebuilt from the sidecars when it is missing or unreadable. The index of
exporters before it, `index.jsonl` (one JSON line per export, the last line for an
image winning, `"removed": true` lines for forgotten ones), is read once into the
database and then removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from exporter.atomic import commit_temp, discard, fsync_dir, temp_path_for
from exporter.destination.sidecar import SIDECAR_SUFFIX, read_sidecar
from exporter.errors import OutputError
from exporter.keyset import KeySet, pair_key
from exporter.model import ImageRef

log = logging.getLogger(__name__)

STATE_DIR = ".b24-image-exporter"
INDEX_NAME = "index.sqlite"
LEGACY_INDEX_NAME = "index.jsonl"  # the index of exporters before the database
_FORMAT = 1  # PRAGMA user_version of a complete index
_PAGE_ROWS = 1000  # rows read per query when walking the whole index
_WRITE_EVERY_SECONDS = 0.2  # how long a change waits at most for its row, unless asked

_SCHEMA = """
CREATE TABLE images (
    product_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    fold INTEGER NOT NULL,  -- fold_key(path): which paths are taken, case-insensitively
    size INTEGER NOT NULL,
    gone TEXT,
    described INTEGER NOT NULL,
    PRIMARY KEY (product_id, image_id)
) WITHOUT ROWID;
CREATE INDEX images_by_fold ON images (fold);
"""
_COLUMNS = "product_id, image_id, path, size, gone, described"
_ROW_VALUES = 7
_ROW_PLACES = "(?, ?, ?, ?, ?, ?, ?)"
_ROWS_A_STATEMENT = 1000  # 7,000 values, within SQLite's 32,766


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where an image was exported to and the size its sidecar records."""

    path: str  # relative to the output folder, "/"-separated
    size: int
    gone: str | None = None  # since when the portal no longer has the image
    described: bool = False  # its sidecar has the product block


def fold_key(path: str) -> int:
    """A path's case-insensitive identity as a 64-bit number: two paths that differ only
    in case have the same key (two different paths sharing one is vanishingly rare, and
    costs an image a counter in its name, never a file)."""
    digest = hashlib.blake2b(path.casefold().encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little", signed=True)


def index_exists(state_dir: Path) -> bool:
    """Whether a state folder holds an index (the database, or the older JSON lines)."""
    return (state_dir / INDEX_NAME).exists() or (state_dir / LEGACY_INDEX_NAME).exists()


class IndexEntries(Mapping[ImageRef, IndexEntry]):
    """The index's rows as a read-only mapping, read from the database as asked."""

    def __init__(self, index: ExportIndex) -> None:
        self._index = index

    def __getitem__(self, ref: ImageRef) -> IndexEntry:
        entry = self._index.entry(ref)
        if entry is None:
            raise KeyError(ref)
        return entry

    def get(self, ref: ImageRef, default: Any = None) -> Any:
        entry = self._index.entry(ref)
        return default if entry is None else entry

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, ImageRef) and self._index.entry(ref) is not None

    def __len__(self) -> int:
        return self._index.count()

    def __iter__(self) -> Iterator[ImageRef]:
        return (ref for ref, _entry in self._index.rows())

    def items(self) -> Iterator[tuple[ImageRef, IndexEntry]]:  # type: ignore[override]
        return self._index.rows()

    def values(self) -> Iterator[IndexEntry]:  # type: ignore[override]
        return (entry for _ref, entry in self._index.rows())


Change = tuple[int, ImageRef, IndexEntry | None]  # a numbered new row, or None: forgotten


class ExportIndex:
    """Done images of one export: opened once, a row added as each image completes.

    Opened for writing, its rows are written off the event loop (by the thread that
    asks for them with `written`, or the index's own): the loop never waits for the disk
    (nor for a checkpoint's fsync), and a row waiting to be written is read from memory
    meanwhile, so the index always tells its latest state.
    """

    def __init__(
        self,
        root: Path,
        db: sqlite3.Connection,
        *,
        read_only: bool = False,
        writer: _RowWriter | None = None,
    ) -> None:
        """Use `open`, `open_at`, `read` or `in_memory`."""
        self.root = root
        self._root = str(root)
        self._db = db
        self._read_only = read_only  # a dry run's view: the first change copies it to memory
        self._writer = writer
        self._waiting: dict[ImageRef, tuple[int, IndexEntry | None]] = {}  # not written yet
        self._numbered = 0
        self._lock = threading.Lock()
        # Which images and paths the index may hold, 8 bytes each, built when first
        # asked: an image or path it does not hold (every new one) costs no query.
        self._refs: KeySet | None = None
        self._folds: KeySet | None = None
        self._ahead = _ReadAhead()
        if writer is not None:
            writer.start(self._written)
        self.entries = IndexEntries(self)

    @classmethod
    def open(cls, root: Path) -> ExportIndex:
        """Open the index of the folder `root` for writing; rebuild it from the sidecars
        when it is missing."""
        return cls.open_at(root, root / STATE_DIR / INDEX_NAME, lambda: _scan_sidecars(root))

    @classmethod
    def open_at(
        cls,
        root: Path,
        path: Path,
        rebuild: Callable[[], Mapping[ImageRef, IndexEntry]],
        *,
        anew: bool = False,
    ) -> ExportIndex:
        """Open the index database at `path` for writing. When it is missing (or `anew`),
        write it first: from the older JSON-lines index beside it when there is one, else
        from `rebuild()`, the entries the export's sidecars tell."""
        legacy = path.with_name(LEGACY_INDEX_NAME)
        # The older index beside the database is newer than it: it is removed once read,
        # so an older exporter wrote it since.
        migrate = legacy.exists() and not anew
        db = None if anew or migrate else _open_file(path)
        if db is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if migrate:
                _build(path, _legacy_rows(legacy))
                log.info("moved the index of %s into %s", root, path.name)
            else:
                entries = rebuild()
                _build(path, ((ref, entry) for ref, entry in entries.items()))
                if entries:
                    log.info("rebuilt the index of %s from %d sidecars", root, len(entries))
            db = _open_file(path)
            if db is None:
                raise OSError(f"cannot open the index {path}")
        discard(legacy)  # read into the database (or superseded by it): never read again
        return cls(root, db, writer=_RowWriter(path))

    @classmethod
    def read(cls, root: Path) -> ExportIndex:
        """The index of the folder `root` without writing anything (a dry run, `verify`):
        the first change keeps to memory."""
        state = root / STATE_DIR
        legacy = state / LEGACY_INDEX_NAME
        if legacy.exists():
            return cls(root, _in_memory(_legacy_rows(legacy)))
        db = _open_file(state / INDEX_NAME, read_only=True)
        if db is not None:
            return cls(root, db, read_only=True)
        return cls.in_memory(root, _scan_sidecars(root))

    @classmethod
    def in_memory(cls, root: Path, entries: Mapping[ImageRef, IndexEntry]) -> ExportIndex:
        """An index held in memory only, of these entries (nothing is written)."""
        return cls(root, _in_memory(entries.items()))

    # -- reading ------------------------------------------------------------------------

    def entry(self, ref: ImageRef) -> IndexEntry | None:
        """The row of one image."""
        waiting = self._waiting.get(ref)
        if waiting is not None:
            return waiting[1]
        key = pair_key(ref.product_id, ref.image_id)
        if key is not None and key not in self._known_refs():
            return None
        return self._ahead.entry(self._db, ref, self._still_waiting)

    def is_done(self, ref: ImageRef) -> bool:
        """Exported earlier: the sidecar is there and the file has the recorded size."""
        entry = self.entry(ref)
        if entry is None:
            return False
        # Plain strings, not pathlib: a nightly run checks every image of the backup.
        file = os.path.join(self._root, entry.path)  # noqa: PTH118
        try:
            size = os.stat(file).st_size  # noqa: PTH116
            return size == entry.size and os.path.exists(file + SIDECAR_SUFFIX)  # noqa: PTH110
        except OSError:
            return False

    def path_of(self, ref: ImageRef) -> str | None:
        """The relative path an earlier run gave to `ref`."""
        entry = self.entry(ref)
        return entry.path if entry else None

    def paths_of(self, refs: Iterable[ImageRef]) -> dict[ImageRef, str]:
        """The relative paths of those of `refs` that the index holds, in few queries."""
        found: dict[ImageRef, str] = {}
        asked: list[ImageRef] = []
        for ref in refs:
            waiting = self._waiting.get(ref)
            if waiting is None:
                asked.append(ref)
            elif waiting[1] is not None:
                found[ref] = waiting[1].path
        for start in range(0, len(asked), _PAGE_ROWS):
            chunk = asked[start : start + _PAGE_ROWS]
            pairs = ", ".join(["(?, ?)"] * len(chunk))
            values = [n for ref in chunk for n in (ref.product_id, ref.image_id)]
            for product_id, image_id, path in self._db.execute(
                f"SELECT product_id, image_id, path FROM images "
                f"WHERE (product_id, image_id) IN (VALUES {pairs})",
                values,
            ):
                found.setdefault(ImageRef(product_id, image_id), path)
        return found

    def holders(self, path: str) -> list[ImageRef]:
        """The images whose path is `path`, case-insensitively (mostly none, at most one)."""
        folded = path.casefold()
        fold = fold_key(path)
        rows = (
            self._db.execute(
                "SELECT product_id, image_id, path FROM images WHERE fold = ?", (fold,)
            ).fetchall()
            if fold in self._known_folds()
            else []
        )
        held = {ImageRef(p, i) for p, i, other in rows if other.casefold() == folded}
        for ref, (_number, entry) in self._still_waiting():
            if entry is not None and entry.path.casefold() == folded:
                held.add(ref)
            else:
                held.discard(ref)
        return sorted(held)

    def may_hold(self, path: str) -> bool:
        """Whether an image's path may be `path`, case-insensitively: False is certain,
        True is all but (two paths share a 64-bit fold once in billions), and neither
        reads the database."""
        return fold_key(path) in self._known_folds()

    def paths(self) -> Iterator[tuple[ImageRef, str]]:
        """Every image's relative path."""
        for ref, entry in self.rows():
            yield ref, entry.path

    def rows(self) -> Iterator[tuple[ImageRef, IndexEntry]]:
        """Every row, in the order of the images, read a page at a time (the index may
        change meanwhile)."""
        self._flush()
        after = (-(2**63), -(2**63))
        while True:
            page = self._db.execute(
                f"SELECT {_COLUMNS} FROM images WHERE (product_id, image_id) > (?, ?) "
                "ORDER BY product_id, image_id LIMIT ?",
                (*after, _PAGE_ROWS),
            ).fetchall()
            for product_id, image_id, path, size, gone, described in page:
                yield ImageRef(product_id, image_id), IndexEntry(path, size, gone, bool(described))
            if len(page) < _PAGE_ROWS:
                return
            after = (page[-1][0], page[-1][1])

    def count(self) -> int:
        """How many images the index holds."""
        self._flush()
        return int(self._db.execute("SELECT count(*) FROM images").fetchone()[0])

    def described(self, ref: ImageRef) -> bool:
        """Whether the image's sidecar has its product block (no file is read)."""
        entry = self.entry(ref)
        return entry is not None and entry.described

    def gone_since(self, ref: ImageRef) -> str | None:
        """Since when the portal no longer has an exported image (None: it has)."""
        entry = self.entry(ref)
        return entry.gone if entry else None

    def gone(self) -> list[tuple[ImageRef, str]]:
        """Every image the portal no longer has, and since when."""
        self._flush()
        rows = self._db.execute(
            "SELECT product_id, image_id, gone FROM images WHERE gone IS NOT NULL "
            "ORDER BY product_id, image_id"
        ).fetchall()
        return [(ImageRef(p, i), since) for p, i, since in rows]

    def images_of(self, product_id: int) -> list[ImageRef]:
        """Every exported image of one product."""
        rows = self._db.execute(
            "SELECT image_id FROM images WHERE product_id = ?", (product_id,)
        ).fetchall()
        images = {ImageRef(product_id, image_id) for (image_id,) in rows}
        for ref, (_number, entry) in self._still_waiting():
            if ref.product_id == product_id:
                if entry is None:
                    images.discard(ref)
                else:
                    images.add(ref)
        return sorted(images)

    def products(self) -> set[int]:
        """Every product an image was exported of."""
        self._flush()
        return {p for (p,) in self._db.execute("SELECT DISTINCT product_id FROM images")}

    # -- writing ------------------------------------------------------------------------

    def add(
        self,
        ref: ImageRef,
        path: str,
        size: int,
        gone: str | None = None,
        *,
        described: bool = False,
    ) -> None:
        """Record a completed export (file and sidecar are in place), or a new state of one."""
        self._change(ref, IndexEntry(path, size, gone, described))

    def forget(self, ref: ImageRef) -> None:
        """Drop an image whose file was moved aside, so the next run exports it again."""
        self._change(ref, None)

    def written(self) -> None:
        """Wait until every change so far is in the database, where a kill cannot take it
        (from a worker thread: an export's sidecar lands only after its row)."""
        self._flush()

    def close(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            if self._writer is not None:
                # Out of write-ahead logging, so that a reader that may not write (a dry
                # run, `verify` of a read-only copy) can open it; busy (a reader is in):
                # left as it is.
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA journal_mode = DELETE")
            self._db.close()

    def _known_refs(self) -> KeySet:
        if self._refs is None:
            waiting = self._still_waiting()  # first: a row leaves it once it is written
            rows = self._db.execute(
                "SELECT product_id, image_id FROM images ORDER BY product_id, image_id"
            )
            keys = (pair_key(p, i) for p, i in rows)
            self._refs = KeySet(key for key in keys if key is not None)
            for ref, _waiting in waiting:
                self._note(ref, None)
        return self._refs

    def _known_folds(self) -> KeySet:
        if self._folds is None:
            waiting = self._still_waiting()
            rows = self._db.execute("SELECT fold FROM images ORDER BY fold")
            self._folds = KeySet(fold for (fold,) in rows)
            for _ref, (_number, entry) in waiting:
                if entry is not None:
                    self._folds.add(fold_key(entry.path))
        return self._folds

    def _note(self, ref: ImageRef, entry: IndexEntry | None) -> None:
        """Let the key sets know of a row the index may hold from now on."""
        key = pair_key(ref.product_id, ref.image_id)
        if self._refs is not None and key is not None:
            self._refs.add(key)
        if self._folds is not None and entry is not None:
            self._folds.add(fold_key(entry.path))

    def _change(self, ref: ImageRef, entry: IndexEntry | None) -> None:
        self._note(ref, entry)
        self._ahead.change(ref, entry)
        if self._writer is None:
            _apply(self._writable(), [(0, ref, entry)])
            return
        with self._lock:
            self._numbered += 1
            self._waiting[ref] = (self._numbered, entry)
            self._writer.put((self._numbered, ref, entry))

    def _written(self, last: int) -> None:
        """In the writer's thread: the changes up to number `last` are in the database."""
        with self._lock:
            done = [ref for ref, (number, _entry) in self._waiting.items() if number <= last]
            for ref in done:
                del self._waiting[ref]

    def _still_waiting(self) -> list[tuple[ImageRef, tuple[int, IndexEntry | None]]]:
        with self._lock:
            return list(self._waiting.items())

    def _flush(self) -> None:
        """Wait until every change so far is in the database (for a walk of all rows)."""
        if self._writer is not None:
            self._writer.flush()

    def _writable(self) -> sqlite3.Connection:
        if self._read_only:
            copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._db.backup(copy)
            self._db.close()
            self._db, self._read_only = copy, False
        return self._db


class _ReadAhead:
    """The rows that follow the last one read, for a walk through the images in order (a
    nightly run over a sorted manifest): one query reads many. The window doubles while
    most of it is used and halves while it is not, so lookups in no order cost one row
    a query, as without it."""

    _LARGEST = 256

    def __init__(self) -> None:
        self._rows: dict[tuple[int, int], IndexEntry] = {}
        self._low: tuple[int, int] | None = None  # the window: every row from low to high
        self._high: tuple[int, int] | None = None  # None: to the end of the index
        self._size = 1
        self._used = 0

    def entry(
        self,
        db: sqlite3.Connection,
        ref: ImageRef,
        waiting: Callable[[], list[tuple[ImageRef, tuple[int, IndexEntry | None]]]],
    ) -> IndexEntry | None:
        """The row of `ref`, read with those after it when it is not in the window;
        `waiting()` tells the changes not written yet."""
        key = (ref.product_id, ref.image_id)
        if self._holds(key):
            self._used += 1
            return self._rows.get(key)
        if self._low is not None:
            if 2 * self._used >= self._size:
                self._size = min(self._LARGEST, self._size * 2)
            else:
                self._size = max(1, self._size // 2)
        changes = waiting()  # first: a change leaves it once it is in the database
        page = db.execute(
            f"SELECT {_COLUMNS} FROM images WHERE (product_id, image_id) >= (?, ?) "
            "ORDER BY product_id, image_id LIMIT ?",
            (*key, self._size),
        ).fetchall()
        self._rows = {
            (p, i): IndexEntry(path, size, gone, bool(described))
            for p, i, path, size, gone, described in page
        }
        self._low = key
        self._high = (page[-1][0], page[-1][1]) if len(page) == self._size else None
        self._used = 1
        for changed, (_number, entry) in changes:
            self.change(changed, entry)
        return self._rows.get(key)

    def change(self, ref: ImageRef, entry: IndexEntry | None) -> None:
        """Keep the window as the index is, as it changes."""
        key = (ref.product_id, ref.image_id)
        if self._holds(key):
            if entry is None:
                self._rows.pop(key, None)
            else:
                self._rows[key] = entry

    def _holds(self, key: tuple[int, int]) -> bool:
        return (
            self._low is not None and self._low <= key and (self._high is None or key <= self._high)
        )


class _RowWriter:
    """Writes an index's changes, in one transaction for all the changes waiting: at once
    in the thread that asks (`flush`: the worker thread that lands a group of exports,
    which waits for its rows anyway), else from a thread of its own every moment. A
    failure (a full disk) is raised by the next change, flush or close."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._changes: list[Change] = []
        self._changes_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one transaction at a time, in any thread
        self._failure: BaseException | None = None
        self._db: sqlite3.Connection | None = None
        self._written: Callable[[int], None] = lambda _last: None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, written: Callable[[int], None]) -> None:
        self._db = _connect(str(self._path))
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._written = written
        self._thread = threading.Thread(target=self._run, name="index-writer", daemon=True)
        self._thread.start()

    def put(self, change: Change) -> None:
        self._raise_failure()
        with self._changes_lock:
            self._changes.append(change)

    def flush(self) -> None:
        """Write every change put so far, in the calling thread."""
        with self._write_lock:
            with self._changes_lock:
                changes, self._changes = self._changes, []
            if changes and self._failure is None and self._db is not None:
                try:
                    self._db.execute("BEGIN")
                    _apply(self._db, changes)
                    self._db.execute("COMMIT")
                except (sqlite3.Error, OSError) as exc:
                    self._failure = exc
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                else:
                    self._written(changes[-1][0])
        self._raise_failure()

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        try:
            self.flush()
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise OutputError(f"cannot write the index {self._path}: {self._failure}")

    def _run(self) -> None:
        while not self._stop.wait(_WRITE_EVERY_SECONDS):
            with contextlib.suppress(OutputError):  # kept, and raised to the run
                self.flush()


def _apply(db: sqlite3.Connection, changes: Iterable[Change]) -> None:
    for sql, values in _statements(changes):
        db.execute(sql, values)


def _statements(changes: Iterable[Change]) -> Iterator[tuple[str, list[Any]]]:
    """The changes as few statements as can be: the rows in a row one INSERT each (every
    statement gives up the GIL, and a thread that gives it up on a busy event loop waits
    to get it back), a forgotten image a DELETE."""
    rows: list[Any] = []
    for _number, ref, entry in changes:
        if entry is None:
            if rows:
                yield _upsert(len(rows) // _ROW_VALUES), rows
                rows = []
            yield (
                "DELETE FROM images WHERE product_id = ? AND image_id = ?",
                [ref.product_id, ref.image_id],
            )
            continue
        rows += (ref.product_id, ref.image_id, entry.path, fold_key(entry.path), entry.size,
                 entry.gone, entry.described)  # fmt: skip
        if len(rows) >= _ROWS_A_STATEMENT * _ROW_VALUES:
            yield _upsert(_ROWS_A_STATEMENT), rows
            rows = []
    if rows:
        yield _upsert(len(rows) // _ROW_VALUES), rows


def _upsert(rows: int) -> str:
    return "INSERT OR REPLACE INTO images VALUES " + ", ".join([_ROW_PLACES] * rows)


def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    # Shared with a worker thread only in turn (the store opens its index in one).
    return sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=uri)


def _open_file(path: Path, *, read_only: bool = False) -> sqlite3.Connection | None:
    """The index database at `path`, or None when there is none or it is unreadable (a
    damaged file is rebuilt from the sidecars like a missing one)."""
    if not path.exists():
        return None
    db = (
        _connect(f"file:{quote(str(path))}?mode=ro", uri=True) if read_only else _connect(str(path))
    )
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != _FORMAT:
            raise sqlite3.DatabaseError("not an index of this format")
        if not read_only:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints, whole always
    except sqlite3.DatabaseError as exc:
        db.close()
        log.warning("the index %s cannot be read (%s); it is rebuilt from the sidecars", path, exc)
        if not read_only:
            discard(path)
            for side in ("-wal", "-shm", "-journal"):
                discard(path.with_name(path.name + side))
        return None
    return db


def _fill(db: sqlite3.Connection, rows: Iterable[tuple[ImageRef, IndexEntry | None]]) -> None:
    """Create the table and write `rows` in order (None: the image is forgotten)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)  # not executescript: it would commit the transaction
    _apply(db, ((0, ref, entry) for ref, entry in rows))
    db.execute(f"PRAGMA user_version = {_FORMAT}")


def _build(path: Path, rows: Iterable[tuple[ImageRef, IndexEntry | None]]) -> None:
    """Write a complete index at `path`, whole or not at all (a temporary, renamed)."""
    temp = temp_path_for(path)
    try:
        db = _connect(str(temp))
        try:
            db.execute("PRAGMA journal_mode = OFF")  # a temporary: a failure discards it
            db.execute("BEGIN")
            _fill(db, rows)
            db.execute("COMMIT")
        finally:
            db.close()
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for side in ("-wal", "-shm", "-journal"):
            discard(path.with_name(path.name + side))  # a damaged index's leftovers
        commit_temp(temp, path)
    except BaseException:
        discard(temp)
        raise
    fsync_dir(path.parent)


def _in_memory(rows: Iterable[tuple[ImageRef, IndexEntry | None]]) -> sqlite3.Connection:
    db = _connect(":memory:")
    db.execute("BEGIN")
    _fill(db, rows)
    db.execute("COMMIT")
    return db


def _legacy_rows(path: Path) -> Iterator[tuple[ImageRef, IndexEntry | None]]:
    """The lines of an older JSON-lines index, in order (None: a removal line)."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for text in lines:
            try:
                record = json.loads(text)
                ref = ImageRef(int(record["productId"]), int(record["id"]))
                if record.get("removed") is True:
                    yield ref, None
                    continue
                gone = record.get("gone")
                yield (
                    ref,
                    IndexEntry(
                        str(record["path"]),
                        int(record["size"]),
                        gone if isinstance(gone, str) else None,
                        record.get("product") is True,
                    ),
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a killed run


def _scan_sidecars(root: Path) -> dict[ImageRef, IndexEntry]:
    entries: dict[ImageRef, IndexEntry] = {}
    if not root.is_dir():
        return entries
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != STATE_DIR]
        present = set(names)
        for name in names:
            data_name = name.removesuffix(SIDECAR_SUFFIX)
            if name == data_name or data_name not in present or name.startswith("."):
                continue
            file = Path(folder, data_name)
            facts = read_sidecar(file)
            if facts is not None:
                relative = file.relative_to(root).as_posix()
                entries[facts.ref] = IndexEntry(relative, facts.size, facts.gone, facts.described)
    return entries
