"""Keeps credentials out of every line the exporter writes.

Two nets: the secrets this process knows (the webhook code, OAuth tokens and client
secret, registered when the configuration is loaded), and the shapes credentials take
in URLs (`/rest/<user>/<code>/`, `auth=`, `token=`, `sessid=` …), which also catch a
`downloadUrl` the exporter never saw registered. Logging, error messages, the report
and the summary all pass through `redact`.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words and numbers

_URL_SHAPES = (
    # A webhook path carries the webhook code: /rest/<user id>/<code>/...
    (re.compile(r"(/rest/\d+/)[^/\s?#\"'<>]+"), rf"\g<1>{MASK}"),
    # Signed links and OAuth calls carry tokens in the query string.
    (
        re.compile(
            r"(?i)([?&;](?:auth|token|sessid|access_token|refresh_token|client_secret|code)=)"
            r"[^&\s\"'<>]+"
        ),
        rf"\g<1>{MASK}",
    ),
)


class Redactor:
    """Replaces registered secrets and credential-shaped URL parts with `***`."""

    __slots__ = ("_lock", "_pattern", "_secrets")

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, *secrets: str) -> None:
        """Register secrets to mask from now on (short or empty strings are ignored)."""
        with self._lock:
            self._secrets.update(s for s in secrets if len(s) >= _MIN_SECRET_LENGTH)
            if self._secrets:
                # Longest first, so a secret that contains another is masked whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        for shape, replacement in _URL_SHAPES:
            text = shape.sub(replacement, text)
        return text


redact = Redactor()
"""The process-wide redactor: configuration loading registers its secrets here."""


class RedactingFormatter(logging.Formatter):
    """Wraps another formatter and redacts its whole output, tracebacks included."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record))
