"""What a monitor sees: the exit status, the report and the metrics file of every kind of end.

4 is "the backup did not complete" (the output or the portal gave out), 2 "it could not
start", 128 + N a signal; each of them still writes the report and the metrics file,
wherever their paths can be written, with the portal the config names.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import main
from exporter.simulator import Catalog, PortalSettings

from .support import FAST, catalog_of, portal_in_thread, write_manifest


def write_config(tmp_path: Path, webhook: str, manifest: Path, out: Path) -> Path:
    config = tmp_path / "config.yaml"
    raw = {
        "portal": {"webhook_url": webhook},
        "manifest": str(manifest),
        "output": {"dir": str(out)},
        "rate_limit": dict(FAST),
    }
    config.write_text(yaml.safe_dump(raw))
    return config


def metric(path: Path, name: str) -> tuple[dict[str, str], float]:
    """The labels and value of one sample of the metrics file."""
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.name == "b24_image_exporter_" + name:
                return sample.labels, sample.value
    raise AssertionError(f"{name} not in the metrics file")


def run(tmp_path: Path, config: Path, *extra: str) -> tuple[int, dict[str, Any], Path]:
    """`run` through the CLI with the report and metrics outside the output."""
    report, metrics = tmp_path / "r.json", tmp_path / "m.prom"
    code = main(["-q", "run", "--config", str(config), "--report", str(report),
                 "--metrics-file", str(metrics), *extra])  # fmt: skip
    return code, json.loads(report.read_text()), metrics


def test_an_output_that_is_a_regular_file_exits_4_with_report_and_metrics(
    tmp_path: Path,
) -> None:
    catalog = catalog_of(2, 4)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path, portal.webhook_url, manifest, blocker)
        code, report, metrics = run(tmp_path, config)
        host = portal.base_url.removeprefix("http://")
        requests = portal.stats.http_requests
    assert code == 4
    assert report["exitCode"] == 4
    assert "cannot create" in report["abortedBy"] and "afile" in report["abortedBy"]
    assert requests == 0
    labels, value = metric(metrics, "last_run_exit_code")
    assert (labels, value) == ({"portal": host}, 4)


def test_a_read_only_output_exits_4_with_report_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = catalog_of(2, 4)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "ro"
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # The tests run as root, whom permissions do not stop: a read-only filesystem
        # answers every write under the output with EROFS.
        if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    out.mkdir()
    monkeypatch.setattr(os, "open", read_only)
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path, portal.webhook_url, manifest, out)
        code, report, metrics = run(tmp_path, config)
    assert code == 4
    assert report["exitCode"] == 4
    assert "Read-only file system" in report["abortedBy"]
    assert metric(metrics, "last_run_exit_code")[1] == 4
    assert metric(metrics, "last_run_success")[1] == 0


def test_an_unreachable_portal_exits_4_with_report_and_metrics(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manifest = write_manifest(tmp_path / "m.csv", [(1, 1), (1, 2), (2, 3)])
    webhook = f"http://127.0.0.1:{port}/rest/1/abcdef12/"
    config = write_config(tmp_path, webhook, manifest, tmp_path / "out")
    raw = yaml.safe_load(config.read_text())
    raw["retries"] = {"max_attempts": 1}
    config.write_text(yaml.safe_dump(raw))
    code, report, metrics = run(tmp_path, config)
    assert code == 4
    assert report["exitCode"] == 4
    assert "CONNECT_FAILED" in report["abortedBy"]
    assert "run again when the portal answers" in report["abortedBy"]
    assert metric(metrics, "last_run_exit_code") == ({"portal": f"127.0.0.1:{port}"}, 4)


def test_a_missing_manifest_exits_2_with_metrics_labelled_with_the_portal(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path, "https://example.bitrix24.com/rest/1/abcdef12/", tmp_path / "nope.csv", tmp_path
    )
    code, report, metrics = run(tmp_path, config)
    assert code == 2
    assert report["exitCode"] == 2
    assert "nope.csv" in report["abortedBy"]
    assert metric(metrics, "last_run_exit_code") == ({"portal": "example.bitrix24.com"}, 2)


def test_a_config_that_cannot_be_used_still_names_its_portal_to_the_monitor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B24_HOOK", "https://shop.bitrix24.com/rest/1/abcdef12/")
    config = tmp_path / "config.yaml"
    config.write_text("portal:\n  webhook_url: ${B24_HOOK}\nbatch_sise: 10\n")
    code, report, metrics = run(tmp_path, config)
    assert code == 2
    assert "batch_sise" in report["abortedBy"]
    assert metric(metrics, "last_run_exit_code") == ({"portal": "shop.bitrix24.com"}, 2)
    assert "abcdef12" not in report["abortedBy"] + metrics.read_text()


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--report", "cannot write the report"), ("--metrics-file", "cannot write the metrics file")],
)
def test_a_report_or_metrics_file_that_cannot_be_written_makes_a_clean_run_exit_not_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, message: str
) -> None:
    catalog = catalog_of(1, 2)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    blocker = tmp_path / "afile"
    blocker.write_text("")
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path, portal.webhook_url, manifest, tmp_path / "out")
        code = main(["run", "--config", str(config), flag, str(blocker / "file")])
    assert code == 4
    assert message in capsys.readouterr().err


def test_the_last_success_is_carried_over_a_failed_run(tmp_path: Path) -> None:
    catalog = catalog_of(1, 2)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path, portal.webhook_url, manifest, tmp_path / "out")
        assert run(tmp_path, config)[0] == 0
        metrics = tmp_path / "m.prom"
        first_success = metric(metrics, "last_success_timestamp_seconds")[1]
        first_run = metric(metrics, "last_run_timestamp_seconds")[1]
        (tmp_path / "m.csv").write_text("productId,id\n1,999999\n")
        assert run(tmp_path, config)[0] == 1
    assert first_success == first_run > 0
    assert metric(metrics, "last_success_timestamp_seconds")[1] == first_success
    assert metric(metrics, "last_run_success")[1] == 0


_FILL_DISK = """
import resource, signal, sys
from exporter.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_exits_4_with_report_and_metrics(tmp_path: Path) -> None:
    # A real process whose files may not grow past 40 KB: every image is bigger, the
    # report and the metrics are not.
    catalog = Catalog.generate(products=2, images=6, seed=8, image_size=(60_000, 90_000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    with portal_in_thread(catalog, PortalSettings(rps=None)) as portal:
        config = write_config(tmp_path, portal.webhook_url, manifest, out)
        proc = subprocess.run(
            [sys.executable, "-c", _FILL_DISK, "-q", "run", "--config", str(config),
             "--report", str(tmp_path / "r.json"), "--metrics-file", str(tmp_path / "m.prom")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert resource.RLIMIT_FSIZE  # the limit exists on this platform
    assert proc.returncode == 4, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exitCode"] == 4
    assert "File too large" in report["abortedBy"]
    assert metric(tmp_path / "m.prom", "last_run_exit_code")[1] == 4
    assert not [p for p in out.rglob("*") if p.is_file() and "partial" in p.name]
