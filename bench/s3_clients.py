"""Which async S3 client the object-store destination is built on: measured, not guessed.

    python bench/s3_clients.py --images 200 --size 5M --parallel 8

Starts a local SeaweedFS (tests/seaweed.py), writes N files of the given size into a
local folder, then uploads that folder into a fresh prefix of the server with each
candidate, each in a process of its own, eight at a time:

* obstore — `put_async` of each file's bytes (the store computes nothing; obstore
  sends the SHA-256 it computes as `x-amz-checksum-sha256`);
* aiobotocore — `put_object` with the SHA-256 the caller computed (as the exporter has
  it from hashing the download) and botocore's own retries and checksums off;
* rclone copy (Debian's `rclone`, when installed) — the reference.

It prints wall time, MB/s, CPU seconds per GB and peak RSS of each, and the size of
each library's installed files. Every object is read back and compared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.seaweed import ACCESS_KEY, REGION, SECRET_KEY, SeaweedFS

BUCKET = "bench"

_OBSTORE = """
import asyncio, os, sys, obstore
from obstore.store import S3Store
folder, endpoint, prefix, parallel = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
async def main():
    store = S3Store(BUCKET, endpoint=endpoint, access_key_id=KEY, secret_access_key=SECRET,
                    region=REGION, client_options={"allow_http": True}, checksum_algorithm="sha256")
    gate = asyncio.Semaphore(parallel)
    async def one(name):
        async with gate:
            body = await asyncio.to_thread(lambda: open(os.path.join(folder, name), "rb").read())
            await obstore.put_async(store, f"{prefix}/{name}", body)
    await asyncio.gather(*(one(n) for n in sorted(os.listdir(folder))))
asyncio.run(main())
"""

_AIOBOTOCORE = """
import asyncio, base64, hashlib, os, sys
from aiobotocore.session import get_session
from botocore.config import Config
folder, endpoint, prefix, parallel = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def read(name):
    body = open(os.path.join(folder, name), "rb").read()
    return body, base64.b64encode(hashlib.sha256(body).digest()).decode()
async def main():
    config = Config(request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    retries={"max_attempts": 1}, max_pool_connections=parallel)
    async with get_session().create_client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEY,
        aws_secret_access_key=SECRET, config=config) as client:
        gate = asyncio.Semaphore(parallel)
        async def one(name):
            async with gate:
                body, digest = await asyncio.to_thread(read, name)
                await client.put_object(Bucket=BUCKET, Key=f"{prefix}/{name}", Body=body,
                                        ChecksumSHA256=digest)
        await asyncio.gather(*(one(n) for n in sorted(os.listdir(folder))))
asyncio.run(main())
"""


def _header() -> str:
    return f"BUCKET, KEY, SECRET, REGION = {BUCKET!r}, {ACCESS_KEY!r}, {SECRET_KEY!r}, {REGION!r}"


def _measured(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Run a process; its wall seconds, CPU seconds and peak RSS in MB."""
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env)
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{args[0]} failed ({status})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def _installed_mb(*packages: str) -> float:
    """Megabytes of a package's installed files (what `pip install` adds for it)."""
    total = 0
    for name in packages:
        try:
            files = subprocess.run(
                [sys.executable, "-m", "pip", "show", "-f", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        except subprocess.CalledProcessError:
            continue
        lines = files.splitlines()
        location = next(line.split(": ", 1)[1] for line in lines if line.startswith("Location:"))
        listed = [Path(location, f) for f in files.split("Files:", 1)[1].split()]
        total += sum(path.stat().st_size for path in listed if path.is_file())
    return total / 1024**2


def _check(server: SeaweedFS, prefix: str, folder: Path) -> int:
    """Objects under `prefix` equal to their files (read back with rclone's own listing
    would need rclone; boto3-free: obstore or aiobotocore, whichever is installed)."""
    code = f"""
import asyncio, os, sys, json
from aiobotocore.session import get_session
{_header()}
async def main():
    async with get_session().create_client("s3", endpoint_url={server.endpoint!r},
        region_name=REGION, aws_access_key_id=KEY, aws_secret_access_key=SECRET) as c:
        same = 0
        for name in sorted(os.listdir({str(folder)!r})):
            got = await c.get_object(Bucket=BUCKET, Key={prefix!r} + "/" + name)
            body = await got["Body"].read()
            same += body == open(os.path.join({str(folder)!r}, name), "rb").read()
        print(same)
asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout)


def rclone_env(server: SeaweedFS) -> dict[str, str]:
    """rclone's remote `B:` for the server, from the environment (no config file); a
    machine-wide AWS_CA_BUNDLE is left out, as rclone refuses one on a plain-http remote."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    remote = {
        "TYPE": "s3",
        "PROVIDER": "Other",
        "ENDPOINT": server.endpoint,
        "ACCESS_KEY_ID": ACCESS_KEY,
        "SECRET_ACCESS_KEY": SECRET_KEY,
        "REGION": REGION,
    }
    env.update({f"RCLONE_CONFIG_B_{name}": value for name, value in remote.items()})
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="5M")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    size = _size(options.size)
    work = Path(tempfile.mkdtemp(prefix="b24-s3-clients-"))
    server = SeaweedFS.start(work / "seaweed", buckets=(BUCKET,))
    try:
        folder = work / "files"
        folder.mkdir()
        block = os.urandom(size)
        for n in range(options.images):
            (folder / f"img-{n:05d}.bin").write_bytes(n.to_bytes(8, "big") + block[8:])
        gb = options.images * size / 1024**3
        rows = []
        for round_ in range(options.rounds):
            for name, code in (("obstore", _OBSTORE), ("aiobotocore", _AIOBOTOCORE)):
                prefix = f"{name}-{round_}"
                args = [sys.executable, "-c", _header() + "\n" + code, str(folder),
                        server.endpoint, prefix, str(options.parallel)]  # fmt: skip
                wall, cpu, rss = _measured(args)
                rows.append((name, wall, cpu, rss, _check(server, prefix, folder)))
            rclone = shutil.which("rclone")
            if rclone:
                prefix = f"rclone-{round_}"
                target = f"B:{BUCKET}/{prefix}"
                args = [rclone, "copy", "--transfers", str(options.parallel), str(folder), target]
                wall, cpu, rss = _measured(args, rclone_env(server))
                rows.append(("rclone copy", wall, cpu, rss, _check(server, prefix, folder)))
        print(f"{options.images} x {options.size} = {gb:.2f} GB, {options.parallel} at a time")
        print(f"{'client':<12} {'wall s':>7} {'MB/s':>7} {'CPU s/GB':>9} {'RSS MB':>7} intact")
        for name, wall, cpu, rss, same in rows:
            mbps = options.images * size / 1024**2 / wall
            figures = f"{wall:7.2f} {mbps:7.0f} {cpu / gb:9.2f} {rss:7.0f}"
            print(f"{name:<12} {figures} {same:>4}/{options.images}")
        botocore = ("aiobotocore", "botocore", "jmespath", "python-dateutil", "wrapt", "urllib3")
        installed = {"obstore": _installed_mb("obstore"), "aiobotocore": _installed_mb(*botocore)}
        print("installed MB:", json.dumps({k: round(v, 1) for k, v in installed.items()}))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
