"""`run --dry-run`: what a run would do and how long the portal's limit makes it take.

A plain dry run asks the portal nothing and writes nothing: it reads the manifest and
the output's index, and counts what is already done, what is left and the requests
that needs. `--dry-run=metadata` also fetches the metadata (in batches, under the
limit) — still no download, no file — so images of whole products are counted too,
and images that would fail are named. With `--discover`, the catalog walk is part of
both. The estimate is the portal's limit alone: requests beyond the burst, at the
configured rate; transfer time is not in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.config import Config, RateLimitConfig
from exporter.errors import ConfigError, PortalError
from exporter.jobs.report import Failure
from exporter.jobs.session import destination_for, http_session, portal_client
from exporter.jobs.state import Selection, Verdict
from exporter.manifest import iter_manifest, validate_manifest
from exporter.model import ImageRef
from exporter.portal.budget import recalled_finding
from exporter.portal.catalog import walk_catalog
from exporter.portal.client import PortalClient
from exporter.portal.downloads import fresh
from exporter.portal.metadata import MetadataFetcher
from exporter.portal.ratelimit import BucketStore, Clock, headroom
from exporter.units import format_duration


@dataclass
class Plan:
    """What a run over this manifest and output would do."""

    rows: int = 0  # of the manifest, duplicates and product-only rows included
    named: int = 0  # distinct images named by pairs
    done: int = 0  # of which already exported
    rechecked: int = 0  # done ones whose metadata a run asks for again (--recheck)
    pending: list[ImageRef] = field(default_factory=list)  # named, not done yet
    product_ids: set[int] = field(default_factory=set)  # products listed whole at run time
    listed: int | None = None  # their images not yet done (known with metadata)
    failures: list[Failure] = field(default_factory=list)  # metadata mode only
    metadata_checked: bool = False
    discovered: bool = False

    @property
    def products(self) -> int:
        return len(self.product_ids)

    @property
    def to_fetch(self) -> int:
        """Named images whose metadata a run asks for."""
        return len(self.pending)

    def downloads(self) -> int:
        """Downloads a run sends (without product images unless metadata was fetched)."""
        return (
            self.to_fetch
            - len([f for f in self.failures if f.image_id is not None])
            + (self.listed or 0)
        )


def requests_needed(plan: Plan, config: Config) -> tuple[int, int, int]:
    """Metadata batches, product-list batches and downloads the run sends."""
    size = config.batch_size
    metadata = math.ceil((plan.to_fetch + plan.rechecked) / size)
    return metadata, math.ceil(plan.products / size), plan.downloads()


def estimate_seconds(plan: Plan, config: Config, *, counted: bool) -> float:
    """Wall time the portal's limit allows for those requests (transfers not counted),
    with downloads `counted` in the limit or not."""
    metadata, lists, downloads = requests_needed(plan, config)
    rate = config.rate_limit
    capacity = max(1, rate.burst - headroom(rate.burst))
    return seconds_at_limit(metadata + lists + (downloads if counted else 0), rate, capacity)


def seconds_at_limit(requests: float, rate: RateLimitConfig, tokens: float) -> float:
    """The least time the portal's limit lets `requests` take, with `tokens` of the
    bucket still free."""
    return max(0.0, requests - tokens) / rate.requests_per_second


def downloads_counted(config: Config) -> tuple[bool | None, str]:
    """Whether a run's downloads would count in the limit (None: not known yet, it
    learns that), and how that is known."""
    setting = config.rate_limit.downloads_share_limit
    if setting is not None:
        return setting, f"downloads_share_limit: {str(setting).lower()}"
    finding = fresh(recalled_finding(config.portal.host))
    if finding is None:
        return None, "not known yet: the first run learns it"
    return finding.counted, f"learned on {finding.learned_on.isoformat()}"


def read_plan(manifest: Path, selection: Selection, *, recheck: bool = False) -> Plan:
    """Count a manifest against what is done, as a run would judge it; no request."""
    plan = Plan(rows=validate_manifest(manifest))
    for row in iter_manifest(manifest):
        if row.image_id is None:
            plan.product_ids.add(row.product_id)
            continue
        ref = ImageRef(row.product_id, row.image_id)
        verdict = selection.judge(ref)
        if verdict is not Verdict.SEEN:
            plan.named += 1
        if verdict is Verdict.DONE:
            plan.done += 1
            plan.rechecked += recheck
        elif verdict is Verdict.NEW:
            plan.pending.append(ref)
    return plan


async def discover_plan(client: PortalClient, config: Config, plan: Plan) -> None:
    """Add every product of the catalog to a plan (the walk costs requests)."""
    pages = walk_catalog(
        client,
        batch_size=config.batch_size,
    )
    async for page in pages:
        plan.product_ids.update(page)
    plan.discovered = True


async def check_metadata(
    client: PortalClient, config: Config, plan: Plan, selection: Selection
) -> None:
    """Fetch the metadata a run would (no downloads): failures named, product images counted."""
    fetcher = MetadataFetcher(client, batch_size=config.batch_size)
    for ref, outcome in await fetcher.get_images(plan.pending):
        if isinstance(outcome, PortalError):
            plan.failures.append(Failure.of(ref.product_id, ref.image_id, outcome))
    listed = 0
    for product_id, result in await fetcher.list_products(sorted(plan.product_ids)):
        if isinstance(result, PortalError):
            plan.failures.append(Failure.of(product_id, None, result))
            continue
        listed += sum(selection.judge(image.ref) is Verdict.NEW for image in result)
    plan.listed = listed
    plan.metadata_checked = True


def render_plan(plan: Plan, config: Config) -> str:
    """The dry run's answer, for a person."""
    return "\n".join(["dry run: nothing was downloaded or written", *describe_plan(plan, config)])


def describe_plan(plan: Plan, config: Config) -> list[str]:
    """What is left, the requests it needs and how long they take, one line each."""
    metadata, lists, downloads = requests_needed(plan, config)
    rate = config.rate_limit
    lines = [
        f"images named: {plan.named}, already done: {plan.done}, to export: {plan.to_fetch}"
        + (f", rechecked (metadata only): {plan.rechecked}" if plan.rechecked else "")
    ]
    if plan.products:
        whose = "found by walking the catalog" if plan.discovered else "named without images"
        if plan.listed is None:
            lines.append(f"products {whose}: {plan.products} (their images are listed at run "
                         "time; --dry-run=metadata counts them)")  # fmt: skip
        else:
            lines.append(f"products {whose}: {plan.products}, with {plan.listed} images to export")
    if plan.metadata_checked:
        lines.append(f"metadata checked: {len(plan.failures)} would fail")
        lines += [f"  product {f.product_id}" + (f" image {f.image_id}" if f.image_id else "")
                  + f": {f.error} {f.description}" for f in plan.failures[:20]]  # fmt: skip
        if len(plan.failures) > 20:
            lines.append(f"  ... and {len(plan.failures) - 20} more")
    counted, known = downloads_counted(config)
    shared = {True: "sharing the limit", False: "outside the limit", None: "sharing it or not"}
    lines.append(
        f"requests the run needs: {metadata} metadata batches, {lists} product-list batches, "
        f"{downloads} downloads ({shared[counted]}: {known})"
    )
    at = f"at {rate.requests_per_second:g} req/s, burst {rate.burst}"
    if counted is None:
        worst = format_duration(estimate_seconds(plan, config, counted=True))
        best = format_duration(estimate_seconds(plan, config, counted=False))
        lines.append(
            f"estimated time {at}: {worst} if the portal counts downloads, {best} if it does "
            "not (the portal's limit; transfers not included)"
        )
    else:
        estimate = format_duration(estimate_seconds(plan, config, counted=counted))
        lines.append(
            f"estimated time {at}: {estimate} (the portal's limit; transfers not included)"
        )
    return lines


def plan_fields(plan: Plan, config: Config) -> dict[str, Any]:
    """The dry run's figures, for a JSON log line (what `render_plan` says in words)."""
    metadata, lists, downloads = requests_needed(plan, config)
    counted, _ = downloads_counted(config)
    fields: dict[str, Any] = {
        "images": {"named": plan.named, "done": plan.done, "toExport": plan.to_fetch},
        "products": {
            "count": plan.products,
            "discovered": plan.discovered,
            "imagesToExport": plan.listed,
        },
        "requests": {
            "metadataBatches": metadata,
            "productListBatches": lists,
            "downloads": downloads,
        },
        "downloadsShareLimit": _setting(config.rate_limit.downloads_share_limit),
        "downloadsCounted": counted,
        "estimatedSeconds": round(estimate_seconds(plan, config, counted=counted is not False), 1),
    }
    if counted is None:
        free = estimate_seconds(plan, config, counted=False)
        fields["estimatedSecondsIfDownloadsDoNotCount"] = round(free, 1)
    if plan.metadata_checked:
        fields["wouldFail"] = [failure.as_dict() for failure in plan.failures]
    return fields


def _setting(value: bool | None) -> bool | str:
    return "auto" if value is None else value


async def dry_run(
    config: Config,
    *,
    discover: bool = False,
    metadata: bool = False,
    force: bool = False,
    recheck: bool = False,
    clock: Clock | None = None,
    budget: BucketStore | None = None,
) -> Plan:
    """What a run with these options would do; the portal is asked only for discovery
    and `metadata`."""
    destination = destination_for(config)
    await destination.open(write=False)
    try:
        selection = Selection(destination.is_done, force=force)
        if discover:
            plan = Plan()
        elif config.manifest is None:
            raise ConfigError("no manifest: set `manifest` in the config or pass --manifest")
        else:
            plan = read_plan(config.manifest, selection, recheck=recheck)
        if discover or metadata:
            async with http_session(config) as session:
                # A dry run learns nothing for later runs: it reads what they learned.
                learned = recalled_finding(config.portal.host)
                client = portal_client(config, session, clock=clock, budget=budget, learned=learned)
                if discover:
                    await discover_plan(client, config, plan)
                if metadata:
                    await check_metadata(client, config, plan, selection)
    finally:
        await destination.close()
    return plan
