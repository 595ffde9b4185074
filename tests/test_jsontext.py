"""Sidecars and reports: exactly the text `json.dumps(ensure_ascii=False, indent=2)` gives."""

from __future__ import annotations

import json
import random
from typing import Any

from exporter.destination.sidecar import document_bytes
from exporter.jobs.report import report_bytes

TEXTS = ["", "plain", "Синий стул", 'quote " and \\ slash', "tab\tnew\nline\r", "\x00\x1f\x7f",
         "emoji 🖼", "\u2028\u2029", "/upload/iblock/6f1/a.jpeg", "ß\u0301"]  # fmt: skip
NUMBERS = [0, -1, 7, 2**70, -(2**63), 0.0, -0.0, 1.5, 1e300, -2.5e-300,
           float("inf"), float("-inf"), float("nan")]  # fmt: skip


def value(rng: random.Random, depth: int) -> Any:
    pick = rng.randrange(7 if depth < 4 else 4)
    if pick == 0:
        return rng.choice(TEXTS)
    if pick == 1:
        return rng.choice(NUMBERS)
    if pick == 2:
        return rng.choice([None, True, False])
    if pick == 3:
        return rng.choice(TEXTS) + str(rng.randrange(100))
    if pick == 4:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(TEXTS) + str(n): value(rng, depth + 1) for n in range(rng.randrange(5))}


def expected(document: Any) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def test_random_documents_are_written_exactly_as_json_dumps_writes_them() -> None:
    rng = random.Random(14)
    for _ in range(2000):
        document = {f"key{n}": value(rng, 1) for n in range(rng.randrange(6))}
        assert document_bytes(document) == expected(document)


def test_a_real_sidecar_document_is_written_as_json_dumps_writes_it() -> None:
    document = {
        "productImage": {"id": 1, "productId": 1, "name": "test.jpeg", "type": "MORE_PHOTO",
                         "createTime": "2024-10-17T10:48:05+02:00", "detailUrl": "/upload/a.jpeg"},
        "file": {"name": "1_test.jpeg", "size": 48213, "sha256": "ab" * 32,
                 "contentType": "image/jpeg"},
        "source": {"portal": "example.bitrix24.com", "method": "catalog.productImage.get"},
        "exportedAt": "2026-11-27T03:00:00Z",
        "exporter": {"version": "0.1.0"},
        "product": {"id": 1, "iblockId": 23, "name": "Стул", "xmlId": None, "type": 1,
                    "parentId": None},
        "gone": {},
        "tags": [],
    }  # fmt: skip
    assert document_bytes(document) == expected(document)


def test_values_outside_plain_json_are_written_as_json_dumps_writes_them() -> None:
    document = {"pair": (1, 2), "keys": {1: "one", False: "no", None: "none", 2.5: "x"}}
    assert document_bytes(document) == expected(document)


def test_a_report_is_written_as_json_dumps_writes_it() -> None:
    report = {"counts": {"total": 2, "exported": 2}, "changes": {"exported": [
        {"productId": 1, "id": 2, "file": "1/2_a.png"}, {"productId": 1, "id": 3, "file": "ü"}]},
        "failures": [], "abortedBy": None}  # fmt: skip
    assert report_bytes(report) == expected(report)
