"""Time somtorch against every installed SOM library: ``python benchmarks/run.py --workload W1|W2|W3|bigmap|all``.

For each workload the harness measures, each in a fresh worker process (:mod:`benchmarks.worker`):

* the bare distance floor (product + argmin, see :mod:`benchmarks.floor`);
* every library run, ``--repeats`` times, interleaved library by library so load changes hit all alike, reporting
  the median wall time, QE, TE (one shared scorer, :mod:`benchmarks.scoring`) and peak memory;
* time to quality: for a target QE of 1.05 × the best final QE, the first budget at which each library reaches it;
* with ``--busy``, every timed run a second time beside one CPU-bound competitor process (:mod:`benchmarks.busy`),
  quiet and busy interleaved, reporting each library's busy/quiet ratio and the 1-minute load average.

Workloads beyond the default set: ``W2pca`` (W2 on the second schedule: PCA start, σ = 3, asymptotic decay) and
``QE`` (one quantization error of a fixed 15×15 map over 10⁶ rows, somtorch against MiniSom).

It writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/bench_<device>``) and prints the Markdown.
``--profile`` instead prints where somtorch's time goes on each chosen workload (see :mod:`benchmarks.profiling`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from tqdm.auto import tqdm

from benchmarks.busy import competitor, slowdown
from benchmarks.peers import PEERS, get_peer
from benchmarks.report import cpu_targets, cuda_targets, render_markdown
from benchmarks.workloads import TF32_WORKLOAD, VARIANT_SWITCHES, WORKLOADS, Entry, Workload, resolve_workloads
from pipeline.outputs.atomic import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
TTQ_FACTOR = 1.05
SLOW_RUN_S = 20.0  # a run slower than this is not repeated
TTQ_TIME_CAP_S = 60.0  # summed training time after which a library's time-to-quality sweep stops
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Environment of a worker per entry variant: somtorch's fused CUDA BMU search off, or with three-TF32 products.


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="all", help="W1, W2, W3, bigmap, gpu10m, tf32, a comma-separated list, or all")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per library (medians reported)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run of the harness")
    parser.add_argument("--libraries", default=None, help="comma-separated subset of " + ",".join(PEERS))
    parser.add_argument("--slow-peers", action="store_true", help="also run the slow peers (MiniSom online and quicksom on W2)")
    parser.add_argument("--no-ttq", action="store_true", help="skip the time-to-quality sweeps")
    parser.add_argument("--ttq-cap", type=float, default=TTQ_TIME_CAP_S, help="seconds of training per library per sweep")
    parser.add_argument("--out", type=Path, default=None, help="output path without suffix (default benchmarks/results/bench_<device>); "
                        "with --profile, the folder of the profile files (default benchmarks/results)")
    parser.add_argument("--worker-timeout", type=float, default=900.0, help="seconds before a worker is stopped")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for every library (OMP/MKL/OpenBLAS variables and torch); default: each library's own")
    parser.add_argument("--profile", action="store_true", help="profile somtorch on each workload instead of benchmarking")
    parser.add_argument("--busy", action="store_true",
                        help="also time every run beside one CPU-bound competitor process; report busy/quiet per library")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be ≥ 1; got {args.repeats}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be ≥ 1; got {args.threads}")
    try:
        args.workloads = resolve_workloads(args.workload, args.device)
        if args.libraries is not None:
            args.libraries = [name.strip() for name in args.libraries.split(",") if name.strip()]
            for name in args.libraries:
                get_peer(name)
    except ValueError as error:
        parser.error(str(error))
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch.cuda.is_available() is False on this machine")
    return args


def machine_info(device: str) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python, torch and NumPy builds, and the GPU when benchmarking CUDA."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    mem_kib = next((int(line.split()[1]) for line in _read_lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    info = {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores", "memory": f"{mem_kib / 2**20:.1f} GiB", "os": platform.platform(),
        "python": platform.python_version(), "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "numpy": f"{np.__version__} (BLAS: {blas.get('name', '?')} {blas.get('version', '')})".strip(),
    }
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    return info


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


class WorkerPool:
    """Starts worker processes with a shared data cache and a scratch folder; keeps their logs for errors."""

    def __init__(self, scratch: Path, quick: bool, timeout: float, threads: Optional[int] = None) -> None:
        self.scratch, self.quick, self.timeout = scratch, quick, timeout
        self.cache_dir = scratch / "data"
        self.cache_dir.mkdir()
        self.count = 0
        path = os.environ.get("PYTHONPATH", "")
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), path) if p), "TQDM_DISABLE": "1"}
        if threads is not None:
            self.env.update({name: str(threads) for name in THREAD_VARIABLES})

    def run(self, task: str, workload: str, device: str, **fields: Any) -> dict[str, Any]:
        """Run one worker; return its result, or {"error": ...} with the tail of its log when it fails."""
        self.count += 1
        stem = self.scratch / f"{self.count:03d}_{task}_{workload}"
        spec = {"task": task, "workload": workload, "device": device, "quick": self.quick, "cache_dir": str(self.cache_dir),
                "result_path": str(stem.with_suffix(".result.json")), **fields}
        stem.with_suffix(".spec.json").write_text(json.dumps(spec))
        log = stem.with_suffix(".log")
        command = [sys.executable, "-m", "benchmarks.worker", str(stem.with_suffix(".spec.json"))]
        variant = (fields.get("entry") or {}).get("variant")
        switch = VARIANT_SWITCHES.get(variant)
        env = {**self.env, **({switch.environment: switch.value} if switch else {})}
        try:
            with log.open("w") as sink:
                finished = subprocess.run(command, cwd=self.scratch, env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {self.timeout:.0f} s"}
        result_path = Path(spec["result_path"])
        if finished.returncode != 0 or not result_path.exists():
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            return {"error": f"worker exit {finished.returncode}: {tail[-400:]}"}
        return json.loads(result_path.read_text())


def _available_entries(workload: Workload, device: str, args: argparse.Namespace) -> tuple[list[Entry], list[dict[str, Any]]]:
    """Entries to run on this machine, and the skipped ones with the reason."""
    chosen, skipped = [], []
    for entry in workload.entries(device, args.slow_peers):
        peer = get_peer(entry.library)
        if args.libraries is not None and entry.library not in args.libraries:
            continue
        reason = peer.unavailable_reason() or (None if peer.runs_on(device) else f"cannot run on {device}")
        if reason:
            skipped.append({"label": entry.label, "mode": entry.mode, "version": peer.version(), "reason": reason})
        else:
            chosen.append(entry)
    if not args.slow_peers:
        for entry in workload.entries(device, True):
            if entry.slow and (args.libraries is None or entry.library in args.libraries):
                skipped.append({"label": entry.label, "mode": entry.mode, "version": get_peer(entry.library).version(),
                                "reason": "slow peer (run with --slow-peers)"})
    return chosen, skipped


def _key(entry: Entry) -> str:
    return f"{entry.label}|{entry.mode}"


def _task(entry: Entry) -> str:
    """The worker task that times ``entry``: ``qe`` for a quantization-error entry, else ``train``."""
    return "qe" if entry.mode == "qe" else "train"


def _busy_run(pool: WorkerPool, workload: Workload, entry: Entry, device: str) -> dict[str, Any]:
    """One unscored run of ``entry`` with a CPU-bound competitor beside the worker; adds the 1-minute load average."""
    with competitor():
        result = pool.run(_task(entry), workload.name, device, entry=asdict(entry), score=False)
        result["load_1min"] = os.getloadavg()[0]
    logger.info("%s %s beside a competitor: %s s, load average (1 min) %.2f", workload.name, entry.label,
                f"{result['seconds']:.3g}" if "seconds" in result else result.get("error"), result["load_1min"])
    return result


def time_libraries(pool: WorkerPool, workload: Workload, entries: list[Entry], device: str, repeats: int,
                   busy: bool = False) -> list[dict[str, Any]]:
    """Run every entry ``repeats`` times, interleaved (round r of every library before round r+1).

    The first round scores the map and saves somtorch's weights for the streaming comparisons. A library whose
    first run took longer than ``SLOW_RUN_S`` runs once. With ``busy``, each run is followed (odd rounds: preceded)
    by the same run beside a competitor process, and each aggregated run gains ``busy`` (see :func:`_add_busy`).
    """
    samples: dict[str, list[dict[str, Any]]] = {_key(e): [] for e in entries}
    busy_samples: dict[str, list[dict[str, Any]]] = {_key(e): [] for e in entries}
    rounds = tqdm(range(repeats), desc=f"{workload.name} runs", unit="round", disable=None)
    for round_index in rounds:
        for entry in entries:
            done = samples[_key(entry)]
            if round_index > 0 and (not done or "error" in done[0] or done[0]["seconds"] > SLOW_RUN_S):
                continue
            if busy and round_index % 2 == 1:
                busy_samples[_key(entry)].append(_busy_run(pool, workload, entry, device))
            weights_path = None
            if round_index == 0 and entry.library == "somtorch" and entry.mode == "batch":
                weights_path = str(pool.scratch / f"weights_{workload.name}_{entry.variant or 'memory'}.npy")
            done.append(pool.run(_task(entry), workload.name, device, entry=asdict(entry), score=round_index == 0, weights_path=weights_path))
            if busy and round_index % 2 == 0:
                busy_samples[_key(entry)].append(_busy_run(pool, workload, entry, device))
    runs = [_aggregate(entry, samples[_key(entry)]) for entry in entries]
    if busy:
        for run, entry in zip(runs, entries):
            _add_busy(run, busy_samples[_key(entry)])
    return runs


def _add_busy(run: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """``run["busy"]``: the busy runs' times, load averages and busy/quiet ratios (or their error)."""
    good = [r for r in results if "error" not in r]
    if not good or not run.get("median_s"):
        run["busy"] = {"error": results[0]["error"] if results and not good else "no quiet or busy run"}
        return
    times = [r["seconds"] for r in good]
    run["busy"] = {"times_s": times, "load_1min": [r["load_1min"] for r in good], **slowdown(run["times_s"], times)}


def _aggregate(entry: Entry, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median time over the successful runs; QE/TE/weights from the scored first run; worst memory peak."""
    peer = get_peer(entry.library)
    good = [r for r in results if "error" not in r]
    run: dict[str, Any] = {"label": entry.label, "entry": asdict(entry), "version": peer.version()}
    if not good:
        run.update(median_s=None, error=results[0]["error"] if results else "not run")
        return run
    first = good[0]
    times = [r["seconds"] for r in good]
    run.update(median_s=statistics.median(times), times_s=times, device_used=first["device_used"], qe=first.get("qe"), te=first.get("te"),
               peak_extra_mb=max(r["peak_extra_mb"] for r in good), peak_rss_mb=max(r["peak_rss_mb"] for r in good),
               rss_before_mb=first["rss_before_mb"], peak_method=first["peak_method"], weights_path=first.get("weights_path"))
    if "cuda_peak_extra_mb" in first:
        run["cuda_peak_extra_mb"] = max(r["cuda_peak_extra_mb"] for r in good)
    return run


def add_ratios(runs: list[dict[str, Any]]) -> None:
    """somtorch's median ÷ each run's median, against the somtorch run of the same mode (batch for mini-batch peers)."""
    somtorch = {r["entry"]["mode"]: r for r in runs if r["label"] == "somtorch" and r.get("median_s")}
    for run in runs:
        reference = somtorch.get(run["entry"]["mode"]) or somtorch.get("batch") or somtorch.get("online")
        if reference and run.get("median_s"):
            run["somtorch_ratio"] = reference["median_s"] / run["median_s"]
            run["compared_with"] = f"somtorch {reference['entry']['mode']}"


def weight_comparisons(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """max |W_variant − W_in-memory| and the time ratio for somtorch's input variants (chunks, host stream)."""
    base = next((r for r in runs if r["label"] == "somtorch" and r["entry"]["mode"] == "batch" and r.get("weights_path")), None)
    comparisons = {}
    for run in runs:
        if base and run is not base and run["entry"]["library"] == "somtorch" and run.get("weights_path") and run.get("median_s"):
            diff = np.abs(np.load(run["weights_path"]).astype(np.float64) - np.load(base["weights_path"])).max()
            comparisons[run["label"]] = {"max_abs_weight_diff": float(diff), "seconds_ratio": run["median_s"] / base["median_s"]}
    return comparisons


def time_to_quality(pool: WorkerPool, workload: Workload, entries: list[Entry], runs: list[dict[str, Any]], device: str,
                    cap: float) -> dict[str, Any]:
    """Target QE = TTQ_FACTOR × the best final QE of this workload; each library's first budget that reaches it."""
    finals = [r["qe"] for r in runs if r.get("qe") is not None]
    if not finals or not workload.ttq_fractions:
        return {}
    target = TTQ_FACTOR * min(finals)
    results = {}
    for entry in tqdm([e for e in entries if e.time_to_quality and e.variant is None], desc=f"{workload.name} time to quality", disable=None):
        budgets = sorted({max(1, round(f * entry.budget)) for f in workload.ttq_fractions})
        if entry.unit == "updates":
            budgets = [b for b in budgets if b <= workload.n_rows or entry.mode == "online"]
        result = pool.run("ttq", workload.name, device, entry=asdict(entry), budgets=budgets, target_qe=target, time_cap_s=cap)
        results[f"{entry.label} ({entry.mode})"] = result
    return {"target_qe": target, "target_factor": TTQ_FACTOR, "results": results}


def benchmark_workload(pool: WorkerPool, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Floor, timed runs, ratios, comparisons and time to quality of one workload."""
    start_load = os.getloadavg()[0]
    if name == "tf32":
        base = WORKLOADS[TF32_WORKLOAD].quick() if args.quick else WORKLOADS[TF32_WORKLOAD]
        result = pool.run("tf32", TF32_WORKLOAD, args.device)
        return {"spec": {"description": f"TF32 vs exact float32, one batch epoch on W3's shape ({base.n_rows:,} × {base.n_features}, "
                                         f"{base.x}×{base.y})"}, "result": result,
                "load_average": {"start": start_load, "end": os.getloadavg()[0]}}
    workload = WORKLOADS[name].quick() if args.quick else WORKLOADS[name]
    repeats = 1 if args.quick else args.repeats
    entries, skipped = _available_entries(workload, args.device, args)
    spec = {**{k: v for k, v in asdict(workload).items() if k not in ("cpu_entries", "cuda_entries")},
            "n_neurons": workload.n_neurons, "data_bytes": workload.data_bytes}
    floor = pool.run("floor", name, args.device, repeats=max(1, min(repeats, 3)))
    runs = time_libraries(pool, workload, entries, args.device, repeats, busy=args.busy)
    add_ratios(runs)
    section = {"spec": spec, "floor": floor, "runs": runs, "skipped": skipped, "comparisons": weight_comparisons(runs)}
    if not args.no_ttq:
        section["time_to_quality"] = time_to_quality(pool, workload, entries, runs, args.device, 10.0 if args.quick else args.ttq_cap)
    section["load_average"] = {"start": start_load, "end": os.getloadavg()[0]}
    return section


def versions() -> dict[str, Optional[str]]:
    return {name: peer.version() for name, peer in PEERS.items()}


def source_revision() -> str:
    """The repository's commit, with "+ uncommitted changes" when the working tree differs from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" + uncommitted changes" if dirty else "")


def main(argv: Optional[list[str]] = None) -> int:
    """Benchmark (or profile) the chosen workloads; write JSON and Markdown; print the Markdown."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.profile:
        from benchmarks.profiling import profile_workloads

        profile_workloads(args.workloads, args.device, args.quick, args.out or RESULTS_DIR)
        return 0
    out = args.out or RESULTS_DIR / f"bench_{args.device}{'_quick' if args.quick else ''}"
    started = time.perf_counter()
    report: dict[str, Any] = {"meta": {
        "command": "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "started": dt.datetime.now().isoformat(timespec="seconds"), "device": args.device, "quick": args.quick,
        "repeats": 1 if args.quick else args.repeats, "threads": args.threads or "library defaults", "machine": machine_info(args.device), "versions": versions(), "revision": source_revision(),
    }, "workloads": {}}
    report["meta"]["busy"] = args.busy
    with tempfile.TemporaryDirectory(prefix="somtorch_bench_") as scratch:
        pool = WorkerPool(Path(scratch), args.quick, args.worker_timeout, args.threads)
        for name in args.workloads:
            logger.info("workload %s on %s", name, args.device)
            report["workloads"][name] = benchmark_workload(pool, name, args)
            for run in report["workloads"][name].get("runs", []):
                run.pop("weights_path", None)
    report["targets"] = cpu_targets(report["workloads"]) if args.device == "cpu" else cuda_targets(report["workloads"])
    report["meta"]["wall_s"] = time.perf_counter() - started
    markdown = render_markdown(report)
    write_json_atomic(report, out.with_suffix(".json"))
    write_text_atomic(markdown, out.with_suffix(".md"))
    print(markdown)
    logger.info("wrote %s and %s", out.with_suffix(".json"), out.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
