"""A run's state: which images it exports, what it counted, and when it must stop.

`Selection` is the one "new or done?" decision, shared by the export and its dry run:
each image is taken once, and one already done is skipped unless the run is forced.
`RunState` keeps the counts the report and the progress bar read, and two circuit
breakers that stop a run instead of failing image after image: the portal
unavailable (every image failing transiently, after its retries, with no success
between) and access denied everywhere (credentials that cannot read the catalog).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from pathlib import Path

from exporter.errors import (
    AccessDeniedError,
    ExporterError,
    FatalPortalError,
    PortalUnavailableError,
    TransientError,
)
from exporter.jobs.report import Failure, Tally
from exporter.keyset import KeySet, pair_key
from exporter.manifest import ManifestRow, validate_manifest
from exporter.model import ImageRef
from exporter.redact import redact

log = logging.getLogger(__name__)

# With no image read successfully yet, this many access-denied answers mean the
# credentials cannot read the catalog at all: stop instead of asking for every image.
DENIED_EVERYWHERE_THRESHOLD = 50
# This many images in a row failing transiently (each after all its retries), with no
# success between, mean the portal is down or unreachable: stop rather than spend hours
# failing every remaining image.
UNAVAILABLE_THRESHOLD = 100


class Verdict(enum.Enum):
    """What a run does with an image it meets."""

    NEW = "new"  # export it
    DONE = "done"  # an earlier run exported it: skip it
    SEEN = "seen"  # met before in this run: nothing more to count


class SeenImages:
    """Images met so far, 8 bytes each (ids beyond 31 bits, if any, in a set of their own)."""

    def __init__(self) -> None:
        self._packed = KeySet()
        self._others: set[tuple[int, int]] = set()

    def add(self, product_id: int, image_id: int) -> bool:
        """Remember an image; False when it was met before."""
        key = pair_key(product_id, image_id)
        if key is None:
            if (product_id, image_id) in self._others:
                return False
            self._others.add((product_id, image_id))
            return True
        if key in self._packed:
            return False
        self._packed.add(key)
        return True

    def __len__(self) -> int:
        return len(self._packed) + len(self._others)


class Selection:
    """Which images a run exports: each image once, those already done skipped unless forced."""

    def __init__(self, is_done: Callable[[ImageRef], bool], *, force: bool = False) -> None:
        self._is_done = is_done
        self._force = force
        self._seen = SeenImages()

    def judge(self, ref: ImageRef) -> Verdict:
        """The verdict on an image, the first time it is met; `SEEN` after that."""
        if not self._seen.add(ref.product_id, ref.image_id):
            return Verdict.SEEN
        if not self._force and self._is_done(ref):
            return Verdict.DONE
        return Verdict.NEW


class RunState:
    """The counts of one run and its circuit breakers."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self._images_read = 0  # images whose metadata the portal returned
        self._denied = 0  # access-denied failures
        self._transient_streak = 0  # transient failures since the last success
        self._transient = 0  # transient failures in all
        self._last_error = ""  # the last failure, for a message
        self._last_code = ""  # the last access-denied code
        self._named_expected = 0  # distinct images the manifest names by pairs
        self._named_seen = 0  # of which counted so far

    def expect(self, named: int) -> None:
        """The job names this many distinct images by pairs, counted before the first
        request so that the total (and the time left) is the whole job's from the start."""
        self._named_expected = named

    @property
    def total(self) -> int:
        """The job's images: those counted so far, and the named ones still to come."""
        return self.tally.total + max(0, self._named_expected - self._named_seen)

    def count(self, verdict: Verdict, *, named: bool = False) -> bool:
        """Count an image the selection judged (`named`: by a manifest pair); True when
        it is to be exported."""
        if verdict is Verdict.SEEN:
            return False
        self._named_seen += named
        self.tally.total += 1
        if verdict is Verdict.DONE:
            self.tally.skipped += 1
            return False
        return True

    def read(self, images: int) -> None:
        """The portal returned the metadata of this many images."""
        self._images_read += images
        self._transient_streak = 0

    def exported(self, ref: ImageRef, key: str, size: int) -> None:
        """One image is exported whole."""
        self.tally.export(ref, key, size)
        self._transient_streak = 0

    def gone(self, ref: ImageRef, key: str, since: str) -> None:
        """An image of the backup was found gone from the portal (no failure)."""
        self.tally.find_gone(ref, key, since)
        log.info("%s is gone from the portal; its file stays in the backup", ref)

    def warn(self, warning: str) -> None:
        """Something was left out that is no single image (a catalog not walked)."""
        self.tally.warnings.append(warning)

    def notice(self, notice: str) -> None:
        """Something fell short with nothing left out (sidecars without their product):
        logged and reported, not a failure of the run."""
        log.warning("%s", redact(notice))
        self.tally.notices.append(notice)

    def fail_product(self, product_id: int, error: ExporterError) -> None:
        """A product whose images could not be listed: one item of the run, failed."""
        self.tally.total += 1
        self.fail(product_id, None, error)

    def fail(self, product_id: int, image_id: int | None, error: ExporterError) -> None:
        """Record a failed image (or product, `image_id` None); stop the run when a
        breaker trips (`PortalUnavailableError`, `FatalPortalError`)."""
        self.tally.fail(Failure.of(product_id, image_id, error))
        what = f"product {product_id}" + (f" image {image_id}" if image_id is not None else "")
        log.warning("%s failed: %s", what, redact(str(error)))
        self._last_error = str(error)
        if isinstance(error, TransientError):
            self._transient += 1
            self._transient_streak += 1
            if self._transient_streak >= UNAVAILABLE_THRESHOLD:
                raise PortalUnavailableError(
                    f"{self._transient_streak} images in a row failed after every retry "
                    f"(last: {error}); stopping — run again when the portal answers"
                )
        if isinstance(error, AccessDeniedError):
            self._denied += 1
            self._last_code = error.code
            if self._images_read == 0 and self._denied >= DENIED_EVERYWHERE_THRESHOLD:
                raise FatalPortalError(
                    error.code,
                    f"access denied for all of the first {self._denied} images: "
                    "the credentials cannot read the catalog",
                    error.status,
                )

    @property
    def failed(self) -> bool:
        """Whether anything was left out: an image failed, or a catalog was not walked."""
        return self.tally.failed > 0 or bool(self.tally.warnings)

    def verdict(self) -> ExporterError | None:
        """What a finished run amounts to: None when it did its job (some images may have
        failed), else the error it fell short by — access denied for every image, or a
        portal that answered nothing."""
        tally = self.tally
        if not self.failed or self._images_read:
            return None  # the portal answered: what failed, failed image by image
        if not tally.skipped and self._denied == tally.failed:
            return FatalPortalError(
                self._last_code or "ACCESS_DENIED",
                "access denied for every image: the credentials cannot read the catalog",
            )
        if tally.failed and self._transient == tally.failed:
            return PortalUnavailableError(
                f"the portal answered none of the {tally.failed} images after every retry "
                f"(last: {self._last_error}); run again when the portal answers"
            )
        return None


def validate_and_count(manifest: Path) -> tuple[int, int]:
    """Validate the manifest (`ManifestError` as `validate_manifest` says) and count, in
    the same reading, its rows and the distinct images it names by pairs."""
    seen = SeenImages()

    def count(row: ManifestRow) -> None:
        if row.image_id is not None:
            seen.add(row.product_id, row.image_id)

    rows = validate_manifest(manifest, count)
    return rows, len(seen)
