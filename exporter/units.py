"""How sizes and durations are shown to a person: one formatter each, one unit system.

Sizes are decimal (1 MB = 1,000,000 bytes), as transfer rates (MB/s) are.
"""

from __future__ import annotations


def format_bytes(count: int) -> str:
    """`512 B`, `48.2 KB`, `6.2 MB`, `1.3 GB`, `2.0 TB`."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def format_duration(seconds: float) -> str:
    """`3h05m`, `4m07s`, `12s`."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
