"""`run --dry-run`: what a run would do, with no download and no file written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.config import parse_config
from exporter.jobs.dryrun import Plan, estimate_seconds, requests_needed
from exporter.model import ImageRef

from .support import FAST, catalog_of, portal_in_thread, write_manifest


def write_config(path: Path, webhook: str, manifest: Path, out: Path, **extra: object) -> Path:
    raw = {
        "portal": {"webhook_url": webhook},
        "manifest": str(manifest),
        "output": {"dir": str(out)},
        "rate_limit": dict(FAST),
        **extra,
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def snapshot(root: Path) -> list[tuple[str, int, int]]:
    """Every file under root with its size and modification time."""
    return sorted(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    )


def test_a_dry_run_asks_nothing_writes_nothing_and_counts_what_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = catalog_of(10, 120)
    pairs = catalog.pairs()
    out = tmp_path / "out"
    with portal_in_thread(catalog) as portal:
        done = write_config(tmp_path / "a.yaml", portal.webhook_url,
                            write_manifest(tmp_path / "a.csv", pairs[:20]), out)  # fmt: skip
        assert main(["-q", "run", "--config", str(done)]) == 0
        manifest = write_manifest(tmp_path / "m.csv", [*pairs, *pairs[:5], (7, None)])
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, manifest, out)
        before = snapshot(tmp_path)
        portal.stats.reset()
        assert main(["run", "--config", str(config), "--dry-run"]) == 0
        stats = portal.stats
    text = capsys.readouterr().out
    assert stats.http_requests == 0
    assert snapshot(tmp_path) == before
    assert "images named: 120, already done: 20, to export: 100" in text
    assert "products named without images: 1" in text
    assert "2 metadata batches, 1 product-list batches, 100 downloads" in text


def test_a_metadata_dry_run_sends_no_download_and_names_what_would_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = catalog_of(10, 60)
    product = catalog.product_ids()[0]
    rows = [(p, i) for p, i in catalog.pairs() if p != product]
    manifest = write_manifest(tmp_path / "m.csv", [*rows, (product, None), (3, 999_999)])
    out = tmp_path / "out"
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, manifest, out)
        assert main(["run", "--config", str(config), "--dry-run=metadata"]) == 1
        stats = portal.stats
    text = capsys.readouterr().out
    assert stats.download_requests == 0
    assert stats.rest_requests == 4  # two batches of get, one of list, the unknown image alone
    assert not out.exists()
    assert "metadata checked: 1 would fail" in text
    assert "product 3 image 999999: 0 Image does not exist" in text
    images_of_product = len(catalog.images_of(product))
    assert f"products named without images: 1, with {images_of_product} images" in text


def test_a_dry_run_with_discovery_walks_the_catalog_but_downloads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = catalog_of(30, 90)
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, tmp_path / "none.csv",
                              tmp_path / "out")  # fmt: skip
        code = main(["run", "--config", str(config), "--discover", "--dry-run=metadata"])
        stats = portal.stats
    assert code == 0
    assert stats.download_requests == 0
    assert "products found by walking the catalog: 30, with 90 images" in capsys.readouterr().out


def config_with(rps: float, burst: int, share: bool = True, batch: int = 50) -> object:
    raw = {
        "portal": {"webhook_url": "https://example.bitrix24.com/rest/1/abcdef/"},
        "rate_limit": {"requests_per_second": rps, "burst": burst, "downloads_share_limit": share},
        "batch_size": batch,
    }
    return parse_config(raw, base_dir=Path("/srv"), env={})


def test_requests_are_batches_plus_downloads() -> None:
    pending = [ImageRef(1, n) for n in range(1000)]
    plan = Plan(named=1200, done=200, pending=pending, product_ids={1, 2, 3})
    assert requests_needed(plan, config_with(2, 50)) == (20, 1, 1000)  # type: ignore[arg-type]


def test_the_estimate_is_what_the_limit_allows_beyond_the_burst() -> None:
    plan = Plan(named=1000, pending=[ImageRef(1, n) for n in range(1000)])
    # 20 batches + 1,000 downloads, 48 of them at once (burst 50 less headroom), then 2/s.
    config = config_with(2, 50)
    assert estimate_seconds(plan, config, counted=True) == pytest.approx((1020 - 48) / 2)  # type: ignore[arg-type]
    # Downloads outside the limit: only the 20 batches count, all within the burst.
    assert estimate_seconds(plan, config, counted=False) == 0  # type: ignore[arg-type]


def test_a_dry_run_honours_force_and_recheck_as_the_run_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = catalog_of(4, 60)
    out = tmp_path / "out"
    with portal_in_thread(catalog) as portal:
        manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, manifest, out)
        assert main(["-q", "run", "--config", str(config)]) == 0
        capsys.readouterr()
        assert main(["run", "--config", str(config), "--dry-run", "--force"]) == 0
        forced = capsys.readouterr().out
        assert main(["run", "--config", str(config), "--dry-run", "--recheck"]) == 0
        rechecked = capsys.readouterr().out
    assert "images named: 60, already done: 0, to export: 60" in forced
    assert "2 metadata batches, 0 product-list batches, 60 downloads" in forced
    assert "already done: 60, to export: 0, rechecked (metadata only): 60" in rechecked
    assert "2 metadata batches, 0 product-list batches, 0 downloads" in rechecked
