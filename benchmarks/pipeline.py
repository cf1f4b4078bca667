"""Time the main job end to end: ``python benchmarks/pipeline.py --rows 1e4,1e5,1e6 [--impl new=PATH,old=PATH]``.

For each size (rows of a synthetic ``cproducts.csv``-format file, written once into ``--cache`` and reused) and
each implementation (a checkout folder holding ``train.py``) it runs

    python train.py data=bigbazaar data.path=<file> hydra.run.dir=<scratch> plots.enabled=true [--override ...]

in a fresh wrapper process, and records the wall time, the run's peak RSS (``ru_maxrss`` of the wrapper's only
child, so no earlier run and not the harness itself can leak into it) and ``metrics.json``'s ``timings_s`` per
stage. In the same run it times ``pyarrow.csv.read_csv`` of the same file (best of 3) and reports
wall / read, the issue's yardstick. ``--old-ref REF`` checks out REF as the "old" implementation
(``git worktree add --detach <cache>/old-<REF> REF``, once, then reused). ``--timeout`` and ``--rss-limit`` stop a
run (recorded as ``stopped``; the stages its log says finished are kept), so a run that would exhaust a shared
machine's memory is reported instead of waking the OOM killer.

Files: ``rows_per_customer="sample"`` (about 1.15 rows per customer), so a size of R rows draws round(R / 1.15)
customers; the actual row count is reported. Large files are drawn in blocks of ``BLOCK_CUSTOMERS`` customers with
distinct seeds and appended in order, so memory stays bounded; block b adds b·10^9 to its integer customer ids
(``BBID_<int>``; the generator's ids have at most 9 digits), so blocks never share a customer.

``--device cpu,cuda`` runs every implementation once per device (the override ``device=<d>``); the tables then name
each run ``<impl> (<device>)``, so the stages of the same job on the CPU and on the GPU sit side by side.

Writes ``benchmarks/results/pipeline-<host>-<date>.json`` and ``.md`` (``--out`` to change) and prints the Markdown.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Optional

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.run import machine_info, source_revision
from pipeline.outputs.atomic import atomic_path, write_json_atomic, write_text_atomic
from pipeline.sources.synthetic import write_synthetic

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DEFAULT_CACHE = Path("~/.cache/somtorch-bench/pipeline")
DEFAULT_ROWS = "1e4,1e5,1e6"
FORMAT_VERSION = 1  # bump when the cached files' content changes (generator, block layout, id remapping)
# rows_per_customer mode -> (mean rows per customer, customers per generated block). "sample" is the real file's
# line sample (1.15 rows a customer: the customer table is as long as the file); "history" draws whole customer
# histories (about 17 rows a customer, as retail data with repeat customers).
ROWS_PER_CUSTOMER = {"sample": 1.15, "history": 17.35}
BLOCK_CUSTOMERS = {"sample": 1_000_000, "history": 60_000}
ID_BLOCK_OFFSET = 10**9  # larger than every generated id (at most 9 digits)
ID_PREFIX = "BBID_"
READ_REPEATS = 3
RUN_TIMEOUT_S = 3600.0
GB = 1e9
ERROR_TAIL_CHARS = 2000
DEVICES = ("auto", "cpu", "cuda")  # configs/device options
# pipeline.segmentation.segmenter.timed_stage logs "stage <name> took <seconds> s": how a failed run's finished stages are known.
STAGE_LOG_LINE = re.compile(r"stage (\S+) took ([0-9.]+) s")
# The targets (2-core machine): (name, smallest rows, largest rows, wall / read limit, peak RSS limit in GB).
SIZE_TARGETS = (("~10^6 rows", 5 * 10**5, 5 * 10**6, 10.0, 1.5), ("~10^7 rows", 5 * 10**6, math.inf, 10.0, 3.0))
RSS_GROWTH_LIMIT = 1.5  # peak RSS at ~10^7 rows ≤ 1.5 × peak RSS at ~10^6 rows

# The measuring wrapper: a fresh, small interpreter (standard library only) whose one child is the run, so
# RUSAGE_CHILDREN is that run's peak and nothing else (ru_maxrss survives exec, so a child forked from the
# harness could report the harness's own peak).
MEASURE_WRAPPER = r"""
import json, resource, subprocess, sys, time
timeout_s, rss_limit_bytes, cwd, log_path, command = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]

def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0

started = time.perf_counter()
stopped = None
with open(log_path, "w") as log:
    child = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    while child.poll() is None:
        if stopped is None and time.perf_counter() - started > timeout_s:
            stopped = "timeout"
        elif stopped is None and rss_bytes(child.pid) > rss_limit_bytes:
            stopped = "rss_limit"
        if stopped:
            child.kill()
        try:
            child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
wall_s = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall_s": wall_s, "peak_rss_bytes": peak_kib * 1024, "returncode": child.returncode,
                  "stopped": stopped}))
"""


def parse_rows(text: str) -> list[int]:
    """``"1e4,1e5,2000"`` -> ``[10000, 100000, 2000]``: comma-separated positive row counts (floats rounded)."""
    sizes = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--rows: {item!r} is not a number; give comma-separated counts such as 1e4,1e5") from None
        if not math.isfinite(value) or round(value) < 1:
            raise ValueError(f"--rows: {item!r} must be a positive row count")
        sizes.append(int(round(value)))
    return sizes


def parse_impls(text: Optional[str]) -> dict[str, Path]:
    """``"new=PATH,old=PATH"`` -> ``{"new": Path, "old": Path}``; None -> ``{"new": this repository}``.

    Each folder must hold a ``train.py``; names must be unique.
    """
    if text is None:
        return {"new": REPO_ROOT}
    impls: dict[str, Path] = {}
    for item in text.split(","):
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--impl: {item!r} is not NAME=PATH (e.g. new=.,old=/tmp/old)")
        if name in impls:
            raise ValueError(f"--impl: the name {name!r} is given twice")
        path = Path(folder).expanduser().resolve()
        if not (path / "train.py").is_file():
            raise ValueError(f"--impl: {path} holds no train.py")
        impls[name] = path
    return impls


def parse_devices(text: Optional[str]) -> list[Optional[str]]:
    """``"cpu,cuda"`` -> ``["cpu", "cuda"]`` (each a ``device=`` option of the job); None -> ``[None]`` (the job's
    configured device)."""
    if text is None:
        return [None]
    devices = [item.strip() for item in text.split(",")]
    for device in devices:
        if device not in DEVICES:
            raise ValueError(f"--device: {device!r} is not a device option; choose from {list(DEVICES)}, comma-separated")
    if len(set(devices)) != len(devices):
        raise ValueError(f"--device: {text!r} names a device twice")
    return devices


def run_label(run: dict[str, Any]) -> str:
    """A run's name in the tables: its implementation, and its device when ``--device`` chose one."""
    return run["impl"] if run.get("device") is None else f"{run['impl']} ({run['device']})"


def old_ref_checkout(ref: str, cache: Path, repo: Path = REPO_ROOT) -> Path:
    """A detached git worktree of ``repo`` at ``ref`` under ``cache`` (``old-<ref>``), created on first use and
    reused."""
    folder = cache / ("old-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in ref))
    if not (folder / "train.py").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=repo, check=True,
                       capture_output=True, text=True)
        logger.info("checked out %s into %s", ref, folder)
    return folder


def customers_for_rows(rows: int, mode: str = "sample") -> int:
    """Customers to draw for about ``rows`` rows: round(rows / mean rows per customer of ``mode``), at least 1."""
    return max(1, round(rows / ROWS_PER_CUSTOMER[mode]))


def cached_file_path(cache: Path, rows: int, seed: int, mode: str = "sample") -> Path:
    """Where the file of ``rows`` requested rows, ``seed`` and ``mode`` lives in ``cache``; the name carries the
    format version (sample-mode files keep their first name)."""
    drawn = "" if mode == "sample" else f"-{mode}"
    return cache / f"cproducts-synthetic-v{FORMAT_VERSION}{drawn}-rows{rows}-seed{seed}.csv"


def remap_block_line(line: str, offset: int) -> str:
    """Add ``offset`` to the integer of the line's leading ``BBID_<int>`` field (the customerID column)."""
    customer, sep, rest = line.partition(",")
    if not customer.startswith(ID_PREFIX) or not sep:
        raise ValueError(f"a synthetic row does not start with {ID_PREFIX}<int>,: {line[:80]!r}")
    return f"{ID_PREFIX}{int(customer[len(ID_PREFIX):]) + offset}{sep}{rest}"


def write_synthetic_rows(path: Path, rows: int, seed: int, block_customers: Optional[int] = None,
                         mode: str = "sample") -> dict[str, Any]:
    """Write a ``cproducts.csv``-format file of about ``rows`` rows to ``path`` atomically, in blocks.

    Block b (b = 0, 1, ...) holds up to ``block_customers`` customers drawn by
    ``write_synthetic(n_customers=..., seed=seed * 10_000 + b, rows_per_customer=mode)``; its ids get
    b·10^9 added and its rows are appended in their own order (one header). Returns the file's description:
    rows, customers, blocks, seed, bytes and generation seconds.
    """
    block_customers = BLOCK_CUSTOMERS[mode] if block_customers is None else block_customers
    if block_customers < 1:
        raise ValueError(f"block_customers must be ≥ 1; got {block_customers}")
    started = time.perf_counter()
    n_customers = customers_for_rows(rows, mode)
    n_blocks = math.ceil(n_customers / block_customers)
    n_rows = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as out, \
            tempfile.TemporaryDirectory(prefix=".blocks-", dir=path.parent) as scratch:
        for block in range(n_blocks):
            size = min(block_customers, n_customers - block * block_customers)
            block_path, _ = write_synthetic(scratch, n_customers=size, seed=seed * 10_000 + block,
                                            rows_per_customer=mode)
            with open(block_path, newline="") as lines:
                header = next(lines)
                if block == 0:
                    out.write(header)
                for line in lines:
                    out.write(remap_block_line(line, block * ID_BLOCK_OFFSET) if block else line)
                    n_rows += 1
            logger.info("block %d/%d: %d customers, %d rows so far", block + 1, n_blocks, size, n_rows)
    description = {"rows_requested": rows, "rows": n_rows, "customers": n_customers, "blocks": n_blocks,
                   "seed": seed, "rows_per_customer": mode, "format_version": FORMAT_VERSION, "bytes": path.stat().st_size,
                   "generation_s": time.perf_counter() - started}
    logger.info("wrote %s: %d rows in %.1f s", path, n_rows, description["generation_s"])
    return description


def cached_synthetic_file(cache: Path, rows: int, seed: int, mode: str = "sample") -> tuple[Path, dict[str, Any]]:
    """The cached file for (rows, seed), generated only when absent; and its description (``cached`` True when
    it was already there). The description is kept beside the file as ``<file>.json``."""
    path = cached_file_path(cache, rows, seed, mode)
    sidecar = path.with_suffix(".json")
    if path.is_file():
        description = json.loads(sidecar.read_text()) if sidecar.is_file() else {"rows_requested": rows, "seed": seed}
        return path, {**description, "cached": True}
    path.parent.mkdir(parents=True, exist_ok=True)
    description = write_synthetic_rows(path, rows, seed, mode=mode)
    write_json_atomic(description, sidecar)
    return path, {**description, "cached": False}


def pyarrow_read_seconds(path: Path, repeats: int = READ_REPEATS) -> tuple[list[float], int]:
    """Wall seconds of each of ``repeats`` ``pyarrow.csv.read_csv(path)`` calls, and the rows read."""
    import pyarrow.csv

    times, n_rows = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        table = pyarrow.csv.read_csv(path)
        times.append(time.perf_counter() - started)
        n_rows = table.num_rows
        del table
    return times, n_rows


def train_command(data_path: Path, run_dir: Path, overrides: dict[str, str]) -> list[str]:
    """The main job's command line: data=bigbazaar on ``data_path``, Hydra's run folder ``run_dir``, plots on,
    then ``overrides`` (which may replace any of these)."""
    arguments = {"data": "bigbazaar", "data.path": str(data_path), "hydra.run.dir": str(run_dir),
                 "plots.enabled": "true", **overrides}
    return [sys.executable, "train.py"] + [f"{key}={value}" for key, value in arguments.items()]


def measure_run(impl: Path, command: list[str], run_dir: Path, timeout_s: float = RUN_TIMEOUT_S,
                rss_limit_bytes: float = math.inf) -> dict[str, Any]:
    """Run ``command`` in ``impl`` (cwd and PYTHONPATH) under the measuring wrapper; return wall_s,
    peak_rss_bytes, returncode, stopped (None, or "timeout" / "rss_limit" when the wrapper killed the run: past
    ``timeout_s`` seconds, or its RSS, polled every 0.2 s, above ``rss_limit_bytes``), timings_s (from
    ``run_dir/metrics.json``) and, for a failed run, the tail of its log, with timings_s taken from the stages its
    log says finished (``timings_from_log`` True)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir.parent / f"{run_dir.name}.log"
    inherited = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": str(impl) + (os.pathsep + inherited if inherited else "")}
    wrapper = [sys.executable, "-c", MEASURE_WRAPPER, str(timeout_s), str(rss_limit_bytes), str(impl), str(log_path)]
    finished = subprocess.run(wrapper + command, env=env, capture_output=True, text=True, check=True)
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    metrics_path = run_dir / "metrics.json"
    result["timings_s"] = json.loads(metrics_path.read_text()).get("timings_s", {}) if metrics_path.is_file() else {}
    if result["returncode"] != 0:
        log_text = log_path.read_text(errors="replace")
        result.update(error_tail=log_text[-ERROR_TAIL_CHARS:], timings_s=logged_stage_seconds(log_text),
                      timings_from_log=True)
    return result


def logged_stage_seconds(log_text: str) -> dict[str, float]:
    """``{stage: seconds}`` of every "stage <name> took <seconds> s" line of a run's log, in log order."""
    return {match[1]: float(match[2]) for match in STAGE_LOG_LINE.finditer(log_text)}


def git_revision(folder: Path) -> str:
    """The short commit of the checkout at ``folder``, or "unknown"."""
    finished = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True)
    return finished.stdout.strip() if finished.returncode == 0 else "unknown"


def benchmark_size(rows: int, impls: dict[str, Path], cache: Path, seed: int, overrides: dict[str, str],
                   scratch: Path, timeout_s: float, rss_limit_bytes: float,
                   mode: str = "sample", devices: Iterable[Optional[str]] = (None,)) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The file's description (with the pyarrow read times) and one measured run per implementation and device
    (None: the job's configured device)."""
    path, file_info = cached_synthetic_file(cache, rows, seed, mode)
    read_times, read_rows = pyarrow_read_seconds(path)
    file_info.update(path=str(path), rows=read_rows, pyarrow_read_times_s=read_times, pyarrow_read_s=min(read_times))
    logger.info("%d rows: pyarrow read best of %d %.3f s", read_rows, len(read_times), file_info["pyarrow_read_s"])
    runs = []
    for device in devices:
        for name, impl in impls.items():
            run_dir = scratch / (f"rows{rows}-{name}" + ("" if device is None else f"-{device}"))
            command = train_command(path, run_dir, overrides if device is None else {**overrides, "device": device})
            label = run_label({"impl": name, "device": device})
            logger.info("%d rows, %s: %s", read_rows, label, shlex.join(command))
            result = measure_run(impl, command, run_dir, timeout_s, rss_limit_bytes)
            shutil.rmtree(run_dir, ignore_errors=True)  # result.csv at 10^7 rows is GBs
            ok = result["returncode"] == 0
            runs.append({"rows": read_rows, "rows_requested": rows, "impl": name, "device": device, **result,
                         "ratio_to_pyarrow_read": result["wall_s"] / file_info["pyarrow_read_s"] if ok else None,
                         "peak_rss_gb": result["peak_rss_bytes"] / GB})
            logger.info("%d rows, %s: %s in %.1f s, peak RSS %.2f GB", read_rows, label, "done" if ok else "FAILED",
                        result["wall_s"], result["peak_rss_bytes"] / GB)
    return file_info, runs


def size_targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PASS/MISS of the issue's targets for each implementation, at the sizes they name (others are n/a).

    The RSS growth target compares the largest peak at ~10^7 rows with the largest at ~10^6; a run at either size
    that did not complete makes it a MISS (its peak is only a lower bound)."""
    targets = []
    for impl in dict.fromkeys(run_label(run) for run in runs):
        peak_by_class: dict[str, tuple[float, bool]] = {}  # name -> (largest peak GB, every run completed)
        for name, low, high, ratio_limit, rss_limit in SIZE_TARGETS:
            for run in (r for r in runs if run_label(r) == impl and low <= r["rows"] < high):
                ok = run["returncode"] == 0
                ratio = run["ratio_to_pyarrow_read"]
                targets.append({"impl": impl, "rows": run["rows"], "target": f"{name}: completes, wall ≤ {ratio_limit:g} × "
                                f"pyarrow read, peak RSS ≤ {rss_limit:g} GB", "measured": f"ratio {_fmt(ratio)}, "
                                f"{run['peak_rss_gb']:.2f} GB", "status": "PASS" if ok and ratio <= ratio_limit and
                                run["peak_rss_gb"] <= rss_limit else "MISS"})
                peak, completed = peak_by_class.get(name, (0.0, True))
                peak_by_class[name] = (max(peak, run["peak_rss_gb"]), completed and ok)
        small, large = (peak_by_class.get(name) for name, *_ in SIZE_TARGETS)
        if small and large:
            growth = large[0] / small[0]
            complete = small[1] and large[1]
            targets.append({"impl": impl, "rows": None, "target": f"peak RSS at ~10^7 ≤ {RSS_GROWTH_LIMIT:g} × at ~10^6",
                            "measured": f"{growth:.2f} ×" if complete else f"≥ {growth:.2f} × (a run did not complete)",
                            "status": "PASS" if complete and growth <= RSS_GROWTH_LIMIT else "MISS"})
    return targets


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def stage_names(runs: Iterable[dict[str, Any]]) -> list[str]:
    """Every stage in the runs' ``timings_s``, in order of first appearance."""
    return list(dict.fromkeys(stage for run in runs for stage in run["timings_s"]))


def render_markdown(report: dict[str, Any]) -> str:
    """The files table, the runs table (rows, impl, wall s, × pyarrow read, peak RSS GB, seconds per stage) and
    the targets."""
    meta = report["meta"]
    lines = [f"- command: `{meta['command']}`", f"- started: {meta['started']}; harness revision {meta['revision']}"]
    lines += [f"- impl {name}: {info['path']} ({info['revision']})" for name, info in meta["impls"].items()]
    lines += [f"- {key}: {value}" for key, value in meta["machine"].items()]
    lines += ["", "| rows | customers | MB | generated in s | pyarrow read s (best of 3) |", "| --- | --- | --- | --- | --- |"]
    for info in report["files"]:
        generated = "cached" if info.get("generation_s") is None else f"{info['generation_s']:.1f}" + (" (cached)" if info["cached"] else "")
        mb = f"{info['bytes'] / 1e6:.0f}" if "bytes" in info else "—"
        lines.append(f"| {info['rows']:,} | {info.get('customers', 0):,} | {mb} | {generated} | {info['pyarrow_read_s']:.3f} |")
    stages = stage_names(report["runs"])
    columns = ["rows", "impl", "wall s", "× pyarrow read", "peak RSS GB"] + [f"{stage} s" for stage in stages]
    lines += ["", "| " + " | ".join(columns) + " |", "| --- " * len(columns) + "|"]
    for run in report["runs"]:
        status = "" if run["returncode"] == 0 else (f" (stopped: {run['stopped']})" if run["stopped"] else f" (failed, exit {run['returncode']})")
        cells = [f"{run['rows']:,}", run_label(run), f"{run['wall_s']:.1f}{status}", _fmt(run["ratio_to_pyarrow_read"]),
                 f"{run['peak_rss_gb']:.2f}"] + [_fmt(run["timings_s"].get(stage)) for stage in stages]
        lines.append("| " + " | ".join(cells) + " |")
    if report["targets"]:
        lines += ["", "| impl | rows | target | measured | status |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {t['impl']} | {'—' if t['rows'] is None else format(t['rows'], ',')} | {t['target']} | {t['measured']} | "
                  f"**{t['status']}** |" for t in report["targets"]]
    return "\n".join(lines) + "\n"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=DEFAULT_ROWS, help=f"comma-separated file sizes in rows (default {DEFAULT_ROWS})")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"folder of the generated files (default {DEFAULT_CACHE})")
    parser.add_argument("--impl", default=None, help="NAME=PATH[,NAME=PATH]: checkouts holding train.py (default new=this repository)")
    parser.add_argument("--old-ref", default=None, help="git ref to check out as the 'old' implementation (a worktree in the cache)")
    parser.add_argument("--device", default=None, help="cpu,cuda (any of auto, cpu, cuda): run each implementation once per "
                        "device (device=<d>); default: the job's configured device")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="extra train.py override (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic files (default 0)")
    parser.add_argument("--rows-per-customer", default="sample", choices=sorted(ROWS_PER_CUSTOMER),
                        help="how the files are drawn: sample (1.15 rows a customer, the default) or history")
    parser.add_argument("--timeout", type=float, default=RUN_TIMEOUT_S, help=f"seconds before a run is stopped (default {RUN_TIMEOUT_S:g})")
    parser.add_argument("--rss-limit", type=float, default=None, metavar="GB",
                        help="stop a run whose RSS passes this many GB (protects a shared machine; default none)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/pipeline-<host>-<date>.json)")
    args = parser.parse_args(argv)
    args.cache = args.cache.expanduser().resolve()
    try:
        args.sizes = parse_rows(args.rows)
        args.impls = parse_impls(args.impl)
        args.devices = parse_devices(args.device)
        args.overrides = {}
        for item in args.override:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--override: {item!r} is not KEY=VALUE")
            args.overrides[key] = value
        if args.device is not None and "device" in args.overrides:
            raise ValueError("--device and --override device=... both choose the device; give one")
        if args.old_ref is not None and "old" in args.impls:
            raise ValueError("--old-ref and --impl old=... both name the old implementation; give one")
    except ValueError as error:
        parser.error(str(error))
    if args.old_ref is not None:
        args.impls["old"] = old_ref_checkout(args.old_ref, args.cache)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    """Generate (or reuse) the files, time every implementation on each, write JSON and Markdown, print the Markdown."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = dt.datetime.now()
    out = args.out or RESULTS_DIR / f"pipeline-{platform.node()}-{started.date().isoformat()}.json"
    report: dict[str, Any] = {"meta": {
        "command": "python benchmarks/pipeline.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "started": started.isoformat(timespec="seconds"), "machine": machine_info("cuda" if "cuda" in args.devices else "cpu"),
        "revision": source_revision(), "devices": args.devices,
        "impls": {name: {"path": str(path), "revision": git_revision(path)} for name, path in args.impls.items()},
        "overrides": args.overrides, "cache": str(args.cache), "seed": args.seed,
        "rows_per_customer": args.rows_per_customer, "gb": "10^9 bytes",
        "timeout_s": args.timeout, "rss_limit_gb": args.rss_limit,
    }, "files": [], "runs": []}
    with tempfile.TemporaryDirectory(prefix="somtorch_pipeline_bench_") as scratch:
        for rows in args.sizes:
            file_info, runs = benchmark_size(rows, args.impls, args.cache, args.seed, args.overrides, Path(scratch), args.timeout,
                                             math.inf if args.rss_limit is None else args.rss_limit * GB,
                                             args.rows_per_customer, args.devices)
            report["files"].append(file_info)
            report["runs"] += runs
    report["targets"] = size_targets(report["runs"])
    report["meta"]["wall_s"] = (dt.datetime.now() - started).total_seconds()
    markdown = render_markdown(report)
    write_json_atomic(report, out)
    write_text_atomic(markdown, out.with_suffix(".md"))
    print(markdown)
    logger.info("wrote %s and %s", out, out.with_suffix(".md"))
    return 0 if all(run["returncode"] == 0 for run in report["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
