"""The sidecar's product block at export time: what a migration matches by, and the layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.destination.index import STATE_DIR
from exporter.jobs.export import ExportJob
from exporter.simulator import Catalog
from exporter.simulator import errors as sim_errors
from exporter.simulator import methods as sim_methods
from exporter.simulator.context import CallContext, MethodResult
from exporter.simulator.products import product_list

from .support import (
    export,
    export_config,
    exported_files,
    index_rows,
    portal_for,
    sidecar_of,
    write_manifest,
)


def with_variations() -> Catalog:
    catalog = Catalog.generate(products=20, images=60, seed=8)
    catalog.add_variation(3, 500, name="Red", xml_id="red-500")
    catalog.add_image(500, name="red.png", size=900, image_id=9001)
    return catalog


def refuse_product_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    def refusing(params: dict[str, Any], context: CallContext) -> MethodResult:
        raise sim_errors.catalog_access_denied()

    for method in ("catalog.product.list", "catalog.product.offer.list"):
        monkeypatch.setitem(sim_methods._METHODS, method, sim_methods.MethodSpec(method, refusing))


def allow_product_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    assert sim_methods._METHODS["catalog.product.list"].call is product_list


def index_lines(out: Path) -> list[dict[str, Any]]:
    return index_rows(out / STATE_DIR)


async def test_a_variation_names_its_parent_and_a_product_its_external_code(
    tmp_path: Path,
) -> None:
    catalog = with_variations()
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        result = await export(portal, manifest, out)
    assert result.exit_code == 0
    by_image = {sidecar_of(f)["productImage"]["id"]: sidecar_of(f) for f in exported_files(out)}
    variation = by_image[9001]["product"]
    assert variation == {
        "id": 500,
        "iblockId": catalog.iblock_of(500),
        "name": "Red",
        "xmlId": "red-500",
        "type": 4,
        "parentId": 3,
    }
    for image_id, sidecar in by_image.items():
        product_id = sidecar["productImage"]["productId"]
        assert sidecar["product"]["xmlId"] == catalog.product_info(product_id).xml_id, image_id
    assert by_image[min(i.id for i in catalog.images_of(3))]["product"]["type"] == 3
    assert all(line.get("product") is True for line in index_lines(out))


async def test_a_layout_by_external_code_and_product_name(tmp_path: Path) -> None:
    catalog = with_variations()
    catalog.add_product(77, name="../../evil", xml_id="x/../../y")  # hostile, from the portal
    catalog.add_image(77, name="e.png", size=300, image_id=9077)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    layout = {"output": {"layout": "{xmlId}/{parentId}/{productName}/{id}.{ext}"}}
    async with portal_for(catalog) as portal:
        assert (await export(portal, manifest, out, **layout)).exit_code == 0
    red = [f for f in exported_files(out) if sidecar_of(f)["productImage"]["id"] == 9001]
    assert [f.relative_to(out).as_posix() for f in red] == ["red-500/3/Red/9001.png"]
    plain = next(f for f in exported_files(out) if sidecar_of(f)["productImage"]["productId"] == 1)
    info = catalog.product_info(1)
    assert plain.relative_to(out).parts[0] == info.xml_id
    assert plain.relative_to(out).parts[1] == "_"  # no parent: the empty part made safe
    [evil] = [f for f in exported_files(out) if sidecar_of(f)["productImage"]["id"] == 9077]
    assert evil.resolve().is_relative_to(out.resolve())
    assert len(evil.relative_to(out).parts) == 4  # a value never adds a folder level
    assert ".." not in evil.relative_to(out).parts


async def test_without_the_catalog_lists_images_are_saved_and_a_rerun_adds_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = with_variations()
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        refuse_product_lists(monkeypatch)
        first = await export(portal, manifest, out)
        without = [sidecar_of(f) for f in exported_files(out)]
        allow_product_lists(monkeypatch)
        portal.stats.reset()
        second = await export(portal, manifest, out)
        second_stats = portal.stats
        filled = {sidecar_of(f)["productImage"]["id"]: sidecar_of(f) for f in exported_files(out)}
        portal.stats.reset()
        third = await export(portal, manifest, out)
        third_stats = portal.stats
    assert first.exit_code == 0  # every image saved: a notice, not a failure
    assert first.report["counts"]["exported"] == 61
    assert any("not read" in notice for notice in first.report["notices"])
    assert all("product" not in sidecar for sidecar in without)
    assert second.exit_code == 0 and second.report["counts"]["skipped"] == 61
    assert second_stats.downloads == 0
    assert second_stats.by_method.get("catalog.productImage.get", 0) == 0
    assert second_stats.commands.get("catalog.productImage.get", 0) == 0
    assert len(filled) == 61
    assert filled[9001]["product"]["parentId"] == 3
    for sidecar in filled.values():
        product_id = sidecar["productImage"]["productId"]
        assert sidecar["product"]["name"] == catalog.product_info(product_id).name
    assert all(line.get("product") is True for line in index_lines(out))
    assert third.exit_code == 0
    assert third_stats.rest_requests == 0  # described and done: nothing to ask


async def test_a_whole_catalog_run_describes_every_product_from_its_walk(tmp_path: Path) -> None:
    catalog = with_variations()
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        config = export_config(portal.webhook_url, tmp_path / "unused.csv", out)
        result = await ExportJob(config, discover=True).run()
        stats = portal.stats
    assert result.exit_code == 0
    sidecars = [sidecar_of(f) for f in exported_files(out)]
    assert len(sidecars) == 61
    for sidecar in sidecars:
        product_id = sidecar.get("requested", sidecar["productImage"])["productId"]
        assert sidecar["product"]["id"] == product_id
        assert sidecar["product"]["xmlId"] == catalog.product_info(product_id).xml_id
    # The walk itself told the context: no lookup by id on top of it.
    assert (
        stats.commands.get("catalog.product.list", 0)
        + stats.by_method.get("catalog.product.list", 0)
        == len(catalog.catalogs()) - 1
    )
