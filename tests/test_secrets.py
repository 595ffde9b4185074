"""Credentials never leak: not in stdout, stderr, log lines, reports, sidecars or metrics.

Every scenario runs the real CLI with `-v` (per-request detail) against the simulated
portal and goes down a path that logs: failed images, retries of every fault kind,
stale links, the operating limit, OAuth refreshes, discovery warnings, a dry run,
verify, a wrong webhook code. Then everything the runs printed or wrote is searched
for the webhook code, the OAuth tokens and client secret, and for signed-link parts.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import main
from exporter.simulator import Catalog, FaultSettings, PortalSettings

from .support import FAST, portal_in_thread, write_manifest

LINK_PARTS = ("token=", "auth=", "catalog%7C", "catalog|", "/download/?", "download.json?")


class Outputs:
    """What a series of CLI runs printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.texts: list[str] = []
        self.json_logs: list[str] = []

    def run(self, *argv: str) -> int:
        code = main(["-v", *argv])
        captured = self.capsys.readouterr()
        self.texts += [captured.out, captured.err]
        if "--log-format" in argv:
            self.json_logs += [line for line in captured.err.splitlines() if line.strip()]
        return code


def write_config(path: Path, portal: dict[str, Any], manifest: Path, **extra: Any) -> Path:
    raw = {
        "portal": portal,
        "manifest": str(manifest),
        "output": {"dir": str(path.with_suffix(""))},
        "rate_limit": dict(FAST),
        "retries": {"max_attempts": 3},
        **extra,
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def files_written(root: Path, *, but: tuple[Path, ...] = ()) -> list[str]:
    """Everything under root except the test's own configs and the files in `but`."""
    return [
        p.read_bytes().decode("utf-8", errors="replace")
        for p in root.rglob("*")
        if p.is_file() and p.suffix != ".yaml" and p not in but
    ]


def assert_clean(texts: list[str], secrets: list[str]) -> None:
    everything = "\n".join(texts)
    for secret in secrets:
        assert secret not in everything
    for part in LINK_PARTS:
        assert part not in everything, part


def test_webhook_runs_down_every_logging_path_leak_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = Catalog.generate(products=4, images=14, seed=2, image_size=(200, 2000))
    denied = catalog.product_ids()[0]
    faults = FaultSettings(seed=4, error_500=0.15, drop=0.1, truncate=0.1, html=0.1)
    settings = PortalSettings(
        rps=None,
        denied_products=frozenset({denied}),
        faults=faults,
        operating_cost=0.1,
        operating_limit=1.0,  # one pause, on the first run
        operating_window=1.0,
    )
    rows = [*catalog.pairs(), (2, 424242), (9090, None)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    out = Outputs(capsys)
    with portal_in_thread(catalog, settings) as portal:
        code = settings.webhook_code
        hook = {"webhook_url": portal.webhook_url}
        config = write_config(tmp_path / "a.yaml", hook, manifest)
        metrics = tmp_path / "a.prom"
        out.run("run", "--config", str(config), "--metrics-file", str(metrics))
        calmer = replace(settings, faults=FaultSettings(), operating_cost=0.0)
        portal.portal.settings = calmer
        out.run("--log-format", "json", "run", "--config", str(config), "--force")
        out.run("run", "--config", str(config), "--dry-run=metadata")
        out.run("verify", "--output", str(tmp_path / "a"))
        discovered = tmp_path / "found.csv"
        out.run("discover", "--config", str(config), "--all", "--out", str(discovered))
        out.run("discover", "--config", str(config), "--product", "9090", "--out",
                str(tmp_path / "none.yaml"))  # fmt: skip
        # Links that are stale at once: refreshed once, then the image fails.
        portal.portal.settings = PortalSettings(
            rps=None, webhook_code=code, secret=settings.secret, faults=FaultSettings(link_ttl=1e-6)
        )
        stale = write_config(tmp_path / "b.yaml", hook, manifest)
        out.run("--log-format", "json", "run", "--config", str(stale))
        wrong = {"webhook_url": portal.webhook_url.replace(code, "wrongcode77")}
        wrong_config = write_config(tmp_path / "c.yaml", wrong, manifest)
        assert out.run("run", "--config", str(wrong_config)) == 3
    logged = "\n".join(out.texts)
    for path in ("failed", "retrying", "operating time limit", "download link refused",
                 "would fail", "NO_AUTH_FOUND", "images not listed"):  # fmt: skip
        assert path in logged, path  # each path did run and log
    assert out.json_logs
    for line in out.json_logs:
        assert set(json.loads(line)) >= {"ts", "level", "logger", "message"}
    assert_clean([*out.texts, *files_written(tmp_path)], [code, "wrongcode77"])


def test_oauth_runs_leak_no_token_or_client_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = Catalog.generate(products=2, images=6, seed=2, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = Outputs(capsys)
    # Tokens that expire at once: a refresh, then the refreshed token is refused too.
    settings = PortalSettings(rps=None, faults=FaultSettings(token_ttl=1e-6))
    with portal_in_thread(catalog, settings) as portal:
        initial = [settings.access_token, settings.refresh_token, settings.client_secret]
        token_file = tmp_path / "tokens.json"
        oauth = {
            "oauth": {
                "portal_url": portal.base_url,
                "access_token": settings.access_token,
                "refresh_token": settings.refresh_token,
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
                "token_url": portal.token_url,
                "token_file": str(token_file),
            }
        }
        config = write_config(tmp_path / "a.yaml", oauth, manifest)
        assert out.run("--log-format", "json", "run", "--config", str(config)) == 3
        refreshed = [portal.portal.current_access_token, portal.portal.current_refresh_token]
        bad = dict(oauth["oauth"], refresh_token="not-the-refresh-token")
        token_file.unlink()
        config = write_config(tmp_path / "b.yaml", {"oauth": bad}, manifest)
        assert out.run("run", "--config", str(config)) == 3
    logged = "\n".join(out.texts)
    assert "OAuth access token refreshed" in logged
    assert "invalid_grant" in logged
    assert_clean([*out.texts, *files_written(tmp_path)], [*initial, *refreshed])
