"""`verify`: re-hash every exported file against its sidecar and list what is wrong.

A run trusts sizes (a nightly run must not read the whole backup); `verify` reads every
byte once, in bounded memory, and reports findings instead of raising, so one bad file
never hides the others. Files are told apart by their neighbours and their content:

* `X` with `X.json` next to it is an export; `X.json` must be an exporter sidecar
  (else `unreadable-sidecar`) and `X` must match its name, size and SHA-256 (`corrupt`).
* a lone `.json` holding the sidecar shape (`productImage` and `file` objects) has lost
  its file (`missing`); any other lone `.json` document (the run report, a user's notes)
  is not the exporter's and is left alone. A lone `.json` that is not a JSON document at
  all is an image whose portal name ended in `.json`, so it is an `orphan`.
  `report.json` at the top is the run report unless it has the sidecar shape, even
  next to a file named `report`.
* any other file is an `orphan`, except the state folder and desktop clutter
  (`.DS_Store`, `Thumbs.db`, `desktop.ini`); hidden `*.b24-partial` files are `temporary`.
* what cannot be read at all (a folder, a data file) is `unreadable`: not checked, so
  never silently passed.
* an image the index lists that no sidecar names, with nothing at its path, is
  `missing` too: its file and its sidecar are both gone.

A folder with no sidecar and no index holds no export at all (an unmounted volume's
mount point looks like that), and is refused rather than passed as a clean backup.

`repair_output` is the one writer here: under the run lock it moves each `corrupt`
export, file and sidecar, into the state folder (`repaired/<UTC time>/<path>`, which the
walk skips) and makes the index forget it, so the next run exports it again under its
name. Nothing is deleted, and every other finding is only reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from exporter.atomic import fsync_dir, is_temporary
from exporter.destination.index import INDEX_NAME, STATE_DIR, ExportIndex, index_exists
from exporter.destination.lock import RunLock, lock_holder
from exporter.destination.sidecar import (
    MAX_SIDECAR_BYTES,
    SIDECAR_SUFFIX,
    Rejected,
    SidecarFacts,
    load_sidecar,
    parse_sidecar,
    sidecar_path,
)
from exporter.errors import ConfigError, LockedError, OutputError
from exporter.model import ImageRef
from exporter.units import format_bytes

FindingKind = Literal[
    "missing", "corrupt", "orphan", "temporary", "unreadable-sidecar", "unreadable"
]

HASH_BLOCK = 1 << 20  # bytes read (and held) at a time, whatever the file's size
REPORT_NAME = "report.json"  # where a run writes its report by default
REPAIRED_DIR = "repaired"  # in the state folder: what `verify --repair` moved aside
_CLUTTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_MAX_NAME_IN_DETAIL = 120


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong in the output folder; `path` is relative to it, "/"-separated."""

    kind: FindingKind
    path: str
    detail: str


@dataclass(frozen=True, slots=True)
class MovedAside:
    """A corrupt export moved out of the backup with its sidecar; paths relative to the root."""

    path: str  # where it was
    moved_to: str  # where it is now, its sidecar beside it


@dataclass(frozen=True, slots=True)
class Verification:
    """What `verify` found: files compared with a sidecar, bytes hashed, and the findings."""

    root: Path | str  # the folder, or the store's URL
    checked: int
    bytes: int
    findings: tuple[Finding, ...]
    repaired: tuple[MovedAside, ...] | None = None  # None unless asked to repair

    @property
    def ok(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        """How many findings of each kind."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return counts


def verify_output(root: Path, *, progress: Callable[[int], None] | None = None) -> Verification:
    """Check every export under `root`; `progress` gets the bytes hashed, block by block.

    Raises `ConfigError` when `root` is not a readable folder or holds no export, and
    `LockedError` while a run is exporting into it (its temporaries and half-written
    state would be findings).
    """
    _require_a_folder(root)
    _refuse_while_a_run_holds_the_lock(root)
    return _verification(root, _check(root, progress))


def repair_output(root: Path) -> Verification:
    """Check every export under `root` holding the run lock, then move the corrupt ones aside.

    Raises as `verify_output` does, `LockedError` while a run holds the lock, and
    `OutputError` when a file cannot be moved.
    """
    _require_a_folder(root)
    if not index_exists(root / STATE_DIR):
        verify_output(root)  # refuses a folder with no export before the lock writes into it
    with RunLock(root / STATE_DIR):
        checker = _check(root, None)
        moved = _move_aside(root, checker.corrupt) if checker.corrupt else ()
    return _verification(root, checker, moved)


def _require_a_folder(root: Path) -> None:
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise ConfigError(f"verify --output {root}: {what}")


def _check(root: Path, progress: Callable[[int], None] | None) -> _Checker:
    checker = _Checker(str(root), progress)
    checker.walk()
    if index_exists(root / STATE_DIR):
        checker.check_index()
    elif not checker.sidecars:
        raise ConfigError(
            f"no export found in {root} (no sidecar, no index); is the backup volume mounted?"
        )
    return checker


def _verification(
    root: Path, checker: _Checker, repaired: tuple[MovedAside, ...] | None = None
) -> Verification:
    findings = tuple(sorted(checker.findings, key=lambda f: (f.path, f.kind)))
    return Verification(root, checker.checked, checker.bytes, findings, repaired)


def _move_aside(root: Path, corrupt: list[tuple[str, ImageRef]]) -> tuple[MovedAside, ...]:
    """Move each corrupt file and its sidecar into a new repair folder; the index forgets it."""
    folder = _new_repair_folder(root / STATE_DIR / REPAIRED_DIR)
    index = ExportIndex.open(root)
    moved: list[MovedAside] = []
    try:
        for path, ref in corrupt:
            source, target = root / path, folder / path
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                source.rename(target)
                sidecar_path(source).rename(sidecar_path(target))
            except OSError as exc:
                raise OutputError(f"cannot move {source} aside: {exc.strerror}") from None
            fsync_dir(source.parent)
            fsync_dir(target.parent)
            index.forget(ref)
            moved.append(MovedAside(path, target.relative_to(root).as_posix()))
    finally:
        index.close()
    return tuple(moved)


def _new_repair_folder(parent: Path) -> Path:
    """A folder of this repair's own, named by the UTC time, so no earlier one is written over."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    n = 1
    while True:
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            n += 1
            continue
        except OSError as exc:
            raise OutputError(f"cannot create {folder}: {exc.strerror}") from None
        return folder


class _Checker:
    """Accumulates findings folder by folder."""

    def __init__(self, root: str, progress: Callable[[int], None] | None) -> None:
        self.root = root
        self.progress = progress
        self.findings: list[Finding] = []
        self.checked = 0
        self.bytes = 0
        self.sidecars = 0  # exporter sidecars seen, readable or not
        self.named: set[ImageRef] = set()  # the images those sidecars describe
        self.corrupt: list[tuple[str, ImageRef]] = []  # each corrupt file and whose it is
        self._buffer = bytearray(HASH_BLOCK)

    def walk(self) -> None:
        """Check folder after folder, skipping state folders and not following symlinks.

        A symlinked folder may point anywhere, even to a parent; a symlinked file is
        checked through its link. Only regular files are ever opened.
        """
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                with os.scandir(os.path.join(self.root, rel)) as entries:  # noqa: PTH118
                    listed = list(entries)
            except OSError as exc:
                if not rel:
                    raise ConfigError(
                        f"verify --output {self.root}: cannot read: {exc.strerror}"
                    ) from None
                self._add("unreadable", rel, f"cannot list the folder: {exc.strerror}")
                continue
            files: set[str] = set()
            for entry in listed:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != STATE_DIR:
                        stack.append(f"{rel}/{entry.name}" if rel else entry.name)
                elif entry.is_file():
                    files.add(entry.name)
                elif not entry.is_dir():  # a pipe, socket or device would block or mislead
                    path = f"{rel}/{entry.name}" if rel else entry.name
                    self._add("orphan", path, "not a regular file")
            self._check_folder(rel, files)

    def check_index(self) -> None:
        """Every image the index lists that no sidecar names, with nothing at its path."""
        try:
            exported = ExportIndex.read(Path(self.root))
        except OSError as exc:
            self._add("unreadable", f"{STATE_DIR}/{INDEX_NAME}", f"cannot read: {exc.strerror}")
            return
        for ref, path in exported.paths():
            if ref in self.named or os.path.lexists(os.path.join(self.root, path)):  # noqa: PTH118
                continue
            self._add(
                "missing", path, f"in the index, but its file and sidecar are gone ({_of(ref)})"
            )

    def _check_folder(self, rel: str, files: set[str]) -> None:
        for name in sorted(files):
            path = f"{rel}/{name}" if rel else name
            full = os.path.join(self.root, path)  # noqa: PTH118 (plain strings: one per file)
            if is_temporary(Path(name)):
                self._add("temporary", path, "left by an interrupted run; the next run removes it")
            elif name + SIDECAR_SUFFIX in files:
                self._check_export(path, full, top=not rel)
            elif name.endswith(SIDECAR_SUFFIX) and name.removesuffix(SIDECAR_SUFFIX) in files:
                continue  # a sidecar: checked with its file
            elif name in _CLUTTER:
                continue
            elif name.endswith(SIDECAR_SUFFIX):
                self._check_lone_json(path, full)
            else:
                self._add("orphan", path, "file without sidecar")

    def _check_export(self, path: str, full: str, *, top: bool) -> None:
        sidecar = path + SIDECAR_SUFFIX
        expected = load_sidecar(full + SIDECAR_SUFFIX)
        if isinstance(expected, Rejected):
            if top and sidecar == REPORT_NAME and not expected.shaped:
                self._add("orphan", path, "file without sidecar")  # report.json is the report
            else:
                if expected.shaped:
                    self.sidecars += 1
                self._add("unreadable-sidecar", sidecar, expected.reason)
            return
        self.sidecars += 1
        self.named.add(expected.ref)
        try:
            info = os.stat(full)  # noqa: PTH116
        except OSError as exc:
            self._add("unreadable", path, f"cannot stat: {exc.strerror}")
            return
        self.checked += 1
        problems = []
        if expected.name is not None and expected.name != path.rpartition("/")[2]:
            problems.append(f"sidecar is for {_short(expected.name)!r}")
        if not stat.S_ISREG(info.st_mode):  # replaced since the folder was listed
            problems.append("not a regular file")
        elif info.st_size != expected.size:
            problems.append(f"size {info.st_size}, sidecar says {expected.size}")
        else:
            try:
                size, digest = self._hash(full)
            except OSError as exc:
                self._add("unreadable", path, f"cannot read: {exc.strerror}")
                return
            if size != expected.size:  # changed while being read
                problems.append(f"size {size}, sidecar says {expected.size}")
            elif digest != expected.sha256:
                problems.append("sha256 differs")
        if problems:
            self.corrupt.append((path, expected.ref))
            self._add("corrupt", path, "; ".join(problems))

    def _check_lone_json(self, path: str, full: str) -> None:
        """A `.json` without a file next to it: an orphaned sidecar, a foreign document, or data."""
        try:
            with open(full, "rb") as source:
                head = source.read(MAX_SIDECAR_BYTES + 1)
        except OSError as exc:
            self._add("unreadable", path, f"cannot read: {exc.strerror}")
            return
        if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"[")):
            self._add("orphan", path, "file without sidecar")
            return
        if len(head) > MAX_SIDECAR_BYTES:
            return  # a big JSON document (a long run report); no sidecar is this large
        expected = parse_sidecar(head)
        if isinstance(expected, SidecarFacts):
            self.sidecars += 1
            self.named.add(expected.ref)
            self._add("missing", path, f"sidecar without its file ({_of(expected.ref)})")
        elif expected.shaped:
            self.sidecars += 1
            self._add("missing", path, f"sidecar without its file ({expected.reason})")

    def _hash(self, full: str) -> tuple[int, str]:
        digest = hashlib.sha256()
        view = memoryview(self._buffer)
        total = 0
        with open(full, "rb", buffering=0) as source:
            while n := source.readinto(view):
                digest.update(view[:n])
                total += n
                if self.progress is not None:
                    self.progress(n)
        self.bytes += total
        return total, digest.hexdigest()

    def _add(self, kind: FindingKind, path: str, detail: str) -> None:
        self.findings.append(Finding(kind, path, detail))


def _refuse_while_a_run_holds_the_lock(root: Path) -> None:
    """Probe the run lock without taking or creating it: verify never writes to `root`."""
    if lock_holder(root / STATE_DIR) is not None:
        raise LockedError(f"a run is exporting into {root}; verify it after the run has finished")


def render_text(v: Verification) -> str:
    """One line per finding, then a summary line; control characters are escaped."""
    lines = [f"{f.kind}: {_printable(f.path)}: {_printable(f.detail)}" for f in v.findings]
    checked = f"checked {v.checked} file{'s' if v.checked != 1 else ''} ({format_bytes(v.bytes)})"
    where = _printable(str(v.root))
    if v.ok:
        lines.append(f"{checked} in {where}: ok")
    else:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(v.counts().items()))
        total = len(v.findings)
        lines.append(f"{checked} in {where}: {total} problem{'s' if total != 1 else ''} ({kinds})")
    for moved in v.repaired or ():
        lines.append(
            f"moved aside: {_printable(moved.path)} -> {_printable(moved.moved_to)} "
            "(with its sidecar)"
        )
    if v.repaired:
        n = len(v.repaired)
        them = "it" if n == 1 else "them"
        lines.append(
            f"repaired {n} corrupt file{'s' if n != 1 else ''}: the next run exports {them} again"
        )
    return "\n".join(lines)


def render_json(v: Verification) -> str:
    """The verification as one JSON document with stable keys, for monitors and scripts."""
    # ASCII escapes keep odd file names (control characters, undecodable bytes) harmless.
    return json.dumps(verification_document(v), indent=2)


def verification_document(v: Verification) -> dict[str, Any]:
    """The verification's findings and figures as plain values (what `render_json` writes)."""
    document: dict[str, Any] = {
        "root": str(v.root),
        "checked": v.checked,
        "bytes": v.bytes,
        "ok": v.ok,
        "findings": [{"kind": f.kind, "path": f.path, "detail": f.detail} for f in v.findings],
    }
    if v.repaired is not None:
        document["repaired"] = [{"path": m.path, "movedTo": m.moved_to} for m in v.repaired]
    return document


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def _of(ref: ImageRef) -> str:
    return f"image {ref.image_id} of product {ref.product_id}"


def _short(name: str) -> str:
    return name if len(name) <= _MAX_NAME_IN_DETAIL else name[:_MAX_NAME_IN_DETAIL] + "…"
