"""The portal: how the exporter talks to Bitrix24.

REST calls and `batch`, credentials (webhook or OAuth), the token-bucket limiter and
the request budget shared between processes, the per-method operating limit, image
metadata, the catalog walk, and the one retry policy every loop that retries follows.
Nothing here knows where an export lands.
"""
