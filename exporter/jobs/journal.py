"""The restore journal: every upload a target portal confirmed, so each image goes exactly once.

`catalog.productImage.add` has no idempotency key, and an answer lost on the way (a
timeout, a dropped connection) hides whether the image was added. So before a batch
leaves, the journal records each upload as *sent*, with the ids its target product held
then; when the portal answers, the upload is *confirmed* with the new image's id (or
*refused*). A sent upload with neither (a lost answer, a killed run) is resolved before
anything is sent again: an image of that name on its target product that was not there
before the upload began is taken as it. One JSON line per event, appended and fsynced
before the request it guards; the last line of an image wins. The journal lives in the
export's state folder, one file per target portal.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from exporter.errors import OutputError
from exporter.model import ImageRef


def journal_name(target_host: str) -> str:
    """The journal's file name for one target portal."""
    return f"restore-{re.sub(r'[^A-Za-z0-9._-]', '_', target_host)}.jsonl"


@dataclass(frozen=True, slots=True)
class Sent:
    """An upload that left for the portal, its outcome not known yet."""

    target_product: int
    name: str
    before: frozenset[int]  # image ids on the target product when it was sent


class Journal:
    """What a target portal has of an export: confirmed uploads, and those in doubt."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.confirmed: dict[ImageRef, ImageRef] = {}  # source image → its image on the target
        self.sent: dict[ImageRef, Sent] = {}
        if path.exists():
            self._load()
        self._file: IO[str] | None = None

    def __enter__(self) -> Journal:
        try:
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(
                f"cannot write the restore journal {self.path}: {exc.strerror}"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def confirmed_ids(self) -> set[int]:
        """The target images confirmed uploads became (never taken for another upload)."""
        return {target.image_id for target in self.confirmed.values()}

    def record_sent(self, uploads: Iterable[tuple[ImageRef, Sent]]) -> None:
        """Uploads about to leave: durable before the request is sent."""
        lines = []
        for source, sent in uploads:
            self.sent[source] = sent
            lines.append(_line(source, "sent", product=sent.target_product, name=sent.name,
                               before=sorted(sent.before)))  # fmt: skip
        self._append(lines)

    def confirm(self, source: ImageRef, target: ImageRef) -> None:
        """The portal added `source` as `target`."""
        self.sent.pop(source, None)
        self.confirmed[source] = target
        self._append([_line(source, "confirmed", target=[target.product_id, target.image_id])])

    def refuse(self, source: ImageRef) -> None:
        """The portal answered that it did not add `source`."""
        if self.sent.pop(source, None) is not None:
            self._append([_line(source, "refused")])

    def _append(self, lines: list[str]) -> None:
        assert self._file is not None, "open the journal with `with` first"
        try:
            self._file.write("".join(lines))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise OutputError(
                f"cannot write the restore journal {self.path}: {exc.strerror}"
            ) from None

    def _load(self) -> None:
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for text in lines:
                try:
                    record = json.loads(text)
                    source = ImageRef(*map(int, record["source"]))
                    event = record["event"]
                    if event == "confirmed":
                        self.confirmed[source] = ImageRef(*map(int, record["target"]))
                        self.sent.pop(source, None)
                    elif event == "sent":
                        self.sent[source] = Sent(
                            int(record["product"]), str(record["name"]),
                            frozenset(int(i) for i in record["before"]),
                        )  # fmt: skip
                    elif event == "refused":
                        self.sent.pop(source, None)
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a killed run


def taken_as(sent: Sent, images_now: Iterable[tuple[int, str]], claimed: set[int]) -> int | None:
    """The id of the image a sent upload became, from its product's images now (id, name):
    one of that name that was not there before the upload began and that no other upload
    was taken as (`claimed`, which it joins); None when there is none."""
    arrived = sorted(
        i
        for i, name in images_now
        if i not in sent.before and name == sent.name and i not in claimed
    )
    if not arrived:
        return None
    claimed.add(arrived[0])
    return arrived[0]


def _line(source: ImageRef, event: str, **fields: Any) -> str:
    record: Mapping[str, Any] = {
        "source": [source.product_id, source.image_id],
        "event": event,
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **fields,
    }
    return json.dumps(record, ensure_ascii=False) + "\n"
