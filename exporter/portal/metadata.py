"""Image metadata from the portal: `catalog.productImage.get` and `.list`, packed in batches.

Calls go out as full batches. A command the portal will not run inside a batch is sent
alone, and so is every later call of its method; a command that failed transiently
(inside a 200 batch) is sent again with the next round, as the retry policy allows.
Per-image errors come back as values; an error that refuses the whole job is raised.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from exporter.errors import (
    BatchRefusedError,
    FatalPortalError,
    ImageError,
    PortalError,
    garbled_answer,
    unfit_answer,
)
from exporter.model import ImageRef, ProductImage
from exporter.portal.batch import BatchCall
from exporter.portal.client import PortalClient
from exporter.portal.retry import GAVE_UP, Action, Tries

log = logging.getLogger(__name__)

GET_METHOD = "catalog.productImage.get"
LIST_METHOD = "catalog.productImage.list"
# What a failed command inside a batch gets from the next round: sent alone (its method
# refused in batch, or the command answered "not found"), after its method's time
# budget frees up (the client pauses the method), or simply again.
ROUND_STEPS = frozenset({Action.ALONE, Action.TRY_ALONE, Action.WAIT, Action.RETRY})


def parse_image(raw: object, method: str) -> ProductImage:
    """Check the fields the exporter relies on and split off `downloadUrl`."""
    if not isinstance(raw, Mapping):
        raise garbled_answer(200, "an image entry that is not an object")
    image_id, product_id, url = raw.get("id"), raw.get("productId"), raw.get("downloadUrl")
    ids_ok = all(_is_id(value) for value in (image_id, product_id))
    if not ids_ok or not isinstance(url, str) or not url:
        raise unfit_answer("image metadata without id, productId or link")
    return ProductImage(
        ref=ImageRef(int(str(product_id)), int(str(image_id))),
        name=str(raw.get("name") or ""),
        type=str(raw.get("type") or ""),
        fields={key: value for key, value in raw.items() if key != "downloadUrl"},
        method=method,
        download_url=url,
    )


def _is_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


class MetadataFetcher:
    """Turns image refs and product ids into `ProductImage`s with as few requests as it can."""

    def __init__(self, client: PortalClient, *, batch_size: int) -> None:
        self._client = client
        self._batch_size = batch_size
        self._alone: set[str] = set()  # methods the portal refused inside a batch

    async def get_images(
        self, refs: Sequence[ImageRef]
    ) -> list[tuple[ImageRef, ProductImage | PortalError]]:
        """Metadata of each image, or the error that fails it."""
        calls = [
            BatchCall(f"p{ref.product_id}_i{ref.image_id}", GET_METHOD,
                      (("productId", ref.product_id), ("id", ref.image_id)))
            for ref in refs
        ]  # fmt: skip
        outcomes = await self.run(calls)
        found: list[tuple[ImageRef, ProductImage | PortalError]] = []
        for ref, call in zip(refs, calls, strict=True):
            found.append((ref, _one_image(outcomes[call.key], ref)))
        return found

    async def list_products(
        self, product_ids: Sequence[int]
    ) -> list[tuple[int, list[ProductImage] | PortalError]]:
        """Every image of each product, or the error that fails the product."""
        calls = [BatchCall(f"p{pid}", LIST_METHOD, (("productId", pid),)) for pid in product_ids]
        outcomes = await self.run(calls)
        return [
            (pid, _image_list(outcomes[call.key]))
            for pid, call in zip(product_ids, calls, strict=True)
        ]

    async def run(self, calls: Sequence[BatchCall]) -> dict[str, Any | PortalError]:
        """Each call's result (or the error that failed it), sent in full batches; a
        `FatalPortalError` is raised."""
        done: dict[str, Any | PortalError] = {}
        tries: dict[str, Tries] = {}
        alone: set[str] = set()  # keys asked again on their own
        pending = list(calls)
        while pending:
            outcomes, exhausted = await self._send_round(pending, alone)
            again: list[BatchCall] = []
            for call in pending:
                outcome = outcomes[call.key]
                if isinstance(outcome, FatalPortalError):
                    raise outcome
                if call.key in exhausted or not isinstance(outcome, PortalError):
                    done[call.key] = outcome  # a request of its own was retried already
                    continue
                step = self._client.retry.next_step(outcome, tries.get(call.key, Tries()))
                tries[call.key] = step.tries
                if step.action is Action.ALONE:
                    self._alone.add(call.method)
                elif step.action is Action.TRY_ALONE:
                    alone.add(call.key)
                if step.action in ROUND_STEPS:
                    again.append(call)
                else:
                    done[call.key] = outcome
            pending = again
        return done

    async def _send_round(
        self, calls: Sequence[BatchCall], alone: set[str]
    ) -> tuple[dict[str, Any | PortalError], set[str]]:
        """Each call's outcome, and the keys whose request the client already retried;
        calls of a method refused in batch, and the keys in `alone`, go on their own."""
        outcomes: dict[str, Any | PortalError] = {}
        exhausted: set[str] = set()
        batchable = [
            c
            for c in calls
            if c.method not in self._alone and c.key not in alone and self._batch_size > 1
        ]
        for start in range(0, len(batchable), self._batch_size):
            chunk = batchable[start : start + self._batch_size]
            if len(chunk) == 1:
                continue  # sent alone below
            try:
                answer = await self._client.batch(chunk)
            except BatchRefusedError as exc:
                # Refused as a whole (HTTP 405): each command goes alone next round.
                outcomes.update((call.key, exc) for call in chunk)
                continue
            except GAVE_UP as exc:
                outcomes.update((call.key, exc) for call in chunk)
                exhausted.update(call.key for call in chunk)
                continue
            outcomes.update(answer.outcomes)
        for call in calls:
            if call.key not in outcomes:
                outcomes[call.key] = await self._send_alone(call)
                exhausted.add(call.key)
        return outcomes, exhausted

    async def _send_alone(self, call: BatchCall) -> Any | PortalError:
        try:
            answer = await self._client.call(call.method, call.as_params())
        except (ImageError, *GAVE_UP) as exc:
            return exc
        return answer["result"]


def _one_image(outcome: Any | PortalError, ref: ImageRef) -> ProductImage | PortalError:
    if isinstance(outcome, PortalError):
        return outcome
    try:
        raw = outcome.get("productImage") if isinstance(outcome, Mapping) else None
        image = parse_image(raw, GET_METHOD)
    except PortalError as exc:
        return exc
    if image.ref.image_id != ref.image_id:
        return unfit_answer("the portal answered for another image")
    if image.ref != ref:
        # A parent product with variations answers for its newest variation (§5c): the
        # image keeps the pair it was asked as, its metadata the portal's productId.
        log.info("%s: the portal answers with product %d", ref, image.ref.product_id)
        return dataclasses.replace(image, ref=ref)
    return image


def _image_list(outcome: Any | PortalError) -> list[ProductImage] | PortalError:
    if isinstance(outcome, PortalError):
        return outcome
    raw = outcome.get("productImages") if isinstance(outcome, Mapping) else None
    if not isinstance(raw, list):
        return unfit_answer("an image list that is not a list")
    try:
        return [parse_image(entry, LIST_METHOD) for entry in raw]
    except PortalError as exc:
        return exc
