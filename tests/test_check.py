"""`check`: a configuration tested before the first run, in a few requests, writing nothing."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from exporter.cli import main
from exporter.destination.index import STATE_DIR
from exporter.destination.lock import RunLock
from exporter.jobs.check import Outcome, Readiness, Status, clock_outcome, render, render_verdict
from exporter.portal.budget import shared_finding
from exporter.portal.downloads import Finding
from exporter.simulator import Catalog, PortalSettings

from .support import FAST, catalog_of, portal_in_thread, write_manifest


def write_config(
    path: Path, webhook: str, manifest: Path | None, out: Path, **extra: object
) -> Path:
    raw: dict[str, object] = {
        "portal": {"webhook_url": webhook},
        "output": {"dir": str(out)},
        "rate_limit": dict(FAST),
        **extra,
    }
    if manifest is not None:
        raw["manifest"] = str(manifest)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def snapshot(root: Path) -> list[tuple[str, int, int]]:
    """Every file under root with its size and modification time."""
    return sorted(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    )


def unused_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def catalog() -> Catalog:
    return catalog_of(6, 30)


def check(
    tmp_path: Path,
    catalog: Catalog,
    *,
    settings: PortalSettings | None = None,
    rows: list[tuple[int, int | None]] | None = None,
    out: Path | None = None,
    **extra: object,
) -> tuple[int, int]:
    """`check` of a config against the simulated portal: its exit code, the HTTP requests."""
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs() if rows is None else rows)
    with portal_in_thread(catalog, settings) as portal:
        config = write_config(
            tmp_path / "config.yaml", portal.webhook_url, manifest, out or tmp_path / "out", **extra
        )
        code = main(["check", "--config", str(config)])
        return code, portal.stats.http_requests


def test_a_good_config_is_ready_in_at_most_five_requests_and_writes_nothing(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [*catalog.pairs(), (2, None)])
    out = tmp_path / "out"
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest, out)
        before = snapshot(tmp_path)
        code = main(["check", "--config", str(config)])
        requests = portal.stats.http_requests
    text = capsys.readouterr().out
    assert code == 0
    assert requests <= 5
    assert snapshot(tmp_path) == before
    assert not out.exists()
    assert "portal 127.0.0.1" in text
    assert (
        "an inbound webhook; rate limit 1000 req/s, burst 1000, downloads counted in it or not "
        "(not known yet: the first run learns it)"
    ) in text
    assert "if the portal counts downloads" in text and "if it does not" in text
    assert "31 rows, 30 distinct images named by pairs, 1 products named without images" in text
    assert "does not exist yet; the first run creates it" in text
    assert "accepts the credentials and the catalog scope" in text
    assert "the portal's clock is" in text
    assert "images named: 30, already done: 0, to export: 30" in text
    assert text.rstrip().splitlines()[-1].startswith("ready")


def test_what_an_earlier_run_learned_is_said_and_gives_one_estimate(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        host = urlsplit(portal.webhook_url).netloc
        shared_finding(host).keep(
            Finding(False, datetime.now(UTC).date(), "the portal served 60 downloads")
        )
        config = write_config(
            tmp_path / "config.yaml", portal.webhook_url, manifest, tmp_path / "o"
        )
        code = main(["check", "--config", str(config)])
    text = capsys.readouterr().out
    assert code == 0
    assert (
        f"downloads not counted in it (learned on {datetime.now(UTC).date().isoformat()})" in text
    )
    assert "if the portal counts downloads" not in text


def test_an_output_with_an_export_is_counted_and_left_as_it_is(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = catalog.pairs()
    out = tmp_path / "out"
    with portal_in_thread(catalog) as portal:
        done = write_config(tmp_path / "a.yaml", portal.webhook_url,
                            write_manifest(tmp_path / "a.csv", pairs[:10]), out)  # fmt: skip
        assert main(["-q", "run", "--config", str(done)]) == 0
        config = write_config(
            tmp_path / "c.yaml", portal.webhook_url, write_manifest(tmp_path / "m.csv", pairs), out
        )
        before = snapshot(tmp_path)
        portal.stats.reset()
        assert main(["check", "--config", str(config)]) == 0
        assert portal.stats.http_requests <= 5
    text = capsys.readouterr().out
    assert snapshot(tmp_path) == before
    assert "a writable folder" in text
    assert "holds an export of 10 images" in text
    assert "images named: 30, already done: 10, to export: 20" in text


def test_without_a_manifest_it_says_run_discover_needs_none(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, None, tmp_path / "out")
        assert main(["check", "--config", str(config)]) == 0
        assert portal.stats.http_requests == 1
    text = capsys.readouterr().out
    assert "`run --discover` walks the catalog and needs none" in text


def test_a_wrong_webhook_code_exits_3_naming_the_code_and_the_remedy_but_no_secret(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        code_in_use = portal.portal.settings.webhook_code
        wrong = portal.webhook_url.replace(code_in_use, "wrong0000code")
        config = write_config(tmp_path / "c.yaml", wrong, manifest, tmp_path / "out")
        assert main(["-v", "check", "--config", str(config)]) == 3
    captured = capsys.readouterr()
    assert "NO_AUTH_FOUND" in captured.out
    assert "copy the webhook URL again from Bitrix24" in captured.out
    for secret in (code_in_use, "wrong0000code"):
        assert secret not in captured.out + captured.err


def test_an_output_that_is_a_regular_file_exits_4(tmp_path: Path, catalog: Catalog) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert check(tmp_path, catalog, out=out)[0] == 4


def test_an_output_below_a_regular_file_exits_4(tmp_path: Path, catalog: Catalog) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert check(tmp_path, catalog, out=tmp_path / "file" / "out")[0] == 4


def test_a_manifest_with_a_bad_row_exits_2(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("productId,id\n1,1001\n2,abc\n", encoding="utf-8")
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, manifest, tmp_path / "out")
        assert main(["check", "--config", str(config)]) == 2
    assert "m.csv:3:" in capsys.readouterr().out


def test_an_invalid_configuration_exits_2_before_any_request(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    code, requests = check(tmp_path, catalog, batch_sise=10)
    assert (code, requests) == (2, 0)
    assert "batch_sise: unknown key (did you mean 'batch_size'?)" in capsys.readouterr().out


def test_an_output_locked_by_a_running_export_exits_2(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with RunLock(out / STATE_DIR):
        assert check(tmp_path, catalog, out=out)[0] == 2
    assert "is exporting into it now" in capsys.readouterr().out


def test_an_unreachable_portal_exits_4(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    webhook = f"http://127.0.0.1:{unused_port()}/rest/1/abcdef0123456789/"
    config = write_config(tmp_path / "c.yaml", webhook, manifest, tmp_path / "out",
                          retries={"max_attempts": 1})  # fmt: skip
    assert main(["check", "--config", str(config)]) == 4
    text = capsys.readouterr().out
    assert "CONNECT_FAILED" in text
    assert "retries.max_attempts: 1" in text


@pytest.mark.parametrize(
    "denied",
    [
        PortalSettings(rps=None, deny_all=True),
        PortalSettings(rps=None, denied_products=frozenset({1})),  # the manifest's first row
    ],
    ids=["every catalog call", "the first product"],
)
def test_access_denied_to_images_exits_3_with_the_remedy(
    tmp_path: Path, catalog: Catalog, denied: PortalSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert catalog.pairs()[0][0] == 1
    assert check(tmp_path, catalog, settings=denied)[0] == 3
    text = capsys.readouterr().out
    assert "problem " in text
    assert "200040300010" in text
    assert "use an administrator's webhook, or grant catalog read rights" in text


def test_an_image_the_portal_does_not_have_is_a_warning_only(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    code, requests = check(tmp_path, catalog, rows=[(1, 999_999), *catalog.pairs()])
    assert code == 0
    assert requests == 2
    text = capsys.readouterr().out
    assert "warning images: product 1 image 999999: 0" in text
    assert "regenerate the manifest with `discover`" in text


def test_a_product_only_first_row_is_listed(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    product = catalog.product_ids()[0]
    assert check(tmp_path, catalog, rows=[(product, None)])[0] == 0
    count = len(catalog.images_of(product))
    assert f"product {product} lists {count} images that can be read" in capsys.readouterr().out


def test_a_clock_far_from_the_portal_is_a_warning_not_a_failure() -> None:
    block = {"start": 10_000.0, "finish": 10_000.2}
    behind = clock_outcome(block, sent=10_120.0, received=10_120.2)
    assert behind.status is Status.WARNING
    assert "120.0 s behind this machine's" in behind.text
    dates = {"date_start": "1970-01-01T02:46:40+00:00", "date_finish": "1970-01-01T02:46:41+00:00"}
    close = clock_outcome(dates, sent=10_000.0, received=10_001.0)
    assert close.status is Status.OK


def test_a_problem_line_says_what_to_do_and_the_verdict_the_exit_code() -> None:
    outcome = Outcome("portal", Status.PROBLEM, "NO_AUTH_FOUND: Wrong", "copy it", 3)
    assert render(outcome).splitlines() == [
        "problem portal: NO_AUTH_FOUND: Wrong",
        "        what to do: copy it",
    ]
    verdict = render_verdict(Readiness([outcome], requests=1))
    assert verdict == (
        "not ready: 1 problem, the first (portal) would end a run with exit 3; "
        "1 request to the portal"
    )


def test_check_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "b24-image-exporter check --config config.yaml" in text.split("options:")[-1]
