"""What an export into a folder imports: only the parts it runs (its start-up is part of
every nightly run's time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from exporter.simulator import Catalog

from .support import exported_files, portal_in_thread, write_manifest
from .test_cli import write_config

# Parts a folder export never runs; each is imported by the command or job that needs it.
NOT_FOR_A_FOLDER_EXPORT = {
    "exporter.destination.store",
    "exporter.jobs.restore",
    "exporter.jobs.check",
    "exporter.portal.upload",
    "exporter.simulator",
}


def imported_modules(stderr: str) -> set[str]:
    """Module names from `-X importtime` lines (`import time: self | cumulative | name`)."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def test_a_folder_export_imports_no_store_restore_check_or_simulator(tmp_path: Path) -> None:
    catalog = Catalog.generate(products=2, images=4, seed=5, image_size=(200, 800))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    with portal_in_thread(catalog) as portal:
        config = write_config(tmp_path / "config.yaml", portal.webhook_url, manifest)
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "exporter", "-q", "run", "-c", str(config)],
            capture_output=True,
            text=True,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(exported_files(tmp_path / "out")) == 4
    modules = imported_modules(done.stderr)
    assert {"exporter.jobs.export", "exporter.destination.folder"} <= modules
    assert modules.isdisjoint(NOT_FOR_A_FOLDER_EXPORT), modules & NOT_FOR_A_FOLDER_EXPORT
