"""Byte counts as people read them, in SI units (1 MB = 1,000,000 bytes), as the Hugging Face Hub shows them."""

from __future__ import annotations


def human_size(n: float | None) -> str:
    """"288.6 MB", "740 KB", "12 B"; "" for no size (unknown, or nothing yet)."""
    if not n:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1000
    return ""
