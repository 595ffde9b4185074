"""The command line's conventions, as in rclone and restic: short forms, a default config,
help without arguments, unknown flags named as such, flags over the file."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from exporter import __version__
from exporter.cli import main
from exporter.simulator import Catalog

from .support import exported_files, portal_in_thread, write_manifest
from .test_cli import write_config


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.generate(products=2, images=4, seed=7, image_size=(200, 1000))


def test_short_forms_c_and_o_are_config_and_output(tmp_path: Path, catalog: Catalog) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        assert main(["-q", "run", "-c", str(config), "-o", str(tmp_path / "short")]) == 0
    assert len(exported_files(tmp_path / "short")) == 4


def test_n_is_the_plain_dry_run(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        assert main(["run", "-c", str(config), "-n"]) == 0
        assert portal.stats.http_requests == 0
    assert capsys.readouterr().out.startswith("dry run: nothing was downloaded or written\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["-V"], ["--version"], ["run", "-V"]])
def test_version_has_a_short_form_on_every_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"b24-image-exporter {__version__}\n"


def test_demo_takes_o_for_its_output(tmp_path: Path) -> None:
    assert main(["-q", "demo", "--images", "3", "-o", str(tmp_path / "d")]) == 0
    assert len(exported_files(tmp_path / "d")) == 3


def test_run_takes_config_yaml_of_the_working_folder(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    monkeypatch.chdir(tmp_path)
    with portal_in_thread(catalog) as portal:
        write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        assert main(["-q", "run"]) == 0
    assert len(exported_files(tmp_path / "out")) == 4


def test_discover_takes_config_yaml_of_the_working_folder(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with portal_in_thread(catalog) as portal:
        write_config(tmp_path / "config.yaml", portal.webhook_url, tmp_path / "m.csv")
        assert main(["-q", "discover", "--all", "--out", "found.csv"]) == 0
    assert len((tmp_path / "found.csv").read_text().splitlines()) == 1 + 4


def test_without_config_or_config_yaml_the_error_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["discover", "--all", "--out", "m.csv"]) == 2
    err = capsys.readouterr().err
    assert "-c/--config FILE" in err
    assert "config.yaml in the current folder" in err


def test_no_arguments_print_the_help_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: b24-image-exporter")
    assert "commands:" in captured.out
    assert captured.err == ""


def usage_error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The last line argparse printed for a command line it refused with exit 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


def test_a_mistyped_flag_is_named_as_unknown_with_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = usage_error_of(["run", "--conifg", "x"], capsys)
    assert line == (
        "b24-image-exporter run: error: unrecognized arguments: --conifg (did you mean --config?)"
    )


def test_an_unknown_flag_is_reported_before_a_missing_argument(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = usage_error_of(["discover", "--conifg", "x"], capsys)  # neither --all nor --product
    assert "unrecognized arguments: --conifg" in line
    assert "required" not in line


def test_a_prefix_of_a_flag_is_no_abbreviation(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error_of(["run", "--con", "config.yaml"], capsys)
    assert "unrecognized arguments: --con (did you mean --config?)" in line


def test_short_flags_still_combine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["-vq", "run"]) == 2  # parsed: only the missing config stops it
    assert "unrecognized" not in capsys.readouterr().err


def test_rate_and_burst_flags_set_the_pace_of_the_run(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        assert main(["run", "-c", str(config), "-n", "--rate", "5", "--burst", "10"]) == 0
    assert "estimated time at 5 req/s, burst 10:" in capsys.readouterr().out


def test_discover_refuses_a_rate_below_the_bound_before_any_request(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, tmp_path / "m.csv")
        argv = ["discover", "-c", str(config), "--all", "--out", str(tmp_path / "found.csv")]
        assert main([*argv, "--rate", "0"]) == 2
        assert portal.stats.http_requests == 0
    assert "--rate: must be a number of at least 0.01" in capsys.readouterr().err


def test_output_flag_takes_the_report_along(tmp_path: Path, catalog: Catalog) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        assert main(["-q", "run", "-c", str(config), "-o", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.json").is_file()
    assert not (tmp_path / "out").exists()


def test_discover_writes_the_configs_manifest_without_out(tmp_path: Path, catalog: Catalog) -> None:
    manifest = tmp_path / "lists" / "manifest.csv"
    manifest.parent.mkdir()
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        assert main(["-q", "discover", "-c", str(config), "--all"]) == 0
    assert len(manifest.read_text().splitlines()) == 1 + 4


def test_discover_without_out_or_a_manifest_in_the_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("portal:\n  webhook_url: https://example.bitrix24.com/rest/1/abcd1234/\n")
    assert main(["discover", "-c", str(config), "--all"]) == 2
    assert "discover needs --out MANIFEST" in capsys.readouterr().err


def test_an_auth_error_is_said_once_with_its_remedy(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        wrong = portal.webhook_url.replace(portal.portal.settings.webhook_code, "nope0000")
        config = write_config(tmp_path / "config.yaml", wrong, manifest)
        assert main(["run", "-c", str(config)]) == 3
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert said.count("NO_AUTH_FOUND") == 1
    assert (
        "aborted: NO_AUTH_FOUND: Wrong authorization data (HTTP 401); "
        "what to do: copy the webhook URL again from Bitrix24"
    ) in captured.err


def test_discover_says_an_auth_error_once_with_its_remedy(
    tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    with portal_in_thread(catalog) as portal:
        wrong = portal.webhook_url.replace(portal.portal.settings.webhook_code, "nope0000")
        config = write_config(tmp_path / "config.yaml", wrong, tmp_path / "m.csv")
        assert main(["discover", "-c", str(config), "--all"]) == 3
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("NO_AUTH_FOUND") == 1
    assert "what to do: copy the webhook URL again from Bitrix24" in captured.err


def test_simulate_on_a_busy_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["simulate", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: port {port} is in use\n"
