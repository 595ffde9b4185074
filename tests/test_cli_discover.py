"""`discover` and `run --discover` from the command line, against the simulated portal."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.manifest import iter_manifest

from .support import FAST, exported_files, portal_in_thread
from .test_discover import three_catalogs


def write_config(path: Path, webhook: str, out: Path) -> Path:
    raw = {
        "portal": {"webhook_url": webhook},
        "output": {"dir": str(out)},
        "rate_limit": dict(FAST),
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def test_discover_all_writes_every_image_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = three_catalogs(images=600)
    manifest = tmp_path / "all.yaml"
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, tmp_path / "out")
        code = main(["discover", "--config", str(config), "--all", "--out", str(manifest)])
    assert code == 0
    rows = [(row.product_id, row.image_id) for row in iter_manifest(manifest)]
    assert sorted(rows) == sorted(catalog.pairs())
    assert f"discovered {len(rows)} images" in capsys.readouterr().out


def test_discover_given_products(tmp_path: Path) -> None:
    catalog = three_catalogs(images=300)
    wanted = catalog.product_ids()[:3]
    manifest = tmp_path / "some.csv"
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, tmp_path / "out")
        argv = ["-q", "discover", "--config", str(config), "--out", str(manifest), "--product"]
        assert main([*argv, *map(str, wanted)]) == 0
    rows = {(row.product_id, row.image_id) for row in iter_manifest(manifest)}
    assert rows == {pair for pair in catalog.pairs() if pair[0] in wanted}


def test_discover_refuses_an_unknown_manifest_format_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = three_catalogs(images=10)
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, tmp_path / "out")
        argv = ["discover", "--config", str(config), "--all", "--out", str(tmp_path / "m.txt")]
        assert main(argv) == 2
        assert portal.stats.http_requests == 0
    assert "use .csv, .yaml or .yml" in capsys.readouterr().err


def test_run_discover_exports_everything_then_only_rediscovers(tmp_path: Path) -> None:
    catalog = three_catalogs(images=400)
    out = tmp_path / "out"
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, out)
        assert main(["-q", "run", "--config", str(config), "--discover"]) == 0
        first_downloads = portal.stats.downloads
        portal.stats.reset()
        assert main(["-q", "run", "--config", str(config), "--discover"]) == 0
        second = portal.stats
    assert first_downloads == 400
    assert len(exported_files(out)) == 400
    assert second.downloads == 0
    assert second.download_requests == 0
    sent = set(second.by_method) | set(second.commands)
    assert sent <= {"catalog.catalog.list", "catalog.product.list", "batch",
                    "catalog.product.offer.list", "catalog.productImage.list"}  # fmt: skip
