"""`downloads_share_limit: auto` against the simulated portal: counting downloads or not,
alone or with a competing client, learned once and remembered."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from exporter.jobs.dryrun import describe_plan, dry_run
from exporter.portal.budget import cache_dir
from exporter.simulator import Catalog, PortalSettings, RunningPortal

from .support import (
    catalog_of,
    export,
    export_config,
    exported_files,
    portal_for,
    sidecar_of,
    write_manifest,
)

# The configured limit is the portal's: 20 requests/s, a bucket of 20.
LIMIT = {"requests_per_second": 20, "burst": 20}


def settings(*, counted: bool, competitor: float = 0.0) -> PortalSettings:
    return PortalSettings(rps=20, burst=20, count_downloads=counted, competitor_share=competitor)


def intact(out: Path, catalog: Catalog, pairs: list[tuple[int, int]]) -> None:
    files = exported_files(out)
    assert len(files) == len(pairs)
    for file in files:
        sidecar = sidecar_of(file)
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        assert digest == sidecar["file"]["sha256"]
        assert digest == catalog.image_sha256(int(sidecar["productImage"]["id"]))


def finding_files() -> list[Path]:
    return sorted(cache_dir().glob("downloads-*.json"))


async def run(
    portal: RunningPortal, tmp_path: Path, name: str, pairs: list[tuple[int, int]]
) -> dict[str, Any]:
    manifest = write_manifest(tmp_path / f"{name}.csv", pairs)
    result = await export(portal, manifest, tmp_path / name, rate_limit=LIMIT)
    assert result.exit_code == 0
    return result.report


async def two_runs(
    tmp_path: Path, catalog: Catalog, *, counted: bool
) -> tuple[dict[str, Any], int, dict[str, Any], int]:
    """Half the catalog, then the other half: each run's report and 503s, all intact."""
    pairs = catalog.pairs()
    half = len(pairs) // 2
    async with portal_for(catalog, settings(counted=counted)) as portal:
        first = await run(portal, tmp_path, "first", pairs[:half])
        refused_first = portal.stats.rate_limited
        second = await run(portal, tmp_path, "second", pairs[half:])
        refused_second = portal.stats.rate_limited - refused_first
    intact(tmp_path / "first", catalog, pairs[:half])
    intact(tmp_path / "second", catalog, pairs[half:])
    return first, refused_first, second, refused_second


async def test_a_portal_that_does_not_count_downloads_is_learned_once(tmp_path: Path) -> None:
    first, refused_first, second, refused_second = await two_runs(
        tmp_path, catalog_of(10, 400), counted=False
    )
    learned = first["downloadsShareLimit"]
    assert learned["setting"] == "auto"
    assert (learned["counted"], learned["learnedNow"]) == (False, True)
    assert "without one QUERY_LIMIT_EXCEEDED" in learned["why"]
    assert refused_first <= LIMIT["burst"]  # learning costs at most a burst's worth
    # The second run knows, and sends its downloads past the limiter: nothing refused.
    recalled = second["downloadsShareLimit"]
    assert (recalled["counted"], recalled["learnedNow"]) == (False, False)
    assert recalled["learnedOn"] == learned["learnedOn"]
    assert refused_second == 0 and second["requests"]["rateLimited"] == 0
    [kept] = finding_files()
    assert json.loads(kept.read_text())["counted"] is False


async def test_a_portal_that_counts_downloads_is_learned_and_paced(tmp_path: Path) -> None:
    first, refused_first, second, refused_second = await two_runs(
        tmp_path, catalog_of(4, 100), counted=True
    )
    learned = first["downloadsShareLimit"]
    assert (learned["counted"], learned["learnedNow"]) == (True, True)
    assert 1 <= refused_first <= LIMIT["burst"]
    assert first["requests"]["rateLimited"] == refused_first
    assert second["downloadsShareLimit"]["counted"] is True
    assert refused_second == 0


async def test_a_competing_client_is_never_taken_for_free_downloads(tmp_path: Path) -> None:
    """Another client's traffic fills the bucket: 503s the exporter's REST calls cannot
    explain. The answer is the one that costs time, never the one that costs a ban."""
    catalog = catalog_of(4, 100)
    pairs = catalog.pairs()
    async with portal_for(catalog, settings(counted=True, competitor=0.5)) as portal:
        report = await run(portal, tmp_path, "out", pairs)
        assert portal.stats.competitor_requests > 0
    intact(tmp_path / "out", catalog, pairs)
    assert report["downloadsShareLimit"]["counted"] is True
    [kept] = finding_files()
    assert json.loads(kept.read_text())["counted"] is True


async def test_a_run_with_a_setting_learns_nothing(tmp_path: Path) -> None:
    catalog = catalog_of(2, 60)
    pairs = catalog.pairs()
    manifest = write_manifest(tmp_path / "m.csv", pairs)
    async with portal_for(catalog, settings(counted=False)) as portal:
        limit = {**LIMIT, "downloads_share_limit": False}
        result = await export(portal, manifest, tmp_path / "out", rate_limit=limit)
    assert result.exit_code == 0
    assert result.report["downloadsShareLimit"] == {"setting": False, "counted": False}
    assert finding_files() == []


async def test_dry_run_gives_both_estimates_until_it_is_known(tmp_path: Path) -> None:
    catalog = catalog_of(4, 400)
    pairs = catalog.pairs()
    manifest = write_manifest(tmp_path / "m.csv", pairs[:300])
    async with portal_for(catalog, settings(counted=False)) as portal:
        config = export_config(portal.webhook_url, manifest, tmp_path / "out", rate_limit=LIMIT)
        unknown = "\n".join(describe_plan(await dry_run(config), config))
        await run(portal, tmp_path, "learn", pairs[300:])
        known = "\n".join(describe_plan(await dry_run(config), config))
    # 6 batches + 300 downloads, less the bucket's 18 free tokens, at 20/s: 14 s; 0 s if free.
    assert "300 downloads (sharing it or not: not known yet" in unknown
    assert "14s if the portal counts downloads, 0s if it does not" in unknown
    assert "300 downloads (outside the limit: learned on" in known
    assert "if the portal counts" not in known
