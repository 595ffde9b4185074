"""The export job end to end, over loopback HTTP against the simulated portal."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.config import parse_config
from exporter.destination.index import INDEX_NAME, STATE_DIR
from exporter.destination.lock import RunLock
from exporter.errors import LockedError
from exporter.jobs.export import ExportJob
from exporter.simulator import Catalog, PortalSettings

from .support import (
    catalog_of,
    drop_index_rows,
    export,
    export_config,
    exported_files,
    portal_for,
    portal_in_thread,
    raw_config,
    sidecar_of,
    write_manifest,
)

SIDECAR_KEYS = {"productImage", "file", "source", "exportedAt", "exporter", "product"}
CONTEXT_REQUESTS = 2  # the catalogs listed, then the run's products described in one batch
IMAGE_KEYS = {"createTime", "detailUrl", "id", "name", "productId", "type"}


async def test_every_image_is_byte_identical_with_a_sidecar_per_spec(tmp_path: Path) -> None:
    catalog = catalog_of(100, 500)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, out)
        stats = portal.stats
    assert result.exit_code == 0
    files = exported_files(out)
    assert len(files) == 500
    for file in files:
        sidecar = sidecar_of(file)
        image = sidecar["productImage"]
        assert file.read_bytes() == catalog.image_bytes(image["id"])
        assert set(sidecar) == SIDECAR_KEYS
        assert set(image) == IMAGE_KEYS
        product = catalog.product_info(image["productId"])
        assert sidecar["product"] == {
            "id": image["productId"],
            "iblockId": catalog.iblock_of(image["productId"]),
            "name": product.name,
            "xmlId": product.xml_id,
            "type": 1,
            "parentId": None,
        }
        assert sidecar["file"] == {
            "name": file.name,
            "size": file.stat().st_size,
            "sha256": catalog.image_sha256(image["id"]),
            "contentType": "image/png",
        }
        assert sidecar["source"] == {"portal": portal.base_url.removeprefix("http://"),
                                     "method": "catalog.productImage.get"}  # fmt: skip
        assert sidecar["exportedAt"].endswith("Z")
    assert result.report["counts"] == {
        "total": 500,
        "exported": 500,
        "skipped": 0,
        "failed": 0,
        "gone": 0,
    }
    assert stats.rest_requests <= math.ceil(500 / 50) + CONTEXT_REQUESTS
    assert stats.by_method == {"batch": 10 + 1, "catalog.catalog.list": 1}  # + the products
    assert stats.downloads == 500


async def test_sidecars_and_report_never_hold_a_download_url(tmp_path: Path) -> None:
    catalog = catalog_of(5, 20)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await export(portal, manifest, out)
    for path in out.rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert "downloadUrl" not in text
        assert "token=" not in text
        assert "/download" not in text


async def test_report_counts_requests_as_the_portal_saw_them(tmp_path: Path) -> None:
    catalog = catalog_of(10, 120)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, tmp_path / "out")
        stats = portal.stats
    requests = result.report["requests"]
    assert requests["rest"] == stats.rest_requests == 3 + CONTEXT_REQUESTS
    assert requests["batch"] == stats.batches == 3
    assert requests["download"] == stats.download_requests == 120
    assert requests["rateLimited"] == 0
    report_on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report_on_disk == result.report


async def test_product_only_rows_cost_one_list_call_in_a_batch(tmp_path: Path) -> None:
    catalog = catalog_of(100, 500)
    whole = catalog.product_ids()[:3]
    rows: list[tuple[int, int | None]] = [(pid, None) for pid in whole]
    rows += [pair for pair in catalog.pairs() if pair[0] not in whole]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, tmp_path / "out")
        stats = portal.stats
    named = len(rows) - 3
    assert result.exit_code == 0
    assert result.report["counts"]["exported"] == 500
    assert stats.rest_requests <= math.ceil(named / 50) + 1 + CONTEXT_REQUESTS
    assert stats.commands["catalog.productImage.list"] == 3
    listed = [f for f in exported_files(tmp_path / "out") if int(f.parent.name) in whole]
    assert {sidecar_of(f)["source"]["method"] for f in listed} == {"catalog.productImage.list"}


async def test_duplicate_rows_are_exported_once(tmp_path: Path) -> None:
    catalog = catalog_of(3, 9)
    pairs = catalog.pairs()
    product = pairs[0][0]
    rows: list[tuple[int, int | None]] = [*pairs, *pairs[:4], (product, None), (product, None)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, tmp_path / "out")
        stats = portal.stats
    assert result.report["counts"] == {
        "total": 9,
        "exported": 9,
        "skipped": 0,
        "failed": 0,
        "gone": 0,
    }
    assert stats.downloads == 9
    list_calls = stats.by_method["catalog.productImage.list"]
    assert list_calls + stats.commands["catalog.productImage.list"] == 1


async def test_missing_pairs_fail_with_the_portal_code_and_the_rest_export(
    tmp_path: Path,
) -> None:
    catalog = catalog_of(10, 40)
    pairs = catalog.pairs()
    missing = [(pairs[0][0], 999_001), (987_654, pairs[1][1]), (pairs[5][0], pairs[30][1])]
    manifest = write_manifest(tmp_path / "m.csv", [*pairs, *missing])
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, tmp_path / "out")
    assert result.exit_code == 1
    failures = result.report["failures"]
    assert sorted((f["productId"], f["id"]) for f in failures) == sorted(missing)
    assert {f["error"] for f in failures} == {"0"}
    descriptions = {f["description"] for f in failures}
    assert descriptions <= {"Product was not found", "Image does not exist"}
    assert result.report["counts"]["exported"] == 40
    assert len(exported_files(tmp_path / "out")) == 40


async def test_unknown_product_in_a_product_only_row_is_a_failure(tmp_path: Path) -> None:
    catalog = catalog_of(2, 4)
    manifest = write_manifest(tmp_path / "m.csv", [*catalog.pairs(), (55_555, None)])
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, tmp_path / "out")
    assert result.exit_code == 1
    assert result.report["failures"] == [
        {"productId": 55_555, "id": None, "error": "0", "description": "Product was not found"}
    ]


async def test_wrong_webhook_code_aborts_with_exit_3_after_a_handful_of_requests(
    tmp_path: Path,
) -> None:
    catalog = catalog_of(50, 400)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with portal_for(catalog) as portal:
        wrong = portal.webhook_url.replace(portal.portal.settings.webhook_code, "wrongcode123")
        config = export_config(wrong, manifest, tmp_path / "out")
        result = await ExportJob(config).run()
        stats = portal.stats
    assert result.exit_code == 3
    assert "NO_AUTH_FOUND" in (result.aborted_by or "")
    assert stats.http_requests <= 3
    assert result.report["exitCode"] == 3
    assert "NO_AUTH_FOUND" in result.report["abortedBy"]
    assert exported_files(tmp_path / "out") == []


async def test_access_denied_for_every_image_aborts_with_exit_3(tmp_path: Path) -> None:
    catalog = catalog_of(40, 300)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with portal_for(catalog, PortalSettings(rps=None, deny_all=True)) as portal:
        result = await export(portal, manifest, tmp_path / "out")
        stats = portal.stats
    assert result.exit_code == 3
    assert "200040300010" in (result.aborted_by or "")
    assert stats.rest_requests <= 2  # stops after the first batch instead of asking for all


async def test_access_denied_for_a_small_job_is_exit_3_too(tmp_path: Path) -> None:
    catalog = catalog_of(2, 6)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with portal_for(catalog, PortalSettings(rps=None, deny_all=True)) as portal:
        result = await export(portal, manifest, tmp_path / "out")
    assert result.exit_code == 3
    assert len(result.report["failures"]) == 6


async def test_access_denied_for_one_product_fails_only_its_images(tmp_path: Path) -> None:
    catalog = catalog_of(10, 50)
    denied = catalog.product_ids()[3]
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    settings = PortalSettings(rps=None, denied_products=frozenset({denied}))
    async with portal_for(catalog, settings) as portal:
        result = await export(portal, manifest, tmp_path / "out")
    expected = {(p, i) for p, i in catalog.pairs() if p == denied}
    assert result.exit_code == 1
    assert {(f["productId"], f["id"]) for f in result.report["failures"]} == expected
    assert {f["error"] for f in result.report["failures"]} == {"200040300010"}
    assert result.report["counts"]["exported"] == 50 - len(expected)


async def test_rerun_sends_no_request_at_all_for_done_images(tmp_path: Path) -> None:
    catalog = catalog_of(20, 200)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        first = await export(portal, manifest, out)
        portal.stats.reset()
        second = await export(portal, manifest, out)
        stats = portal.stats
    assert first.report["counts"]["exported"] == 200
    assert second.exit_code == 0
    assert second.report["counts"] == {
        "total": 200,
        "exported": 0,
        "skipped": 200,
        "failed": 0,
        "gone": 0,
    }
    assert stats.http_requests == 0


async def test_rerun_fetches_only_what_is_new(tmp_path: Path) -> None:
    catalog = catalog_of(10, 60)
    pairs = catalog.pairs()
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await export(portal, write_manifest(tmp_path / "a.csv", pairs[:40]), out)
        portal.stats.reset()
        result = await export(portal, write_manifest(tmp_path / "b.csv", pairs), out)
        stats = portal.stats
    assert result.report["counts"] == {
        "total": 60,
        "exported": 20,
        "skipped": 40,
        "failed": 0,
        "gone": 0,
    }
    assert stats.downloads == 20
    assert stats.rest_requests == 1 + CONTEXT_REQUESTS  # the new images' products described


async def test_a_deleted_or_truncated_file_is_exported_again(tmp_path: Path) -> None:
    catalog = catalog_of(3, 10)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await export(portal, manifest, out)
        files = exported_files(out)
        files[0].unlink()
        files[1].write_bytes(files[1].read_bytes()[:50])
        portal.stats.reset()
        result = await export(portal, manifest, out)
        stats = portal.stats
    assert result.report["counts"]["exported"] == 2
    assert stats.downloads == 2
    assert exported_files(out) == files
    for file in files:
        assert file.read_bytes() == catalog.image_bytes(sidecar_of(file)["productImage"]["id"])


async def test_lost_index_is_rebuilt_from_sidecars_without_requests(tmp_path: Path) -> None:
    catalog = catalog_of(5, 30)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await export(portal, manifest, out)
        (out / STATE_DIR / INDEX_NAME).unlink()
        portal.stats.reset()
        result = await export(portal, manifest, out)
        stats = portal.stats
    assert result.report["counts"]["skipped"] == 30
    assert stats.http_requests == 0


async def test_export_missing_from_the_index_is_recognised_on_disk(tmp_path: Path) -> None:
    # A run killed between the sidecar's rename and the index line: the next run asks
    # for metadata once, finds the complete export at its path, and downloads nothing.
    catalog = catalog_of(2, 6)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await export(portal, manifest, out)
        drop_index_rows(out / STATE_DIR, 1)
        portal.stats.reset()
        result = await export(portal, manifest, out)
        stats = portal.stats
    assert result.exit_code == 0
    assert len(exported_files(out)) == 6
    assert stats.downloads <= 1


async def test_force_exports_again_into_the_same_paths(tmp_path: Path) -> None:
    catalog = catalog_of(3, 12)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await export(portal, manifest, out)
        before = exported_files(out)
        portal.stats.reset()
        result = await export(portal, manifest, out, force=True)
        stats = portal.stats
    assert result.report["counts"]["exported"] == 12
    assert stats.downloads == 12
    assert exported_files(out) == before


async def test_batch_refused_for_the_method_falls_back_to_single_calls(tmp_path: Path) -> None:
    catalog = catalog_of(5, 30)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    settings = PortalSettings(rps=None, batch_allows_images=False)
    async with portal_for(catalog, settings) as portal:
        result = await export(portal, manifest, tmp_path / "out")
        stats = portal.stats
    assert result.exit_code == 0
    assert result.report["counts"]["exported"] == 30
    assert stats.batches == 1  # refused once, then never tried again
    assert stats.by_method["catalog.productImage.get"] == 30


async def test_batch_size_one_sends_single_calls(tmp_path: Path) -> None:
    catalog = catalog_of(2, 8)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, tmp_path / "out", batch_size=1)
        stats = portal.stats
    assert result.exit_code == 0
    assert stats.batches == 0
    assert stats.by_method["catalog.productImage.get"] == 8


async def test_rate_limited_requests_are_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    catalog = catalog_of(10, 120)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    # The client believes it may send 1000/s; the portal allows a burst of 2 at 50/s,
    # and 16 downloads start at once.
    async with portal_for(catalog, PortalSettings(rps=50, burst=2)) as portal:
        result = await export(portal, manifest, tmp_path / "out", concurrency={"downloads": 16})
        stats = portal.stats
    assert result.exit_code == 0
    assert result.report["counts"]["exported"] == 120
    assert stats.rate_limited > 0
    assert result.report["requests"]["rateLimited"] == stats.rate_limited
    assert stats.downloads == 120


async def test_a_second_run_into_a_locked_output_is_refused_before_any_request(
    tmp_path: Path,
) -> None:
    catalog = catalog_of(2, 4)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        with RunLock(out / STATE_DIR), pytest.raises(LockedError, match="holds the lock"):
            await export(portal, manifest, out)
        stats = portal.stats
    assert stats.http_requests == 0
    report = json.loads((out / "report.json").read_text())  # a run that could not start says so
    assert report["exitCode"] == 2
    assert "holds the lock" in report["abortedBy"]
    assert report["portal"] == portal.base_url.removeprefix("http://")
    assert report["counts"] == {
        "total": 4,  # the job it would have been
        "exported": 0,
        "skipped": 0,
        "failed": 0,
        "gone": 0,
    }


async def test_temporaries_of_an_interrupted_run_are_removed_at_start(tmp_path: Path) -> None:
    catalog = catalog_of(2, 4)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    leftover = out / "7" / ".7_x.png.abcd1234.b24-partial"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a file")
    async with portal_for(catalog) as portal:
        await export(portal, manifest, out)
    assert not leftover.exists()
    assert list(out.rglob("*.b24-partial")) == []


async def test_downloads_start_while_metadata_is_still_being_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter.portal.client import PortalClient

    events: list[str] = []
    original_batch = PortalClient.batch
    original_download = PortalClient.open_download

    async def batch(self: PortalClient, calls: object) -> object:
        events.append("batch")
        return await original_batch(self, calls)  # type: ignore[arg-type]

    def open_download(self: PortalClient, url: str) -> object:
        events.append("download")
        return original_download(self, url)

    monkeypatch.setattr(PortalClient, "batch", batch)
    monkeypatch.setattr(PortalClient, "open_download", open_download)
    catalog = catalog_of(30, 300)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, tmp_path / "out")
    assert result.exit_code == 0
    assert events.count("batch") == 6
    last_batch = len(events) - 1 - events[::-1].index("batch")
    assert events.index("download") < last_batch


HOSTILE_NAMES = [
    "../../x.png",
    "../../x.png",
    "a/b\\c.png",
    "ctrl\x01\x1b[31mred\x7f.png",
    "n" * 300 + ".png",
    "same.png",
    "same.png",
    "SAME.png",
    ".hidden.png",
    "..",
    "",
    "CON.png",
]


@pytest.mark.parametrize("layout", ["{productId}/{id}_{name}", "{productId}/{name}", "{name}"])
async def test_hostile_names_stay_inside_the_output_without_collisions(
    tmp_path: Path, layout: str
) -> None:
    catalog = Catalog(seed=1)
    ids = [catalog.add_image(1, name=name, size=300 + i) for i, name in enumerate(HOSTILE_NAMES)]
    ids += [catalog.add_image(2, name=name, size=400 + i) for i, name in enumerate(HOSTILE_NAMES)]
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, out, output={"layout": layout})
    assert result.exit_code == 0
    files = exported_files(out)
    assert len(files) == len(ids)
    root = out.resolve()
    for file in files:
        assert file.resolve().is_relative_to(root)
        assert len(file.name.encode()) <= 200
        image_id = sidecar_of(file)["productImage"]["id"]
        assert file.read_bytes() == catalog.image_bytes(image_id)
    assert sorted(sidecar_of(f)["productImage"]["id"] for f in files) == sorted(ids)
    assert len({str(f).casefold() for f in files}) == len(files)
    assert not (tmp_path / "x.png").exists()


async def test_an_oauth_app_exports_through_the_oauth_routes(tmp_path: Path) -> None:
    catalog = catalog_of(4, 20)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    settings = PortalSettings(rps=None)
    async with portal_for(catalog, settings) as portal:
        oauth = {
            "portal_url": portal.base_url,
            "access_token": settings.access_token,
            "refresh_token": "refresh-0000",
            "client_id": "app.1",
            "client_secret": "client-secret-0000",
            "token_url": f"{portal.base_url}/oauth/token/",
        }
        raw = raw_config("unused", manifest, tmp_path / "out")
        raw["portal"] = {"oauth": oauth}
        config = parse_config(raw, base_dir=tmp_path, env={})
        result = await ExportJob(config).run()
        stats = portal.stats
    assert result.exit_code == 0
    assert result.report["counts"]["exported"] == 20
    # Metadata in one batch; the catalogs and the products (one page: a call alone).
    assert stats.by_method == {"batch": 1, "catalog.catalog.list": 1, "catalog.product.list": 1}
    for file in exported_files(tmp_path / "out"):
        assert file.read_bytes() == catalog.image_bytes(sidecar_of(file)["productImage"]["id"])
        assert settings.access_token not in json.dumps(sidecar_of(file))


def test_two_exporter_processes_share_one_budget_and_see_no_503(tmp_path: Path) -> None:
    catalog = catalog_of(16, 80)
    pairs = catalog.pairs()
    limit = {"requests_per_second": 20, "burst": 20, "downloads_share_limit": True}
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with portal_in_thread(catalog, PortalSettings(rps=20, burst=20)) as portal:
        procs = []
        for n in range(2):
            manifest = write_manifest(tmp_path / f"m{n}.csv", pairs[n::2])
            raw = raw_config(portal.webhook_url, manifest, tmp_path / f"out{n}", rate_limit=limit)
            config = tmp_path / f"c{n}.yaml"
            config.write_text(yaml.safe_dump(raw), encoding="utf-8")
            command = [sys.executable, "-m", "exporter", "-q", "run", "--config", str(config)]
            procs.append(subprocess.Popen(command, env=env))
        codes = [proc.wait(120) for proc in procs]
        stats = portal.stats
    assert codes == [0, 0]
    assert stats.downloads == 80
    assert stats.rate_limited == 0
