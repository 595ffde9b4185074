"""The export job as a short script on fast_bitrix24 does it: the peer in `bench/run.py peer`.

    python bench/peer_fast_bitrix24.py WEBHOOK MANIFEST OUT [--rps R] [--burst B] [--parallel N]

As fast_bitrix24's README shows: one `call()` over the whole list of
`catalog.productImage.get` parameters (the library packs them 50 to a `batch` and paces
the requests), then the files downloaded with aiohttp, `--parallel` at a time, each
written under `OUT/<productId>/<id>_<name>` with a JSON sidecar beside it (the image's
fields without `downloadUrl`, size, SHA-256). No temporaries, no fsync, no index: what a
first script does, not what a backup must.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
from fast_bitrix24 import BitrixAsync

METHOD = "catalog.productImage.get"


def read_manifest(path: Path) -> list[dict[str, int]]:
    with path.open(encoding="utf-8") as rows:
        return [
            {"productId": int(r["productId"]), "id": int(r["id"])} for r in csv.DictReader(rows)
        ]


def safe(name: str) -> str:
    return "".join("_" if ch in "/\\\0" else ch for ch in name).lstrip(".") or "_"


async def save(
    session: aiohttp.ClientSession, image: dict[str, Any], out: Path, headers: dict[str, str]
) -> None:
    async with session.get(image["downloadUrl"], headers=headers) as answer:
        answer.raise_for_status()
        body = await answer.read()
        content_type = answer.headers.get("Content-Type", "")
    folder = out / str(image["productId"])
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{image['id']}_{safe(str(image.get('name') or 'image'))}"
    file.write_bytes(body)
    fields = {key: value for key, value in image.items() if key != "downloadUrl"}
    sidecar = {
        "productImage": fields,
        "file": {
            "name": file.name,
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "contentType": content_type,
        },
    }
    file.with_name(file.name + ".json").write_text(
        json.dumps(sidecar, ensure_ascii=False, indent=2), encoding="utf-8"
    )


async def export(args: argparse.Namespace) -> None:
    wanted = read_manifest(args.manifest)
    bitrix = BitrixAsync(
        args.webhook,
        verbose=False,
        request_pool_size=args.burst,
        requests_per_second=args.rps,
    )
    answers = await bitrix.call(METHOD, wanted)
    if isinstance(answers, dict):  # a single item comes back unwrapped
        answers = [answers]
    images = [answer.get("productImage", answer) for answer in answers]
    base = args.webhook.split("/rest/")[0]
    headers = {"User-Agent": "peer-fast-bitrix24/1.0", "Referer": f"{base}/"}
    gate = asyncio.Semaphore(args.parallel)

    async def one(image: dict[str, Any]) -> None:
        async with gate:
            await save(session, image, args.out, headers)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(image) for image in images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("webhook")
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rps", type=float, default=2.0)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(export(args))


if __name__ == "__main__":
    main()
