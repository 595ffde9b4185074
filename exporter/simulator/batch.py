"""``batch``: up to 50 commands in one HTTP request, answered with per-command sections."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from . import errors
from .context import MethodResult
from .methods import BATCH, DOWNLOAD, UPLOAD, is_image_add, is_product_image_method
from .params import parse_php_query, php_truthy
from .wire import php_section, time_block

MAX_COMMANDS = 50
_NEVER_IN_BATCH = frozenset({BATCH, DOWNLOAD, UPLOAD})

RunCommand = Callable[[str, dict[str, Any]], MethodResult]
"""Runs one command (method name, params) with the outer request's auth; raises ApiError."""


def run_batch(
    params: dict[str, Any],
    run: RunCommand,
    on_error: Callable[[errors.ApiError], None],
    *,
    allows_images: bool = True,
    refuses_images_whole: bool = False,
    refuses_add: bool = False,
) -> dict[str, Any]:
    """Run ``cmd`` in order and build the batch ``result`` (five sections).

    Each command's query is parsed with PHP ``parse_str`` rules (a raw ``+`` arrives as
    a space). Commands past the 50th are not run and each gets
    ERROR_BATCH_LENGTH_EXCEEDED; ``halt`` stops after the first failing command, that
    one included. With ``refuses_images_whole`` a batch naming a catalog.productImage.*
    method raises ERROR_BATCH_METHOD_NOT_ALLOWED before any command runs; with
    ``refuses_add`` each catalog.productImage.add command gets it.
    """
    if refuses_images_whole and any(map(is_product_image_method, command_methods(params))):
        raise errors.batch_method_not_allowed()

    def refused(method: str) -> bool:
        return (
            method.lower() in _NEVER_IN_BATCH
            or (not allows_images and is_product_image_method(method))
            or (refuses_add and is_image_add(method))
        )

    halt = php_truthy(params.get("halt", False))
    sections: dict[str, dict[str, Any]] = {
        "result": {},
        "result_error": {},
        "result_total": {},
        "result_next": {},
        "result_time": {},
    }
    for position, (key, call) in enumerate(_commands(params.get("cmd"))):
        if position >= MAX_COMMANDS:
            error: errors.ApiError | None = errors.batch_length_exceeded()
        elif not isinstance(call, str):
            continue  # the portal skips non-string commands silently
        else:
            error = _run_one(key, call, run, sections, refused)
        if error is not None:
            on_error(error)
            sections["result_error"][key] = error.body()
            if halt:
                break
    return {name: php_section(entries) for name, entries in sections.items()}


def _run_one(
    key: str,
    call: str,
    run: RunCommand,
    sections: dict[str, dict[str, Any]],
    refused: Callable[[str], bool],
) -> errors.ApiError | None:
    method, _, query = call.partition("?")
    if refused(method):
        return errors.batch_method_not_allowed()
    start, started = time.time(), time.perf_counter()
    try:
        outcome = run(method, parse_php_query(query))
    except errors.ApiError as error:
        return error
    processing = time.perf_counter() - started
    sections["result"][key] = outcome.result
    if outcome.total is not None:
        sections["result_total"][key] = outcome.total
    if outcome.next is not None:
        sections["result_next"][key] = outcome.next
    sections["result_time"][key] = time_block(
        start, start + processing, processing, outcome.operating
    )
    return None


def command_methods(params: dict[str, Any]) -> list[str]:
    """The method names of a batch's string commands, in order."""
    return [
        call.partition("?")[0] for _, call in _commands(params.get("cmd")) if isinstance(call, str)
    ]


def _commands(raw: Any) -> Iterator[tuple[str, Any]]:
    """``cmd`` as (key, command) pairs; a JSON list is keyed by position, like a PHP array."""
    if isinstance(raw, dict):
        for key, call in raw.items():
            yield str(key), call
    elif isinstance(raw, list):
        for index, call in enumerate(raw):
            yield str(index), call
