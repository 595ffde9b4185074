"""The destination: where an export lands and how it is kept whole; it never talks to the portal.

* `base` — the protocol every destination implements (open and lock, is-done, a sink
  per file that writes, commits or discards, the commit of file, index line and
  sidecar as one, close).
* `folder` — a local folder, the first implementation, with `lock` (one run at a
  time) and `index` (the done images, so a re-run asks the portal nothing for them).
* `receive` — a download streamed into any sink, checked by `content` on its first
  bytes and against its length.
* `paths` — each image's name from `output.layout`, made safe, never shared.
* `sidecar` — the JSON next to every file: written, and read by the one parser.
* `verify` — every file re-hashed against its sidecar.
"""
