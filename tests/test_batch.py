"""Packing calls into a `batch` body and reading its answer back, command by command."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.errors import (
    AccessDeniedError,
    BatchRefusedError,
    FatalPortalError,
    ImageError,
    NotFoundError,
    PortalError,
    TransientError,
)
from exporter.portal.batch import BatchCall, batch_payload, parse_batch_answer

GET = "catalog.productImage.get"

# The docs' example answer (reference/examples/batch.200.json): two named commands, the
# empty sections sent by PHP as `[]`.
DOCS_EXAMPLE: dict[str, Any] = json.loads(
    """
{
  "result": {
    "result": {
      "get_user": {"ID": "1", "ACTIVE": true, "NAME": "John", "LAST_NAME": "Doe",
                   "EMAIL": "my@example.com", "UF_DEPARTMENT": [1]},
      "get_department": [{"ID": "1", "NAME": "DEMO", "SORT": 500}]
    },
    "result_error": [],
    "result_total": {"get_department": 1},
    "result_next": [],
    "result_time": {
      "get_user": {"start": 1724916859.46156, "finish": 1724916859.464775,
                   "duration": 0.0032150745391845703, "processing": 0.003075838088989258,
                   "date_start": "2024-08-29T10:34:19+03:00",
                   "date_finish": "2024-08-29T10:34:19+03:00"},
      "get_department": {"start": 1724916859.464944, "finish": 1724916859.471518,
                         "duration": 0.006574153900146484,
                         "processing": 0.005941152572631836,
                         "date_start": "2024-08-29T10:34:19+03:00",
                         "date_finish": "2024-08-29T10:34:19+03:00"}
    }
  },
  "time": {"start": 1724916859.421475, "finish": 1724916859.471588,
           "duration": 0.05011296272277832, "processing": 0.010200977325439453,
           "date_start": "2024-08-29T10:34:19+03:00", "date_finish": "2024-08-29T10:34:19+03:00"}
}
"""
)

# A real captured answer (reference/examples/batch.partial-errors.200.json): numeric
# keys, one success, two failures whose `result_error` came back as a list (keys lost)
# with `"error": ""`.
PARTIAL_ERRORS: dict[str, Any] = json.loads(
    """
{
  "result": {
    "result": {"35943": {"ID": "35943"}},
    "result_error": [
      {"error": "", "error_description": "ID is not defined or invalid."},
      {"error": "", "error_description": "Not found"}
    ],
    "result_total": [],
    "result_next": [],
    "result_time": {
      "35943": {"start": 1653126089.336395, "finish": 1653126089.342316,
                "duration": 0.005920886993408203, "processing": 0.005886077880859375,
                "date_start": "2022-05-21T12:41:29+03:00",
                "date_finish": "2022-05-21T12:41:29+03:00", "operating": 1.831031084060669}
    }
  },
  "time": {"start": 1653126089.306706, "finish": 1653126089.342333,
           "duration": 0.035627126693725586, "processing": 0.01570296287536621,
           "date_start": "2022-05-21T12:41:29+03:00", "date_finish": "2022-05-21T12:41:29+03:00",
           "operating": 1.831031084060669}
}
"""
)

IMAGE_1 = {
    "createTime": "2024-10-17T10:48:05+02:00",
    "detailUrl": "/upload/iblock/6f1/bkm7jmwso31wisk423gtp28iagy2e8v0/test.jpeg",
    "downloadUrl": "https://example.bitrix24.com/rest/download.json?auth=A&token=catalog%7Cx",
    "id": 1,
    "name": "test.jpeg",
    "productId": 1,
    "type": "MORE_PHOTO",
}


def get_call(product_id: int, image_id: int) -> BatchCall:
    return BatchCall(
        f"p{product_id}_i{image_id}", GET, (("productId", product_id), ("id", image_id))
    )


def answer(results: Any = (), errors: Any = (), times: Any = (), **extra: Any) -> dict[str, Any]:
    """A batch body whose empty sections are `[]`, as PHP sends them."""
    return {
        "result": {
            "result": dict(results) if results else [],
            "result_error": dict(errors) if errors else [],
            "result_total": [],
            "result_next": [],
            "result_time": dict(times) if times else [],
            **extra,
        },
        "time": {"start": 1.0, "finish": 1.1},
    }


# The request.


def test_a_command_is_the_method_and_its_query_string() -> None:
    assert get_call(1, 7).command() == "catalog.productImage.get?productId=1&id=7"


def test_a_call_sent_alone_carries_the_same_parameters() -> None:
    assert get_call(1, 7).as_params() == {"productId": 1, "id": 7}


def test_payload_keys_each_command_by_its_call_key() -> None:
    payload = batch_payload([get_call(1, 7), get_call(2, 9)])
    assert payload["cmd"] == {
        "p1_i7": "catalog.productImage.get?productId=1&id=7",
        "p2_i9": "catalog.productImage.get?productId=2&id=9",
    }


def test_payload_does_not_halt_on_a_failing_command() -> None:
    assert batch_payload([get_call(1, 7)])["halt"] == 0


# The answer.


def test_docs_example_gives_each_command_its_own_result() -> None:
    calls = [BatchCall("get_user", "user.get", ()), BatchCall("get_department", "dep.get", ())]
    parsed = parse_batch_answer(DOCS_EXAMPLE, calls)
    assert parsed.outcomes["get_user"]["NAME"] == "John"
    assert parsed.outcomes["get_department"] == [{"ID": "1", "NAME": "DEMO", "SORT": 500}]


def test_docs_example_keeps_each_commands_time_block() -> None:
    calls = [BatchCall("get_user", "user.get", ()), BatchCall("get_department", "dep.get", ())]
    parsed = parse_batch_answer(DOCS_EXAMPLE, calls)
    assert parsed.times["get_user"]["finish"] == 1724916859.464775
    assert set(parsed.times) == {"get_user", "get_department"}


def test_an_empty_error_section_sent_as_a_list_means_nothing_failed() -> None:
    calls = [get_call(1, 1)]
    body = answer(results={"p1_i1": {"productImage": IMAGE_1}})
    assert body["result"]["result_error"] == []
    parsed = parse_batch_answer(body, calls)
    assert parsed.outcomes["p1_i1"] == {"productImage": IMAGE_1}


def test_the_result_entry_is_the_methods_result_value() -> None:
    body = answer(results={"p1_i1": {"productImage": IMAGE_1}})
    parsed = parse_batch_answer(body, [get_call(1, 1)])
    assert parsed.outcomes["p1_i1"]["productImage"]["name"] == "test.jpeg"


def test_a_command_listed_in_result_error_with_code_zero_failed() -> None:
    body = answer(
        results={"p1_i1": {"productImage": IMAGE_1}, "p1_i2": []},
        errors={"p1_i2": {"error": 0, "error_description": "Image does not exist"}},
    )
    parsed = parse_batch_answer(body, [get_call(1, 1), get_call(1, 2)])
    failed = parsed.outcomes["p1_i2"]
    assert type(failed) is NotFoundError  # an image failure that says the image is not there
    assert failed.description == "Image does not exist"
    assert not isinstance(parsed.outcomes["p1_i1"], PortalError)


def test_a_command_listed_in_result_error_with_an_empty_code_failed() -> None:
    body = answer(errors={"p1_i2": {"error": "", "error_description": "Not found"}})
    parsed = parse_batch_answer(body, [get_call(1, 2)])
    assert isinstance(parsed.outcomes["p1_i2"], ImageError)


def test_an_error_entry_wins_over_a_result_entry_for_the_same_command() -> None:
    # With halt=0 a failed command may also show up in `result` (e.g. as null or []).
    body = answer(
        results={"p1_i2": None},
        errors={"p1_i2": {"error": 0, "error_description": "Product was not found"}},
    )
    parsed = parse_batch_answer(body, [get_call(1, 2)])
    assert isinstance(parsed.outcomes["p1_i2"], ImageError)


def test_access_denied_inside_a_batch_fails_only_that_image() -> None:
    body = answer(
        results={"p1_i1": {"productImage": IMAGE_1}},
        errors={"p2_i5": {"error": 200040300010, "error_description": "Access Denied"}},
    )
    parsed = parse_batch_answer(body, [get_call(1, 1), get_call(2, 5)])
    assert type(parsed.outcomes["p2_i5"]) is AccessDeniedError
    assert parsed.outcomes["p1_i1"] == {"productImage": IMAGE_1}


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("insufficient_scope", FatalPortalError),
        ("ERROR_BATCH_METHOD_NOT_ALLOWED", BatchRefusedError),
        ("INTERNAL_SERVER_ERROR", TransientError),
    ],
)
def test_a_per_command_error_is_classified_by_its_code(code: str, kind: type) -> None:
    body = answer(errors={"p1_i1": {"error": code, "error_description": ""}})
    assert type(parse_batch_answer(body, [get_call(1, 1)]).outcomes["p1_i1"]) is kind


def test_errors_whose_keys_were_lost_are_not_mapped_onto_commands_by_position() -> None:
    calls = [BatchCall(key, "crm.deal.get", (("id", key),)) for key in ("35943", "1", "2")]
    parsed = parse_batch_answer(PARTIAL_ERRORS, calls)
    assert parsed.outcomes["35943"] == {"ID": "35943"}
    for key in ("1", "2"):
        outcome = parsed.outcomes[key]
        # Not the list's "ID is not defined" / "Not found": those belong to unknown keys.
        assert type(outcome) is TransientError
        assert "no entry" in outcome.description


def test_a_list_shaped_result_section_gives_its_commands_no_entry_errors() -> None:
    body = answer(errors={"p9_i9": {"error": 0, "error_description": "x"}})
    body["result"]["result"] = [{"productImage": IMAGE_1}]  # keys lost
    parsed = parse_batch_answer(body, [get_call(1, 1), get_call(9, 9)])
    assert type(parsed.outcomes["p1_i1"]) is TransientError
    assert isinstance(parsed.outcomes["p9_i9"], ImageError)


def test_a_command_missing_from_every_section_is_not_taken_as_done() -> None:
    body = answer(results={"p1_i1": {"productImage": IMAGE_1}})
    parsed = parse_batch_answer(body, [get_call(1, 1), get_call(1, 2)])
    assert type(parsed.outcomes["p1_i2"]) is TransientError


def test_a_batch_answer_without_result_sections_is_an_unexpected_answer() -> None:
    with pytest.raises(TransientError) as caught:
        parse_batch_answer({"result": [], "time": {}}, [get_call(1, 1)])
    assert caught.value.code == "ERROR_UNEXPECTED_ANSWER"


def test_a_long_base64_value_is_encoded_exactly_as_urlencode_does_it() -> None:
    import base64
    import os
    from urllib.parse import urlencode

    from exporter.portal.batch import BatchCall, php_pairs

    body = base64.b64encode(os.urandom(30_000) + b"\xfb\xff\xfe").decode()
    assert {"+", "/", "="} & set(body)
    params = {
        "fields": {"productId": 7, "type": "MORE_PHOTO"},
        "fileContent": ["a b+&=é.png", body],
        "note": "x" * 300 + " +/é",  # long, but not base64: the ordinary way
    }
    call = BatchCall.of("u1", "catalog.productImage.add", params)
    expected = f"catalog.productImage.add?{urlencode(php_pairs(params))}"
    assert call.command() == expected
    assert call.prepared().command() == expected
    assert call.prepared().as_params() == params
