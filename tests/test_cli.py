"""The command line as a user meets it: exit codes, messages, summaries, --help."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter import cli
from exporter.cli import main
from exporter.simulator import Catalog
from exporter.units import format_duration

from .support import FAST, exported_files, portal_in_thread, write_manifest


def write_config(path: Path, webhook_url: str, manifest: Path, **extra: object) -> Path:
    raw: dict[str, object] = {
        "portal": {"webhook_url": webhook_url},
        "manifest": str(manifest),
        "output": {"dir": str(path.parent / "out")},
        "rate_limit": dict(FAST),
    }
    raw.update(extra)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.generate(products=4, images=12, seed=11, image_size=(200, 2000))


def test_run_exports_and_prints_a_summary(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        code = main(["run", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0
    assert "12 total, 12 exported, 0 already done, 0 failed" in out
    assert f"report: {tmp_path / 'out' / 'report.json'}" in out
    assert len(exported_files(tmp_path / "out")) == 12


def test_run_with_missing_images_exits_1(tmp_path: Path, catalog: Catalog) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [*catalog.pairs(), (1, 999_999)])
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        assert main(["-q", "run", "--config", str(config)]) == 1


def test_run_with_a_wrong_webhook_code_exits_3(tmp_path: Path, catalog: Catalog) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        wrong = portal.webhook_url.replace(portal.portal.settings.webhook_code, "nope0000")
        config = write_config(tmp_path / "config.yaml", wrong, manifest)
        assert main(["-q", "run", "--config", str(config)]) == 3


def test_flags_override_manifest_output_and_report(tmp_path: Path, catalog: Catalog) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs()[:3])
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, tmp_path / "none.csv")
        code = main(
            ["-q", "run", "--config", str(config), "--manifest", str(manifest),
             "--output", str(tmp_path / "elsewhere"), "--report", str(tmp_path / "r.json")]
        )  # fmt: skip
    assert code == 0
    assert len(exported_files(tmp_path / "elsewhere")) == 3
    assert json.loads((tmp_path / "r.json").read_text())["counts"]["exported"] == 3


def usage_error(
    tmp_path: Path,
    catalog: Catalog,
    capsys: pytest.CaptureFixture[str],
    *,
    rows: list[tuple[int, int | None]] | None = None,
    manifest_text: str | None = None,
    webhook: str | None = None,
    **extra: object,
) -> str:
    """Run with a mistake; assert exit 2 and that no request reached the portal."""
    manifest = tmp_path / "m.csv"
    if manifest_text is not None:
        manifest.write_text(manifest_text, encoding="utf-8")
    else:
        write_manifest(manifest, rows if rows is not None else catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(
            tmp_path / "config.yaml", webhook or portal.webhook_url, manifest, **extra
        )
        code = main(["run", "--config", str(config)])
        stats = portal.stats
    assert code == 2
    assert stats.http_requests == 0
    return capsys.readouterr().err


def test_bad_manifest_row_exits_2_naming_the_line_before_any_request(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(tmp_path, catalog, capsys, manifest_text="productId,id\n1,1001\n2,abc\n")
    assert "m.csv:3:" in err
    assert 'id "abc" is not a positive integer' in err


def test_unknown_config_key_exits_2_before_any_request(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(tmp_path, catalog, capsys, batch_sise=10)
    assert "batch_sise: unknown key (did you mean 'batch_size'?)" in err


def test_missing_env_variable_exits_2_naming_it(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(tmp_path, catalog, capsys, webhook="${B24_TEST_UNSET_HOOK}")
    assert "environment variable B24_TEST_UNSET_HOOK is not set" in err


def test_plain_http_to_a_remote_host_exits_2(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(
        tmp_path, catalog, capsys, webhook="http://portal.example.com/rest/1/abcdef123/"
    )
    assert "plain http:// to portal.example.com" in err
    assert "abcdef123" not in err


def test_missing_manifest_file_exits_2(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, tmp_path / "no.csv")
        assert main(["run", "--config", str(config)]) == 2
        assert portal.stats.http_requests == 0
    assert "cannot read the manifest" in capsys.readouterr().err


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_run_without_config_flag_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.yaml to fall back on
    assert main(["run"]) == 2
    assert "--config" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "verify", "demo", "simulate"])
def test_every_command_has_help_with_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text.split("options:")[-1]
    assert f"b24-image-exporter {command}" in text


def test_demo_exports_images_and_sidecars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", "--images", "15", "--output", str(tmp_path / "demo")])
    out = capsys.readouterr().out
    assert code == 0
    files = exported_files(tmp_path / "demo")
    assert len(files) == 15
    assert all(f.with_name(f.name + ".json").exists() for f in files)
    assert "15 exported" in out
    assert "refused 0 with QUERY_LIMIT_EXCEEDED" in out


def test_python_dash_m_runs_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("b24-image-exporter ")


def test_simulate_serves_until_interrupted_and_prints_its_webhook_url(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "simulate", "--images", "20", "--products", "4",
         "--manifest-out", str(manifest), "--faults", "500=0.1,seed=3"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        url = next(line.split()[-1] for line in lines if line.startswith("webhook URL:"))
        assert url.startswith("http://127.0.0.1:") and "/rest/1/" in url
        assert len(manifest.read_text().splitlines()) == 21
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_simulate_refuses_a_bad_fault_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--faults", "explode=1"]) == 2
    assert "Accepted" in capsys.readouterr().err


def test_verify_exits_0_on_a_clean_export_and_1_naming_a_corrupt_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--images", "6", "--output", str(out)]) == 0
    assert main(["verify", "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")
    victim = exported_files(out)[0]
    victim.write_bytes(b"\x00" + victim.read_bytes()[1:])
    assert main(["verify", "--output", str(out), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    [finding] = report["findings"]
    assert finding["kind"] == "corrupt"
    assert finding["path"] == victim.relative_to(out).as_posix()


def test_verify_of_a_missing_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--output", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_an_internal_error_is_reported_briefly_and_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from exporter.jobs.export import ExportJob

    async def explode(self: ExportJob) -> None:
        raise RuntimeError("bug near https://example.bitrix24.com/rest/1/s3cr3tc0de/batch")

    monkeypatch.setattr(ExportJob, "run", explode)
    manifest = write_manifest(tmp_path / "m.csv", [(1, 2)])
    config = write_config(tmp_path / "c.yaml", "https://example.bitrix24.com/rest/1/s3cr3tc0de/",
                          manifest)  # fmt: skip
    assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err
    assert "RuntimeError" in err
    assert "s3cr3tc0de" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not installed on Windows")
def test_commands_run_on_uvloop_where_it_is_installed() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert cli.HAVE_UVLOOP  # a dependency everywhere but Windows
    assert cli.Runner(progress=False).run(loop_module).startswith("uvloop")


def test_the_demo_says_its_burst_apart_from_its_rate_and_the_time_on_a_real_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--images", "120", "--output", str(tmp_path / "d"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("the simulated portal"))
    assert "after a burst of 20" in line
    assert "(the burst at once, then " in line
    served = int(line.split("it served ")[1].split()[0])
    # A real portal's default plan: 48 of its burst of 50 at once, then 2 a second.
    expected = format_duration((served - 48) / 2)
    assert line.endswith(
        f"default plan (2 requests/s, burst 50) the same job takes about {expected}"
    )
