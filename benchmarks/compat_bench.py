"""Facade against MiniSom: ``python benchmarks/compat_bench.py [--device cpu|cuda] [--repeats N] [--sizes N ...]``.

On the same synthetic blobs (D = 12, a 15 × 15 map, one seed) and in the same process, it times
``somtorch.compat.MiniSom`` and MiniSom 2.3.6 on ``train_random`` (10,000 updates), ``train_batch_offline``,
``quantization_error`` and ``topographic_error`` for every N in ``--sizes``, and reports median wall times and the
ratio facade / MiniSom (below 1: the facade is faster). ``train_batch_offline`` runs 3 iterations, or 1 from
10⁶ samples on, where MiniSom's per-sample loop takes about a minute per iteration. Each result also records how
far the facade's answer is from MiniSom's.

It writes ``benchmarks/results/compat_<device>.json`` and ``.md`` and prints the Markdown table.

``--small-calls`` measures call latency instead (issue 12): on one trained map per N, the queries a notebook calls
(``quantization_error``, ``topographic_error``, ``quantization``, ``activation_response``, ``win_map``) and one
``train_batch_offline`` iteration, at N = 10, 100, 10³, 10⁴ and 10⁶ by default, both libraries interleaved call by
call; the median of ``SMALL_CALL_SECONDS`` worth of calls (at least 3, or 1 where one MiniSom call takes longer).
It writes ``compat_small_calls_<device>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
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
from tqdm.auto import tqdm

from pipeline.outputs.atomic import write_json_atomic, write_text_atomic
from somtorch import compat

logger = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MAP_SIDE, FEATURES, CENTRES, SEED = 15, 12, 8, 0
ONLINE_UPDATES = 10_000
OFFLINE_ITERATIONS, OFFLINE_ITERATIONS_LARGE, LARGE = 3, 1, 1_000_000
SMALL_CALL_SIZES = [10, 100, 1_000, 10_000, 1_000_000]
SMALL_CALL_SECONDS = 1.0  # time budget per operation, library and N for the repeated calls
SMALL_CALL_MAX_REPEATS = 200


def make_blobs(n_samples: int, seed: int = SEED) -> np.ndarray:
    """(n_samples, 12) float64: 8 Gaussian blobs (centres uniform in [−5, 5]¹², unit spread), in random order."""
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-5, 5, size=(CENTRES, FEATURES))
    return centres[rng.randint(CENTRES, size=n_samples)] + rng.normal(size=(n_samples, FEATURES))


def build(library: str, device: str) -> Any:
    """A fresh 15 × 15 map of ``library`` ('minisom' or 'facade'), seeded so both start from the same weights."""
    kwargs = dict(sigma=1.5, learning_rate=0.5, random_seed=SEED)
    if library == "minisom":
        return minisom.MiniSom(MAP_SIDE, MAP_SIDE, FEATURES, **kwargs)
    dtype = torch.float32 if device == "cuda" else torch.float64
    return compat.MiniSom(MAP_SIDE, MAP_SIDE, FEATURES, device=device, dtype=dtype, **kwargs)


def timed(call: Callable[[], Any], device: str) -> tuple[float, Any]:
    """(seconds, result) of one call; waits for the GPU before stopping the clock."""
    start = time.perf_counter()
    result = call()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def operations(data: np.ndarray) -> dict[str, tuple[Callable[[Any], Any], bool]]:
    """name → (call on a map, whether it trains). Queries run on a map trained by ``train_random`` first."""
    offline = OFFLINE_ITERATIONS_LARGE if len(data) >= LARGE else OFFLINE_ITERATIONS
    return {
        f"train_random ({ONLINE_UPDATES:,} updates)": (lambda som: som.train_random(data, ONLINE_UPDATES), True),
        f"train_batch_offline ({offline} it.)": (lambda som: som.train_batch_offline(data, offline), True),
        "quantization_error": (lambda som: som.quantization_error(data), False),
        "topographic_error": (lambda som: som.topographic_error(data), False),
    }


def measure(data: np.ndarray, device: str, repeats: int, progress: tqdm) -> list[dict[str, Any]]:
    """Median times of every operation for both libraries on ``data``, interleaved repeat by repeat."""
    rows = []
    for name, (call, trains) in operations(data).items():
        times: dict[str, list[float]] = {"minisom": [], "facade": []}
        answers: dict[str, Any] = {}
        for _ in range(repeats):
            for library in ("minisom", "facade"):
                som = build(library, device)
                if not trains:
                    som.train_random(data, ONLINE_UPDATES)
                seconds, result = timed(lambda: call(som), device)
                times[library].append(seconds)
                answers[library] = np.asarray(som.get_weights(), dtype=np.float64) if trains else float(result)
                progress.update(1)
        deviation = float(np.abs(answers["facade"] - answers["minisom"]).max())
        minisom_s, facade_s = statistics.median(times["minisom"]), statistics.median(times["facade"])
        rows.append({"n_samples": len(data), "operation": name, "minisom_s": minisom_s, "facade_s": facade_s,
                     "ratio": facade_s / minisom_s, "speedup": minisom_s / facade_s, "max_abs_deviation": deviation,
                     "repeats": repeats})
        logger.info("N=%d %s: MiniSom %.4g s, facade %.4g s", len(data), name, minisom_s, facade_s)
    return rows


def small_call_operations(data: np.ndarray) -> dict[str, Callable[[Any], Any]]:
    """name → a call on a trained map whose result (a number or an array) both libraries must agree on."""
    return {
        "quantization_error": lambda som: som.quantization_error(data),
        "topographic_error": lambda som: som.topographic_error(data),
        "quantization": lambda som: som.quantization(data),
        "activation_response": lambda som: som.activation_response(data),
        "win_map (indices)": lambda som: som.win_map(data, return_indices=True),
        "train_batch_offline (1 it.)": lambda som: (som.train_batch_offline(data, 1), np.array(som.get_weights()))[1],
    }


def _same(a: Any, b: Any) -> bool:
    """Whether two results are identical (``==`` on numbers, arrays and dicts of index lists)."""
    if isinstance(a, dict):
        return {k: list(v) for k, v in a.items()} == {k: list(v) for k, v in b.items()}
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def measure_small_calls(data: np.ndarray, device: str, progress: tqdm) -> list[dict[str, Any]]:
    """Median latency of each small call for both libraries on maps trained identically (``train_random``)."""
    maps = {library: build(library, device) for library in ("minisom", "facade")}
    for som in maps.values():
        som.train_random(data, min(ONLINE_UPDATES, 10 * len(data)))
    rows = []
    for name, call in small_call_operations(data).items():
        times: dict[str, list[float]] = {"minisom": [], "facade": []}
        answers: dict[str, Any] = {}
        fresh = {library: build(library, device) for library in maps}  # training calls start from the same map
        for library, som in fresh.items():
            som._weights = np.array(maps[library].get_weights())
        while True:
            for library in ("minisom", "facade"):
                som = fresh[library] if name.startswith("train") else maps[library]
                seconds, result = timed(lambda: call(som), device)
                times[library].append(seconds)
                answers.setdefault(library, result)
            spent, repeats = sum(times["minisom"]) + sum(times["facade"]), len(times["minisom"])
            if repeats >= SMALL_CALL_MAX_REPEATS or (repeats >= 3 and spent > SMALL_CALL_SECONDS) or spent > 10 * SMALL_CALL_SECONDS:
                break
        progress.update(1)
        minisom_s, facade_s = statistics.median(times["minisom"]), statistics.median(times["facade"])
        rows.append({"n_samples": len(data), "operation": name, "minisom_s": minisom_s, "facade_s": facade_s,
                     "ratio": facade_s / minisom_s, "identical": _same(answers["minisom"], answers["facade"]),
                     "repeats": len(times["minisom"])})
        logger.info("N=%d %s: MiniSom %.3g ms, facade %.3g ms", len(data), name, 1e3 * minisom_s, 1e3 * facade_s)
    return rows


def render_small_calls(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [f"### Small-call latency: somtorch.compat.MiniSom vs MiniSom 2.3.6 ({info['device']})", "",
             f"Machine: {info['platform']}, {info['cpu_count']} CPU cores, load average {info['load_average_1min']:.1f} "
             f"at the end, {info['torch_threads']} torch thread(s); torch {info['torch']}, numpy {info['numpy']}. "
             "Map 15 × 15, D = 12, synthetic blobs, trained by `train_random` on the same N. Median of the repeated "
             "calls; `identical`: the facade's result `==` MiniSom's.", "",
             "| N | operation | MiniSom (ms) | facade (ms) | facade / MiniSom | identical | calls |",
             "| ---: | --- | ---: | ---: | ---: | :---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['n_samples']:,} | {row['operation']} | {1e3 * row['minisom_s']:.4g} | "
                     f"{1e3 * row['facade_s']:.4g} | {row['ratio']:.3g} | {'yes' if row['identical'] else 'no'} | "
                     f"{row['repeats']} |")
    return "\n".join(lines) + "\n"


def machine_info(device: str) -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0], "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "minisom": "2.3.6", "device": device,
            "torch_threads": torch.get_num_threads()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def render(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    dtype = "float32" if info["device"] == "cuda" else "float64"
    lines = [f"### somtorch.compat.MiniSom vs MiniSom 2.3.6 ({info['device']}, facade in {dtype})", "",
             f"Machine: {info['platform']}, {info['cpu_count']} CPU cores ({info['processor']}), "
             f"load average {info['load_average_1min']:.1f} at the end, {info['torch_threads']} torch thread(s)"
             + (f", GPU {info['gpu']}" if "gpu" in info else "")
             + f"; torch {info['torch']}, numpy {info['numpy']}. Map 15 × 15, D = 12, synthetic blobs; "
             f"median of {rows[0]['repeats']} runs each.", "",
             "| N | operation | MiniSom (s) | facade (s) | facade / MiniSom | speed-up | max abs deviation |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['n_samples']:,} | {row['operation']} | {row['minisom_s']:.4g} | {row['facade_s']:.4g} | "
                     f"{row['ratio']:.3g} | {row['speedup']:.3g}× | {row['max_abs_deviation']:.2g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="runs per operation and library (median reported)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="numbers of samples N")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 avoids OpenMP stalls on an oversubscribed machine")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--small-calls", action="store_true",
                        help=f"measure call latency at --sizes (default {SMALL_CALL_SIZES}) instead")
    args = parser.parse_args(argv)
    if args.small_calls and "--sizes" not in " ".join(argv if argv is not None else sys.argv[1:]):
        args.sizes = SMALL_CALL_SIZES
    if args.repeats < 1 or min(args.sizes) < 2:
        parser.error("--repeats must be >= 1 and every size >= 2")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but torch.cuda.is_available() is False")
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.simplefilter("ignore", UserWarning)

    warm = make_blobs(500, seed=1)  # first-call costs (torch kernels, thread pools) stay out of the timings
    for call, _ in operations(warm).values():
        call(build("facade", args.device))
    if args.small_calls:
        return _run_small_calls(args)
    rows = []
    with tqdm(total=len(args.sizes) * 4 * 2 * args.repeats, desc="compat bench", unit="run", disable=None) as progress:
        for n_samples in args.sizes:
            rows += measure(make_blobs(n_samples), args.device, args.repeats, progress)
    info = machine_info(args.device)
    report = {"meta": info, "results": rows}
    table = render(rows, info)
    write_json_atomic(report, args.output_dir / f"compat_{args.device}.json")
    write_text_atomic(table, args.output_dir / f"compat_{args.device}.md")
    print(table)
    return report


def _run_small_calls(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    with tqdm(total=len(args.sizes) * len(small_call_operations(np.zeros((1, 1)))), desc="small calls", unit="op",
              disable=None) as progress:
        for n_samples in args.sizes:
            rows += measure_small_calls(make_blobs(n_samples), args.device, progress)
    info = machine_info(args.device)
    table = render_small_calls(rows, info)
    write_json_atomic({"meta": info, "results": rows}, args.output_dir / f"compat_small_calls_{args.device}.json")
    write_text_atomic(table, args.output_dir / f"compat_small_calls_{args.device}.md")
    print(table)
    return {"meta": info, "results": rows}


if __name__ == "__main__":
    main()
