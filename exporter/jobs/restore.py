"""`restore`: put an export back into a portal — the one it came from, or another — exactly once.

    export (sidecars) ─► chosen ─► target product ─► what the target has now ─► uploads
                         (not gone,  (same id, --map)   (listed, 50 per batch)    (re-hashed,
                          filters)                                                  batched by
                                                                                    bytes)

Every exported image whose file matches its sidecar (size and SHA-256, re-hashed
before upload) goes to the product with the same id, or the one `--map` names. Into
the portal it came from, an image whose id is still on its product is skipped, so a
restore after a deletion brings back exactly what was deleted. `DETAIL_PICTURE` and
`PREVIEW_PICTURE` replace the product's picture of that type on the portal, so a product
that has one keeps it unless `replace_pictures`. The journal (`jobs/journal.py`) makes
each upload happen once, also across lost answers and killed runs; `verify` reads every
uploaded image back and compares its SHA-256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream as Sender

from exporter.config import Config
from exporter.destination.base import Destination
from exporter.destination.sidecar import SidecarFacts
from exporter.errors import (
    BatchRefusedError,
    ConfigError,
    ExporterError,
    FatalPortalError,
    OutputError,
    PortalError,
    PortalUnavailableError,
    RequestTooLargeError,
    exit_status,
    primary_exception,
)
from exporter.jobs.dryrun import seconds_at_limit
from exporter.jobs.journal import Journal, Sent, journal_name, taken_as
from exporter.jobs.progress import ProgressView, Snapshot, show_progress
from exporter.jobs.report import Failure, write_report
from exporter.jobs.session import http_session, portal_client
from exporter.model import ImageRef, Incoming, ProductImage
from exporter.portal.batch import BatchCall
from exporter.portal.client import PortalClient
from exporter.portal.metadata import MetadataFetcher
from exporter.portal.products import find_products
from exporter.portal.ratelimit import BucketStore, Clock, headroom
from exporter.portal.retry import GAVE_UP
from exporter.portal.upload import (
    DEFAULT_BUDGET,
    Packer,
    Upload,
    add_alone,
    add_batch,
    base64_size,
)
from exporter.units import format_duration

log = logging.getLogger(__name__)

PICTURES = frozenset({"DETAIL_PICTURE", "PREVIEW_PICTURE"})  # one per product, replaced by add


@dataclass(frozen=True, slots=True)
class RestoreOptions:
    """What to restore, where to, and how."""

    products: frozenset[int] | None = None  # only these source products
    types: frozenset[str] | None = None  # only these image types
    include_gone: bool = False  # also images gone from the portal they came from
    product_map: dict[int, int] | None = None  # source product → target product (--map)
    match_by_xml_id: bool = False  # target product: the one with the source's xmlId
    replace_pictures: bool = False  # let a detail/preview picture replace the target's
    verify: bool = False  # read every uploaded image back and compare its SHA-256
    dry_run: bool = False  # say what would go where; upload nothing
    budget: int = DEFAULT_BUDGET  # bytes of base64 per batch request


@dataclass(frozen=True, slots=True)
class Candidate:
    """One exported image on its way to a target product."""

    key: str
    facts: SidecarFacts
    target: int  # the target product (0: to be matched by xmlId)

    @property
    def source(self) -> ImageRef:
        return self.facts.ref


@dataclass
class RestoreTally:
    """What a restore did, image by image."""

    total: int = 0
    restored: list[tuple[ImageRef, ImageRef]] = field(default_factory=list)  # source → target
    skipped: list[tuple[ImageRef, str]] = field(default_factory=list)  # with why
    failed: list[Failure] = field(default_factory=list)
    bytes: int = 0
    planned: list[Candidate] = field(default_factory=list)  # a dry run's would-be uploads

    def fail(self, source: ImageRef, error: BaseException) -> None:
        self.failed.append(Failure.of(source.product_id, source.image_id, error))
        log.warning("%s not restored: %s", source, error)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """How a restore ended."""

    exit_code: int
    report: dict[str, Any]
    report_path: Path

    def summary(self) -> str:
        """The lines printed at the end of a restore."""
        counts = self.report["counts"]
        verb = "would upload" if self.report["dryRun"] else "restored"
        done = (
            len(self.report.get("wouldUpload", ())) if self.report["dryRun"] else counts["restored"]
        )
        lines = [
            f"images: {counts['total']} chosen, {done} {verb}, {counts['skipped']} skipped, "
            f"{counts['failed']} failed",
            f"requests: {self.report['requests'].get('rest', 0)} REST "
            f"({self.report['requests'].get('batch', 0)} batches), "
            f"{self.report['requests'].get('download', 0)} downloads",
        ]
        if self.report["dryRun"]:
            lines.append(
                f"the uploads need {self.report['uploadRequests']} requests: about "
                f"{format_duration(self.report['estimatedSeconds'])} at the portal's limit; "
                "dry run: nothing was uploaded or written"
            )
        else:
            lines.append(f"report: {self.report_path}")
        return "\n".join(lines)


class CorruptFile(ExporterError):
    """An exported file that no longer matches its sidecar: never uploaded."""

    code = "CORRUPT"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class NotMatched(ExporterError):
    """An image whose target product is not known (not in --map, or not on the portal)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class RestoreJob:
    """One restore of one export into one target portal."""

    def __init__(
        self,
        config: Config,
        source: Destination,
        source_name: str,
        options: RestoreOptions,
        *,
        report: Path,
        clock: Clock | None = None,
        budget: BucketStore | None = None,
        progress: ProgressView | None = None,
    ) -> None:
        """`config` names the target portal (its limit, retries, concurrency); `source`
        is the export, `source_name` how messages call it; `report` where the report goes;
        `progress` shows the restore's counters as it goes."""
        self.config = config
        self.source = source
        self.source_name = source_name
        self.options = options
        self.report_path = report
        self._clock = clock
        self._budget = budget
        self._progress = progress
        self.tally = RestoreTally()
        self._sha256: dict[ImageRef, str] = {}  # each chosen image's, for --verify

    async def run(self) -> RestoreResult:
        """Restore; the report is written however it ends."""
        started = datetime.now(UTC)
        began = time.monotonic()
        stopped_by: BaseException | None = None
        requests: dict[str, int] = {}
        try:
            await self.source.open(write=not self.options.dry_run)
            try:
                candidates = self._choose()
                async with http_session(self.config) as session:
                    client = portal_client(
                        self.config, session, clock=self._clock, budget=self._budget
                    )
                    try:
                        await self._restore_showing(client, candidates, began)
                    finally:
                        counts = client.counts
                        requests = {
                            "rest": counts.rest,
                            "batch": counts.batch,
                            "download": counts.download,
                            "rateLimited": counts.rate_limited,
                            "retried": counts.retried,
                        }
            finally:
                await self.source.close()
        except (FatalPortalError, OutputError, PortalUnavailableError) as exc:
            stopped_by = exc
            log.error("aborted: %s", exc)
        except BaseException as exc:
            stopped_by = exc
            raise
        finally:
            report = self._report(started, began, requests, stopped_by)
            if not self.options.dry_run:  # a dry run writes nothing
                write_report(self.report_path, report)
            self.result = RestoreResult(report["exitCode"], report, self.report_path)
        return self.result

    async def _restore_showing(
        self, client: PortalClient, candidates: list[Candidate], began: float
    ) -> None:
        """`_restore`, with the progress view shown meanwhile and once more at the end."""
        view = self._progress
        if view is None:
            await self._restore(client, candidates)
            return

        def snapshot() -> Snapshot:
            tally, counts = self.tally, client.counts
            return Snapshot(
                total=tally.total,
                exported=len(tally.restored),
                skipped=len(tally.skipped),
                failed=len(tally.failed),
                bytes=tally.bytes,
                requests=counts.rest + counts.download,
                rate_limited=counts.rate_limited,
                retried=counts.retried,
                elapsed=time.monotonic() - began,
                verb="restored",
            )

        try:
            async with anyio.create_task_group() as shown:
                shown.start_soon(show_progress, view, snapshot)
                await self._restore(client, candidates)
                shown.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise primary_exception(group) from None
        finally:
            view.close(snapshot())  # the bar ends its line before the summary

    # Which images, and where to.

    def _choose(self) -> list[Candidate]:
        options = self.options
        chosen: list[Candidate] = []
        for key, facts in self.source.exported():
            if options.products is not None and facts.ref.product_id not in options.products:
                continue
            if options.types is not None and facts.image_type not in options.types:
                continue
            self.tally.total += 1
            if facts.gone and not options.include_gone:
                self.tally.skipped.append((facts.ref, f"gone from the portal since {facts.gone}"))
                continue
            target = 0 if options.match_by_xml_id else self._target_of(facts)
            if target is None:
                self.tally.fail(
                    facts.ref,
                    NotMatched("NOT_MAPPED", f"product {facts.ref.product_id} is not in the map"),
                )
                continue
            chosen.append(Candidate(key, facts, target))
            self._sha256[facts.ref] = facts.sha256
        return chosen

    def _target_of(self, facts: SidecarFacts) -> int | None:
        mapping = self.options.product_map
        if mapping is None:
            return facts.ref.product_id
        return mapping.get(facts.ref.product_id)

    # What the target has, then the uploads.

    async def _match(self, client: PortalClient, candidates: list[Candidate]) -> list[Candidate]:
        """Each candidate's target: the one product of the target portal with its product's
        xmlId. No xmlId, none or several such products: failed, never guessed."""
        codes = {c.facts.xml_id for c in candidates if c.facts.xml_id is not None}
        found, lookup = await find_products(
            client, "xmlId", codes, batch_size=self.config.batch_size
        )
        matched: list[Candidate] = []
        for candidate in candidates:
            code, source = candidate.facts.xml_id, candidate.source
            products = found.get(code, []) if code is not None else []
            if code is None:
                why = "the export does not name its product's xmlId (run the export again)"
                self.tally.fail(source, NotMatched("NO_XML_ID", why))
            elif len(products) > 1:
                ids = ", ".join(str(p.id) for p in sorted(products, key=lambda p: p.id))
                why = f"xmlId {code!r} names {len(products)} products of the target ({ids})"
                self.tally.fail(source, NotMatched("AMBIGUOUS_MATCH", why))
            elif not products:
                unread = "" if lookup.complete else " (some of its catalogs could not be read)"
                why = f"no product of the target has xmlId {code!r}{unread}"
                self.tally.fail(source, NotMatched("NOT_MATCHED", why))
            else:
                matched.append(dataclasses.replace(candidate, target=products[0].id))
        return matched

    async def _restore(self, client: PortalClient, candidates: list[Candidate]) -> None:
        if self.options.match_by_xml_id:
            candidates = await self._match(client, candidates)
        fetcher = MetadataFetcher(client, batch_size=self.config.batch_size)
        journal = None
        if not self.options.dry_run:
            journal = Journal(self.source.state_path(journal_name(self.config.portal.host)))
        targets = sorted({c.target for c in candidates} | _products_in_doubt(journal))
        on_target = await self._list(fetcher, targets)
        in_doubt = self._resolve(journal, on_target) if journal is not None else {}
        uploads = self._decide(candidates, on_target, journal, in_doubt)
        if journal is None:
            self.tally.planned = uploads
            return
        with journal:
            for source, target in in_doubt.items():
                if target is None:
                    journal.refuse(source)  # it never arrived: it may go again
                else:
                    log.info("%s: an upload left in doubt arrived as %s", source, target)
                    journal.confirm(source, target)
            sender = _Sender(self, client, fetcher, on_target, journal)
            await sender.upload(uploads)
        if self.options.verify and self.tally.restored:
            await self._verify(client, fetcher)

    async def _list(
        self, fetcher: MetadataFetcher, products: list[int]
    ) -> dict[int, list[ProductImage] | PortalError]:
        """Each target product's images now (or why it cannot be listed)."""
        return dict(await fetcher.list_products(products)) if products else {}

    def _resolve(
        self, journal: Journal, on_target: dict[int, list[ProductImage] | PortalError]
    ) -> dict[ImageRef, ImageRef | None]:
        """Uploads an earlier run left in doubt, and what each became on its product: an
        image of its name that was not there before (None: it never arrived)."""
        resolved: dict[ImageRef, ImageRef | None] = {}
        claimed = journal.confirmed_ids()
        for source, sent in journal.sent.items():
            images = on_target.get(sent.target_product)
            if not isinstance(images, list):
                continue  # its product cannot be listed: left in doubt, never sent again
            became = taken_as(sent, _ids_and_names(images), claimed)
            resolved[source] = ImageRef(sent.target_product, became) if became else None
        return resolved

    def _decide(
        self,
        candidates: list[Candidate],
        on_target: dict[int, list[ProductImage] | PortalError],
        journal: Journal | None,
        resolved: dict[ImageRef, ImageRef | None],
    ) -> list[Candidate]:
        """The candidates to upload; the others are skipped or failed, with why."""
        to_upload: list[Candidate] = []
        confirmed = {} if journal is None else journal.confirmed
        in_doubt = set() if journal is None else set(journal.sent) - set(resolved)
        host = self.config.portal.host
        for candidate in candidates:
            source = candidate.source
            images = on_target.get(candidate.target)
            if source in confirmed or resolved.get(source) is not None:
                self.tally.skipped.append((source, "restored already (journal)"))
            elif source in in_doubt:
                self.tally.fail(
                    source, NotMatched("IN_DOUBT", "an earlier upload's outcome is not known yet")
                )
            elif not isinstance(images, list):
                error = images or NotMatched("NOT_LISTED", "the target product was not listed")
                self.tally.fail(source, error)
            elif candidate.facts.portal == host and any(
                i.ref.image_id == source.image_id for i in images
            ):
                self.tally.skipped.append((source, "still on the portal"))
            elif (
                candidate.facts.image_type in PICTURES
                and not self.options.replace_pictures
                and any(i.type == candidate.facts.image_type for i in images)
            ):
                why = f"the product has a {candidate.facts.image_type} already"
                self.tally.skipped.append((source, why))
            else:
                to_upload.append(candidate)
        return to_upload

    def restored(self, source: ImageRef, target: ImageRef, size: int) -> None:
        """One image is on the target portal, confirmed."""
        self.tally.restored.append((source, target))
        self.tally.bytes += size
        log.debug("%s restored as %s", source, target)

    async def _verify(self, client: PortalClient, fetcher: MetadataFetcher) -> None:
        """Read every restored image back and compare its bytes with the export's."""
        expected = {target: source for source, target in self.tally.restored}
        sha = self._sha256
        mismatched: list[ImageRef] = []
        for target, outcome in await fetcher.get_images(sorted(expected)):
            source = expected[target]
            if isinstance(outcome, PortalError):
                self.tally.fail(source, outcome)
                mismatched.append(source)
                continue
            digest = await client.download(outcome.download_url, _sha256_of_body)
            if digest != sha[source]:
                self.tally.fail(
                    source,
                    CorruptFile(f"read back from the portal as {target}, its SHA-256 differs"),
                )
                mismatched.append(source)
        self.tally.restored = [(s, t) for s, t in self.tally.restored if s not in mismatched]

    def _requests_for(self, planned: list[Candidate]) -> int:
        """The requests the planned uploads take: their batches by bytes and count."""
        packer: Packer[_Planned] = Packer(self.options.budget)
        batches = sum(1 for c in planned if packer.add(_Planned(c.facts.size)))
        return batches + (1 if packer.flush() else 0)

    def _report(
        self,
        started: datetime,
        began: float,
        requests: dict[str, int],
        stopped_by: BaseException | None,
    ) -> dict[str, Any]:
        tally = self.tally
        if isinstance(stopped_by, Exception) and not isinstance(stopped_by, ExporterError):
            aborted_by: str | None = f"internal error: {type(stopped_by).__name__}"
        else:
            aborted_by = str(stopped_by) if isinstance(stopped_by, Exception) else None
        exit_code = exit_status(stopped_by, failed=bool(tally.failed))
        report: dict[str, Any] = {
            "startedAt": _iso(started),
            "finishedAt": _iso(datetime.now(UTC)),
            "portal": self.config.portal.host,
            "source": self.source_name,
            "dryRun": self.options.dry_run,
            "counts": {
                "total": tally.total,
                "restored": len(tally.restored),
                "skipped": len(tally.skipped),
                "failed": len(tally.failed),
            },
            "requests": requests,
            "restored": [_pair(s, t) for s, t in tally.restored],
            "skipped": [
                {"productId": s.product_id, "id": s.image_id, "reason": why}
                for s, why in tally.skipped
            ],
            "failed": [failure.as_dict() for failure in tally.failed],
            "bytes": tally.bytes,
            "seconds": round(time.monotonic() - began, 3),
            "exitCode": exit_code,
        }
        if self.options.dry_run:
            report["uploadRequests"] = self._requests_for(tally.planned)
            rate = self.config.rate_limit
            burst = max(1, rate.burst - headroom(rate.burst))
            seconds = seconds_at_limit(report["uploadRequests"], rate, burst)
            report["estimatedSeconds"] = round(seconds, 1)
            report["wouldUpload"] = [
                {
                    "productId": c.source.product_id,
                    "id": c.source.image_id,
                    "targetProductId": c.target,
                    "file": c.key,
                    "size": c.facts.size,
                }
                for c in tally.planned
            ]
        if aborted_by is not None:
            report["abortedBy"] = aborted_by
        return report


MAX_ROUNDS = 3  # times an upload whose answer was lost may go again (it never arrived)


class _Sender:
    """The uploads of one restore: read and re-hashed one by one, packed into batches,
    sent, confirmed in the journal; those a lost answer left in doubt are settled by
    listing their products, and sent again only when they did not arrive."""

    def __init__(
        self,
        job: RestoreJob,
        client: PortalClient,
        fetcher: MetadataFetcher,
        on_target: dict[int, list[ProductImage] | PortalError],
        journal: Journal,
    ) -> None:
        self.job = job
        self.client = client
        self.fetcher = fetcher
        self.on_target = on_target
        self.journal = journal
        self.alone = False  # the portal refuses adds inside a batch: one request each
        self.rounds: dict[ImageRef, int] = defaultdict(int)

    async def upload(self, candidates: list[Candidate]) -> None:
        """Upload every candidate once. The next batch is read, checked and encoded while
        the one before it is on its way, so the portal and this machine work side by side."""
        queue = candidates
        while queue:
            unknown: list[_Pending] = []
            ready_tx, ready_rx = anyio.create_memory_object_stream[list[_Pending]]()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pack, queue, ready_tx)
                    async with ready_rx:
                        async for batch in ready_rx:
                            unknown += await self._send(batch)
            except BaseExceptionGroup as group:
                raise primary_exception(group) from None
            queue = await self._settle(unknown) if unknown else []

    async def _pack(self, queue: list[Candidate], ready: Sender[list[_Pending]]) -> None:
        """The candidates read and checked, in batches by bytes and count, as they fill."""
        async with ready:
            packer: Packer[_Pending] = Packer(self.job.options.budget)
            for number, candidate in enumerate(queue):
                pending = await self._read(candidate, number)
                if pending is None:
                    continue
                full = packer.add(pending)
                if full:
                    await ready.send(full)
            last = packer.flush()
            if last:
                await ready.send(last)

    async def _read(self, candidate: Candidate, number: int) -> _Pending | None:
        """The candidate's file, re-hashed against its sidecar and encoded for a batch (in a
        worker thread); a corrupt one fails here."""
        facts = candidate.facts
        data = await self.job.source.read_file(candidate.key)
        name = facts.image_name or Path(candidate.key).name
        kind = facts.image_type or "MORE_PHOTO"
        upload = Upload(f"u{number}", candidate.target, kind, name, data)
        why, call = await anyio.to_thread.run_sync(_checked, upload, facts, not self.alone)
        if why is None:
            return _Pending(candidate, upload, call)
        self.job.tally.fail(candidate.source, CorruptFile(f"{candidate.key}: {why}"))
        return None

    async def _send(self, batch: list[_Pending]) -> list[_Pending]:
        """Send a batch (or each alone); returns the uploads whose outcome is unknown."""
        if not batch:
            return []
        if len(batch) == 1 or self.alone:
            return await self._send_alone(batch)
        self._record_sent(batch)
        try:
            outcomes = await add_batch(self.client, [(p.upload, p.call) for p in batch])
        except (BatchRefusedError, RequestTooLargeError) as exc:
            # Refused as a whole, unrun: each goes alone (and so does every later one
            # when the portal refuses adds in batch).
            self.alone = self.alone or isinstance(exc, BatchRefusedError)
            for pending in batch:
                self.journal.refuse(pending.source)
            return await self._send_alone(batch)
        except GAVE_UP:
            return batch  # the answer was lost: what happened is found out by listing
        refused = [p for p in batch if isinstance(outcomes[p.upload.key], BatchRefusedError)]
        for pending in batch:
            outcome = outcomes[pending.upload.key]
            if isinstance(outcome, BatchRefusedError):
                self.journal.refuse(pending.source)
            else:
                self._outcome(pending, outcome)
        if refused:
            self.alone = True
            return await self._send_alone(refused)
        return []

    async def _send_alone(self, batch: list[_Pending]) -> list[_Pending]:
        unknown: list[_Pending] = []
        for pending in batch:
            self._record_sent([pending])
            try:
                outcome: ProductImage | PortalError = await add_alone(self.client, pending.upload)
            except GAVE_UP:
                unknown.append(pending)
                continue
            except FatalPortalError:
                raise
            except PortalError as exc:
                outcome = exc
            self._outcome(pending, outcome)
        return unknown

    def _record_sent(self, batch: list[_Pending]) -> None:
        sent = []
        for pending in batch:
            images = self.on_target.get(pending.upload.product_id)
            before = (
                frozenset(i.ref.image_id for i in images)
                if isinstance(images, list)
                else frozenset()
            )
            sent.append(
                (pending.source, Sent(pending.upload.product_id, pending.upload.name, before))
            )
        self.journal.record_sent(sent)

    def _outcome(self, pending: _Pending, outcome: ProductImage | PortalError) -> None:
        if isinstance(outcome, FatalPortalError):
            raise outcome
        if isinstance(outcome, PortalError):
            self.journal.refuse(pending.source)
            self.job.tally.fail(pending.source, outcome)
            return
        target = ImageRef(pending.upload.product_id, outcome.ref.image_id)
        self.journal.confirm(pending.source, target)
        self.job.restored(pending.source, target, len(pending.upload.content))

    async def _settle(self, unknown: list[_Pending]) -> list[Candidate]:
        """List the products of uploads a lost answer left in doubt: one that arrived is
        taken as the upload; one that did not goes again (a few times at most)."""
        products = sorted({p.upload.product_id for p in unknown})
        now = await self.job._list(self.fetcher, products)
        self.on_target.update(now)
        claimed = self.journal.confirmed_ids()
        again: list[Candidate] = []
        for pending in unknown:
            images = now.get(pending.upload.product_id)
            sent = self.journal.sent.get(pending.source)
            if sent is None or not isinstance(images, list):
                why = "its answer was lost and its product cannot be listed"
                self.job.tally.fail(pending.source, NotMatched("IN_DOUBT", why))
                continue
            became = taken_as(sent, _ids_and_names(images), claimed)
            if became is not None:
                target = ImageRef(pending.upload.product_id, became)
                self.journal.confirm(pending.source, target)
                self.job.restored(pending.source, target, len(pending.upload.content))
                continue
            self.journal.refuse(pending.source)
            self.rounds[pending.source] += 1
            if self.rounds[pending.source] > MAX_ROUNDS:
                why = "the portal's answers to its upload kept getting lost"
                self.job.tally.fail(pending.source, NotMatched("NO_ANSWER", why))
            else:
                again.append(pending.candidate)
        return again


@dataclass(frozen=True, slots=True)
class _Planned:
    """An upload a dry run counts: only its size matters for packing."""

    size: int

    @property
    def encoded_size(self) -> int:
        return base64_size(self.size)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A candidate read and checked, with the upload it makes."""

    candidate: Candidate
    upload: Upload
    call: BatchCall | None = field(default=None, repr=False)  # its batch command, made ahead

    @property
    def source(self) -> ImageRef:
        return self.candidate.source

    # The packer reads these off an upload; a pending one passes them through.
    @property
    def encoded_size(self) -> int:
        return self.upload.encoded_size


def _checked(
    upload: Upload, facts: SidecarFacts, for_batch: bool
) -> tuple[str | None, BatchCall | None]:
    """Why the upload's bytes are not the exported file's (None: they are), and its batch
    command made ahead when it may go in a batch."""
    data = upload.content
    if len(data) != facts.size:
        return f"size {len(data)}, sidecar says {facts.size}", None
    if hashlib.sha256(data).hexdigest() != facts.sha256:
        return "sha256 differs from the sidecar", None
    return None, upload.batch_call().prepared() if for_batch else None


def _ids_and_names(images: list[ProductImage]) -> list[tuple[int, str]]:
    return [(image.ref.image_id, image.name) for image in images]


def _products_in_doubt(journal: Journal | None) -> set[int]:
    return set() if journal is None else {sent.target_product for sent in journal.sent.values()}


async def _sha256_of_body(incoming: Incoming) -> str:
    digest = hashlib.sha256()
    async for piece in incoming.pieces:
        digest.update(piece)
    return digest.hexdigest()


def _pair(source: ImageRef, target: ImageRef) -> dict[str, int]:
    return {
        "productId": source.product_id,
        "id": source.image_id,
        "targetProductId": target.product_id,
        "targetId": target.image_id,
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def read_map(path: Path) -> dict[int, int]:
    """A `--map` CSV: `sourceProductId,targetProductId` per row, a header row first."""
    import csv

    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            rows = list(csv.reader(file))
    except OSError as exc:
        raise ConfigError(f"--map {path}: cannot read: {exc.strerror}") from None
    mapping: dict[int, int] = {}
    problems: list[str] = []
    for number, row in enumerate(rows[1:], start=2):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if len(cells) < 2 or not all(c.isdigit() and int(c) > 0 for c in cells[:2]):
            problems.append(f"{path}:{number}: needs two product ids")
            continue
        mapping[int(cells[0])] = int(cells[1])
    if problems:
        raise ConfigError("invalid --map:\n  " + "\n  ".join(problems[:20]))
    return mapping


RestoreProgress = Callable[[RestoreTally], None]
