"""The portal: how the exporter talks to Bitrix24, and nothing about where an export lands.

* `client` — REST calls, `batch` requests and downloads, each through the limiter;
  `transport` maps the HTTP library's exceptions onto the error tree at this edge.
* `auth` — the webhook or the OAuth app's tokens (refreshed once, written back).
* `batch` — packing calls into one request and reading each command's outcome.
* `ratelimit` — the token bucket tuned to `QUERY_LIMIT_EXCEEDED`; `budget` — its state
  shared by every exporter process on the machine; `operating` — the per-method
  execution-time limit (429 `OPERATION_TIME_LIMIT`).
* `retry` — the one retry policy every loop that asks again follows.
* `metadata` — image metadata (`catalog.productImage.get`/`list`) in batches;
  `catalog` — the walk of every catalog with the fast paging.
"""
