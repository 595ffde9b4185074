"""Object storage as the destination, against a real S3-compatible server (SeaweedFS).

Every object is read back with a client of the test's own (aiobotocore, not the
destination's code) and compared with the simulated portal's bytes.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from exporter.cli import main
from exporter.config import Config, parse_config
from exporter.destination.index import INDEX_NAME, ExportIndex
from exporter.destination.store import MIN_PART_BYTES, StoreDestination, verify_store
from exporter.errors import LockedError, OutputError
from exporter.jobs.export import ExportJob, ExportResult
from exporter.jobs.prune import prune
from exporter.jobs.restore import RestoreJob, RestoreOptions
from exporter.jobs.session import store_export_at
from exporter.simulator import PortalSettings
from exporter.simulator.catalog import Catalog
from tests.conftest import use_seaweed_identity
from tests.seaweed import REGION, SECRET_KEY, TEST_BUCKET, SeaweedFS
from tests.support import (
    catalog_of,
    drop_index_rows,
    index_rows,
    portal_for,
    raw_config,
    write_manifest,
)
from tests.test_resilience import (
    DownloadGate,
    MiB,
    portal_thread,
    run_exporter,
    start_exporter,
    wait_until,
)

BUCKET = TEST_BUCKET


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_seaweed_identity(monkeypatch, tmp_path)


_prefixes = iter(range(1, 10_000))


def new_prefix(name: str) -> str:
    return f"{name}-{os.getpid()}-{next(_prefixes)}"


def store_config(portal_url: str, manifest: Path, prefix: str, server: SeaweedFS) -> Config:
    raw = raw_config(portal_url, manifest, Path("unused"))
    raw["output"] = {
        "dir": f"s3://{BUCKET}/{prefix}",
        "s3": {"endpoint_url": server.endpoint, "region": REGION},
    }
    return parse_config(raw, base_dir=manifest.parent, env=os.environ)


def scene(tmp_path: Path, catalog: Catalog, name: str) -> tuple[Path, str]:
    """A test's manifest of every image of `catalog`, and a prefix of its own."""
    return write_manifest(tmp_path / "m.csv", catalog.pairs()), new_prefix(name)


async def run(config: Config, **options: Any) -> tuple[ExportResult, StoreDestination]:
    destination = StoreDestination(config.output, config.portal.host, **options)
    result = await ExportJob(config, destination=destination).run()
    return result, destination


class Reader:
    """The test's own view of the bucket."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def keys(self, prefix: str) -> dict[str, int]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix + "/"
        )
        found: dict[str, int] = {}
        async for page in pages:
            for item in page.get("Contents") or []:
                found[item["Key"][len(prefix) + 1 :]] = item["Size"]
        return found

    async def read(self, prefix: str, key: str) -> bytes:
        got = await self.client.get_object(Bucket=BUCKET, Key=f"{prefix}/{key}")
        async with got["Body"] as stream:
            data: bytes = await stream.read()
        return data

    async def unfinished_uploads(self, prefix: str) -> list[str]:
        page = await self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix + "/")
        return [upload["Key"] for upload in page.get("Uploads") or []]


@pytest.fixture
async def reader(seaweed: SeaweedFS) -> AsyncIterator[Reader]:
    async with seaweed.client() as client:
        yield Reader(client)


async def assert_exported_whole(reader: Reader, prefix: str, catalog: Catalog) -> dict[str, Any]:
    """Every image object equals the portal's bytes, and its sidecar says so; returns the
    sidecars by key."""
    keys = await reader.keys(prefix)
    images = {k for k in keys if not k.endswith(".json") and not k.startswith(".b24")}
    sidecars = {}
    for key in images:
        sidecar = json.loads(await reader.read(prefix, key + ".json"))
        body = await reader.read(prefix, key)
        image_id = int(sidecar["productImage"]["id"])
        assert body == catalog.image_bytes(image_id), key
        assert sidecar["file"]["sha256"] == hashlib.sha256(body).hexdigest()
        assert sidecar["file"]["size"] == len(body) == keys[key]
        sidecars[key] = sidecar
    return sidecars


async def test_an_export_lands_byte_exact_as_objects_with_their_sidecars(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(50, 500)
    manifest, prefix = scene(tmp_path, catalog, "whole")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        result, _ = await run(config)
    assert result.exit_code == 0
    assert result.report["counts"]["exported"] == 500
    sidecars = await assert_exported_whole(reader, prefix, catalog)
    assert len(sidecars) == 500
    exported = {
        (int(s["productImage"]["productId"]), int(s["productImage"]["id"]))
        for s in sidecars.values()
    }
    assert exported == set(catalog.pairs())
    assert await reader.unfinished_uploads(prefix) == []
    assert config.report.exists()


async def test_a_rerun_sends_no_portal_request_and_only_a_listing_to_the_store(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(20, 200)
    manifest, prefix = scene(tmp_path, catalog, "rerun")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        first, _ = await run(config)
        portal.stats.reset()
        second, destination = await run(config)
        portal_requests = portal.stats.http_requests
    assert first.report["counts"]["exported"] == 200
    assert second.exit_code == 0
    assert second.report["counts"]["skipped"] == 200
    assert portal_requests == 0
    # The lock, the unfinished-upload check, one listing page, the kept report: the same
    # four requests for 200 images as for 2.
    assert destination.requests == 4


async def test_with_its_local_state_gone_a_rerun_rebuilds_it_from_a_listing_and_downloads_nothing(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(10, 60)
    manifest, prefix = scene(tmp_path, catalog, "rebuild")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        await run(config)
        index = config.output.dir / INDEX_NAME
        assert index.exists()
        index.unlink()
        portal.stats.reset()
        second, _ = await run(config)
        downloads = portal.stats.downloads
        portal_requests = portal.stats.http_requests
    assert second.report["counts"]["skipped"] == 60
    assert downloads == 0 and portal_requests == 0
    assert len(index_rows(config.output.dir)) == 60


async def test_an_export_whose_index_line_was_lost_is_taken_as_done_from_its_sidecar(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(5, 20)
    manifest, prefix = scene(tmp_path, catalog, "lost-line")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        await run(config)
        # A kill between an export's sidecar and its index row: the last rows lost.
        drop_index_rows(config.output.dir, 3)
        portal.stats.reset()
        second, _ = await run(config)
        downloads = portal.stats.downloads
    assert second.report["counts"]["skipped"] == 20
    assert downloads == 0
    sidecars = [k for k in await reader.keys(prefix) if k.endswith(".json") and ".b24" not in k]
    assert len(sidecars) == 20  # nothing exported a second time under another name
    assert len(index_rows(config.output.dir)) == 20


async def test_a_deleted_object_is_exported_again(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(5, 20)
    manifest, prefix = scene(tmp_path, catalog, "deleted")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        await run(config)
        victim = sorted(k for k in await reader.keys(prefix) if not k.endswith(".json"))[0]
        await reader.client.delete_object(Bucket=BUCKET, Key=f"{prefix}/{victim}")
        second, _ = await run(config)
    assert second.report["counts"]["exported"] == 1
    await assert_exported_whole(reader, prefix, catalog)


async def test_a_large_image_goes_in_parts_and_arrives_whole(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = Catalog.generate(products=2, images=3, seed=5, image_size=(11_000_000, 13_000_000))
    manifest, prefix = scene(tmp_path, catalog, "parts")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        result, _ = await run(config, part_bytes=MIN_PART_BYTES)
    assert result.exit_code == 0
    sidecars = await assert_exported_whole(reader, prefix, catalog)
    assert len(sidecars) == 3
    assert await reader.unfinished_uploads(prefix) == []
    head = await reader.client.head_object(
        Bucket=BUCKET, Key=f"{prefix}/{next(iter(sidecars))}", ChecksumMode="ENABLED"
    )
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload's, of three parts


async def test_the_store_checks_each_object_against_the_sha256_sent_with_it(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(2, 4)
    manifest, prefix = scene(tmp_path, catalog, "checksum")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        await run(config)
    key = next(k for k in await reader.keys(prefix) if not k.endswith(".json"))
    head = await reader.client.head_object(
        Bucket=BUCKET, Key=f"{prefix}/{key}", ChecksumMode="ENABLED"
    )
    body = await reader.read(prefix, key)
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()


async def test_a_wrong_secret_key_is_exit_4_with_the_refusal_named_and_the_secret_nowhere(
    tmp_path: Path,
    seaweed: SeaweedFS,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "wrong-secret-0123456789abcdefghij"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    catalog = catalog_of(2, 4)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, new_prefix("secret"), seaweed)
        result, _ = await run(config)
        downloads = portal.stats.downloads
    assert result.exit_code == 4
    text = json.dumps(result.report)
    assert "SignatureDoesNotMatch" in text
    assert downloads == 0
    captured = capsys.readouterr()
    for where in (text, captured.out, captured.err, caplog.text, config.report.read_text()):
        assert wrong not in where
        assert SECRET_KEY not in where


async def test_a_missing_bucket_is_exit_4_and_is_not_created(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(2, 4)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, "x", seaweed)
        raw_output = config.output
        store = raw_output.store
        assert store is not None
        config = parse_config(
            {
                **raw_config(portal.webhook_url, manifest, Path("unused")),
                "output": {
                    "dir": "s3://no-such-bucket-here/x",
                    "s3": {"endpoint_url": seaweed.endpoint, "region": REGION},
                },
            },
            base_dir=tmp_path,
            env=os.environ,
        )
        result, _ = await run(config)
    assert result.exit_code == 4
    assert "NoSuchBucket" in json.dumps(result.report)
    buckets = await reader.client.list_buckets()
    assert "no-such-bucket-here" not in {b["Name"] for b in buckets["Buckets"]}


async def test_two_runs_into_one_prefix_are_kept_apart(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(2, 4)
    manifest, prefix = scene(tmp_path, catalog, "lock")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        # Another machine's run holds the lock object, refreshed just now.
        holder = {"host": "another-host", "pid": 4242, "at": time.time()}
        await reader.client.put_object(
            Bucket=BUCKET, Key=f"{prefix}/.b24-image-exporter/lock", Body=json.dumps(holder)
        )
        with pytest.raises(LockedError, match="another-host"):
            await run(config)
        # Its lock left behind by a run of this machine that died: taken over.
        holder["host"] = socket.gethostname()
        await reader.client.put_object(
            Bucket=BUCKET, Key=f"{prefix}/.b24-image-exporter/lock", Body=json.dumps(holder)
        )
        taken, _ = await run(config)
    assert taken.exit_code == 0
    assert "lock" not in await reader.keys(prefix + "/.b24-image-exporter")


def _sync(coro_fn: Any, seaweed: SeaweedFS, *args: Any) -> Any:
    """Run a check with a reader of its own, outside any event loop (the kill test)."""

    async def go() -> Any:
        async with seaweed.client() as client:
            return await coro_fn(Reader(client), *args)

    return asyncio.run(go())


async def _every_object_whole(reader: Reader, prefix: str, catalog: Catalog) -> int:
    """Every image object under a final key, with a sidecar or not, is one image's bytes
    whole; returns how many there are."""
    bodies = {catalog.image_bytes(i) for _p, i in catalog.pairs()}
    keys = [k for k in await reader.keys(prefix) if not k.endswith(".json") and ".b24" not in k]
    for key in keys:
        assert await reader.read(prefix, key) in bodies, key
    return len(keys)


def test_kill_9_during_a_multipart_upload_leaves_no_partial_object_and_the_rerun_cleans_up(
    tmp_path: Path, seaweed: SeaweedFS
) -> None:
    catalog = Catalog(seed=41)
    for n in range(3):
        catalog.add_image(1 + n, name=f"poster {n}.png", size=80 * MiB)
    for n in range(10):
        catalog.add_image(4 + n % 3, name=f"small {n}.png", size=300 + 100 * n)
    manifest, prefix = scene(tmp_path, catalog, "kill")
    with portal_thread(catalog, PortalSettings(rps=None), DownloadGate(delay=0.0)) as portal:
        raw = raw_config(portal.webhook_url, manifest, Path("unused"))
        raw["output"] = {
            "dir": f"s3://{BUCKET}/{prefix}",
            "s3": {"endpoint_url": seaweed.endpoint, "region": REGION},
        }
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(raw), encoding="utf-8")
        proc = start_exporter(tmp_path, config, "killed")
        try:
            wait_until(
                lambda: bool(_sync(Reader.unfinished_uploads, seaweed, prefix)),
                "a multipart upload under way",
                proc,
            )
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        finally:
            proc.kill()
        assert _sync(Reader.unfinished_uploads, seaweed, prefix) != []
        _sync(_every_object_whole, seaweed, prefix, catalog)
        code = run_exporter(tmp_path, config, "rerun")
        assert code == 0, (tmp_path / "rerun.log").read_text()
    assert _sync(Reader.unfinished_uploads, seaweed, prefix) == []
    assert _sync(_every_object_whole, seaweed, prefix, catalog) == 13
    sidecars = _sync(assert_exported_whole, seaweed, prefix, catalog)
    assert len(sidecars) == 13


async def test_a_restore_from_the_store_brings_back_what_was_deleted(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = Catalog.generate(products=20, images=80, seed=12, image_size=(300, 3000))
    manifest, prefix = scene(tmp_path, catalog, "restore")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        assert (await run(config))[0].exit_code == 0
        before = sorted(catalog.image_bytes(i) for _p, i in catalog.pairs())
        deleted = [image_id for _, image_id in catalog.pairs()[::7]]
        for image_id in deleted:
            catalog.remove_image(image_id)
        portal.stats.reset()
        job = RestoreJob(
            config,
            store_export_at(f"s3://{BUCKET}/{prefix}", config),
            f"s3://{BUCKET}/{prefix}",
            RestoreOptions(verify=True),
            report=tmp_path / "restore-report.json",
        )
        result = await job.run()
        adds = sum(portal.stats.adds_by_product.values())
    assert result.exit_code == 0
    assert result.report["counts"]["restored"] == len(deleted) == adds
    assert sorted(catalog.image_bytes(i) for _p, i in catalog.pairs()) == before


async def test_verify_names_a_same_size_overwrite_and_a_deleted_object(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(5, 20)
    manifest, prefix = scene(tmp_path, catalog, "verify")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        await run(config)
    clean = await verify_store(StoreDestination(config.output, ""))
    assert clean.ok and clean.checked == 20
    assert clean.bytes == 0  # every object answered by the store's own SHA-256
    images = sorted(
        k for k in await reader.keys(prefix) if not k.endswith(".json") and ".b24" not in k
    )
    overwritten, deleted = images[0], images[1]
    body = await reader.read(prefix, overwritten)
    flipped = bytes([body[0] ^ 0xFF]) + body[1:]
    await reader.client.put_object(Bucket=BUCKET, Key=f"{prefix}/{overwritten}", Body=flipped)
    await reader.client.delete_object(Bucket=BUCKET, Key=f"{prefix}/{deleted}")
    found = await verify_store(StoreDestination(config.output, ""))
    assert {(f.kind, f.path) for f in found.findings} == {
        ("corrupt", overwritten),
        ("missing", deleted),
    }


def test_verify_of_a_config_with_an_s3_output_checks_the_store(
    tmp_path: Path, seaweed: SeaweedFS, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = catalog_of(3, 9)
    manifest, prefix = scene(tmp_path, catalog, "verify-cli")
    with portal_thread(catalog, PortalSettings(rps=None)) as portal:
        raw = raw_config(portal.webhook_url, manifest, Path("unused"))
        raw["output"] = {
            "dir": f"s3://{BUCKET}/{prefix}",
            "s3": {"endpoint_url": seaweed.endpoint, "region": REGION},
        }
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(raw), encoding="utf-8")
        assert main(["-q", "run", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["verify", "--config", str(config), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["root"] == f"s3://{BUCKET}/{prefix}"
    assert document["checked"] == 9 and document["ok"] is True


class FlakyStore:
    """A proxy in front of the store that answers the first PUTs with 503 SlowDown and
    drops the connection of the next ones, then passes everything through."""

    def __init__(self, upstream: str, slow_downs: int, drops: int) -> None:
        self.upstream = upstream
        self.slow_downs, self.drops = slow_downs, drops
        self.refused = self.dropped = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.method == "PUT" and ".b24-image-exporter" not in request.path:
            if self.refused < self.slow_downs:
                self.refused += 1
                return web.Response(status=503, body=SLOW_DOWN, content_type="application/xml")
            if self.dropped < self.drops:
                self.dropped += 1
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body
            ) as answer,
        ):
            data = await answer.read()
            passed = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
            return web.Response(status=answer.status, headers=passed, body=data)


SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


async def test_throttling_and_dropped_connections_of_the_store_are_retried(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    flaky = FlakyStore(seaweed.endpoint, slow_downs=3, drops=2)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", flaky.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    catalog = catalog_of(4, 12)
    manifest, prefix = scene(tmp_path, catalog, "flaky")
    try:
        async with portal_for(catalog) as portal:
            config = store_config(portal.webhook_url, manifest, prefix, seaweed)
            assert config.output.store is not None
            store = dataclasses.replace(
                config.output.store, endpoint_url=f"http://127.0.0.1:{port}"
            )
            config = dataclasses.replace(
                config, output=dataclasses.replace(config.output, store=store)
            )
            result, _ = await run(config)
    finally:
        await runner.cleanup()
    assert (flaky.refused, flaky.dropped) == (3, 2)
    assert result.exit_code == 0
    assert result.report["counts"]["exported"] == 12
    assert len(await assert_exported_whole(reader, prefix, catalog)) == 12


async def test_prune_removes_the_objects_of_images_gone_from_the_portal(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(4, 12)
    manifest, prefix = scene(tmp_path, catalog, "prune")
    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        await run(config)
        gone = [image_id for _, image_id in catalog.pairs()[:2]]
        for image_id in gone:
            catalog.remove_image(image_id)
        destination = StoreDestination(config.output, config.portal.host)
        marked = await ExportJob(config, recheck=True, destination=destination).run()
    assert marked.report["counts"]["gone"] == 2
    before = await reader.keys(prefix)
    pruned = await prune(StoreDestination(config.output, ""), gone_for_days=0, dry_run=False)
    after = await reader.keys(prefix)
    removed = {p.key for p in pruned.removed}
    assert len(removed) == 2
    assert set(before) - set(after) == removed | {key + ".json" for key in removed}
    assert {
        int(json.loads(await reader.read(prefix, key + ".json"))["productImage"]["id"])
        for key in after
        if not key.endswith(".json") and ".b24" not in key
    }.isdisjoint(gone)


async def test_an_unknown_export_in_the_way_is_left_alone_and_the_image_takes_another_key(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader
) -> None:
    catalog = catalog_of(2, 4)
    manifest, first = scene(tmp_path, catalog, "learn-keys")
    second = new_prefix("in-the-way")
    async with portal_for(catalog) as portal:
        await run(store_config(portal.webhook_url, manifest, first, seaweed))
        wanted = sorted(k for k in await reader.keys(first) if not k.endswith(".json"))[0]
        # Another tool's file and a sidecar this exporter cannot read, at that very key.
        for key, body in ((wanted, b"not ours"), (wanted + ".json", b"{not json")):
            await reader.client.put_object(Bucket=BUCKET, Key=f"{second}/{key}", Body=body)
        result, _ = await run(store_config(portal.webhook_url, manifest, second, seaweed))
    assert result.report["counts"]["exported"] == 4
    assert await reader.read(second, wanted) == b"not ours"
    assert await reader.read(second, wanted + ".json") == b"{not json"
    ours = {k for k in await reader.keys(second) if not k.endswith(".json") and ".b24" not in k}
    ours.discard(wanted)
    assert len(ours) == 4
    for key in ours:
        sidecar = json.loads(await reader.read(second, key + ".json"))
        assert await reader.read(second, key) == catalog.image_bytes(sidecar["productImage"]["id"])


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-03T13:44:00.000Z",  # a listing's LastModified
        "2026-12-03T13:44:00.123456+02:00",
        "Thu, 03 Dec 2026 13:44:00 GMT",  # an HTTP date, as in a header
        "1700000000",  # seconds since the epoch
    ],
)
def test_store_timestamps_are_read_as_botocore_reads_them(text: str) -> None:
    from botocore.utils import parse_timestamp

    from exporter.destination.store import _timestamp

    assert _timestamp(text) == parse_timestamp(text)


async def test_a_listing_that_fails_after_the_index_opened_closes_it_and_the_next_run_goes_on(
    tmp_path: Path, seaweed: SeaweedFS, reader: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = catalog_of(3, 9)
    manifest, prefix = scene(tmp_path, catalog, "list-fails")
    closed: list[bool] = []
    original_list, original_close = StoreDestination._list, ExportIndex.close

    async def failing_list(self: StoreDestination, wanted: Any) -> list[str]:
        raise OutputError(f"cannot list {self.store.url}: the store went away")

    def close(self: ExportIndex) -> None:
        closed.append(True)
        original_close(self)

    async with portal_for(catalog) as portal:
        config = store_config(portal.webhook_url, manifest, prefix, seaweed)
        first, _ = await run(config)
        monkeypatch.setattr(StoreDestination, "_list", failing_list)
        monkeypatch.setattr(ExportIndex, "close", close)
        failed, _ = await run(config)
        closed_by_the_failed_run = len(closed)
        monkeypatch.setattr(StoreDestination, "_list", original_list)
        again, _ = await run(config)
    assert first.exit_code == 0
    assert failed.exit_code == OutputError.exit_code
    assert closed_by_the_failed_run == 1  # the index it had opened was closed
    assert again.exit_code == 0 and again.report["counts"]["skipped"] == 9
