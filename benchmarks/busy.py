"""The busy machine of ``benchmarks/run.py --busy``: one CPU-bound competitor process beside a timed run.

Each timed library run happens twice, quiet and with :func:`competitor` running (a Python spin loop started just
before the worker process and killed right after it, the same for every library). :func:`slowdown` turns the two
sets of wall times into the busy/quiet ratios the report and the targets use.
"""
from __future__ import annotations

import logging
import statistics
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

logger = logging.getLogger(__name__)

SPIN_LOOP = "while True: pass"  # one core's worth of pure CPU work, no memory traffic, no system calls


@contextmanager
def competitor() -> Iterator[subprocess.Popen]:
    """Run one CPU-bound process (``python -c SPIN_LOOP``) for the duration of the block, then kill it by its pid."""
    process = subprocess.Popen([sys.executable, "-c", SPIN_LOOP], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logger.debug("competitor pid %d started", process.pid)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def slowdown(quiet_s: list[float], busy_s: list[float]) -> dict[str, float]:
    """Busy/quiet ratios of one library's wall times (s): ``busy_median_s``, ``slowdown`` = median(busy) / median(quiet)
    and ``worst_slowdown`` = max(busy) / median(quiet). ValueError when either list is empty."""
    if not quiet_s or not busy_s:
        raise ValueError(f"slowdown needs ≥ 1 quiet and ≥ 1 busy time; got {len(quiet_s)} quiet, {len(busy_s)} busy")
    quiet = statistics.median(quiet_s)
    busy = statistics.median(busy_s)
    return {"busy_median_s": busy, "slowdown": busy / quiet, "worst_slowdown": max(busy_s) / quiet}
