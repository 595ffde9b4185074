"""The restore journal: confirmed uploads are never repeated, uploads in doubt are settled."""

from __future__ import annotations

from pathlib import Path

from exporter.jobs.journal import Journal, Sent, taken_as
from exporter.model import ImageRef

A, B = ImageRef(1, 101), ImageRef(1, 102)


def test_confirmed_uploads_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "restore-portal.jsonl"
    with Journal(path) as journal:
        journal.record_sent([(A, Sent(9, "a.png", frozenset({5})))])
        journal.confirm(A, ImageRef(9, 900))
        journal.record_sent([(B, Sent(9, "b.png", frozenset({5, 900})))])
    again = Journal(path)
    assert again.confirmed == {A: ImageRef(9, 900)}
    assert again.sent == {B: Sent(9, "b.png", frozenset({5, 900}))}  # killed before its answer
    assert again.confirmed_ids() == {900}


def test_a_refused_upload_is_no_longer_in_doubt(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.record_sent([(A, Sent(9, "a.png", frozenset()))])
        journal.refuse(A)
    assert Journal(path).sent == {}


def test_a_line_cut_short_by_a_kill_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.confirm(A, ImageRef(9, 900))
    with path.open("a") as file:
        file.write('{"source": [1, 102], "event": "conf')
    assert Journal(path).confirmed == {A: ImageRef(9, 900)}


def test_an_upload_in_doubt_is_taken_as_an_image_of_its_name_that_arrived() -> None:
    sent = Sent(9, "a.png", frozenset({5}))
    claimed: set[int] = set()
    assert taken_as(sent, [(5, "a.png"), (6, "other.png")], claimed) is None  # 5 was there
    assert taken_as(sent, [(5, "a.png"), (7, "a.png")], claimed) == 7
    # Two uploads of one name: the second cannot be taken as the image the first became.
    assert taken_as(sent, [(5, "a.png"), (7, "a.png")], claimed) is None
