"""One evaluation pass against three: ``python benchmarks/evaluation.py [--device cpu|cuda] [--repeats N] [--quick]``.

On standardised blobs (D = 32) and a map trained as the pipeline's batch preset does (PCA start, σ 4 → 1 linearly;
here 10 epochs on the first 20,000 rows; float32, the SOM's default), for
10⁶ samples on 15 × 15 and 10⁵ samples on 30 × 30 it times, in the same run and on the same data (moved to the
device before the clock starts):

* ``SOM.evaluate``: BMUs, quantization error and topographic error from one two-best search;
* the three separate calls ``bmu_indices``, ``quantization_error``, ``topographic_error``;
* on a 10⁵-sample subset, MiniSom 2.3.6's ``quantization_error`` + ``topographic_error`` on the same weights
  (float64, as MiniSom computes), next to ``evaluate`` on that subset.

The somtorch calls run interleaved, ``--repeats`` rounds after a warm-up round (MiniSom's after them), the device synchronised before each clock
reading; each time is shown as median (min).
It prints a Markdown table, with how far the QE and TE of evaluate lie from MiniSom's on the subset.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minisom
import numpy as np
import torch

from benchmarks.workloads import make_blobs
from somtorch import SOM

logger = logging.getLogger(__name__)

CASES = ((1_000_000, 15), (100_000, 30))  # (N, map side)
QUICK_CASES = ((20_000, 15), (5_000, 30))
FEATURES = 32
MINISOM_ROWS = 100_000
TRAINING_ROWS, TRAINING_EPOCHS = 20_000, 10


def interleaved_times(calls: dict[str, Callable[[], Any]], repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Wall times (s) of each call, ``repeats`` rounds that run every call once in turn, after one warm-up round:
    on a shared machine a burst of load then slows all the contenders of a round, not just one."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(repeats + 1):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            synchronize()
            if round_:
                times[name].append(time.perf_counter() - start)
    return times


def preset_map(data: np.ndarray, side: int, device: str) -> SOM:
    """The map this benchmark scores (also the fixed map of ``benchmarks/run.py --workload QE``): side × side, PCA
    start, σ 4 → 1 linearly, ``TRAINING_EPOCHS`` batch epochs on the first ``TRAINING_ROWS`` rows of ``data`` (N, D)."""
    som = SOM(side, side, data.shape[1], sigma=4.0, sigma_decay_function="linear_decay_to_one", random_seed=0, device=device)
    som.pca_weights_init(data[:TRAINING_ROWS])
    som.train_batch(data[:TRAINING_ROWS], TRAINING_EPOCHS)
    return som


def three_calls(som: SOM, X: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """What the segmenter's evaluate stage did before ``SOM.evaluate``: three searches."""
    return som.bmu_indices(X), som.quantization_error(X), som.topographic_error(X)


def measure_case(n: int, side: int, device: str, repeats: int) -> dict[str, Any]:
    """Times (s) and agreement of evaluate, the three calls and MiniSom for one (N, map) case."""
    data = make_blobs(n, FEATURES, seed=0)
    som = preset_map(data, side, device)
    X = torch.from_numpy(data).to(som.device)
    subset = data[:MINISOM_ROWS].astype(np.float64)
    X_subset = X[:MINISOM_ROWS]
    reference = minisom.MiniSom(side, side, FEATURES)
    reference._weights = som.get_weights().astype(np.float64)
    result = som.evaluate(X)
    bmu, qe, te = three_calls(som, X)
    if not (torch.equal(result.bmu, bmu) and result.quantization_error == qe and result.topographic_error == te):
        raise AssertionError(f"evaluate disagrees with the three calls on N={n}, {side}×{side}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minisom_metrics = (reference.quantization_error(subset), reference.topographic_error(subset))
    on_subset = som.evaluate(X_subset)
    times = interleaved_times({
        "evaluate": lambda: som.evaluate(X),
        "three_calls": lambda: three_calls(som, X),
        "evaluate_subset": lambda: som.evaluate(X_subset),
    }, repeats, som.device)
    # MiniSom on its own afterwards: OpenBLAS's threads, still spinning after its products, slowed the torch call that
    # followed them 2-3x when the two libraries alternated.
    times.update(interleaved_times({
        "minisom_subset": lambda: (reference.quantization_error(subset), reference.topographic_error(subset))}, repeats, som.device))
    return {
        "case": f"{n:,} × {FEATURES}, {side}×{side}",
        **{f"{name}_s": (statistics.median(values), min(values)) for name, values in times.items()},
        "qe_gap": abs(on_subset.quantization_error - minisom_metrics[0]) / minisom_metrics[0],
        "te_gap": abs(on_subset.topographic_error - minisom_metrics[1]),
        "subset_rows": len(subset),
    }


def markdown_table(rows: list[dict[str, Any]], device: str, repeats: int) -> str:
    """The results as Markdown: times as "median (min)" over ``repeats`` rounds, ratios of the medians."""
    shown = lambda pair: f"{pair[0]:.3f} ({pair[1]:.3f})"  # noqa: E731
    lines = [
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {repeats} rounds; "
        "float32 SOM, MiniSom in float64; seconds, median (min)",
        "",
        "| case | evaluate | 3 calls | 3 calls / evaluate | subset rows | evaluate on subset "
        "| MiniSom QE+TE on subset | MiniSom / evaluate | QE rel. gap | TE gap |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {shown(r['evaluate_s'])} | {shown(r['three_calls_s'])} "
            f"| {r['three_calls_s'][0] / r['evaluate_s'][0]:.2f} | {r['subset_rows']:,} | {shown(r['evaluate_subset_s'])} "
            f"| {shown(r['minisom_subset_s'])} | {r['minisom_subset_s'][0] / r['evaluate_subset_s'][0]:.1f} "
            f"| {r['qe_gap']:.1e} | {r['te_gap']:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median and min)")
    parser.add_argument("--quick", action="store_true", help=f"small sizes {QUICK_CASES} to check the script")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be ≥ 1; got {args.repeats}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for n, side in QUICK_CASES if args.quick else CASES:
        logger.info("measuring N=%d on %d×%d", n, side, side)
        rows.append(measure_case(n, side, args.device, args.repeats))
    print(markdown_table(rows, args.device, args.repeats))


if __name__ == "__main__":
    main()
