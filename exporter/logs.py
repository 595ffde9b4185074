"""What the exporter writes for a person or a log reader: its log on stderr, and the
answers and errors of its commands through one `Console`; human text or JSON lines,
always through the redactor."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from exporter.redact import RedactingFormatter, redact

LOGGER_NAME = "exporter"

_PLAIN_LAST_RESORT = logging.lastResort


def log_entry(
    created: float, level: str, logger: str, message: str, fields: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One JSON log line's object: ts, level, logger, message, then any fields."""
    return {
        "ts": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
        **(fields or {}),
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line with stable keys: ts, level, logger, message[, error]."""

    def format(self, record: logging.LogRecord) -> str:
        entry = log_entry(
            record.created, record.levelname.lower(), record.name, record.getMessage()
        )
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(verbosity: int, fmt: str, stream: TextIO | None = None) -> None:
    """Send the exporter's log to stderr: -q → errors only, default → info, -v → debug.

    With JSON, what other libraries and Python's warnings would print as plain text goes
    out as JSON lines too."""
    level = {-1: logging.ERROR, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    inner = (
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(inner))
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    if fmt == "json":
        last_resort = logging.StreamHandler(stream or sys.stderr)
        last_resort.setLevel(logging.WARNING)
        last_resort.setFormatter(RedactingFormatter(JsonFormatter()))
        logging.lastResort = last_resort
    else:
        logging.lastResort = _PLAIN_LAST_RESORT
    logging.captureWarnings(fmt == "json")


class Console:
    """Where a command's answers (stdout) and its errors (stderr) go: the text as written,
    or with `--log-format json` one JSON object per message, with its figures as fields.

    Everything passes through the redactor, so no credential reaches either stream.
    """

    def __init__(self, fmt: str = "text") -> None:
        self.json = fmt == "json"

    def say(
        self,
        text: str,
        *,
        topic: str,
        level: str = "info",
        fields: Mapping[str, Any] | None = None,
        to_stderr: bool = False,
        verbatim: bool = False,
    ) -> None:
        """A command's answer (`to_stderr`: a problem); `verbatim` skips the redactor, for
        the simulated portal's own made-up webhook URL, which the user must copy."""
        if self.json:
            entry = log_entry(time.time(), level, topic, text, fields)
            line = json.dumps(entry if verbatim else _redacted(entry), ensure_ascii=False)
        else:
            line = text if verbatim else redact(text)
        print(line, file=sys.stderr if to_stderr else sys.stdout, flush=True)

    def error(self, message: str, *, fields: Mapping[str, Any] | None = None) -> None:
        """What stopped the command before it could do its work: `error: …` on stderr."""
        if self.json:
            self.say(message, topic="exporter.cli", level="error", fields=fields, to_stderr=True)
        else:
            self.say(f"error: {message}", topic="exporter.cli", to_stderr=True)

    def document(self, document: Mapping[str, Any]) -> None:
        """A JSON document the user asked for: indented as text, on one line among JSON logs.

        ASCII escapes keep odd file names (control characters, undecodable bytes) harmless.
        """
        print(json.dumps(_redacted(document), indent=None if self.json else 2), flush=True)


def _redacted(value: Any) -> Any:
    """A value with every string in it redacted (before JSON escapes could hide a secret)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: _redacted(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(inner) for inner in value]
    return value
