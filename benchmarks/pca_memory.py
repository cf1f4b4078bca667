"""Peak memory of ``SOM.pca_weights_init`` above its data (issue 14 target: ≤ data size + 64 MB).

    python benchmarks/pca_memory.py --rows 1e6,4e6 --features 64

Each size runs in its own process: float32 data (rows × features) is drawn, a warm-up call on 1,000 rows
loads the BLAS buffers, the kernel's peak-RSS mark is reset (``benchmarks.memory``), and the peak of one
``pca_weights_init`` on all rows is read. Prints one line per size: data MiB, extra MiB, seconds, and the
target's verdict (PASS when the peak above the data is ≤ ``TARGET_EXTRA_MIB``, else MISS).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_EXTRA_MIB = 64  # issue 14: peak ≤ data size + 64 MB (MiB here, as in the rest of the harness)


def measure(rows: int, features: int) -> str:
    """One size, in this process: data size, peak above it, seconds."""
    from benchmarks.memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss
    from somtorch import SOM

    data = np.random.default_rng(0).standard_normal((rows, features), dtype=np.float32)
    som = SOM(50, 50, features, dtype="float32")
    som.pca_weights_init(data[:1000])  # warm-up: BLAS and torch buffers, not the data's cost
    before = current_rss_bytes()
    reset_peak_rss()
    started = time.perf_counter()
    som.pca_weights_init(data)
    seconds = time.perf_counter() - started
    extra = peak_rss_bytes() - before
    verdict = "PASS" if extra <= TARGET_EXTRA_MIB * 2**20 else "MISS"
    return (f"{rows:>10,} × {features}: data {data.nbytes / 2**20:,.0f} MiB, peak above it "
            f"{extra / 2**20:,.0f} MiB, {seconds:.2f} s; target ≤ data + {TARGET_EXTRA_MIB} MiB: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1e6,4e6", help="comma-separated row counts (default 1e6,4e6)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # the per-size child process
    args = parser.parse_args(argv)
    if args.one is not None:
        print(measure(args.one, args.features))
        return 0
    for rows in (int(float(text)) for text in args.rows.split(",")):
        subprocess.run([sys.executable, __file__, "--one", str(rows), "--features", str(args.features)],
                       check=True, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
