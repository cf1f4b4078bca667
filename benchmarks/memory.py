"""Resident-memory readings of the current process (Linux /proc, with a getrusage fallback).

A benchmark worker loads its data, reads the resident set size (RSS), resets the kernel's peak-RSS mark
(``/proc/self/clear_refs`` ← 5), trains, and reads the peak (VmHWM). The training's extra memory is
peak − RSS before training. Reading VmHWM of the worker itself, rather than ``ru_maxrss``, avoids two traps:
``ru_maxrss`` survives ``exec`` (a child can report its parent's peak) and it cannot be reset after data loading.
"""
from __future__ import annotations

import logging
import resource
from pathlib import Path

logger = logging.getLogger(__name__)

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
RESET_PEAK = "5"  # clear_refs code that resets VmHWM to the current RSS (Linux ≥ 4.0)


def _status_kib(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_bytes() -> int:
    """Resident set size now (VmRSS), in bytes; the getrusage peak where /proc is unavailable."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset the peak-RSS mark to the current RSS. Returns False where the kernel does not allow it."""
    try:
        CLEAR_REFS.write_text(RESET_PEAK)
    except OSError as error:
        logger.warning("cannot reset the peak RSS (%s); the peak will include data loading", error)
        return False
    return True


def peak_rss_bytes() -> int:
    """Peak resident set size since the last reset (VmHWM), in bytes; ``ru_maxrss`` where /proc is unavailable."""
    kib = _status_kib("VmHWM")
    return kib * 1024 if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
