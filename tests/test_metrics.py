"""The metrics file: valid Prometheus text format, the last run's figures, replaced atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import main
from exporter.jobs.metrics import render_metrics, write_metrics
from exporter.jobs.report import usage_error_report

from .support import FAST, catalog_of, portal_in_thread, write_manifest


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, parsed by the reference parser of the text format."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge"
        assert family.documentation
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def write_config(path: Path, webhook: str, manifest: Path) -> Path:
    raw = {
        "portal": {"webhook_url": webhook},
        "manifest": str(manifest),
        "output": {"dir": str(path.parent / "out")},
        "rate_limit": dict(FAST),
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_run_writes_metrics_that_parse_and_say_what_happened(tmp_path: Path) -> None:
    catalog = catalog_of(3, 12)
    manifest = write_manifest(tmp_path / "m.csv", [*catalog.pairs(), (1, 999_999)])
    metrics = tmp_path / "textfile" / "b24.prom"
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "c.yaml", portal.webhook_url, manifest)
        assert main(["-q", "run", "--config", str(config), "--metrics-file", str(metrics)]) == 1
        host = portal.base_url.removeprefix("http://")
    found = samples(metrics.read_text())
    portal_label = (("portal", host),)

    def value(name: str, **labels: str) -> float:
        key = tuple(sorted({"portal": host, **labels}.items()))
        return found[("b24_image_exporter_" + name, key)]

    assert value("last_run_success") == 0
    assert value("last_run_exit_code") == 1
    assert value("last_run_images", state="total") == 13
    assert value("last_run_images", state="exported") == 12
    assert value("last_run_images", state="failed") == 1
    assert value("last_run_requests", kind="download") == 12
    assert value("last_run_requests", kind="batch") == 1
    assert value("last_run_rate_limited") == 0
    assert value("last_run_bytes") > 0
    assert value("last_run_duration_seconds") > 0
    assert ("b24_image_exporter_last_run_timestamp_seconds", portal_label) in found


def test_a_run_that_cannot_start_still_tells_the_monitor(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("portal:\n  webhook_url: ${NOT_SET_FOR_THIS_TEST}\n")
    metrics = tmp_path / "b24.prom"
    assert main(["-q", "run", "--config", str(config), "--metrics-file", str(metrics)]) == 2
    found = samples(metrics.read_text())
    assert found[("b24_image_exporter_last_run_success", (("portal", ""),))] == 0
    assert found[("b24_image_exporter_last_run_exit_code", (("portal", ""),))] == 2


def test_label_values_are_escaped() -> None:
    report = usage_error_report("", "no manifest")
    report["portal"] = 'odd"host\\with\nnewline'
    found = samples(render_metrics(report, 1.5))
    labels = (("portal", 'odd"host\\with\nnewline'),)
    assert found[("b24_image_exporter_last_run_duration_seconds", labels)] == 1.5


def test_the_file_is_replaced_atomically(tmp_path: Path) -> None:
    metrics = tmp_path / "b24.prom"
    write_metrics(metrics, usage_error_report("", "no manifest"), 1.0)
    with metrics.open() as reader_of_the_old_file:
        old_inode = os.fstat(reader_of_the_old_file.fileno()).st_ino
        write_metrics(metrics, usage_error_report("", "no manifest"), 2.0)
        assert "duration_seconds{" in reader_of_the_old_file.read()  # still whole
    assert metrics.stat().st_ino != old_inode  # a new file took the name at once
    assert 'last_run_duration_seconds{portal=""} 2' in metrics.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["b24.prom"]  # no temporary left


def test_an_unwritable_metrics_path_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert write_metrics(blocker / "b24.prom", usage_error_report("", "no manifest"), 1.0) is False
    assert "cannot write the metrics file" in caplog.text
