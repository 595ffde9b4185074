"""Packing calls into one `batch` request and reading its answer back per command.

The answer's sections (`result`, `result_error`, `result_time`, …) are objects keyed by
command key, except that PHP sends an empty one as `[]`, and with numeric keys a
non-empty one can come back as a list that has lost its keys. Keys here are always
non-numeric strings, and a command missing from every section is treated as not run.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from exporter.errors import PortalError, classify_portal_error, garbled_answer

BATCH_METHOD = "batch"


@dataclass(frozen=True, slots=True)
class BatchCall:
    """One REST call that can travel alone or as a command inside a batch."""

    key: str  # non-numeric, unique within a batch, e.g. "p12_i345"
    method: str
    params: tuple[tuple[str, int | str], ...]  # flat PHP keys: filter[>id]=…
    nested: Mapping[str, Any] | None = None  # the same, as the JSON body of a call alone
    text: str | None = field(default=None, repr=False)  # the command string, made ahead

    @classmethod
    def of(cls, key: str, method: str, params: Mapping[str, Any]) -> BatchCall:
        """A call from nested parameters (objects and lists), flattened for `batch`."""
        return cls(key, method, tuple(php_pairs(params)), params)

    def command(self) -> str:
        """The call as a batch command string: `method?query`, every value percent-encoded
        as `urlencode` does it (a long base64 value the quick way, to the same text)."""
        if self.text is not None:
            return self.text
        query = "&".join(f"{quote_plus(str(k))}={_quoted(v)}" for k, v in self.params)
        return f"{self.method}?{query}"

    def prepared(self) -> BatchCall:
        """The same call with its command string made now (off the sending path)."""
        return dataclasses.replace(self, text=self.command())

    def as_params(self) -> Mapping[str, Any]:
        """The call's parameters for a request of its own."""
        return self.nested if self.nested is not None else dict(self.params)


_BASE64 = re.compile(r"[A-Za-z0-9+/=]*")
_LONG = 256  # below this, quote_plus is as quick


def _quoted(value: int | str) -> str:
    """`quote_plus` of a value; base64 text needs only its three symbols replaced, which is
    a hundred times quicker for a file's worth of it than quoting character by character."""
    text = str(value)
    if len(text) > _LONG and _BASE64.fullmatch(text):
        return text.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return quote_plus(text)


def php_pairs(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, int | str]]:
    """Nested parameters as the flat keys PHP's `parse_str` reads back into them:
    `{"filter": {"id": [1, 2]}}` → `filter[id][0]=1`, `filter[id][1]=2`."""
    pairs: list[tuple[str, int | str]] = []
    for name, value in params.items():
        key = f"{prefix}[{name}]" if prefix else str(name)
        if isinstance(value, Mapping):
            pairs += php_pairs(value, key)
        elif isinstance(value, list | tuple):
            pairs += php_pairs({str(index): item for index, item in enumerate(value)}, key)
        else:
            pairs.append((key, value))
    return pairs


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    """What a batch answered for each command: its `result` value or its error."""

    outcomes: Mapping[str, Any | PortalError]
    times: Mapping[str, Mapping[str, Any]]  # per-command `time` blocks


def batch_payload(calls: Sequence[BatchCall]) -> dict[str, Any]:
    """The body of a batch request; `halt=0` so one failing image stops nothing else."""
    return {"halt": 0, "cmd": {call.key: call.command() for call in calls}}


def parse_batch_answer(body: Mapping[str, Any], calls: Sequence[BatchCall]) -> BatchAnswer:
    """Split a 200 batch answer into one outcome per command."""
    sections = body.get("result")
    if not isinstance(sections, Mapping):
        raise garbled_answer(200, "a batch answer without its result sections")
    results = _keyed(sections.get("result"))
    errors = _keyed(sections.get("result_error"))
    times = {k: v for k, v in _keyed(sections.get("result_time")).items() if isinstance(v, dict)}
    outcomes: dict[str, Any | PortalError] = {}
    for call in calls:
        # Presence in result_error decides, not the truthiness of `error`: catalog
        # methods fail with the numeric code 0, and some methods send "error": "".
        if call.key in errors:
            entry = errors[call.key]
            if isinstance(entry, Mapping):
                code, description = entry.get("error"), entry.get("error_description", "")
            else:
                code, description = None, entry
            outcomes[call.key] = classify_portal_error(None, code, description)
        elif call.key in results:
            outcomes[call.key] = results[call.key]
        else:
            outcomes[call.key] = garbled_answer(
                None, "the batch answer has no entry for this command"
            )
    return BatchAnswer(outcomes, times)


def _keyed(section: Any) -> dict[str, Any]:
    """A section as a key → value mapping; a list (empty, or keys lost) maps nothing."""
    if isinstance(section, Mapping):
        return {str(key): value for key, value in section.items()}
    return {}
