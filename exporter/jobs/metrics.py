"""The end of a run as Prometheus metrics, for node_exporter's textfile collector.

Written at the end of every run (also a failed or interrupted one) in the Prometheus
text format, replacing the previous file atomically, so the collector never reads half
a file. Every value describes the last run; the `portal` label tells portals apart
when several exports share one collector folder.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from exporter.atomic import write_atomic_sync

log = logging.getLogger(__name__)

PREFIX = "b24_image_exporter_"


def render_metrics(
    report: dict[str, Any], duration_seconds: float, last_success: float = 0.0
) -> str:
    """The Prometheus text exposition of a run's report; `last_success` is when an earlier
    run last exited 0 (0 for never), kept when this one did not."""
    counts, requests = report["counts"], report["requests"]
    finished = datetime.fromisoformat(report["finishedAt"].replace("Z", "+00:00"))
    if report["exitCode"] == 0:
        last_success = finished.timestamp()
    gauges: list[tuple[str, str, float, dict[str, str]]] = [
        ("last_run_timestamp_seconds", "Unix time the last run finished.",
         finished.timestamp(), {}),
        ("last_success_timestamp_seconds",
         "Unix time a run last left every image exported (exit 0); 0 for never.",
         last_success, {}),
        ("last_run_success", "1 if the last run left every image exported (exit 0), else 0.",
         1.0 if report["exitCode"] == 0 else 0.0, {}),
        ("last_run_exit_code", "Exit code of the last run.", report["exitCode"], {}),
        ("last_run_duration_seconds", "Wall time of the last run.", duration_seconds, {}),
        ("last_run_bytes", "Bytes downloaded by the last run.", report.get("bytes", 0), {}),
    ]  # fmt: skip
    images = [
        (state, counts.get(state, 0))
        for state in ("total", "exported", "skipped", "failed", "gone")
    ]
    sent = [(kind, requests[kind]) for kind in ("rest", "batch", "download")]
    lines: list[str] = []
    portal = {"portal": str(report.get("portal", ""))}
    for name, help_text, value, labels in gauges:
        lines += _family(name, help_text, [({**portal, **labels}, value)])
    lines += _family(
        "last_run_images",
        "Images of the last run by state (skipped: already done before it; gone: found gone"
        " from the portal by it).",
        [({**portal, "state": state}, value) for state, value in images],
    )
    lines += _family(
        "last_run_requests",
        "HTTP requests the last run sent to the portal by kind (rest includes batch).",
        [({**portal, "kind": kind}, value) for kind, value in sent],
    )
    lines += _family(
        "last_run_rate_limited",
        "503 QUERY_LIMIT_EXCEEDED answers in the last run.",
        [(portal, requests["rateLimited"])],
    )
    lines += _family(
        "last_run_retries",
        "Requests sent again after a transient failure in the last run.",
        [(portal, requests["retried"])],
    )
    return "\n".join(lines) + "\n"


def write_metrics(path: Path, report: dict[str, Any], duration_seconds: float) -> bool:
    """Replace the metrics file atomically, carrying the last success over from the file
    it replaces; a failure is logged, not raised."""
    text = render_metrics(report, duration_seconds, _last_success_in(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_sync(path, text.encode("utf-8"))
    except OSError as exc:
        log.error("cannot write the metrics file %s: %s", path, exc.strerror)
        return False
    return True


def _last_success_in(path: Path) -> float:
    """The last-success time an earlier run wrote into the metrics file (0 if none)."""
    name = PREFIX + "last_success_timestamp_seconds"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0.0
    for line in lines:
        if line.startswith(name + "{"):
            try:
                return float(line.rpartition(" ")[2])
            except ValueError:
                return 0.0
    return 0.0


def _family(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> list[str]:
    full = PREFIX + name
    lines = [f"# HELP {full} {help_text}", f"# TYPE {full} gauge"]
    for labels, value in samples:
        rendered = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
        lines.append(f"{full}{{{rendered}}} {_number(value)}")
    return lines


def _escape(value: str) -> str:
    """Label values escape backslash, double quote and newline (text format rules)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)
