"""The manifest contract: CSV and YAML rows, every bad row named, bounded memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
import yaml

from exporter.errors import ManifestError, ManifestProblem
from exporter.manifest import ManifestRow, iter_manifest, validate_manifest, yaml_format


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifests are named relative to the working directory, as a user would give them."""
    monkeypatch.chdir(tmp_path)


def write(name: str, content: str | bytes) -> Path:
    path = Path(name)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def read(path: Path) -> list[ManifestRow]:
    count = validate_manifest(path)
    rows = list(iter_manifest(path))
    assert count == len(rows)
    return rows


def pairs(path: Path) -> list[tuple[int, int | None]]:
    return [(row.product_id, row.image_id) for row in read(path)]


def problems(path: Path) -> tuple[ManifestProblem, ...]:
    with pytest.raises(ManifestError) as caught:
        validate_manifest(path)
    return caught.value.problems


def error(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        validate_manifest(path)
    return caught.value


# CSV


def test_csv_rows_come_out_in_file_order_with_their_lines() -> None:
    path = write("m.csv", "productId,id\n1,1\n1,2\n7,3\n")

    assert read(path) == [ManifestRow(1, 1, 2), ManifestRow(1, 2, 3), ManifestRow(7, 3, 4)]


def test_validate_returns_the_number_of_rows() -> None:
    path = write("m.csv", "productId,id\n1,1\n1,2\n7,\n")

    assert validate_manifest(path) == 3


def test_product_only_row_has_no_image_id() -> None:
    path = write("m.csv", "productId,id\n7,\n")

    assert read(path) == [ManifestRow(7, None, 2)]


def test_csv_without_id_column_gives_product_only_rows() -> None:
    path = write("m.csv", "productId\n7\n8\n")

    assert pairs(path) == [(7, None), (8, None)]


def test_csv_row_shorter_than_the_header_is_product_only() -> None:
    path = write("m.csv", "productId,id\n7\n")

    assert pairs(path) == [(7, None)]


def test_csv_semicolon_separated_with_bom_reads_rows() -> None:
    path = write("m.csv", "\ufeffproductId;id\n1;2\n3;\n".encode())

    assert pairs(path) == [(1, 2), (3, None)]


def test_csv_windows_line_endings_read_rows() -> None:
    path = write("m.csv", "productId,id\r\n1,2\r\n3,4\r\n")

    assert read(path) == [ManifestRow(1, 2, 2), ManifestRow(3, 4, 3)]


def test_csv_snake_case_column_names_are_accepted() -> None:
    path = write("m.csv", "product_id,image_id\n1,2\n")

    assert pairs(path) == [(1, 2)]


def test_csv_column_names_are_case_insensitive_and_trimmed() -> None:
    path = write("m.csv", " PRODUCTID ; Id \n1;2\n")

    assert pairs(path) == [(1, 2)]


def test_csv_extra_columns_are_ignored_in_any_order() -> None:
    path = write("m.csv", "name,id,productId,note\nchair,5,9,x\n")

    assert pairs(path) == [(9, 5)]


def test_csv_ids_with_surrounding_whitespace_are_accepted() -> None:
    path = write("m.csv", 'productId,id\n 1 ," 2 "\n')

    assert pairs(path) == [(1, 2)]


def test_csv_missing_product_id_column_names_found_and_accepted_columns() -> None:
    path = write("m.csv", "product,image\n1,2\n")

    message = str(error(path))

    assert message.startswith("m.csv:1: no productId column")
    assert '"product", "image"' in message
    assert "product_id" in message and "image_id" in message


def test_csv_two_columns_naming_the_product_are_refused() -> None:
    path = write("m.csv", "productId,product_id\n1,1\n")

    assert "both name the productId" in str(error(path))


def test_csv_blank_lines_are_skipped_and_lines_stay_physical() -> None:
    path = write("m.csv", "\nproductId,id\n\n1,2\n   \n,\n3,4\n\n")

    assert read(path) == [ManifestRow(1, 2, 4), ManifestRow(3, 4, 7)]


def test_csv_quoted_multiline_field_keeps_physical_line_numbers() -> None:
    path = write("m.csv", 'productId,id,note\n1,2,"a\nb\nc"\n3,x,\n')

    assert [problem.line for problem in problems(path)] == [5]


def test_csv_row_after_multiline_field_has_its_own_line() -> None:
    path = write("m.csv", 'productId,id,note\n1,2,"a\nb"\n3,4,\n')

    assert [row.line for row in read(path)] == [2, 4]


def test_csv_invalid_utf8_row_is_named_with_its_line() -> None:
    path = write("m.csv", b"productId,id,name\n1,2,ok\n3,4,caf\xe9\n5,6,ok\n")

    assert [str(problem) for problem in problems(path)] == ["m.csv:3: row is not valid UTF-8"]


def test_csv_invalid_utf8_header_is_refused_with_its_line() -> None:
    path = write("m.csv", b"\nproductId,id,caf\xe9\n1,2,x\n")

    assert str(error(path)) == "m.csv:2: the header is not valid UTF-8"


def test_csv_row_without_product_id_is_named() -> None:
    path = write("m.csv", "productId,id\n ,5\n")

    assert [str(problem) for problem in problems(path)] == ["m.csv:2: row has no productId"]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("abc", 'id "abc" is not a positive integer'),
        ("0", 'id "0" is not a positive integer'),
        ("-3", 'id "-3" is not a positive integer'),
        ("+3", 'id "+3" is not a positive integer'),
        ("0x1F", 'id "0x1F" is not a positive integer'),
        ("1.5", 'id "1.5" is not a positive integer: it must be a whole number'),
        ("1.0", 'id "1.0" is not a positive integer: it must be a whole number'),
        ("1e3", 'id "1e3" is not a positive integer: it must be a whole number'),
        ("99999999999999999999", 'id "99999999999999999999" is too large for an id'),
    ],
)
def test_csv_id_that_is_not_a_positive_integer_is_named(cell: str, message: str) -> None:
    path = write("m.csv", f"productId,id\n1,{cell}\n")

    assert [str(problem) for problem in problems(path)] == [f"m.csv:2: {message}"]


def test_csv_bad_product_id_and_bad_id_are_named_in_one_problem() -> None:
    path = write("m.csv", "productId,id\n0,x\n")

    assert [problem.message for problem in problems(path)] == [
        'productId "0" is not a positive integer; id "x" is not a positive integer'
    ]


def test_csv_id_with_leading_zeros_is_decimal() -> None:
    path = write("m.csv", "productId,id\n010,007\n")

    assert pairs(path) == [(10, 7)]


def test_duplicate_rows_are_kept_as_written() -> None:
    path = write("m.csv", "productId,id\n1,2\n1,2\n")

    assert pairs(path) == [(1, 2), (1, 2)]


def test_csv_unterminated_quote_cannot_swallow_memory() -> None:
    path = write("m.csv", 'productId,id\n1,"2\n' + "x" * 200_000 + "\n")

    assert "not valid CSV" in str(error(path))


def test_csv_line_without_end_is_refused_not_read_whole() -> None:
    path = write("m.csv", "productId,id\n1,2\n" + "x" * (1 << 21))

    assert str(error(path)).startswith("m.csv:3: line longer than")


# Errors for the whole file


def test_bad_rows_are_all_named_with_line_numbers() -> None:
    path = write("m.csv", "productId,id\n1,1\nx,1\n2,2\n3,0\n,4\n")

    caught = error(path)

    assert caught.summary == "m.csv: 3 invalid rows"
    assert [(p.path, p.line) for p in caught.problems] == [
        ("m.csv", 3),
        ("m.csv", 5),
        ("m.csv", 6),
    ]
    assert str(caught).splitlines() == [
        "m.csv: 3 invalid rows",
        '  m.csv:3: productId "x" is not a positive integer',
        '  m.csv:5: id "0" is not a positive integer',
        "  m.csv:6: row has no productId",
    ]


def test_more_than_twenty_bad_rows_are_capped_with_a_count() -> None:
    path = write("m.csv", "productId,id\n" + "x,1\n" * 25)

    caught = error(path)

    assert [problem.line for problem in caught.problems] == list(range(2, 22))
    lines = str(caught).splitlines()
    assert lines[0] == "m.csv: 25 invalid rows"
    assert len(lines) == 22
    assert lines[-1] == "  ... and 5 more invalid rows"


@pytest.mark.parametrize("content", ["", "\n\n", "productId,id\n", "productId,id\n\n,\n"])
def test_empty_csv_is_an_error_saying_no_rows(content: str) -> None:
    path = write("m.csv", content)

    assert str(error(path)) == "m.csv: the manifest has no rows"


def test_unsupported_extension_is_named() -> None:
    path = write("m.json", "[]")

    message = str(error(path))

    assert message.startswith("m.json: unsupported manifest format")
    assert '".json"' in message and ".csv, .yaml or .yml" in message


def test_extension_is_case_insensitive() -> None:
    path = write("M.CSV", "productId\n1\n")

    assert pairs(path) == [(1, None)]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"

    caught = error(path)

    assert str(caught) == f"{path}: cannot read the manifest: No such file or directory"
    assert caught.__cause__ is None and caught.__suppress_context__


def test_directory_instead_of_a_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()

    assert str(error(path)).startswith(f"{path}: cannot read the manifest: ")


def test_iter_refuses_a_bad_row_it_meets() -> None:
    path = write("m.csv", "productId\n1\nx\n")

    with pytest.raises(ManifestError) as caught:
        list(iter_manifest(path))

    assert [problem.line for problem in caught.value.problems] == [3]


# YAML


def test_yaml_list_of_mappings_reads_rows_with_their_lines() -> None:
    path = write("m.yaml", "# images\n- {productId: 1, id: 1}\n- productId: 1\n  id: 2\n")

    assert read(path) == [ManifestRow(1, 1, 2), ManifestRow(1, 2, 3)]


def test_yaml_mapping_with_images_key() -> None:
    path = write(
        "m.yaml",
        "images:\n  - {productId: 1, id: 1}\n  - {productId: 1, id: 2}\n  - {productId: 7}\n",
    )

    assert read(path) == [ManifestRow(1, 1, 2), ManifestRow(1, 2, 3), ManifestRow(7, None, 4)]


def test_yaml_other_top_level_keys_are_skipped() -> None:
    content = "source: {portal: x, tags: [a, {b: c}]}\nimages:\n  - {productId: 3}\nnote: done\n"
    path = write("m.yaml", content)

    assert pairs(path) == [(3, None)]


def test_yaml_mapping_without_images_key_is_an_error() -> None:
    path = write("m.yaml", "rows:\n  - {productId: 1}\n")

    assert "needs the key images" in str(error(path))


def test_yaml_images_that_is_not_a_list_is_an_error() -> None:
    path = write("m.yaml", "images:\n  productId: 1\n")

    assert str(error(path)).startswith("m.yaml:2: images must be a list of rows")


def test_yaml_top_level_scalar_is_an_error() -> None:
    path = write("m.yaml", "hello\n")

    assert "a list of rows or a mapping with the key images" in str(error(path))


def test_yml_extension_reads_yaml() -> None:
    path = write("m.yml", "- {productId: 4, id: 5}\n")

    assert pairs(path) == [(4, 5)]


def test_yaml_single_line_json_manifest_reads_rows() -> None:
    path = write("m.yaml", '[{"productId": 1, "id": 2}, {"productId": "3", "id": null}]')

    assert pairs(path) == [(1, 2), (3, None)]


def test_yaml_key_aliases_are_case_insensitive() -> None:
    path = write("m.yaml", "- {PRODUCT_ID: 1, Image_Id: 2}\n- {productid: 3, ID: 4}\n")

    assert pairs(path) == [(1, 2), (3, 4)]


def test_yaml_other_row_keys_are_ignored() -> None:
    path = write("m.yaml", "- {name: x, productId: 1, tags: [a, b], meta: {k: v}, id: 2}\n")

    assert pairs(path) == [(1, 2)]


def test_yaml_quoted_digit_strings_are_accepted() -> None:
    path = write("m.yaml", "- {productId: '1', id: \" 2 \"}\n")

    assert pairs(path) == [(1, 2)]


@pytest.mark.parametrize(
    "row",
    [
        "{productId: 7}",
        "{productId: 7, id: null}",
        "{productId: 7, id: }",
        "{productId: 7, id: ''}",
    ],
)
def test_yaml_missing_or_null_id_is_product_only(row: str) -> None:
    path = write("m.yaml", f"- {row}\n")

    assert pairs(path) == [(7, None)]


@pytest.mark.parametrize("row", ["{id: 1}", "{productId: null, id: 1}", "{productId: ~}"])
def test_yaml_row_without_product_id_is_named(row: str) -> None:
    path = write("m.yaml", f"- {{productId: 1}}\n- {row}\n")

    assert [str(problem) for problem in problems(path)] == ["m.yaml:2: row has no productId"]


@pytest.mark.parametrize("value", ["true", "false", "yes"])
def test_yaml_boolean_id_is_rejected(value: str) -> None:
    path = write("m.yaml", f"- {{productId: 1, id: {value}}}\n")

    assert [problem.message for problem in problems(path)] == [
        f"id {value} is a boolean, not a positive integer"
    ]


@pytest.mark.parametrize("value", ["1.0", "2.5", "1e3"])
def test_yaml_float_id_is_rejected_as_not_whole(value: str) -> None:
    path = write("m.yaml", f"- {{productId: 1, id: {value}}}\n")

    assert [problem.message for problem in problems(path)] == [
        f'id "{value}" is not a positive integer: it must be a whole number'
    ]


@pytest.mark.parametrize("value", ["0", "-4", "abc", "'x'", "0x10", "1_000"])
def test_yaml_id_that_is_not_a_positive_integer_is_named(value: str) -> None:
    path = write("m.yaml", f"- {{productId: {value}}}\n")

    (problem,) = problems(path)

    assert problem.line == 1
    assert problem.message.startswith("productId ")
    assert problem.message.endswith(" is not a positive integer")


def test_yaml_list_as_id_is_rejected() -> None:
    path = write("m.yaml", "- {productId: 1, id: [1, 2]}\n")

    assert [problem.message for problem in problems(path)] == [
        "id is a list, not a positive integer"
    ]


def test_yaml_alias_as_id_is_rejected() -> None:
    path = write("m.yaml", "- {productId: &p 1, id: *p}\n")

    assert "alias" in problems(path)[0].message


def test_yaml_field_given_twice_in_a_row_is_rejected() -> None:
    path = write("m.yaml", "- {productId: 1, id: 2, image_id: 3}\n")

    assert [problem.message for problem in problems(path)] == ["row has both id and image_id"]


def test_yaml_non_mapping_row_is_named_with_its_line() -> None:
    path = write("m.yaml", "images:\n  - {productId: 1}\n  - 5\n  - [1, 2]\n  - {productId: 2}\n")

    assert [str(problem) for problem in problems(path)] == [
        'm.yaml:3: row is "5", not a mapping with a productId',
        "m.yaml:4: row is a list, not a mapping with a productId",
    ]


def test_yaml_syntax_error_names_its_line() -> None:
    path = write("m.yaml", "- {productId: 1}\n- {productId: 2\n- {productId: 3}\n")

    message = str(error(path))

    assert message.startswith("m.yaml:")
    assert "not valid YAML" in message
    assert "\n" not in message and "Traceback" not in message


def test_yaml_syntax_error_line_is_where_the_problem_is() -> None:
    path = write("m.yaml", "- {productId: 1}\n- {productId: 2}\nbad: here\n")

    assert str(error(path)).startswith("m.yaml:3: not valid YAML")


def test_yaml_control_character_is_a_clear_error() -> None:
    path = write("m.yaml", "- {productId: 1\x00}\n")

    assert str(error(path)) == "m.yaml:1: not valid YAML: control character U+0000 is not allowed"


def test_yaml_invalid_utf8_names_the_line() -> None:
    path = write("m.yaml", b"- {productId: 1}\n- {productId: 2, name: caf\xe9}\n")

    assert str(error(path)) == "m.yaml:2: not valid UTF-8"


def test_yaml_with_bom_reads_rows() -> None:
    path = write("m.yaml", "\ufeff- {productId: 1}\n".encode())

    assert pairs(path) == [(1, None)]


@pytest.mark.parametrize(
    "content", ["", "# nothing\n", "---\n", "[]\n", "images: []\n", "images:\n"]
)
def test_empty_yaml_is_an_error_saying_no_rows(content: str) -> None:
    path = write("m.yaml", content)

    assert str(error(path)) == "m.yaml: the manifest has no rows"


def test_yaml_second_document_is_refused() -> None:
    path = write("m.yaml", "- {productId: 1}\n---\n- {productId: 2}\n")

    assert str(error(path)).startswith("m.yaml:2: a second YAML document")


def test_yaml_reads_the_same_without_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_format, "_YAML_LOADER", yaml.SafeLoader)
    path = write("m.yaml", "images:\n  - {productId: 1, id: 2}\n  - productId: '3'\n  - x\n")

    assert [str(problem) for problem in problems(path)] == [
        'm.yaml:4: row is "x", not a mapping with a productId'
    ]
    path.write_text("images:\n  - {productId: 1, id: 2}\n  - productId: '3'\n")
    assert read(path) == [ManifestRow(1, 2, 2), ManifestRow(3, None, 3)]


# Bounded memory

# Far below what holding the rows would take: a list of 30,000 ManifestRow is ~4.5 MB,
# yaml.safe_load of 30,000 rows peaks at ~70 MB; streaming peaks under 100 kB.
BOUNDED = 2 * 1024 * 1024


def peak_while_streaming(path: Path, rows: int) -> int:
    """Peak traced memory while streaming every row of the manifest."""
    tracemalloc.start()
    try:
        assert sum(1 for _ in iter_manifest(path)) == rows
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_large_csv_streams_in_bounded_memory() -> None:
    path = Path("big.csv")
    with path.open("w", encoding="utf-8") as file:
        file.write("productId,id\n")
        file.writelines(f"{n // 4 + 1},{n + 1}\n" for n in range(200_000))

    assert peak_while_streaming(path, 200_000) < BOUNDED


def test_large_yaml_streams_in_bounded_memory() -> None:
    # 30,000 rows, not 100,000: tracing every allocation of the YAML parser costs ~90 us
    # a row, and the bound above already tells streaming from holding the rows.
    path = Path("big.yaml")
    with path.open("w", encoding="utf-8") as file:
        file.write("images:\n")
        file.writelines(f"  - {{productId: {n // 4 + 1}, id: {n + 1}}}\n" for n in range(30_000))

    assert peak_while_streaming(path, 30_000) < BOUNDED
