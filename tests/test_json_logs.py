"""`--log-format json`: every line on stdout and stderr is one JSON object, so `jq` reads a
cron log made with `>> export.log 2>&1` whole — summaries and start-up errors included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.simulator import Catalog

from .support import exported_files, portal_in_thread, write_manifest
from .test_cli import write_config

KEYS = {"ts", "level", "logger", "message"}


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Every non-empty line written so far, each parsed as one JSON log object."""
    captured = capsys.readouterr()
    entries = []
    for line in (captured.out + captured.err).splitlines():
        if line.strip():
            entry = json.loads(line)
            assert entry.keys() >= KEYS, line
            entries.append(entry)
    assert entries
    return entries


def by_logger(entries: list[dict[str, Any]], logger: str) -> dict[str, Any]:
    [entry] = [entry for entry in entries if entry["logger"] == logger]
    return entry


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.generate(products=3, images=6, seed=5, image_size=(200, 1000))


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A finished export (the demo's) to verify."""
    out = tmp_path / "export"
    assert main(["-q", "demo", "--images", "6", "--output", str(out)]) == 0
    return out


def test_a_run_with_a_missing_image_logs_its_summary_as_json(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [*catalog.pairs(), (1, 999_999)])
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        code = main(["--log-format", "json", "run", "--config", str(config)])
    assert code == 1
    summary = by_logger(json_lines(capsys), "exporter.summary")
    assert summary["level"] == "warning"
    assert summary["message"].startswith("images: 7 total, 6 exported, 0 already done, 1 failed")
    assert summary["counts"] == {"total": 7, "exported": 6, "skipped": 0, "failed": 1, "gone": 0}
    assert summary["requests"]["download"] == 6
    assert summary["exitCode"] == 1
    assert summary["report"] == str(tmp_path / "out" / "report.json")


def test_a_missing_manifest_is_one_json_error(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, tmp_path / "no.csv")
        assert main(["run", "--config", str(config), "--log-format", "json"]) == 2
    error = by_logger(json_lines(capsys), "exporter.cli")
    assert error["level"] == "error"
    assert "cannot read the manifest" in error["message"]
    assert error["exitCode"] == 2


def test_an_unknown_config_key_is_one_json_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "config.yaml", "https://example.bitrix24.com/rest/1/abcd1234/",
                          tmp_path / "m.csv", batch_sise=10)  # fmt: skip
    assert main(["--log-format=json", "run", "--config", str(config)]) == 2
    [error] = json_lines(capsys)
    assert "batch_sise: unknown key (did you mean 'batch_size'?)" in error["message"]
    assert "abcd1234" not in json.dumps(error)


def test_a_usage_error_of_the_parser_is_one_json_line_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--log-format", "json", "run", "--conifg", "x"])
    assert exit_info.value.code == 2
    [error] = json_lines(capsys)
    assert error["level"] == "error"
    assert error["message"].startswith("b24-image-exporter run: ")
    assert error["usage"].startswith("usage: b24-image-exporter run")
    assert error["exitCode"] == 2


def test_the_dry_run_plan_is_one_json_line_with_its_figures(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        assert main(["--log-format", "json", "run", "--config", str(config), "--dry-run"]) == 0
    plan = by_logger(json_lines(capsys), "exporter.plan")
    assert plan["message"].startswith("dry run: nothing was downloaded or written")
    assert plan["images"] == {"named": 6, "done": 0, "toExport": 6}
    assert plan["requests"]["downloads"] == 6
    assert plan["exitCode"] == 0


def test_verify_of_a_clean_export_is_one_json_line(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--log-format", "json", "verify", str(export)]) == 0
    [result] = json_lines(capsys)
    assert result["logger"] == "exporter.verify"
    assert result["message"].endswith(": ok")
    assert (result["ok"], result["checked"], result["findings"]) == (True, 6, [])


def test_verify_findings_are_fields_of_its_json_line(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = exported_files(export)[0]
    victim.write_bytes(b"\x00" + victim.read_bytes()[1:])
    assert main(["--log-format", "json", "verify", str(export)]) == 1
    [result] = json_lines(capsys)
    assert result["level"] == "warning"
    [finding] = result["findings"]
    assert finding["kind"] == "corrupt"
    assert finding["path"] == victim.relative_to(export).as_posix()


def test_verify_json_prints_its_document_on_one_line(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--log-format", "json", "verify", str(export), "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["checked"] == 6


def test_discover_logs_what_it_found_as_json(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "all.csv"
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, tmp_path / "m.csv")
        argv = ["--log-format", "json", "discover", "--config", str(config), "--all"]
        assert main([*argv, "--out", str(out)]) == 0
    found = by_logger(json_lines(capsys), "exporter.discover")
    assert found["message"].startswith("discovered 6 images of 3 products")
    assert (found["images"], found["products"], found["manifest"]) == (6, 3, str(out))


def test_the_demo_writes_only_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--log-format", "json", "demo", "--images", "5", "--no-progress"]
    assert main([*argv, "--output", str(tmp_path / "demo")]) == 0
    entries = json_lines(capsys)
    assert by_logger(entries, "exporter.summary")["counts"]["exported"] == 5
    assert [e["message"].split(":")[0] for e in entries if e["logger"] == "exporter.demo"] == [
        "the simulated portal allows 20 requests/s after a burst of 20",
        "files",
    ]


def test_simulate_announces_its_webhook_url_as_json(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--log-format", "json", "simulate", "--images", "8",
         "--products", "2", "--manifest-out", str(tmp_path / "m.csv")],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        entries = [json.loads(proc.stdout.readline()) for _ in range(4)]
        assert all(entry.keys() >= KEYS for entry in entries)
        [url] = [entry["webhookUrl"] for entry in entries if "webhookUrl" in entry]
        assert url.startswith("http://127.0.0.1:") and "/rest/1/" in url
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_text_mode_summary_has_no_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--images", "5", "--no-progress", "--output", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("images: 5 total, 5 exported, 0 already done, 0 failed\n")
    assert "{" not in out


def test_check_says_each_check_and_its_verdict_as_json(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        assert main(["--log-format", "json", "check", "--config", str(config)]) == 0
    entries = json_lines(capsys)
    checks = [e for e in entries if e["logger"] == "exporter.check" and "check" in e]
    assert {e["check"] for e in checks} >= {"configuration", "manifest", "output", "portal"}
    [verdict] = [e for e in entries if e["logger"] == "exporter.check" and "exitCode" in e]
    assert verdict["exitCode"] == 0


def test_prune_says_what_it_removed_as_json(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = ["--log-format", "json", "prune", str(export), "--gone-for", "0", "--dry-run"]
    assert main(argv) == 0
    [summary] = json_lines(capsys)
    assert (summary["removed"], summary["dryRun"]) == (0, True)
