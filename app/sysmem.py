"""How much memory this machine can give us now, and the one check every buffer
allocation (managers, trace headers) goes through before it asks for it.

Checks use *available* memory (``MemAvailable`` from ``/proc/meminfo``: free plus
reclaimable), not the total: a buffer larger than what is available would meet
the OOM killer rather than a clean error.
"""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now, or None when unknown."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_buffers_fit(shape: tuple[int, ...], count: int = 2, what: str = "buffers") -> None:
    """Raise MemoryError naming the limit when ``count`` float32 buffers of ``shape``
    exceed the memory available now."""
    nelem = 1
    for n in shape:
        nelem *= int(n)
    need = count * nelem * 4
    avail = available_memory()
    if avail is not None and need > avail:
        raise MemoryError(
            f"{count} {what} of shape {tuple(shape)} need {_gib(need)}; "
            f"this machine has {_gib(avail)} of memory available"
        )


def _gib(nbytes: int) -> str:
    """``nbytes`` in GiB for a message (exact integers beyond what a float holds)."""
    if nbytes < 1 << 60:
        return f"{nbytes / 2**30:.2f} GiB"
    return f"{nbytes >> 30} GiB"
