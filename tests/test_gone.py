"""Images that change on the portal: gone ones marked (not failed), kept, and pruned on request.

Bitrix24 gives an image no hash and no modification time; comparing the ids the portal
has now with those backed up is the only way to see a deletion (reference §5c).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.jobs.export import ExportJob, ExportResult
from exporter.simulator import Catalog, PortalSettings, RunningPortal

from .support import catalog_of, export_config, portal_for, write_manifest


def sidecars(out: Path) -> dict[int, dict[str, Any]]:
    """Every sidecar under `out`, by image id."""
    found = {}
    for path in out.rglob("*.json"):
        if ".b24-image-exporter" in path.parts or path.name == "report.json":
            continue
        document = json.loads(path.read_text())
        found[int(document["productImage"]["id"])] = document
    return found


def data_files(out: Path) -> dict[Path, bytes]:
    """Every exported file (not sidecars, not the state folder) with its bytes."""
    return {
        path: path.read_bytes()
        for path in out.rglob("*")
        if path.is_file() and path.suffix != ".json" and ".b24-image-exporter" not in path.parts
    }


def gone_ids(out: Path) -> set[int]:
    return {image_id for image_id, doc in sidecars(out).items() if "gone" in doc}


async def run(portal: RunningPortal, manifest: Path, out: Path, **options: Any) -> ExportResult:
    config = export_config(portal.webhook_url, manifest, out)
    return await ExportJob(config, **options).run()


@pytest.fixture
def catalog() -> Catalog:
    return catalog_of(4, 20)


async def test_a_deleted_pair_is_seen_by_a_recheck_marked_gone_and_kept(
    tmp_path: Path, catalog: Catalog
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    deleted = [image_id for _, image_id in catalog.pairs()[:3]]
    async with portal_for(catalog) as portal:
        assert (await run(portal, manifest, out)).exit_code == 0
        before = data_files(out)
        for image_id in deleted:
            catalog.remove_image(image_id)
        plain = await run(portal, manifest, out)
        portal.stats.reset()
        rechecked = await run(portal, manifest, out, recheck=True)
        stats = portal.stats
    assert plain.exit_code == 0
    assert plain.report["counts"]["gone"] == 0  # a plain re-run asks nothing about done pairs
    assert rechecked.exit_code == 0  # gone is not a failure
    assert rechecked.report["counts"]["gone"] == 3
    assert rechecked.report["counts"]["failed"] == 0
    assert stats.downloads == 0  # a recheck downloads nothing that is still there
    assert stats.by_method["batch"] == 1  # 20 done pairs: one batch of metadata
    assert gone_ids(out) == set(deleted)
    since = {sidecars(out)[image_id]["gone"]["since"] for image_id in deleted}
    assert len(since) == 1 and since.pop().endswith("Z")
    assert data_files(out) == before  # the files stay, byte for byte
    listed = {(entry["productId"], entry["id"]) for entry in rechecked.report["changes"]["gone"]}
    assert {image_id for _, image_id in listed} == set(deleted)
    assert rechecked.report["changes"]["cut"] == {"exported": False, "gone": False}


async def test_an_image_gone_earlier_is_not_counted_gone_again(
    tmp_path: Path, catalog: Catalog
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await run(portal, manifest, out)
        gone = catalog.pairs()[0][1]
        catalog.remove_image(gone)
        first = await run(portal, manifest, out, recheck=True)
        since = sidecars(out)[gone]["gone"]["since"]
        again = await run(portal, manifest, out, recheck=True)
    assert first.report["counts"]["gone"] == 1
    assert again.report["counts"]["gone"] == 0
    assert again.exit_code == 0
    assert sidecars(out)[gone]["gone"]["since"] == since  # the first run that saw it gone


async def test_a_product_only_row_sees_the_images_its_product_no_longer_lists(
    tmp_path: Path, catalog: Catalog
) -> None:
    product = catalog.product_ids()[0]
    images = [image.id for image in catalog.images_of(product)]
    manifest = write_manifest(tmp_path / "m.csv", [(product, None)])
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        assert (await run(portal, manifest, out)).report["counts"]["exported"] == len(images)
        catalog.remove_image(images[0])
        second = await run(portal, manifest, out)
    assert second.exit_code == 0
    assert second.report["counts"]["gone"] == 1
    assert gone_ids(out) == {images[0]}


async def test_a_deleted_product_leaves_all_its_images_gone(
    tmp_path: Path, catalog: Catalog
) -> None:
    product = catalog.product_ids()[1]
    images = {image.id for image in catalog.images_of(product)}
    manifest = write_manifest(tmp_path / "m.csv", [(product, None)])
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await run(portal, manifest, out)
        catalog.remove_product(product)
        second = await run(portal, manifest, out)
    assert second.exit_code == 0
    assert second.report["counts"]["failed"] == 0
    assert gone_ids(out) == images


async def test_an_image_that_comes_back_is_not_gone_any_more(
    tmp_path: Path, catalog: Catalog
) -> None:
    product = catalog.product_ids()[0]
    image = catalog.images_of(product)[0]
    manifest = write_manifest(tmp_path / "m.csv", [(product, None)])
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await run(portal, manifest, out)
        catalog.remove_image(image.id)
        await run(portal, manifest, out)
        assert gone_ids(out) == {image.id}
        catalog.add_image(product, name=image.name, size=image.size, image_id=image.id)
        back = await run(portal, manifest, out)
    assert back.exit_code == 0
    assert gone_ids(out) == set()
    assert back.report["counts"]["exported"] == 0  # its file never left


async def test_forcing_a_deleted_done_image_marks_it_gone_not_failed(
    tmp_path: Path, catalog: Catalog
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        await run(portal, manifest, out)
        gone = catalog.pairs()[5][1]
        catalog.remove_image(gone)
        forced = await run(portal, manifest, out, force=True)
    assert forced.exit_code == 0
    assert forced.report["counts"] == {
        "total": 20, "exported": 19, "skipped": 0, "failed": 0, "gone": 1
    }  # fmt: skip
    assert gone_ids(out) == {gone}


async def test_an_image_never_backed_up_and_not_found_is_still_a_failure(
    tmp_path: Path, catalog: Catalog
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [*catalog.pairs(), (1, 999_999)])
    async with portal_for(catalog) as portal:
        result = await run(portal, manifest, tmp_path / "out")
    assert result.exit_code == 1
    assert result.report["counts"]["gone"] == 0
    assert [(f["id"], f["error"]) for f in result.report["failures"]] == [(999_999, "0")]


async def test_the_report_lists_what_the_run_exported(tmp_path: Path, catalog: Catalog) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        result = await run(portal, manifest, out)
    exported = result.report["changes"]["exported"]
    assert sorted((e["productId"], e["id"]) for e in exported) == sorted(catalog.pairs())
    assert all((out / e["file"]).is_file() for e in exported)


async def test_reports_are_kept_next_to_the_index_the_last_30(
    tmp_path: Path, catalog: Catalog
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs()[:2])
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        for _ in range(32):
            await run(portal, manifest, out)
    kept = sorted((out / ".b24-image-exporter" / "reports").iterdir())
    assert len(kept) == 30
    latest = json.loads((out / "report.json").read_text())
    assert json.loads(kept[-1].read_text()) == latest
    assert json.loads(kept[0].read_text())["counts"]["skipped"] == 2  # the oldest dropped


def test_prune_removes_exactly_the_gone_images_and_a_dry_run_nothing(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    import anyio

    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    deleted = {catalog.pairs()[0][1], catalog.pairs()[7][1]}

    async def backup_then_delete() -> None:
        async with portal_for(catalog) as portal:
            await run(portal, manifest, out)
            for image_id in deleted:
                catalog.remove_image(image_id)
            await run(portal, manifest, out, recheck=True)

    anyio.run(backup_then_delete)
    files = {p for p in out.rglob("*") if p.is_file() and ".b24-image-exporter" not in p.parts}
    assert main(["prune", str(out), "--gone-for", "0", "--dry-run"]) == 0
    assert {
        p for p in out.rglob("*") if p.is_file() and ".b24-image-exporter" not in p.parts
    } == files
    assert "would remove 2 gone images" in capsys.readouterr().out
    assert main(["prune", str(out), "--gone-for", "30"]) == 0  # gone today: kept
    assert "removed 0 gone images; kept 2" in capsys.readouterr().out
    assert main(["prune", str(out), "--gone-for", "0"]) == 0
    printed = capsys.readouterr().out
    assert "removed 2 gone images" in printed
    left = {int(doc["productImage"]["id"]) for doc in sidecars(out).values()}
    assert left == {image_id for _, image_id in catalog.pairs()} - deleted
    assert deleted.isdisjoint(left)
    assert main(["verify", str(out)]) == 0  # nothing half-removed
    assert main(["prune", str(tmp_path / "nowhere"), "--gone-for", "0"]) == 2


async def test_a_pair_answered_for_a_variation_keeps_both_ids_and_is_done_next_time(
    tmp_path: Path,
) -> None:
    catalog = Catalog()
    catalog.add_product(10)
    catalog.add_variation(10, 12)
    image = catalog.add_image(12, name="red.png", size=500)
    manifest = write_manifest(tmp_path / "m.csv", [(10, image)])
    out = tmp_path / "out"
    settings = PortalSettings(rps=None, variations_answer_for_parent=True)
    async with portal_for(catalog, settings) as portal:
        first = await run(portal, manifest, out)
        portal.stats.reset()
        second = await run(portal, manifest, out)
        requests = portal.stats.http_requests
    assert first.exit_code == 0
    [sidecar] = sidecars(out).values()
    assert sidecar["productImage"]["productId"] == 12
    assert sidecar["requested"] == {"productId": 10}
    assert second.report["counts"]["skipped"] == 1
    assert requests == 0


async def test_a_not_found_answer_in_a_mixed_batch_is_asked_again_alone(tmp_path: Path) -> None:
    catalog = Catalog()
    pairs = [(1, catalog.add_image(1, name="a.png")), (2, catalog.add_image(2, name="b.png"))]
    catalog.add_product(900, iblock_id=31)  # a second product catalog
    pairs.append((900, catalog.add_image(900, name="c.png")))
    manifest = write_manifest(tmp_path / "m.csv", pairs)
    settings = PortalSettings(rps=None, batch_first_catalog_only=True)
    async with portal_for(catalog, settings) as portal:
        result = await run(portal, manifest, tmp_path / "out")
        stats = portal.stats
    assert result.exit_code == 0
    assert result.report["counts"]["exported"] == 3
    assert stats.by_method["catalog.productImage.get"] == 1  # the one asked alone


async def test_a_batch_refused_as_a_whole_falls_back_to_single_calls(
    tmp_path: Path, catalog: Catalog
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    settings = PortalSettings(rps=None, batch_refused_whole=True)
    async with portal_for(catalog, settings) as portal:
        result = await run(portal, manifest, tmp_path / "out")
        stats = portal.stats
    assert result.exit_code == 0
    assert result.report["counts"]["exported"] == 20
    assert stats.by_method["catalog.productImage.get"] == 20


async def test_a_whole_catalog_run_sees_a_deleted_product_gone(
    tmp_path: Path, catalog: Catalog
) -> None:
    product = catalog.product_ids()[2]
    images = {image.id for image in catalog.images_of(product)}
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        config = export_config(portal.webhook_url, tmp_path / "unused.csv", out)
        assert (await ExportJob(config, discover=True).run()).report["counts"]["exported"] == 20
        catalog.remove_product(product)
        second = await ExportJob(config, discover=True).run()
    assert second.exit_code == 0
    assert second.report["counts"]["gone"] == len(images)
    assert gone_ids(out) == images
