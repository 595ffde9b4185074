"""`verify` from the command line: which folder it checks, and the exit code a monitor sees."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.destination.index import STATE_DIR
from exporter.destination.lock import LOCK_NAME

from .support import exported_files
from .test_verify import export_once


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export over loopback, made once; each test works on its own copy."""
    return export_once(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def out(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "out"))


def test_an_empty_folder_exits_2_asking_whether_the_volume_is_mounted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mnt").mkdir()
    assert main(["verify", "--output", str(tmp_path / "mnt")]) == 2
    err = capsys.readouterr().err
    assert f"error: no export found in {tmp_path / 'mnt'}" in err
    assert "is the backup volume mounted?" in err


def test_a_folder_with_its_index_but_no_sidecars_exits_1_listing_them_missing(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = exported_files(out)
    for file in files:
        file.with_name(file.name + ".json").unlink()
        file.unlink()
    assert main(["verify", "--output", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[:2] for line in lines[:-1]] == [
        ["missing", f.relative_to(out).as_posix()] for f in files
    ]
    assert lines[-1].endswith(f": {len(files)} problems ({len(files)} missing)")


def write_config(path: Path, out: Path | str) -> Path:
    raw = {
        "portal": {"webhook_url": "https://example.bitrix24.com/rest/1/abc123def456/"},
        "output": {"dir": str(out)},
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def corrupt_one(out: Path) -> str:
    """Flip a byte of one exported file; its path relative to the output."""
    victim = exported_files(out)[0]
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    return victim.relative_to(out).as_posix()


@pytest.mark.parametrize("how", [[], ["-o"], ["--output"]])
def test_the_folder_is_given_as_dir_or_with_output(
    out: Path, how: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    victim = corrupt_one(out)
    assert main(["verify", *how, str(out)]) == 1
    assert f"corrupt: {victim}: sha256 differs" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["-c", "--config"])
def test_the_folder_is_taken_from_the_config(
    out: Path, tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = corrupt_one(out)
    config = write_config(tmp_path / "nightly.yaml", out)
    assert main(["verify", flag, str(config)]) == 1
    assert f"corrupt: {victim}: sha256 differs" in capsys.readouterr().out


def test_config_yaml_in_the_working_folder_is_taken_when_nothing_is_given(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = corrupt_one(out)
    write_config(tmp_path / "config.yaml", "out")
    monkeypatch.chdir(tmp_path)
    assert main(["verify"]) == 1
    text = capsys.readouterr().out
    assert f"corrupt: {victim}: sha256 differs" in text
    assert " in out: 1 problem (1 corrupt)" in text


def test_no_folder_from_anywhere_is_a_usage_error_naming_the_three_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["verify"]) == 2
    err = capsys.readouterr().err
    assert "give DIR, --output DIR or --config FILE" in err
    assert "config.yaml" in err


def test_a_config_that_cannot_be_loaded_exits_2_with_its_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.yaml").write_text("portal: [unclosed\n", encoding="utf-8")
    assert main(["verify", "--config", str(tmp_path / "broken.yaml")]) == 2
    assert f"error: {tmp_path / 'broken.yaml'}:" in capsys.readouterr().err
    assert main(["verify", "-c", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_dir_and_output_together_are_refused(out: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", str(out), "--output", str(out)])
    assert exit_info.value.code == 2


def test_repair_exits_1_saying_what_moved_and_a_second_verify_exits_0(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = corrupt_one(out)
    assert main(["verify", "--repair", "--output", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"corrupt: {victim}: sha256 differs"
    assert lines[-2].startswith(f"moved aside: {victim} -> {STATE_DIR}/repaired/")
    assert lines[-1] == "repaired 1 corrupt file: the next run exports it again"
    assert main(["verify", "--output", str(out)]) == 0


def test_repair_as_json_lists_what_went_where(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = corrupt_one(out)
    assert main(["verify", "--repair", "--json", "--output", str(out)]) == 1
    document = json.loads(capsys.readouterr().out)
    [moved] = document["repaired"]
    assert moved["path"] == victim
    assert (out / moved["movedTo"]).is_file()
    assert (out / (moved["movedTo"] + ".json")).is_file()


def test_repair_is_refused_with_2_while_another_process_holds_the_run_lock(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = corrupt_one(out)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
         " fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
         str(out / STATE_DIR / LOCK_NAME)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert main(["verify", "--repair", "--output", str(out)]) == 2
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    assert "another run" in capsys.readouterr().err
    assert (out / victim).is_file()
    assert not (out / STATE_DIR / "repaired").exists()


def test_help_says_what_repair_does_and_does_not_do(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--repair moves each corrupt file" in text
    assert "It deletes nothing, and leaves missing, orphaned, temporary and unreadable" in text
    assert "holds the run lock" in text
