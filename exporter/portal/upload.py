"""Uploading images into a portal: `catalog.productImage.add`, packed into batches by bytes.

The file goes as `fileContent: [name, base64]` beside `fields: {productId, type}`
(reference §5a). Inside a `batch` each command is a query string that the portal reads
with PHP's `parse_str`, so the base64 is percent-encoded (`+` would arrive as a space,
`/` and `=` must not be read as syntax); `BatchCall.command` does that for every value.

Adds are packed into batches of at most 50 commands whose base64 stays under a byte
budget, so one request stays well inside the portal's 60-second limit; an image larger
than the budget goes as a request of its own. The portal has no idempotency key: an
add is never sent again once it may have reached the portal (the client's
`idempotent=False`), and what a lost answer did is for the caller to find out.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from exporter.config import MAX_BATCH_SIZE
from exporter.errors import PortalError, unfit_answer
from exporter.model import ImageRef, ProductImage
from exporter.portal.batch import BatchCall
from exporter.portal.client import PortalClient
from exporter.portal.metadata import parse_image

ADD_METHOD = "catalog.productImage.add"
DEFAULT_BUDGET = 8 * 1024 * 1024  # bytes of base64 per request


def base64_size(size: int) -> int:
    """Bytes of base64 that `size` bytes become."""
    return 4 * ((size + 2) // 3)


@dataclass(frozen=True, slots=True)
class Upload:
    """One image to add to a product of the target portal."""

    key: str  # unique within a batch, non-numeric
    product_id: int  # on the target
    type: str  # DETAIL_PICTURE, PREVIEW_PICTURE or MORE_PHOTO
    name: str
    content: bytes = field(repr=False)

    @property
    def encoded_size(self) -> int:
        """Bytes of base64 the image takes in a request."""
        return base64_size(len(self.content))

    def _base64(self) -> str:
        return base64.b64encode(self.content).decode("ascii")

    def batch_call(self) -> BatchCall:
        """The add as a batch command (flat PHP keys, percent-encoded when sent)."""
        return BatchCall.of(self.key, ADD_METHOD, self.params())

    def params(self) -> dict[str, Any]:
        """The add as the JSON body of a request of its own."""
        return {
            "fields": {"productId": self.product_id, "type": self.type},
            "fileContent": [self.name, self._base64()],
        }


class Packable(Protocol):
    """Anything that knows the bytes of base64 it takes in a request."""

    @property
    def encoded_size(self) -> int: ...


P = TypeVar("P", bound=Packable)


class Packer(Generic[P]):
    """Gathers uploads into batches of at most `commands` adds under `budget` bytes of
    base64; an upload bigger than the budget makes a batch of its own (sent alone)."""

    def __init__(self, budget: int = DEFAULT_BUDGET, commands: int = MAX_BATCH_SIZE) -> None:
        self._budget = budget
        self._commands = commands
        self._batch: list[P] = []
        self._size = 0

    def add(self, item: P) -> list[P] | None:
        """Take `item`; returns the batch it did not fit in, full and ready to send."""
        full = None
        if self._batch and (
            self._size + item.encoded_size > self._budget or len(self._batch) >= self._commands
        ):
            full = self.flush()
        self._batch.append(item)
        self._size += item.encoded_size
        return full

    def flush(self) -> list[P]:
        """The batch gathered so far (maybe empty), and a fresh start."""
        batch, self._batch, self._size = self._batch, [], 0
        return batch


async def add_alone(client: PortalClient, upload: Upload) -> ProductImage:
    """One add as a request of its own; an error the add failed with is raised."""
    answer = await client.call(ADD_METHOD, upload.params(), idempotent=False)
    return added_image(answer.get("result"))


async def add_batch(
    client: PortalClient, uploads: Sequence[Upload | tuple[Upload, BatchCall | None]]
) -> dict[str, ProductImage | PortalError]:
    """Adds in one batch: each upload's new image, or the error it failed with. An upload
    may come with its batch command made ahead (`BatchCall.prepared`)."""
    pairs = [item if isinstance(item, tuple) else (item, None) for item in uploads]
    calls = [call or upload.batch_call() for upload, call in pairs]
    answer = await client.batch(calls, idempotent=False)
    outcomes: dict[str, ProductImage | PortalError] = {}
    for upload, _ in pairs:
        outcome = answer.outcomes[upload.key]
        if isinstance(outcome, PortalError):
            outcomes[upload.key] = outcome
            continue
        try:
            outcomes[upload.key] = added_image(outcome)
        except PortalError as exc:
            outcomes[upload.key] = exc
    return outcomes


def added_image(result: object) -> ProductImage:
    """The image an add created, from its `result` (`{"productImage": {…}}`)."""
    raw = result.get("productImage") if isinstance(result, Mapping) else None
    if raw is None:
        raise unfit_answer("an add answered without the image it made")
    return parse_image(raw, ADD_METHOD) if raw.get("downloadUrl") else _without_link(raw)


def _without_link(raw: Mapping[str, Any]) -> ProductImage:
    """An added image whose answer carries no download link (it is read back with get)."""
    try:
        ref = ImageRef(int(raw["productId"]), int(raw["id"]))
    except (KeyError, TypeError, ValueError):
        raise unfit_answer("an add answered without the new image's id") from None
    return ProductImage(
        ref=ref,
        name=str(raw.get("name") or ""),
        type=str(raw.get("type") or ""),
        fields=dict(raw),
        method=ADD_METHOD,
        download_url="",
    )
