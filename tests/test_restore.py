"""Restore: an export put back into a portal exactly once, byte for byte, against the simulator."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.config import Config
from exporter.jobs.export import ExportJob
from exporter.jobs.restore import RestoreJob, RestoreOptions, RestoreResult
from exporter.jobs.session import destination_at
from exporter.simulator import Catalog, PortalSettings, RunningPortal

from .support import export_config, portal_for, portal_in_thread, write_manifest


def target_config(portal: RunningPortal, tmp_path: Path, **extra: Any) -> Config:
    return export_config(portal.webhook_url, tmp_path / "unused.csv", tmp_path / "unused", **extra)


async def restore(
    portal: RunningPortal, export: Path, tmp_path: Path, **options: Any
) -> RestoreResult:
    job = RestoreJob(
        target_config(portal, tmp_path),
        destination_at(export),
        str(export),
        RestoreOptions(**options),
        report=tmp_path / "restore-report.json",
    )
    return await job.run()


async def backup(portal: RunningPortal, catalog: Catalog, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    config = export_config(portal.webhook_url, manifest, out)
    assert (await ExportJob(config).run()).exit_code == 0
    return out


def bytes_by_product(catalog: Catalog) -> Counter[tuple[int, str]]:
    """Every image on the portal as (product, SHA-256 of its bytes), counted."""
    return Counter(
        (product_id, hashlib.sha256(catalog.image_bytes(image_id)).hexdigest())
        for product_id, image_id in catalog.pairs()
    )


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.generate(products=100, images=500, seed=12, image_size=(300, 3000))


async def test_a_restore_brings_back_exactly_what_was_deleted_byte_for_byte(
    tmp_path: Path, catalog: Catalog
) -> None:
    async with portal_for(catalog) as portal:
        export = await backup(portal, catalog, tmp_path)
        before = bytes_by_product(catalog)
        deleted = [image_id for _, image_id in catalog.pairs()[::13]][:37]
        for image_id in deleted:
            catalog.remove_image(image_id)
        portal.stats.reset()
        first = await restore(portal, export, tmp_path, verify=True)
        stats = portal.stats
        adds, duplicates = sum(stats.adds_by_product.values()), stats.duplicate_adds
        portal.stats.reset()
        second = await restore(portal, export, tmp_path)
        adds_again = sum(portal.stats.adds_by_product.values())
    assert len(deleted) == 37
    assert first.exit_code == 0
    assert first.report["counts"]["restored"] == 37
    assert adds == 37 and duplicates == 0
    assert bytes_by_product(catalog) == before  # every deleted image back, byte for byte
    skipped = Counter(entry["reason"] for entry in first.report["skipped"])
    assert skipped == {"still on the portal": 500 - 37}
    assert second.exit_code == 0
    assert adds_again == 0
    assert second.report["counts"]["restored"] == 0


async def test_uploads_go_in_full_batches_and_their_base64_survives_parse_str(
    tmp_path: Path,
) -> None:
    # Image bytes whose base64 is thick with "+" and "/": a raw one would arrive damaged.
    catalog = Catalog.generate(products=4, images=60, seed=5, image_size=(2000, 9000))
    async with portal_for(catalog) as portal:
        export = await backup(portal, catalog, tmp_path)
        before = bytes_by_product(catalog)
        for _, image_id in catalog.pairs():
            catalog.remove_image(image_id)
        portal.stats.reset()
        result = await restore(portal, export, tmp_path)
        stats = portal.stats
    assert result.report["counts"]["restored"] == 60
    assert bytes_by_product(catalog) == before
    assert stats.by_method.get("catalog.productImage.add", 0) == 0  # no single calls
    assert stats.by_method["batch"] == 2 + 1  # 50 + 10 adds, after one batch of lists


async def test_adds_refused_inside_batch_go_one_by_one_and_all_arrive(tmp_path: Path) -> None:
    catalog = Catalog.generate(products=3, images=12, seed=6, image_size=(300, 1000))
    async with portal_for(catalog) as portal:
        export = await backup(portal, catalog, tmp_path)
        before = bytes_by_product(catalog)
    for _, image_id in catalog.pairs():
        catalog.remove_image(image_id)
    async with portal_for(catalog, PortalSettings(rps=None, batch_refuses_add=True)) as target:
        result = await restore(target, export, tmp_path)
        singles = target.stats.by_method["catalog.productImage.add"]
    assert result.exit_code == 0
    assert singles == 12
    assert bytes_by_product(catalog) == before


async def test_lost_answers_still_leave_every_image_on_the_portal_exactly_once(
    tmp_path: Path,
) -> None:
    catalog = Catalog.generate(products=20, images=120, seed=7, image_size=(300, 2000))
    async with portal_for(catalog) as portal:
        export = await backup(portal, catalog, tmp_path)
        before = bytes_by_product(catalog)
    for _, image_id in catalog.pairs():
        catalog.remove_image(image_id)
    settings = PortalSettings(rps=None, lost_add_answers=0.1)
    async with portal_for(catalog, settings) as target:
        # A small byte budget makes many batches, so a tenth of them lose their answer.
        result = await restore(target, export, tmp_path, budget=8_000)
        lost, duplicates = target.stats.lost_answers, target.stats.duplicate_adds
    assert lost > 0  # answers really were lost
    assert result.exit_code == 0, result.report["failed"]
    assert duplicates == 0
    assert bytes_by_product(catalog) == before  # each image once, none twice


async def test_a_corrupt_file_is_reported_and_never_uploaded(
    tmp_path: Path, catalog: Catalog
) -> None:
    async with portal_for(catalog) as portal:
        export = await backup(portal, catalog, tmp_path)
        victims = catalog.pairs()[:3]
        for _, image_id in victims:
            catalog.remove_image(image_id)
        bad = next(p for p in sorted(export.rglob("*.png")) if f"/{victims[0][1]}_" in str(p))
        data = bytearray(bad.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, one byte off
        bad.write_bytes(bytes(data))
        portal.stats.reset()
        result = await restore(portal, export, tmp_path)
        adds = portal.stats.adds_by_product
    assert result.exit_code == 1
    [failure] = result.report["failed"]
    assert (failure["id"], failure["error"]) == (victims[0][1], "CORRUPT")
    assert sum(adds.values()) == 2  # the other two came back


async def test_a_detail_picture_is_not_replaced_unless_asked(tmp_path: Path) -> None:
    catalog = Catalog()
    catalog.add_image(1, name="detail.png", type="DETAIL_PICTURE")
    catalog.add_image(1, name="more.png")
    async with portal_for(catalog) as portal:
        export = await backup(portal, catalog, tmp_path)
    target = Catalog()
    target.add_image(1, name="new-detail.png", type="DETAIL_PICTURE")
    async with portal_for(target) as portal:
        kept = await restore(portal, export, tmp_path)
        replaced = await restore(portal, export, tmp_path, replace_pictures=True)
    assert [s["reason"] for s in kept.report["skipped"]] == [
        "the product has a DETAIL_PICTURE already"
    ]
    assert kept.report["counts"]["restored"] == 1  # the more photo
    assert replaced.report["counts"]["restored"] == 1  # now the detail picture too
    names = sorted(image.name for image in target.images_of(1))
    assert names == ["detail.png", "more.png"]  # the portal replaced its detail picture


async def test_a_migration_with_a_map_lands_each_image_on_its_mapped_product(
    tmp_path: Path,
) -> None:
    source = Catalog.generate(products=6, images=30, seed=8, image_size=(300, 1000))
    target = source.twin(id_offset=40_000)
    async with portal_for(source) as portal:
        export = await backup(portal, source, tmp_path)
    mapping = tmp_path / "map.csv"
    pids = source.product_ids()
    rows = [f"{pid},{pid + 40_000}" for pid in pids[:4]]  # a subset
    mapping.write_text("sourceProductId,targetProductId\n" + "\n".join(rows) + "\n")
    from exporter.jobs.restore import read_map

    async with portal_for(target) as portal:
        result = await restore(portal, export, tmp_path, product_map=read_map(mapping))
    mapped = set(pids[:4])
    expected = Counter(
        (pid + 40_000, hashlib.sha256(source.image_bytes(i)).hexdigest())
        for pid, i in source.pairs()
        if pid in mapped
    )
    assert bytes_by_product(target) == expected
    not_mapped = [f for f in result.report["failed"] if f["error"] == "NOT_MAPPED"]
    assert len(not_mapped) == sum(1 for pid, _ in source.pairs() if pid not in mapped)
    assert result.exit_code == 1


def test_no_credential_reaches_the_restore_output_report_or_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = Catalog.generate(products=3, images=10, seed=9, image_size=(300, 1000))
    with portal_in_thread(catalog, PortalSettings(rps=None)) as portal:
        out = tmp_path / "export"
        manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
        config = tmp_path / "c.yaml"
        config.write_text(json.dumps({"portal": {"webhook_url": portal.webhook_url},
                                      "manifest": str(manifest), "output": {"dir": str(out)},
                                      "rate_limit": {"requests_per_second": 1000,
                                                     "burst": 1000}}))  # fmt: skip
        assert main(["-q", "run", "--config", str(config)]) == 0
        for _, image_id in catalog.pairs()[:4]:
            catalog.remove_image(image_id)
        code = main(["-v", "restore", "-c", str(config), "--from", str(out), "--verify"])
        secret = portal.portal.settings.webhook_code
    printed = capsys.readouterr()
    assert code == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != config]  # it holds it
    everything = printed.out + printed.err + "".join(p.read_text(errors="replace") for p in written)
    assert secret not in everything
    journal = next((out / ".b24-image-exporter").glob("restore-*.jsonl")).read_text()
    assert "download" not in journal and "token=" not in journal and secret not in journal


async def test_an_upload_a_killed_run_left_in_doubt_is_taken_not_sent_again(
    tmp_path: Path,
) -> None:
    from exporter.jobs.journal import Journal, Sent, journal_name
    from exporter.model import ImageRef

    catalog = Catalog.generate(products=2, images=6, seed=10, image_size=(300, 1000))
    (product, image_id), *_ = catalog.pairs()
    async with portal_for(catalog) as portal:
        export = await backup(portal, catalog, tmp_path)
        image = next(i for i in catalog.images_of(product) if i.id == image_id)
        before = sorted(i.id for i in catalog.images_of(product) if i.id != image_id)
        size = len(catalog.image_bytes(image_id))
        catalog.remove_image(image_id)
        # The killed run: its upload was recorded as sent, reached the portal (which added
        # it as a new image), and the process died before the answer came back.
        host = portal.base_url.removeprefix("http://")
        with Journal(export / ".b24-image-exporter" / journal_name(host)) as journal:
            sent = Sent(product, image.name, frozenset(before))
            journal.record_sent([(ImageRef(product, image_id), sent)])
        arrived = catalog.add_image(product, name=image.name, size=size)
        portal.stats.reset()
        result = await restore(portal, export, tmp_path)
        adds = sum(portal.stats.adds_by_product.values())
    assert adds == 0  # not sent again
    assert {"productId": product, "id": image_id, "reason": "restored already (journal)"} in (
        result.report["skipped"]
    )
    assert arrived in {i.id for i in catalog.images_of(product)}


async def test_a_dry_run_says_what_would_go_where_and_uploads_nothing(
    tmp_path: Path, catalog: Catalog
) -> None:
    async with portal_for(catalog) as portal:
        export = await backup(portal, catalog, tmp_path)
        deleted = catalog.pairs()[:5]
        for _, image_id in deleted:
            catalog.remove_image(image_id)
        result = await restore(portal, export, tmp_path, dry_run=True)
        adds = sum(portal.stats.adds_by_product.values())
    assert adds == 0
    assert not (tmp_path / "restore-report.json").exists()  # a dry run writes nothing
    assert not list((export / ".b24-image-exporter").glob("restore-*.jsonl"))
    would = {(u["productId"], u["id"], u["targetProductId"]) for u in result.report["wouldUpload"]}
    assert would == {(p, i, p) for p, i in deleted}
    assert result.report["uploadRequests"] == 1  # five small images fit one batch
    assert "dry run: nothing was uploaded or written" in result.summary()


def test_a_migration_by_external_code_lands_every_image_on_its_matching_product(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = Catalog.generate(products=40, images=200, seed=14, image_size=(300, 3000))
    source.add_variation(3, 700, name="Blue", xml_id="blue-700")
    source.add_image(700, name="blue.png", size=1200, image_id=9700)
    target = source.twin(id_offset=50_000)  # the same products under other ids
    ambiguous = source.product_info(5).xml_id
    target.add_product(90_000, xml_id=ambiguous)  # two products of the target share it
    source.add_product(77, xml_id="only-on-a")  # no product of the target has it
    source.add_image(77, name="lonely.png", size=500, image_id=9077)
    out = tmp_path / "export"
    with portal_in_thread(source) as portal_a:
        manifest = write_manifest(tmp_path / "m.csv", source.pairs())
        config_a = tmp_path / "a.yaml"
        config_a.write_text(json.dumps({"portal": {"webhook_url": portal_a.webhook_url},
                                        "manifest": str(manifest), "output": {"dir": str(out)},
                                        "rate_limit": {"requests_per_second": 1000,
                                                       "burst": 1000}}))  # fmt: skip
        assert main(["-q", "run", "--config", str(config_a)]) == 0
    with portal_in_thread(target) as portal_b:
        config_b = tmp_path / "b.yaml"
        config_b.write_text(json.dumps({"portal": {"webhook_url": portal_b.webhook_url},
                                        "rate_limit": {"requests_per_second": 1000,
                                                       "burst": 1000}}))  # fmt: skip
        args = ["restore", "-c", str(config_b), "--from", str(out), "--match-by", "xmlId"]
        code = main([*args, "--verify", "--report", str(tmp_path / "r.json")])
        stats = portal_b.stats
    assert code == 1  # two products could not be matched
    report = json.loads((tmp_path / "r.json").read_text())
    failed = {(f["productId"], f["error"]) for f in report["failed"]}
    assert failed == {(5, "AMBIGUOUS_MATCH"), (77, "NOT_MATCHED")}
    assert report["counts"]["failed"] == 1 + len(source.images_of(5))
    expected = Counter(
        (pid + 50_000, hashlib.sha256(source.image_bytes(i)).hexdigest())
        for pid, i in source.pairs()
        if pid not in (5, 77)
    )
    assert bytes_by_product(target) == expected  # byte-exact, each on its twin, once
    assert stats.duplicate_adds == 0
    assert (50_700, hashlib.sha256(source.image_bytes(9700)).hexdigest()) in expected
    # The codes were looked up in one batch per catalog, not product by product.
    lookups = sum(
        stats.by_method.get(m, 0) + stats.commands.get(m, 0)
        for m in ("catalog.product.list", "catalog.product.offer.list")
    )
    assert lookups == 2
    assert "AMBIGUOUS_MATCH" in capsys.readouterr().err


def test_match_by_and_map_cannot_be_given_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"portal": {"webhook_url": "https://a.bitrix24.com/rest/1/x/"}}))
    args = ["restore", "-c", str(config), "--from", str(tmp_path), "--match-by", "xmlId"]
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--map", str(tmp_path / "map.csv")])
    assert stopped.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


async def test_an_export_without_external_codes_is_never_matched_by_guess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter.simulator import errors as sim_errors
    from exporter.simulator import methods as sim_methods

    def refusing(params: dict[str, Any], context: Any) -> Any:
        raise sim_errors.catalog_access_denied()

    source = Catalog.generate(products=4, images=12, seed=15, image_size=(300, 1000))
    target = source.twin(id_offset=10_000)
    method = "catalog.product.list"
    async with portal_for(source) as portal:
        monkeypatch.setitem(sim_methods._METHODS, method, sim_methods.MethodSpec(method, refusing))
        export = await backup(portal, source, tmp_path)  # sidecars without the product block
        monkeypatch.undo()
    async with portal_for(target) as portal:
        result = await restore(portal, export, tmp_path, match_by_xml_id=True)
        adds = sum(portal.stats.adds_by_product.values())
    assert adds == 0
    assert result.exit_code == 1
    assert {f["error"] for f in result.report["failed"]} == {"NO_XML_ID"}
    assert result.report["counts"]["failed"] == 12


async def test_a_restore_shows_its_progress_and_ends_with_its_final_counts(
    tmp_path: Path, catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    from exporter.jobs.progress import LogView

    from .test_progress import Recorder

    async with portal_for(catalog) as portal:
        export = await backup(portal, catalog, tmp_path)
        for _, image_id in catalog.pairs()[:30]:
            catalog.remove_image(image_id)
        view = Recorder()
        job = RestoreJob(
            target_config(portal, tmp_path),
            destination_at(export),
            str(export),
            RestoreOptions(),
            report=tmp_path / "restore-report.json",
            progress=view,
        )
        result = await job.run()
    assert result.exit_code == 0
    closed = view.closed
    assert closed is not None and closed.verb == "restored"
    assert (closed.total, closed.exported, closed.skipped, closed.failed) == (500, 30, 470, 0)
    assert closed.requests == result.report["requests"]["rest"]
    assert closed.bytes == result.report["bytes"] > 0
    caplog.set_level("INFO", logger="exporter")
    LogView().show(closed)
    assert "500/500 images (30 restored, 470 skipped, 0 failed)" in caplog.text
