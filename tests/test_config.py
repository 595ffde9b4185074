"""Configuration: YAML, ${ENV}, unknown keys, overrides, and the plain-http rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.config import load_config, parse_config
from exporter.errors import ConfigError

CODE = "s3cr3tw3bh00k"
WEBHOOK = f"https://example.bitrix24.com/rest/1/{CODE}/"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def parse(raw: dict[str, object], env: dict[str, str] | None = None) -> object:
    return parse_config(raw, base_dir=Path("/srv/b24"), env=env or {})


def problem_of(raw: dict[str, object], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(raw, env)
    return str(caught.value)


def test_minimal_config_gets_the_documented_defaults() -> None:
    config = parse_config({"portal": {"webhook_url": WEBHOOK}}, base_dir=Path("/srv"), env={})
    assert config.portal.base_url == "https://example.bitrix24.com"
    assert config.portal.host == "example.bitrix24.com"
    assert config.output.dir == Path("/srv/export")
    assert config.output.layout == "{productId}/{id}_{name}"
    assert config.rate_limit.requests_per_second == 2.0
    assert config.rate_limit.burst == 50
    assert config.rate_limit.downloads_share_limit is None  # auto
    assert config.batch_size == 50
    assert config.download_concurrency == 8
    assert config.retries.max_attempts == 6
    assert config.portal.timeout_seconds == 60.0
    assert config.report == Path("/srv/export/report.json")


def test_example_config_in_the_repository_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parent.parent / "config.example.yaml"
    config = load_config(example, env={"B24_WEBHOOK_URL": WEBHOOK})
    assert config.portal.webhook_url == WEBHOOK
    assert config.manifest == example.parent / "manifest.csv"


def test_env_reference_is_replaced_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "portal:\n  webhook_url: ${HOOK}\n")
    config = load_config(path, env={"HOOK": WEBHOOK})
    assert config.portal.webhook_url == WEBHOOK


def test_missing_env_variable_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "portal:\n  webhook_url: ${B24_WEBHOOK_URL}\n")
    with pytest.raises(ConfigError, match="environment variable B24_WEBHOOK_URL is not set"):
        load_config(path, env={})


def test_env_reference_inside_a_longer_value(tmp_path: Path) -> None:
    path = write(tmp_path, "portal:\n  webhook_url: https://${HOST}/rest/1/${CODE}/\n")
    config = load_config(path, env={"HOST": "example.bitrix24.com", "CODE": CODE})
    assert config.portal.webhook_url == WEBHOOK


def test_unknown_key_is_rejected_with_a_suggestion() -> None:
    message = problem_of({"portal": {"webhook_url": WEBHOOK}, "rate_limit": {"bust": 10}})
    assert "rate_limit.bust: unknown key (did you mean 'burst'?)" in message


def test_unknown_top_level_key_is_rejected() -> None:
    message = problem_of({"portal": {"webhook_url": WEBHOOK}, "concurency": {"downloads": 2}})
    assert "concurency: unknown key (did you mean 'concurrency'?)" in message


def test_every_problem_is_reported_at_once() -> None:
    message = problem_of(
        {"portal": {"webhook_url": WEBHOOK}, "batch_size": 80, "retries": {"max_attempts": 0}}
    )
    assert "batch_size: must be from 1 to 50" in message
    assert "retries.max_attempts: must be from 1 to 100" in message


def test_plain_http_to_a_remote_portal_is_refused() -> None:
    message = problem_of({"portal": {"webhook_url": f"http://example.bitrix24.com/rest/1/{CODE}/"}})
    assert "plain http:// to example.bitrix24.com" in message
    assert "allow_insecure_http" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.8.9.10"])
def test_plain_http_to_loopback_is_allowed(host: str) -> None:
    config = parse_config(
        {"portal": {"webhook_url": f"http://{host}:8024/rest/1/{CODE}/"}},
        base_dir=Path("/srv"),
        env={},
    )
    assert config.portal.base_url == f"http://{host}:8024"


def test_plain_http_is_allowed_when_the_user_says_so() -> None:
    raw = {
        "portal": {
            "webhook_url": f"http://intranet.example/rest/1/{CODE}/",
            "allow_insecure_http": True,
        }
    }
    config = parse_config(raw, base_dir=Path("/srv"), env={})
    assert config.portal.base_url == "http://intranet.example"


def test_webhook_url_without_user_and_code_is_refused() -> None:
    message = problem_of({"portal": {"webhook_url": "https://example.bitrix24.com/rest/"}})
    assert "must look like https://PORTAL/rest/USER_ID/CODE/" in message


def test_config_errors_never_show_the_webhook_code() -> None:
    bad = {"portal": {"webhook_url": f"http://example.bitrix24.com/rest/1/{CODE}/?x=1"}}
    assert CODE not in problem_of(bad)
    bad = {"portal": {"webhook_url": f"http://example.bitrix24.com/rest/1/{CODE}/"}}
    assert CODE not in problem_of(bad)


def test_missing_portal_is_an_error() -> None:
    assert "portal.webhook_url: required" in problem_of({})


def test_webhook_and_oauth_together_are_an_error() -> None:
    oauth = {
        "portal_url": "https://example.bitrix24.com",
        "access_token": "a" * 10,
        "refresh_token": "r" * 10,
        "client_id": "app.1",
        "client_secret": "c" * 10,
    }
    message = problem_of({"portal": {"webhook_url": WEBHOOK, "oauth": oauth}})
    assert "either webhook_url or oauth" in message


def test_oauth_config_needs_its_tokens() -> None:
    message = problem_of({"portal": {"oauth": {"portal_url": "https://example.bitrix24.com"}}})
    for key in ("access_token", "refresh_token", "client_id", "client_secret"):
        assert f"portal.oauth.{key}: required" in message


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"portal:\n  webhook_url: {WEBHOOK}\nmanifest: lists/m.csv\noutput:\n  dir: out\n",
    )
    config = load_config(path, env={})
    assert config.manifest == tmp_path / "lists/m.csv"
    assert config.output.dir == tmp_path / "out"
    assert config.report == tmp_path / "out/report.json"


def test_command_line_flags_override_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"portal:\n  webhook_url: {WEBHOOK}\nmanifest: m.csv\noutput:\n  dir: out\n"
        "report: r.json\n",
    )
    config = load_config(
        path,
        env={},
        manifest=Path("/x/other.csv"),
        output_dir=Path("/x/out"),
        report=Path("/x/rep.json"),
    )
    assert config.manifest == Path("/x/other.csv")
    assert config.output.dir == Path("/x/out")
    assert config.report == Path("/x/rep.json")


def test_output_override_moves_the_default_report_with_it(tmp_path: Path) -> None:
    path = write(tmp_path, f"portal:\n  webhook_url: {WEBHOOK}\n")
    config = load_config(path, env={}, output_dir=Path("/x/out"))
    assert config.report == Path("/x/out/report.json")


def test_output_override_moves_a_report_kept_in_the_output_folder(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"portal:\n  webhook_url: {WEBHOOK}\noutput:\n  dir: ./export\n"
        "report: ./export/reports/last.json\n",
    )
    config = load_config(path, env={}, output_dir=Path("/x/out"))
    assert config.report == Path("/x/out/reports/last.json")


def test_output_override_leaves_a_report_kept_elsewhere(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"portal:\n  webhook_url: {WEBHOOK}\noutput:\n  dir: ./export\nreport: /var/log/b24.json\n",
    )
    config = load_config(path, env={}, output_dir=Path("/x/out"))
    assert config.report == Path("/var/log/b24.json")


def test_rate_and_burst_flags_override_rate_limit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"portal:\n  webhook_url: {WEBHOOK}\nrate_limit:\n  requests_per_second: 2\n  burst: 50\n",
    )
    config = load_config(path, env={}, rate=5.0, burst=250)
    assert (config.rate_limit.requests_per_second, config.rate_limit.burst) == (5.0, 250)


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        ({"rate": 0.0}, "--rate: must be a number of at least 0.01"),
        ({"rate": float("nan")}, "--rate: must be a number of at least 0.01"),
        ({"burst": 0}, "--burst: must be ≥ 1"),
    ],
)
def test_rate_and_burst_flags_have_the_bounds_of_the_file(
    tmp_path: Path, flags: dict[str, Any], problem: str
) -> None:
    path = write(tmp_path, f"portal:\n  webhook_url: {WEBHOOK}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={}, **flags)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        ("{productId}/{nmae}", "unknown field {nmae}"),
        ("/abs/{id}", "must be a relative path"),
        ("../{id}", "'..' path parts are not allowed"),
        ("{productId}/static", "must contain at least one field"),
        ("{id:>5}", "takes no format options"),
        ("{id", "output.layout"),
    ],
)
def test_bad_layout_is_refused(layout: str, problem: str) -> None:
    assert problem in problem_of({"portal": {"webhook_url": WEBHOOK}, "output": {"layout": layout}})


@pytest.mark.parametrize(
    ("section", "key", "value", "problem"),
    [
        ("rate_limit", "requests_per_second", "fast", "must be a number"),
        ("rate_limit", "burst", 2.5, "must be a whole number"),
        ("rate_limit", "downloads_share_limit", "maybe", "must be auto, true or false"),
        ("concurrency", "downloads", 0, "must be from 1 to 256"),
    ],
)
def test_bad_values_are_named(section: str, key: str, value: object, problem: str) -> None:
    message = problem_of({"portal": {"webhook_url": WEBHOOK}, section: {key: value}})
    assert f"{section}.{key}: {problem}" in message


def test_numbers_from_environment_strings_are_accepted() -> None:
    raw = {"portal": {"webhook_url": WEBHOOK}, "rate_limit": {"requests_per_second": "${RPS}"}}
    config = parse_config(raw, base_dir=Path("/srv"), env={"RPS": "5"})
    assert config.rate_limit.requests_per_second == 5.0


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "portal:\n  webhook_url: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+"):
        load_config(path, env={})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml", env={})


def test_a_missing_env_variable_is_the_only_complaint_about_its_key() -> None:
    message = problem_of({"portal": {"webhook_url": "${NOT_SET_ANYWHERE}"}})
    assert message.count("portal.webhook_url") == 1


@pytest.mark.parametrize("value", [None, ""])
def test_an_empty_webhook_url_is_named(value: str | None) -> None:
    assert "portal.webhook_url: must not be empty" in problem_of({"portal": {"webhook_url": value}})


def test_an_env_variable_that_is_set_but_empty_is_named() -> None:
    message = problem_of({"portal": {"webhook_url": "${HOOK}"}}, env={"HOOK": ""})
    assert "portal.webhook_url: must not be empty" in message


def test_an_s3_output_from_the_file_or_the_command_line_reads_output_s3() -> None:
    env = {"XDG_CACHE_HOME": "/cache"}
    s3 = {"endpoint_url": "https://storage.example.com", "region": "eu-central-1"}
    in_file = parse_config(
        {
            "portal": {"webhook_url": WEBHOOK},
            "output": {"dir": "s3://b24-backups/shop-a", "s3": s3},
        },
        base_dir=Path("/srv"),
        env=env,
    )
    # A folder in the file, its store settings ready, and the URL given on the command line.
    overridden = parse_config(
        {"portal": {"webhook_url": WEBHOOK}, "output": {"dir": "./export", "s3": s3}},
        base_dir=Path("/srv"),
        env=env,
        output_dir="s3://b24-backups/shop-a/",
    )
    for config in (in_file, overridden):
        store = config.output.store
        assert store is not None
        assert (store.url, store.bucket, store.prefix) == (
            "s3://b24-backups/shop-a",
            "b24-backups",
            "shop-a",
        )
        assert (store.endpoint_url, store.region) == (s3["endpoint_url"], s3["region"])
        assert config.output.dir.is_relative_to("/cache/b24-image-exporter/stores")
    with pytest.raises(ConfigError, match=r"output\.s3: only for an s3:// output\.dir"):
        parse_config(
            {"portal": {"webhook_url": WEBHOOK}, "output": {"dir": "./export", "s3": s3}},
            base_dir=Path("/srv"),
            env=env,
        )
