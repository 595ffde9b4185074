"""`check`: whether a configuration is ready for its first run, told one check at a time.

The checks come in the order a run meets them: the configuration loads; the manifest,
when one is named, parses; the output folder is (or can become) a writable folder that
no running export holds, with its free space and what it already holds; the portal
accepts the credentials and the `catalog` scope, keeps a clock close to this machine's
and lets the manifest's first image be read; and what `run --dry-run` estimates. A
configuration that does not load stops every other check, and a portal that refuses the
credentials or does not answer stops the image check; any other problem is told and the
checks go on, so one try names them all. A problem carries the exit code a run would
end with for it (2, 3 or 4).

Nothing is written: no report, no lock, no index, no output folder, not even the shared
request budget (its state is read, so the requests wait their turn, but not changed).
An OAuth access token that has expired is the one exception: it is refreshed as a run
would, and the new pair kept in `token_file`, since refresh tokens rotate. The portal
gets two requests when it answers — `catalog.catalog.list`, and one
`catalog.productImage.get` (or `.list`) of the manifest's first row — and more only as
the configured retries allow for a portal that does not.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from exporter.config import Config, load_config
from exporter.destination.index import STATE_DIR, ExportIndex
from exporter.destination.lock import lock_holder
from exporter.errors import (
    EXIT_OK,
    REMEDIES,
    AccessDeniedError,
    ExporterError,
    FatalPortalError,
    ImageError,
    LockedError,
    OutputError,
    PortalError,
    PortalUnavailableError,
    UsageError,
    exit_status,
)
from exporter.jobs.dryrun import Plan, describe_plan, downloads_counted, read_plan
from exporter.jobs.session import destination_for, http_session, portal_client
from exporter.jobs.state import Selection
from exporter.manifest import ManifestRow, iter_manifest
from exporter.model import ImageRef, ProductImage
from exporter.portal.budget import private_copy, recalled_finding
from exporter.portal.catalog import CATALOG_LIST_METHOD
from exporter.portal.client import PortalClient
from exporter.portal.metadata import MetadataFetcher
from exporter.portal.retry import GAVE_UP
from exporter.units import format_bytes

CLOCK_TOLERANCE = 60.0  # seconds between the portal's clock and this machine's before a warning
NOT_FOUND = "0"  # catalog.productImage.*: product or image not found

# A manifest row the portal has no image for: the one remedy the troubleshooting table
# gives that is not about a refusal of the whole job.
NOT_FOUND_REMEDY = "regenerate the manifest with `discover`"
DEFAULT_REMEDY = (
    "fix the webhook, its scope or its user's rights (the README's troubleshooting table)"
)


class Status(enum.Enum):
    """How one check came out."""

    OK = "ok"
    WARNING = "warning"  # worth fixing, but a run would go ahead
    PROBLEM = "problem"  # a run would stop: `exit_code` says how
    SKIPPED = "skipped"  # an earlier problem (or no manifest) leaves nothing to check


STATUS_WIDTH = max(len(status.value) for status in Status)
UNAVAILABLE_REMEDY = "check the portal's address and this machine's network, or try again later"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One check's result for a person: what was found, what to do, how a run would end."""

    subject: str  # configuration, manifest, output, portal, clock, images, estimate
    status: Status
    text: str  # its first line is the finding; further lines are details
    remedy: str = ""
    exit_code: int = EXIT_OK  # of a problem: the run's exit status for it

    @classmethod
    def problem(cls, subject: str, error: ExporterError, remedy: str = "") -> Outcome:
        """A problem, with the exit code the error's class carries."""
        return cls(subject, Status.PROBLEM, str(error), remedy, exit_status(error))


@dataclass
class Readiness:
    """Every check's outcome, and the requests the portal was sent."""

    outcomes: list[Outcome] = field(default_factory=list)
    requests: int = 0

    @property
    def problems(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is Status.PROBLEM]

    @property
    def exit_code(self) -> int:
        """The first problem's exit code; 0 when everything is ready (warnings allowed)."""
        problems = self.problems
        return problems[0].exit_code if problems else EXIT_OK


class ReadinessCheck:
    """The checks of one configuration file; `on_outcome` hears each one as it is known."""

    def __init__(
        self, config_path: Path, on_outcome: Callable[[Outcome], None] | None = None
    ) -> None:
        self.config_path = config_path
        self.readiness = Readiness()
        self._on_outcome = on_outcome

    async def run(self) -> Readiness:
        """Run the checks in order; problems are outcomes, not exceptions."""
        config = self._configuration()
        if config is None:
            return self.readiness
        named = self._manifest(config)
        exports = self._output(config)
        await self._portal(config, named)
        await self._estimate(config, named, exports)
        return self.readiness

    def _tell(self, outcome: Outcome) -> None:
        self.readiness.outcomes.append(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _configuration(self) -> Config | None:
        try:
            config = load_config(self.config_path)
        except UsageError as exc:
            self._tell(Outcome.problem("configuration", exc, "fix what the message names"))
            return None
        rate = config.rate_limit
        counted = {True: "counted in it", False: "not counted in it", None: "counted in it or not"}
        answer, known = downloads_counted(config)
        self._tell(
            Outcome(
                "configuration",
                Status.OK,
                f"{self.config_path}: portal {config.portal.host}, {_authentication(config)}; "
                f"rate limit {rate.requests_per_second:g} req/s, burst {rate.burst}, "
                f"downloads {counted[answer]} ({known})",
            )
        )
        oauth = config.portal.oauth
        if oauth is not None and oauth.token_file is None:
            self._tell(
                Outcome(
                    "configuration",
                    Status.WARNING,
                    "no portal.oauth.token_file: a refreshed token pair would be lost, and "
                    "the refresh token in the file refused after its first use",
                    "set token_file so refreshed tokens are kept",
                )
            )
        return config

    def _manifest(self, config: Config) -> Plan | None:
        """The manifest counted as if nothing were done yet; None when there is none to use."""
        manifest = config.manifest
        if manifest is None:
            self._tell(
                Outcome(
                    "manifest",
                    Status.OK,
                    "none named: `run --discover` walks the catalog and needs none "
                    "(a plain `run` does)",
                )
            )
            return None
        try:
            plan = read_plan(manifest, Selection(lambda ref: False))
        except UsageError as exc:
            remedy = "fix the rows named, or write the manifest again with `discover`"
            self._tell(Outcome.problem("manifest", exc, remedy))
            return None
        self._tell(
            Outcome(
                "manifest",
                Status.OK,
                f"{manifest}: {plan.rows} rows, {plan.named} distinct images named by pairs, "
                f"{plan.products} products named without images",
            )
        )
        return plan

    def _output(self, config: Config) -> int | None:
        """Images the output's index lists (0 for a folder still to be made); None if unusable."""
        try:
            text, exported = _inspect_output(config.output.dir)
        except LockedError as exc:
            remedy = "let that run finish: a second run into the same folder is refused"
            self._tell(Outcome.problem("output", exc, remedy))
        except OutputError as exc:
            remedy = "point output.dir at a folder this user can write, or fix that one"
            self._tell(Outcome.problem("output", exc, remedy))
        else:
            self._tell(Outcome("output", Status.OK, text))
            return exported
        return None

    async def _portal(self, config: Config, named: Plan | None) -> None:
        async with http_session(config) as session:
            host = config.portal.host
            client = portal_client(
                config, session, budget=private_copy(host), learned=recalled_finding(host)
            )
            try:
                if await self._credentials(client, config):
                    await self._images(client, config, named)
            finally:
                self.readiness.requests = client.counts.rest

    async def _credentials(self, client: PortalClient, config: Config) -> bool:
        """Credentials, scope and clock, with one call that needs them; whether it answered."""
        host = config.portal.host
        sent = time.time()
        try:
            answer = await client.call(CATALOG_LIST_METHOD, {})
        except (FatalPortalError, ImageError) as exc:
            refused = FatalPortalError(exc.code, exc.description, exc.status)
            self._tell(Outcome.problem("portal", refused, _remedy(exc)))
        except GAVE_UP as exc:
            self._tell(Outcome.problem("portal", _unavailable(exc, client), UNAVAILABLE_REMEDY))
        except ExporterError as exc:
            self._tell(Outcome.problem("portal", exc))
        else:
            received = time.time()
            result = answer.get("result")
            catalogs = result.get("catalogs") if isinstance(result, Mapping) else None
            listed = f"{len(catalogs)} catalogs" if isinstance(catalogs, list) else "answered"
            self._tell(
                Outcome(
                    "portal",
                    Status.OK,
                    f"{host} accepts the credentials and the catalog scope "
                    f"({CATALOG_LIST_METHOD}: {listed})",
                )
            )
            self._tell(clock_outcome(answer.get("time"), sent, received))
            return True
        for subject in ("clock", "images"):
            self._tell(Outcome(subject, Status.SKIPPED, "the portal check did not pass"))
        return False

    async def _images(self, client: PortalClient, config: Config, named: Plan | None) -> None:
        """One image (or one product's list) of the manifest's first row: can it be read?"""
        if config.manifest is None or named is None:
            why = "no manifest" if config.manifest is None else "the manifest cannot be read"
            self._tell(Outcome("images", Status.SKIPPED, f"{why} to take an image from"))
            return
        first = _first_row(config.manifest)
        if first is None:
            self._tell(Outcome("images", Status.SKIPPED, "the manifest names no image"))
            return
        fetcher = MetadataFetcher(client, batch_size=config.batch_size)
        outcome: list[ProductImage] | ProductImage | PortalError
        try:
            if first.image_id is None:
                what = f"product {first.product_id}"
                [(_, outcome)] = await fetcher.list_products([first.product_id])
            else:
                what = f"product {first.product_id} image {first.image_id}"
                [(_, outcome)] = await fetcher.get_images(
                    [ImageRef(first.product_id, first.image_id)]
                )
        except FatalPortalError as exc:
            self._tell(Outcome.problem("images", exc, _remedy(exc)))
            return
        if isinstance(outcome, AccessDeniedError):
            refused = FatalPortalError(
                outcome.code, f"{what}: {outcome.description}", outcome.status
            )
            self._tell(Outcome.problem("images", refused, _remedy(outcome)))
        elif isinstance(outcome, GAVE_UP):
            self._tell(Outcome.problem("images", _unavailable(outcome, client), UNAVAILABLE_REMEDY))
        elif isinstance(outcome, PortalError):
            text = f"{what}: {outcome} — a run fails it (exit 1) unless the backup has it already"
            self._tell(Outcome("images", Status.WARNING, text, _remedy(outcome, "")))
        elif isinstance(outcome, list):
            self._tell(
                Outcome("images", Status.OK, f"{what} lists {len(outcome)} images that can be read")
            )
        else:
            self._tell(Outcome("images", Status.OK, f"{what} can be read"))

    async def _estimate(self, config: Config, named: Plan | None, exports: int | None) -> None:
        if config.manifest is None:
            why = "no manifest: `run --discover --dry-run` counts by walking the catalog (requests)"
            self._tell(Outcome("estimate", Status.SKIPPED, why))
            return
        if named is None or exports is None:
            why = (
                "the manifest cannot be read" if named is None else "the output cannot be used now"
            )
            self._tell(Outcome("estimate", Status.SKIPPED, why))
            return
        plan = named
        if exports:  # else nothing is done, and the manifest as counted is the plan
            destination = destination_for(config)
            await destination.open(write=False)
            try:
                plan = read_plan(config.manifest, Selection(destination.is_done))
            finally:
                await destination.close()
        text = "\n".join(["what `run --dry-run` says:", *describe_plan(plan, config)])
        self._tell(Outcome("estimate", Status.OK, text))


def render(outcome: Outcome) -> str:
    """An outcome as lines for a person: status, subject, finding, details, what to do."""
    head, *details = outcome.text.splitlines() or [""]
    indent = " " * (STATUS_WIDTH + 1)
    lines = [f"{outcome.status.value:<{STATUS_WIDTH}} {outcome.subject}: {head}"]
    lines += [f"{indent}{line}" for line in details]
    if outcome.remedy:
        lines.append(f"{indent}what to do: {outcome.remedy}")
    return "\n".join(lines)


def render_verdict(readiness: Readiness) -> str:
    """The last line: ready or not, how a run would end, and what the portal was sent."""
    sent = f"{_counted(readiness.requests, 'request')} to the portal"
    problems = readiness.problems
    if problems:
        first = problems[0]
        stop = f"the first ({first.subject}) would end a run with exit {first.exit_code}"
        return f"not ready: {_counted(len(problems), 'problem')}, {stop}; {sent}"
    warnings = sum(o.status is Status.WARNING for o in readiness.outcomes)
    return f"ready ({_counted(warnings, 'warning')}): {sent}" if warnings else f"ready: {sent}"


def clock_outcome(block: object, sent: float, received: float) -> Outcome:
    """How far the portal's clock is from this machine's, from an answer's `time` block."""
    portal = _portal_time(block) if isinstance(block, Mapping) else None
    if portal is None:
        return Outcome("clock", Status.WARNING, "the answer carried no time: clocks not compared")
    offset = portal - (sent + received) / 2
    margin = (received - sent) / 2
    side = "ahead of" if offset >= 0 else "behind"
    text = f"the portal's clock is {abs(offset):.1f} s {side} this machine's (±{margin:.1f} s)"
    if abs(offset) <= CLOCK_TOLERANCE:
        return Outcome("clock", Status.OK, text)
    remedy = (
        "set this machine's clock right (NTP): the report's and the sidecars' times are its own"
    )
    return Outcome("clock", Status.WARNING, text, remedy)


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _authentication(config: Config) -> str:
    oauth = config.portal.oauth
    if oauth is None:
        return "an inbound webhook"
    kept = f"tokens kept in {oauth.token_file}" if oauth.token_file else "no token_file"
    return f"an OAuth application ({kept})"


def _first_row(manifest: Path) -> ManifestRow | None:
    for row in iter_manifest(manifest):
        return row  # the rest of the file is not read
    return None


def _inspect_output(root: Path) -> tuple[str, int]:
    """What the output folder is like, and how many images its index lists; raises
    `OutputError` where a run could not write, `LockedError` while a run is writing."""
    existing = _nearest_existing(root)
    created = existing != root.absolute()
    what = f"{root} cannot be created: {existing}" if created else str(root)
    if not existing.is_dir():
        raise OutputError(f"{what} is not a folder")
    try:
        if not _writable(existing):
            raise OutputError(f"{what} is read-only")
        free = format_bytes(_free_bytes(existing))
        if created:
            return f"{root}: does not exist yet; the first run creates it ({free} free there)", 0
        exported = len(ExportIndex.read(root).entries)
    except OSError as exc:
        raise OutputError(f"{root}: cannot be read: {exc.strerror}") from None
    holder = lock_holder(root / STATE_DIR)
    if holder is not None:
        raise LockedError(f"{root}: a run (pid {holder}) is exporting into it now")
    holds = f"holds an export of {exported} images" if exported else "holds no export yet"
    return f"{root}: a writable folder, {free} free; {holds}", exported


def _nearest_existing(path: Path) -> Path:
    """`path`, or the closest of its parents that exists (a dangling link counts as there)."""
    path = path.absolute()
    while not (path.exists() or path.is_symlink()) and path.parent != path:
        path = path.parent
    return path


def _writable(folder: Path) -> bool:
    """Whether this user may create files in `folder`, and its filesystem lets anyone."""
    # Permissions do not stop root; a read-only mount stops everyone.
    mounted_read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    return os.access(folder, os.W_OK | os.X_OK) and not mounted_read_only


def _free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def _remedy(error: PortalError, default: str = DEFAULT_REMEDY) -> str:
    if error.code == NOT_FOUND:
        return NOT_FOUND_REMEDY
    return REMEDIES.get(error.code.upper(), default)


def _unavailable(error: PortalError, client: PortalClient) -> PortalUnavailableError:
    """A portal that gave no answer after the configured retries: the run would exit 4."""
    tries = client.retry.max_attempts
    return PortalUnavailableError(
        f"{error}; no answer after {client.counts.rest} requests (retries.max_attempts: {tries})"
    )


def _portal_time(block: Mapping[str, Any]) -> float | None:
    """The middle of the portal's work on an answer, in unix seconds (from `start` and
    `finish`, else their ISO forms `date_start` and `date_finish`)."""
    start = _unix(block.get("start"), block.get("date_start"))
    finish = _unix(block.get("finish"), block.get("date_finish"))
    if start is None or finish is None:
        return None
    return (start + finish) / 2


def _unix(number: object, iso: object) -> float | None:
    if isinstance(number, int | float) and not isinstance(number, bool):
        return float(number)
    if isinstance(iso, str):
        try:
            return datetime.fromisoformat(iso).timestamp()
        except ValueError:
            return None
    return None
