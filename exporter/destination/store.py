"""An object store as the destination: `s3://bucket/prefix`, Amazon S3 or any S3-compatible store.

The same layout and sidecars as a folder, as objects `<prefix>/<key>` and
`<prefix>/<key>.json`. An object appears whole or not at all: an image up to one part
(`PART_BYTES`) is one PUT; a bigger one is a multipart upload, its parts sent while the
download goes on (one part in flight, one filling: bounded memory for any size), and
completed only at the end, aborted on failure. Every PUT and part carries its SHA-256
(`x-amz-checksum-sha256`), so the store refuses bytes that did not arrive as sent.

The order of one export: the image object, its sidecar object, then the index line in
the local state folder (`output.dir` of the config says where: under the user's cache
folder, keyed by the store and URL). The index never runs ahead of the store.

`open` lists the prefix once: an image counts as done when the index has it and the
listing shows its object with the recorded size and its sidecar, so a re-run of done
images costs that listing and no request per object. A missing index (or `reindex`) is
rebuilt from the listing and the sidecars it names. Multipart uploads a killed run left
under the prefix are aborted (the run lock makes them nobody else's).

Two runs into one destination: a per-machine `flock` in the state folder always, and a
lock object (`<prefix>/.b24-image-exporter/lock`) created with a conditional write
(`If-None-Match: *`) where the store supports it, refreshed while the run goes on and
taken over when its holder is this machine (the flock says that run is dead) or it has
not been refreshed for `LOCK_STALE_SECONDS`.

Credentials come from the standard AWS variables and profile chain (botocore's); they
are added to the redaction list before the first request and never written anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

from exporter.config import OutputConfig, RetryConfig, StoreConfig
from exporter.destination.index import INDEX_NAME, STATE_DIR, ExportIndex, IndexEntry
from exporter.destination.listing import Listing, ListingReader
from exporter.destination.lock import RunLock
from exporter.destination.paths import render_layout, with_counter
from exporter.destination.sidecar import (
    SIDECAR_SUFFIX,
    SidecarFacts,
    build_sidecar,
    changed_document,
    document_bytes,
    parse_sidecar,
)
from exporter.destination.verify import Finding, Verification
from exporter.errors import LockedError, OutputError
from exporter.model import ImageRef, ProductImage, ProductInfo, SavedFile
from exporter.redact import redact

log = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024  # above this an image is a multipart upload, in parts of this
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part (but the last)
LOCK_REFRESH_SECONDS = 60.0
LOCK_STALE_SECONDS = 600.0
READ_CONCURRENCY = 16  # sidecars read at once when the index is rebuilt
REPORTS_KEPT = 30

_ALREADY_THERE = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_NOT_SUPPORTED = {"NotImplemented", "501", "InvalidArgument", "InvalidRequest"}


def _timestamp(text: str) -> datetime:
    """A timestamp of a store's answer: ISO 8601 as `datetime` reads it, others (HTTP
    dates in headers) as botocore does."""
    if text[4:5] == "-" and "T" in text:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(text)
    from botocore.utils import parse_timestamp

    parsed: datetime = parse_timestamp(text)
    return parsed


def _lock_body() -> bytes:
    """What the lock object says: who holds it, since when it was last refreshed."""
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}
    return json.dumps(holder).encode()


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def store_error(exc: BaseException, doing: str, url: str) -> OutputError:
    """An OutputError that names what the store said (its code and message, never a
    credential: botocore's messages carry none, and redaction covers the rest)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or ""
        said = f"{code}: {message}".rstrip(": ")
    else:
        said = f"{type(exc).__name__}: {exc}"
    return OutputError(redact(f"the store refused to {doing} {url}: {said}"))


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = (response.get("Error") or {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(code or status or "")


class StoreDestination:
    """Exports under one bucket prefix, one run at a time."""

    def __init__(
        self,
        output: OutputConfig,
        portal_host: str,
        *,
        retries: RetryConfig | None = None,
        reindex: bool = False,
        part_bytes: int = PART_BYTES,
        every_sidecar: bool = False,
    ) -> None:
        """`reindex` rebuilds the local index from the store; `every_sidecar` reads every
        sidecar when it opens, for `exported()` (a restore's source)."""
        assert output.store is not None
        self.store: StoreConfig = output.store
        self.state_dir = output.dir
        self._layout = output.layout
        self._portal_host = portal_host
        self._attempts = retries.max_attempts if retries is not None else 6
        self._reindex = reindex
        self._part_bytes = max(part_bytes, MIN_PART_BYTES)
        self._every_sidecar = every_sidecar
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock: RunLock | None = None
        self._lock_task: asyncio.Task[None] | None = None
        self._index: ExportIndex | None = None
        self._listing = Listing()  # every object under the prefix, with its size
        self._lone: list[str] = []  # files whose sidecar is listed but not they
        self._facts: dict[str, SidecarFacts] = {}
        # This run's claims of keys (case-folded), until the image's index row holds it.
        self._claims: dict[str, ImageRef] = {}
        self._aborts: set[asyncio.Task[None]] = set()
        self.requests = 0  # requests sent to the store (the tests count them)

    # -- keys -------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return f"{self.store.prefix}/{key}" if self.store.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.store.prefix) + 1 :] if self.store.prefix else full

    @property
    def _lock_key(self) -> str:
        return self._full(f"{STATE_DIR}/lock")

    # -- opening ----------------------------------------------------------------------

    async def open(self, *, write: bool = True) -> None:
        try:
            from aiobotocore.session import get_session
            from botocore.config import Config as BotoConfig
        except ImportError:
            raise OutputError(
                f"{self.store.url}: object storage needs the s3 extra: "
                "pip install 'b24-image-exporter[s3]'"
            ) from None
        session = get_session()
        # botocore parses each listed object's LastModified with dateutil (about 50 µs
        # an object: most of a re-run's time into a store); its ISO 8601 is read at once.
        session.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=_timestamp
        )
        credentials = await session.get_credentials()
        if credentials is None:
            raise OutputError(
                f"no credentials for {self.store.url}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            )
        frozen = await credentials.get_frozen_credentials()
        redact.add(*(s for s in (frozen.secret_key, frozen.token, frozen.access_key) if s))
        config = BotoConfig(
            retries={"mode": "standard", "max_attempts": self._attempts},
            request_checksum_calculation="when_required",
            # Each body carries our SHA-256 for the store to check; botocore need not hash
            # it again to sign it (it would over plain http).
            s3={"payload_signing_enabled": False},
            response_checksum_validation="when_required",
            max_pool_connections=32,
            connect_timeout=30,
            read_timeout=120,
        )
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=self.store.endpoint_url,
                region_name=self.store.region or os.environ.get("AWS_REGION") or "us-east-1",
                config=config,
            )
        )
        try:
            if write:
                await self._take_locks()
                await self._abort_leftovers()
            await self._load_index(write)  # and the listing
        except BaseException:
            await self.close()
            raise

    async def _call(self, doing: str, what: str, method: str, **params: Any) -> Any:
        self.requests += 1
        try:
            return await getattr(self._client, method)(Bucket=self.store.bucket, **params)
        except Exception as exc:  # botocore's errors: ClientError, connection, timeouts
            raise store_error(exc, doing, what) from None

    async def _take_locks(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.state_dir}: {exc.strerror}") from None
        self._lock = RunLock(self.state_dir).__enter__()
        body = _lock_body()
        try:
            answer = await self._conditional_put(self._lock_key, body)
        except _Held as held:
            holder = held.holder
            mine = holder.get("host") == socket.gethostname()
            age = time.time() - float(holder.get("at") or 0)
            if not mine and age < LOCK_STALE_SECONDS:
                raise LockedError(
                    f"another run (pid {holder.get('pid')} on {holder.get('host')}) is "
                    f"exporting into {self.store.url}; its lock was refreshed {age:.0f} s ago"
                ) from None
            why = "its run on this machine is gone" if mine else f"not refreshed for {age:.0f} s"
            log.warning("taking over the lock of %s: %s", self.store.url, why)
            answer = await self._call(
                "lock", self.store.url, "put_object", Key=self._lock_key, Body=body
            )
        if answer is None:
            log.info(
                "%s does not support conditional writes: two runs are kept apart on this "
                "machine only",
                self.store.url,
            )
            return
        self._lock_task = asyncio.create_task(self._refresh_lock())

    async def _conditional_put(self, key: str, body: bytes) -> dict[str, Any] | None:
        """Create `key` only if it is not there: the store's answer, None if the store
        cannot do conditional writes, `_Held` (with what is there) if it is there."""
        try:
            self.requests += 1
            answer: dict[str, Any] = await self._client.put_object(
                Bucket=self.store.bucket, Key=key, Body=body, IfNoneMatch="*"
            )
        except Exception as exc:
            code = _code(exc)
            if code in _ALREADY_THERE:
                got = await self._call("read", self.store.url, "get_object", Key=key)
                async with got["Body"] as stream:
                    raw = await stream.read()
                try:
                    holder = json.loads(raw)
                except ValueError:
                    holder = {}
                raise _Held(holder if isinstance(holder, dict) else {}) from None
            if code in _NOT_SUPPORTED:
                return None
            raise store_error(exc, "lock", self.store.url) from None
        return answer

    async def _refresh_lock(self) -> None:
        while True:
            await asyncio.sleep(LOCK_REFRESH_SECONDS)
            try:
                await self._call(
                    "lock", self.store.url, "put_object", Key=self._lock_key, Body=_lock_body()
                )
            except OutputError as exc:
                log.warning("cannot refresh the run lock: %s", exc)

    async def _abort_leftovers(self) -> None:
        """Abort every multipart upload under the prefix (a killed run's; the lock is ours)."""
        prefix = self._full("") if self.store.prefix else ""
        params: dict[str, Any] = {"Prefix": prefix}
        aborted = 0
        while True:
            page = await self._call(
                "list the uploads of", self.store.url, "list_multipart_uploads", **params
            )
            for upload in page.get("Uploads") or []:
                await self._call(
                    "abort an upload in", self.store.url, "abort_multipart_upload",
                    Key=upload["Key"], UploadId=upload["UploadId"],
                )  # fmt: skip
                aborted += 1
            if not page.get("IsTruncated"):
                break
            params = {
                "Prefix": prefix,
                "KeyMarker": page.get("NextKeyMarker", ""),
                "UploadIdMarker": page.get("NextUploadIdMarker", ""),
            }
        if aborted:
            log.info("aborted %d unfinished uploads left by an interrupted run", aborted)

    async def _list(self, wanted: Callable[[str], bool] | None) -> list[str]:
        """Every object under the prefix, with its size (the state keys left out), into
        the listing; the files with their sidecar beside them that `wanted` says (all
        when None) are returned."""
        prefix = self._full("") if self.store.prefix else ""
        state = self._full(STATE_DIR + "/")
        params: dict[str, Any] = {"Prefix": prefix}
        reader = ListingReader(wanted)
        while True:
            page = await self._call("list", self.store.url, "list_objects_v2", **params)
            for item in page.get("Contents") or []:
                if not item["Key"].startswith(state):
                    reader.add(self._relative(item["Key"]), int(item["Size"]))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
            params = {"Prefix": prefix, "ContinuationToken": token}
        self._listing, self._lone = reader.finish()
        return reader.pairs

    async def _load_index(self, write: bool) -> None:
        """The index, and the listing. A run after another opens its index first and
        reads only the sidecars the index has no row for (a run killed between the two);
        a first run, a rebuild and a read-only open read every sidecar."""
        path = self.state_dir / INDEX_NAME
        anew = self._reindex or not path.exists() or not write
        if anew or self._every_sidecar:
            pairs = await self._list(None)
            await self._read_sidecars(pairs)
            entries = {
                facts.ref: IndexEntry(key, facts.size, facts.gone, facts.described)
                for key, facts in self._facts.items()
            }
            index = self._index = await self._open_index(path, write, entries, anew)
            unindexed = [key for key in pairs if not index.may_hold(key)]
        else:
            # Held from here, so that `close` closes it if the listing fails.
            index = self._index = await self._open_index(path, write, {}, anew)
            unindexed = await self._list(lambda key: not index.may_hold(key))
        if not anew:
            await self._adopt_unindexed(unindexed)

    async def _open_index(
        self, path: Path, write: bool, entries: dict[ImageRef, IndexEntry], anew: bool
    ) -> ExportIndex:
        if not write:
            return ExportIndex.in_memory(self.state_dir, entries)
        return await anyio.to_thread.run_sync(
            lambda: ExportIndex.open_at(self.state_dir, path, lambda: entries, anew=anew)
        )

    async def _adopt_unindexed(self, keys: list[str]) -> None:
        """Exports whose sidecar is in the store but whose index row is not (a run
        killed between the two): read their sidecars and record them as done."""
        index = self._opened()
        await self._read_sidecars([key for key in keys if key not in self._facts])
        for key in keys:
            facts = self._facts.get(key)
            fits = facts is not None and self._listing.get(key) == facts.size
            if facts is not None and fits and facts.ref not in index.entries:
                index.add(facts.ref, key, facts.size, facts.gone, described=facts.described)

    async def _read_sidecars(self, keys: list[str]) -> None:
        """The facts of the sidecars of these images (unreadable ones left out)."""
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def read(key: str) -> None:
            async with gate:
                raw = await self._get(key + SIDECAR_SUFFIX)
            facts = parse_sidecar(raw)
            if isinstance(facts, SidecarFacts):
                self._facts[key] = facts

        await asyncio.gather(*(read(key) for key in keys))
        if keys:
            log.info("read %d sidecars of %s", len(keys), self.store.url)

    async def _get(self, key: str) -> bytes:
        got = await self._call("read", f"{self.store.url}/{key}", "get_object", Key=self._full(key))
        async with got["Body"] as stream:
            data: bytes = await stream.read()
        return data

    async def close(self) -> None:
        if self._aborts:
            await asyncio.gather(*self._aborts, return_exceptions=True)
        if self._lock_task is not None:
            self._lock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lock_task
            self._lock_task = None
            with contextlib.suppress(Exception):
                await self._client.delete_object(Bucket=self.store.bucket, Key=self._lock_key)
        if self._index is not None:
            self._index.close()
        await self._stack.aclose()
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    # -- what is done -----------------------------------------------------------------

    def _opened(self) -> ExportIndex:
        assert self._index is not None, "open the destination first"
        return self._index

    def is_done(self, ref: ImageRef) -> bool:
        entry = self._opened().entries.get(ref)
        return (
            entry is not None
            and self._listing.get(entry.path) == entry.size
            and entry.path + SIDECAR_SUFFIX in self._listing
        )

    def images_of(self, product_id: int) -> list[ImageRef]:
        return self._opened().images_of(product_id)

    def exported_products(self) -> set[int]:
        return self._opened().products()

    def key_of(self, ref: ImageRef) -> str:
        return self._opened().path_of(ref) or ""

    def gone_since(self, ref: ImageRef) -> str | None:
        return self._opened().gone_since(ref)

    def gone_images(self) -> list[tuple[ImageRef, str]]:
        index = self._opened()
        return [(ref, entry.gone) for ref, entry in index.entries.items() if entry.gone]

    def described(self, ref: ImageRef) -> bool:
        return self._opened().described(ref)

    # -- writing ----------------------------------------------------------------------

    def _claim(self, ref: ImageRef, wanted: PurePosixPath) -> str:
        """The key for `ref`: its earlier one, `wanted`, or `wanted` with a counter; never
        one another image holds, nor one with a sidecar the index does not know."""
        index = self._opened()
        given = index.path_of(ref)
        if given is not None:
            return given
        n, candidate = 1, wanted
        while True:
            key = str(candidate)
            holder = self._claims.get(key.casefold())
            if holder == ref:
                return key
            # Free: no claim of this run, no other image's row, no unknown export's sidecar.
            if (
                holder is None
                and all(other == ref for other in index.holders(key))
                and key + SIDECAR_SUFFIX not in self._listing
            ):
                self._claims[key.casefold()] = ref
                return key
            n += 1
            candidate = with_counter(wanted, n)

    async def open_sink(self, image: ProductImage, content_type: str) -> StoreSink:
        key = self._claim(image.ref, render_layout(self._layout, image, content_type))
        return StoreSink(self, key, content_type)

    async def commit(self, image: ProductImage, sink: Any) -> SavedFile:
        saved: SavedFile = await sink.commit()
        document = build_sidecar(image, saved, self._portal_host, datetime.now(UTC))
        try:
            sidecar = document_bytes(document)
            await self._put(saved.key + SIDECAR_SUFFIX, sidecar, "application/json")
        except BaseException:
            with contextlib.suppress(Exception):
                full = self._full(saved.key)
                await self._client.delete_object(Bucket=self.store.bucket, Key=full)
            raise
        self._listing.set(saved.key, saved.size)
        self._listing.set(saved.key + SIDECAR_SUFFIX, len(sidecar))
        self._opened().add(image.ref, saved.key, saved.size, described=image.product is not None)
        self._claims.pop(saved.key.casefold(), None)  # the index holds it now
        return saved

    async def _put(
        self, key: str, body: bytes, content_type: str, digest: bytes | None = None
    ) -> dict[str, Any]:
        """One object in one PUT, with its SHA-256 (`digest`, when the caller has it)."""
        if digest is None:
            digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(body).digest())
        answer: dict[str, Any] = await self._call(
            "write", f"{self.store.url}/{key}", "put_object",
            Key=self._full(key), Body=body, ContentType=content_type, ChecksumSHA256=_b64(digest),
        )  # fmt: skip
        return answer

    async def _rewrite(self, entry: IndexEntry, name: str, value: dict[str, Any] | None) -> None:
        key = entry.path + SIDECAR_SUFFIX
        raw = await self._get(key)
        try:
            document = changed_document(raw, name, value)
        except ValueError:
            raise OutputError(f"{self.store.url}/{key} is not a sidecar") from None
        await self._put(key, document_bytes(document), "application/json")

    async def mark_gone(self, ref: ImageRef, since: str | None) -> None:
        entry = self._opened().entries.get(ref)
        if entry is None or entry.gone == since:
            return
        await self._rewrite(entry, "gone", None if since is None else {"since": since})
        self._opened().add(ref, entry.path, entry.size, since, described=entry.described)

    async def describe(self, ref: ImageRef, product: ProductInfo) -> None:
        entry = self._opened().entries.get(ref)
        if entry is None:
            return
        await self._rewrite(entry, "product", product.as_json())
        self._opened().add(ref, entry.path, entry.size, entry.gone, described=True)

    async def remove(self, ref: ImageRef) -> str:
        index = self._opened()
        entry = index.entries[ref]
        for key in (entry.path + SIDECAR_SUFFIX, entry.path):
            where = f"{self.store.url}/{key}"
            await self._call("delete", where, "delete_object", Key=self._full(key))
            self._listing.discard(key)
        index.forget(ref)
        return entry.path

    def exported(self) -> Iterator[tuple[str, SidecarFacts]]:
        """Every export the sidecars read at `open` tell (all of them when opened to read)."""
        known = {entry.path for entry in self._opened().entries.values()}
        for key in sorted(self._facts):
            if key in known:
                yield key, self._facts[key]

    async def read_file(self, key: str) -> bytes:
        return await self._get(key)

    async def object_sha256(self, key: str) -> tuple[str, int]:
        """The hex SHA-256 of an object, and the bytes read to learn it: the store's own
        checksum when it keeps a whole-object one (0 bytes read), else by reading it."""
        where = f"{self.store.url}/{key}"
        head = await self._call(
            "read", where, "head_object", Key=self._full(key), ChecksumMode="ENABLED"
        )
        kept = head.get("ChecksumSHA256") or ""
        if kept and "-" not in kept and head.get("ChecksumType", "FULL_OBJECT") != "COMPOSITE":
            return base64.b64decode(kept).hex(), 0
        got = await self._call("read", where, "get_object", Key=self._full(key))
        digest = hashlib.sha256()
        size = 0
        async with got["Body"] as stream:
            while block := await stream.read(1 << 20):
                digest.update(block)
                size += len(block)
        return digest.hexdigest(), size

    def state_path(self, name: str) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return self.state_dir / name

    async def keep_report(self, report: bytes) -> None:
        if self._lock is None:
            return
        name = datetime.now(UTC).strftime("report-%Y%m%dT%H%M%S%fZ.json")
        try:
            await self._put(f"{STATE_DIR}/reports/{name}", report, "application/json")
        except OutputError as exc:
            log.error("cannot keep the report in the store: %s", exc)

    def _forget_upload(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload in the background (a discarded sink's)."""

        async def abort() -> None:
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(
                    Bucket=self.store.bucket, Key=self._full(key), UploadId=upload_id
                )

        task = asyncio.get_running_loop().create_task(abort())
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)


async def verify_store(destination: StoreDestination) -> Verification:
    """Check every export in the store against its sidecar: an object that is gone, or
    has another size, or whose SHA-256 differs, is a finding. Where the store answers
    with the object's own SHA-256 (one PUT, `x-amz-checksum-sha256` kept), that answer
    is compared, without a download; otherwise (a multipart object, or one written
    without a checksum) the object is read and hashed in bounded memory."""
    await destination.open(write=False)
    try:
        findings: list[Finding] = []
        checked = hashed = 0
        facts = destination._facts
        listing = destination._listing
        index = destination._opened()
        for ref, entry in sorted(index.entries.items(), key=lambda item: item[1].path):
            key = entry.path
            sidecar = facts.get(key)
            if sidecar is None:
                continue
            checked += 1
            size = listing.get(key)
            if size != sidecar.size:
                detail = f"{_of(ref)}: {size} bytes, the sidecar says {sidecar.size}"
                findings.append(Finding("corrupt", key, detail))
                continue
            digest, read = await destination.object_sha256(key)
            hashed += read
            if digest != sidecar.sha256:
                detail = f"{_of(ref)}: its SHA-256 is not the one its sidecar records"
                findings.append(Finding("corrupt", key, detail))
        lone = destination._lone
        await destination._read_sidecars(lone)
        for key in sorted(lone):
            if key in facts:
                detail = f"{_of(facts[key].ref)}: the object is gone, its sidecar is left"
                findings.append(Finding("missing", key, detail))
        return Verification(destination.store.url, checked, hashed, tuple(findings))
    finally:
        await destination.close()


def _of(ref: ImageRef) -> str:
    return f"image {ref.image_id} of product {ref.product_id}"


class _Held(Exception):
    def __init__(self, holder: dict[str, Any]) -> None:
        self.holder = holder


class StoreSink:
    """One object on its way into the store: one PUT at commit, or a multipart upload
    whose parts go as they fill (one in flight while the next fills)."""

    def __init__(self, destination: StoreDestination, key: str, content_type: str) -> None:
        self.key = key
        self._dest = destination
        self._media_type = (content_type or "application/octet-stream").split(";")[0].strip()
        self._digest = hashlib.sha256()
        self._size = 0
        self._pieces: list[bytes] = []  # received and not yet sent (joined once, when sent)
        self._held = 0  # their bytes
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._in_flight: asyncio.Task[None] | None = None
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    async def write(self, pieces: Sequence[bytes]) -> None:
        await anyio.to_thread.run_sync(self._hash, pieces)
        added = sum(len(piece) for piece in pieces)
        self._size += added
        self._pieces.extend(pieces)
        self._held += added
        part = self._dest._part_bytes
        while self._held >= part:
            await self._send(self._take(part))

    def _hash(self, pieces: Sequence[bytes]) -> None:
        for piece in pieces:
            self._digest.update(piece)

    def _take(self, count: int | None = None) -> bytes:
        """The first `count` bytes held (all of them: None), joined once."""
        whole = b"".join(self._pieces)
        count = len(whole) if count is None else count
        rest = whole[count:]
        self._pieces = [rest] if rest else []
        self._held = len(rest)
        return whole[:count] if rest else whole

    async def _send(self, chunk: bytes) -> None:
        """Start the next part once the one before it has arrived."""
        await self._settle()
        dest = self._dest
        if self._upload_id is None:
            started = await dest._call(
                "write", f"{dest.store.url}/{self.key}", "create_multipart_upload",
                Key=dest._full(self.key), ContentType=self._media_type, ChecksumAlgorithm="SHA256",
            )  # fmt: skip
            self._upload_id = started["UploadId"]
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number})
        self._in_flight = asyncio.create_task(self._part(number, chunk))

    async def _part(self, number: int, chunk: bytes) -> None:
        dest = self._dest
        digest = _b64(await anyio.to_thread.run_sync(lambda: hashlib.sha256(chunk).digest()))
        answer = await dest._call(
            "write", f"{dest.store.url}/{self.key}", "upload_part",
            Key=dest._full(self.key), UploadId=self._upload_id, PartNumber=number,
            Body=chunk, ChecksumSHA256=digest,
        )  # fmt: skip
        self._parts[number - 1].update(ETag=answer["ETag"], ChecksumSHA256=digest)

    async def _settle(self) -> None:
        if self._in_flight is not None:
            task, self._in_flight = self._in_flight, None
            await task

    async def commit(self) -> SavedFile:
        dest = self._dest
        try:
            if self._upload_id is None:
                await dest._put(self.key, self._take(), self._media_type, self._digest.digest())
            else:
                if self._held:
                    await self._send(self._take())
                await self._settle()
                await dest._call(
                    "write", f"{dest.store.url}/{self.key}", "complete_multipart_upload",
                    Key=dest._full(self.key), UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )  # fmt: skip
        except BaseException:
            self.discard()
            raise
        self._done = True
        return SavedFile(self.key, self._size, self.sha256, self._media_type)

    def discard(self) -> None:
        self._pieces, self._held = [], 0
        if self._in_flight is not None:
            self._in_flight.cancel()
            self._in_flight = None
        if self._upload_id is not None and not self._done:
            upload_id, self._upload_id = self._upload_id, None
            with contextlib.suppress(RuntimeError):  # no loop: the next run aborts it
                self._dest._forget_upload(self.key, upload_id)
