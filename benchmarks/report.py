"""Targets (PASS/MISS against the issue's limits) and the Markdown rendering of a benchmark report.

A report is the dict written to JSON by :mod:`benchmarks.run`: ``meta``, ``workloads`` (name → runs, floor,
time_to_quality, comparisons) and ``targets``.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

logger = logging.getLogger(__name__)

QE_EQUAL_RELATIVE = 1e-3  # "equal QE": within 0.1% (two float32 batch maps of the same schedule differ by rounding)
QE_PASS_RELATIVE = 1e-5  # one QE pass on the same weights: float32 somtorch vs float64 MiniSom
EPOCH_FLOOR_LIMIT = 1.2  # issue 14: an epoch at 2 threads ≤ 1.2 × the distance floor
BUSY_WORST_LIMIT = 3.0  # issue 14: no somtorch run beside a competitor over 3 × its quiet median
BUSY_WORKLOADS = ("W1", "W2", "W2pca", "QE")
MIB = 2**20


def find_run(workload: dict[str, Any], label: str, mode: Optional[str] = None) -> Optional[dict[str, Any]]:
    """The aggregated run with this label (and mode, if given) that has a median time, else None."""
    for run in workload.get("runs", []):
        if run["label"] == label and (mode is None or run["entry"]["mode"] == mode) and run.get("median_s") is not None:
            return run
    return None


def _target(name: str, measured: Optional[float], limit: Optional[float], unit: str, detail: str, passes: Optional[bool] = None) -> dict[str, Any]:
    if measured is None:
        status = "n/a"
    else:
        status = "PASS" if (measured <= limit if passes is None else passes) else "MISS"
    return {"name": name, "measured": measured, "limit": limit, "unit": unit, "status": status, "detail": detail}


def _ratio(a: Optional[dict[str, Any]], b: Optional[dict[str, Any]]) -> Optional[float]:
    return a["median_s"] / b["median_s"] if a and b else None


def _floor_ratio(run: Optional[dict[str, Any]], workload: dict[str, Any], variants: tuple[str, ...], passes: int) -> tuple[Optional[float], str]:
    floor = workload.get("floor", {}).get("variants", {})
    times = {name: floor[name]["median_s"] for name in variants if name in floor}
    if not run or not times:
        return None, "not measured"
    best = min(times, key=times.get)
    return run["median_s"] / (passes * times[best]), f"{passes} × {best} pass ({times[best]:.3g} s)"


def cpu_targets(workloads: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's CPU targets, measured from this run's workloads (absent workloads give n/a)."""
    targets = []
    w1, w2, w3, big = (workloads.get(name, {}) for name in ("W1", "W2", "W3", "bigmap"))
    ratio = _ratio(find_run(w1, "somtorch", "online"), find_run(w1, "minisom", "online"))
    targets.append(_target("W1 online: somtorch.train_random ≤ 0.5 × MiniSom", ratio, 0.5, "×", "median wall time ratio, same run"))
    som2, xpy2 = find_run(w2, "somtorch", "batch"), find_run(w2, "xpysom", "batch")
    targets.append(_target("W2 batch: somtorch.train_batch ≤ 0.2 × XPySom", _ratio(som2, xpy2), 0.2, "×", "median wall time ratio, same run"))
    qe_ratio = som2["qe"] / xpy2["qe"] if som2 and xpy2 and som2.get("qe") and xpy2.get("qe") else None
    targets.append(_target("W2 batch: QE ≤ XPySom's QE", qe_ratio, 1 + QE_EQUAL_RELATIVE, "× XPySom QE",
                           f"equal within {QE_EQUAL_RELATIVE:.1%} counts as equal"))
    passes = w2.get("spec", {}).get("floor_passes", 10)
    ratio, detail = _floor_ratio(som2, w2, ("torch_addmm", "numpy_blas"), passes)
    targets.append(_target("W2 batch: ≤ 2 × bare distance (product + argmin)", ratio, 2.0, "×", detail))
    som3 = find_run(w3, "somtorch", "batch")
    ratio, detail = _floor_ratio(som3, w3, ("torch_addmm", "numpy_blas"), 1)
    targets.append(_target("W3 one epoch: ≤ 1.5 × one bare distance pass", ratio, 1.5, "×", detail))
    extra = som3.get("peak_extra_mb") if som3 else None
    data_mb = w3.get("spec", {}).get("data_bytes", 0) / MIB
    targets.append(_target("W3 peak memory ≤ data + 512 MB", extra, 512.0, "MB over the loaded data",
                           f"data {data_mb:.0f} MB; peak RSS during training minus RSS with the data loaded"))
    chunks = w3.get("comparisons", {}).get("somtorch (chunks)")
    if chunks:
        targets.append(_target("W3 streaming (list of chunks) = in-memory result", chunks["max_abs_weight_diff"], 1e-4,
                               "max abs ΔW", "same seed, same data, one epoch"))
    big_run = find_run(big, "somtorch", "batch")
    peak = big_run.get("peak_rss_mb") if big_run else None
    targets.append(_target("bigmap 200×200: peak memory < 2 GB", peak, 2048.0, "MB peak RSS",
                           "whole worker process (interpreter, torch, data and training)"))
    return targets + schedule_targets(workloads) + floor_targets(workloads) + qe_targets(workloads) + busy_targets(workloads)


def schedule_targets(workloads: dict[str, Any]) -> list[dict[str, Any]]:
    """W2 on the second schedule (W2pca: PCA start, σ = 3, asymptotic): ≤ 0.2 × XPySom at equal QE."""
    w2pca = workloads.get("W2pca", {})
    som, xpy = find_run(w2pca, "somtorch", "batch"), find_run(w2pca, "xpysom", "batch")
    qe_ratio = som["qe"] / xpy["qe"] if som and xpy and som.get("qe") and xpy.get("qe") else None
    return [
        _target("W2 PCA/σ=3/asymptotic schedule: somtorch.train_batch ≤ 0.2 × XPySom", _ratio(som, xpy), 0.2, "×",
                "median wall time ratio, same run; same PCA start, XPySom std_coeff 1"),
        _target("W2 PCA/σ=3/asymptotic schedule: QE ≤ XPySom's QE", qe_ratio, 1 + QE_EQUAL_RELATIVE, "× XPySom QE",
                f"equal within {QE_EQUAL_RELATIVE:.1%} counts as equal"),
    ]


def floor_targets(workloads: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 14: the batch epoch ≤ 1.2 × the bare distance floor, per epoch (W2, W2pca) and for W3's one epoch."""
    targets = []
    for name in ("W2", "W2pca", "W3"):
        workload = workloads.get(name, {})
        passes = workload.get("spec", {}).get("floor_passes", 1)
        ratio, detail = _floor_ratio(find_run(workload, "somtorch", "batch"), workload, ("torch_addmm", "numpy_blas"), passes)
        targets.append(_target(f"{name} batch: epoch ≤ {EPOCH_FLOOR_LIMIT} × bare distance floor", ratio, EPOCH_FLOOR_LIMIT, "×",
                               f"{detail}; the run's CPU threads (see meta)"))
    return targets


def qe_targets(workloads: dict[str, Any]) -> list[dict[str, Any]]:
    """QE over 10⁶ rows: somtorch's value equals MiniSom's on the same weights (its speed is in the runs table)."""
    qe = workloads.get("QE", {})
    som, mini = find_run(qe, "somtorch", "qe"), find_run(qe, "minisom", "qe")
    gap = abs(som["qe"] / mini["qe"] - 1) if som and mini and som.get("qe") and mini.get("qe") else None
    speed = f"; time {som['median_s'] / mini['median_s']:.3g} × MiniSom's" if gap is not None else ""
    return [_target("QE on 10⁶ rows: somtorch = MiniSom on the same weights", gap, QE_PASS_RELATIVE, "relative gap",
                    "SOM.quantization_error (float32) vs MiniSom.quantization_error (float64)" + speed)]


def busy_targets(workloads: dict[str, Any]) -> list[dict[str, Any]]:
    """Busy machine (``--busy``): each somtorch run's busy/quiet slowdown ≤ the best peer's doing the same job (same
    mode: online, batch, qe), one target per (workload, mode); and no somtorch run over 3 × its quiet median."""
    targets = []
    for name in BUSY_WORKLOADS:
        runs = [r for r in workloads.get(name, {}).get("runs", []) if "slowdown" in r.get("busy", {})]
        ours = [r for r in runs if r["entry"]["library"] == "somtorch"]
        for run in ours:
            mode = run["entry"]["mode"]
            peers = [r for r in runs if r["entry"]["library"] != "somtorch" and r["entry"]["mode"] == mode]
            best = min(peers, key=lambda r: r["busy"]["slowdown"], default=None)
            measured = run["busy"]["slowdown"]
            limit = best["busy"]["slowdown"] if best else None
            detail = (f"somtorch {measured:.3g} × vs best peer {best['label']} {limit:.3g} ×" if best
                      else f"no peer ran {mode} here")
            targets.append(_target(f"{name} {mode} busy: somtorch slowdown ≤ best peer's", measured if best else None, limit,
                                   "× (busy ÷ quiet median)", detail))
        slowest = max(ours, key=lambda r: r["busy"]["worst_slowdown"], default=None)
        targets.append(_target(f"{name} busy: no somtorch run over {BUSY_WORST_LIMIT:g} × its quiet time",
                               slowest["busy"]["worst_slowdown"] if slowest else None, BUSY_WORST_LIMIT, "× (slowest busy ÷ quiet median)",
                               f"somtorch {slowest['entry']['mode']}, {len(slowest['busy']['times_s'])} busy runs" if slowest else "not measured"))
    return targets


def cuda_targets(workloads: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's GPU targets (W3 vs cuBLAS, W1 latency, 10^7-row epoch, streaming, TF32)."""
    targets = []
    w1, w3, big10 = (workloads.get(name, {}) for name in ("W1", "W3", "gpu10m"))
    ratio, detail = _floor_ratio(find_run(w3, "somtorch", "batch"), w3, ("cublas_gemm",), 1)
    targets.append(_target("GPU W3 epoch ≤ 2 × cuBLAS float32 GEMM", ratio, 2.0, "×", detail))
    online = find_run(w1, "somtorch", "online")
    targets.append(_target("GPU W1: 10,000 online updates ≤ 50 ms", online["median_s"] if online else None, 0.05, "s", "median wall time"))
    epoch = find_run(big10, "somtorch", "batch")
    targets.append(_target("GPU 10^7 × 64, 100×100: one batch epoch ≤ 1 s", epoch["median_s"] if epoch else None, 1.0, "s",
                           "data already on the GPU"))
    for name, workload in (("W3", w3), ("gpu10m", big10)):
        streamed = workload.get("comparisons", {}).get("somtorch (host stream)")
        if streamed:
            targets.append(_target(f"GPU {name}: host-streamed result = in-memory result", streamed["max_abs_weight_diff"], 1e-4,
                                   "max abs ΔW", f"streamed epoch {streamed['seconds_ratio']:.2f} × in-memory time"))
    tf32 = workloads.get("tf32", {}).get("result")
    if tf32:
        targets.append(_target("TF32 opt-in: accuracy impact measured", tf32["qe_relative_change"], float("inf"), "relative ΔQE",
                               f"BMU agreement {tf32['bmu_agreement_search']:.4%} (search), speed-up {tf32['speedup']:.2f}×",
                               passes=True))
    return targets


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def _workload_section(name: str, workload: dict[str, Any]) -> list[str]:
    spec = workload.get("spec", {})
    lines = [f"### {name}: {spec.get('description', '')}", ""]
    load = workload.get("load_average", {})
    if load:
        lines += [f"Load average (1 min) at start {_fmt(load.get('start'))}, at end {_fmt(load.get('end'))}.", ""]
    if "result" in workload:  # the TF32 comparison
        lines += ["| quantity | value |", "| --- | --- |"]
        lines += [f"| {key} | {_fmt(value, 5)} |" for key, value in workload["result"].items()]
        return lines + [""]
    lines += ["| library | version | mode | budget | device | median s | min–max s | runs | QE | TE | peak extra MB | peak RSS MB | GPU peak MB | somtorch ÷ library |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in workload.get("runs", []):
        entry = run["entry"]
        budget = f"{entry['budget']:,} {entry['unit']}" + (f", batch {entry['batch_size']}" if entry.get("batch_size") else "")
        if run.get("median_s") is None:
            lines.append(f"| {run['label']} | {run.get('version') or '—'} | {entry['mode']} | {budget} | — | {run.get('error', 'failed')} | | | | | | | | |")
            continue
        spread = f"{min(run['times_s']):.3g}–{max(run['times_s']):.3g}"
        lines.append(f"| {run['label']} | {run.get('version') or '—'} | {entry['mode']} | {budget} | {run['device_used']} | "
                     f"{run['median_s']:.3g} | {spread} | {len(run['times_s'])} | {_fmt(run.get('qe'), 5)} | {_fmt(run.get('te'), 3)} | "
                     f"{_fmt(run.get('peak_extra_mb'))} | {_fmt(run.get('peak_rss_mb'))} | {_fmt(run.get('cuda_peak_extra_mb'))} | "
                     f"{_fmt(run.get('somtorch_ratio'))} |")
    for skipped in workload.get("skipped", []):
        lines.append(f"| {skipped['label']} | {skipped.get('version') or '—'} | {skipped['mode']} | | | skipped: {skipped['reason']} | | | | | | | | |")
    lines.append("")
    lines += _busy_table(workload)
    floor = workload.get("floor")
    if floor and "variants" in floor:
        parts = [f"{key} {v['median_s']:.3g} s ({v['gflops']:.0f} GFLOP/s, blocks of {v['block_rows']:,} rows)" for key, v in floor["variants"].items()]
        lines += [f"Bare distance floor, one pass of {spec.get('n_rows', 0):,} × {spec.get('n_features', 0)} against "
                  f"{spec.get('n_neurons', 0):,} units: " + "; ".join(parts) + f". Floor: {floor['floor_variant']}.", ""]
    for label, comparison in workload.get("comparisons", {}).items():
        lines += [f"{label} vs somtorch in memory: max abs ΔW = {comparison['max_abs_weight_diff']:.3g}, "
                  f"time {comparison['seconds_ratio']:.2f} ×.", ""]
    ttq = workload.get("time_to_quality")
    if ttq and ttq.get("results"):
        lines += [f"Time to quality (target QE ≤ {ttq['target_qe']:.5g} = {ttq['target_factor']} × best final QE):", "",
                  "| library | reached at budget | training time s | budgets tried (budget: s, QE) |", "| --- | --- | --- | --- |"]
        for label, result in ttq["results"].items():
            if "error" in result:
                lines.append(f"| {label} | {result['error']} | | |")
                continue
            steps = "; ".join(f"{s['budget']:,}: {s['seconds']:.3g} s, {s['qe']:.4g}" for s in result["steps"])
            reached = result["reached"]
            where = f"{reached['budget']:,}" if reached else ("not reached (time cap)" if result["stopped_by_cap"] else "not reached")
            lines.append(f"| {label} | {where} | {_fmt(reached['seconds'] if reached else None)} | {steps} |")
        lines.append("")
    return lines


def _busy_table(workload: dict[str, Any]) -> list[str]:
    """The busy/quiet comparison of ``--busy``: one row per run that has a ``busy`` record."""
    runs = [r for r in workload.get("runs", []) if "busy" in r]
    if not runs:
        return []
    lines = ["Busy machine (one CPU-bound competitor process beside each run):", "",
             "| library | mode | quiet median s | busy median s | busy ÷ quiet | slowest busy ÷ quiet median | busy runs | load avg (1 min) at end of busy runs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        busy = run["busy"]
        if "slowdown" not in busy:
            lines.append(f"| {run['label']} | {run['entry']['mode']} | {_fmt(run.get('median_s'))} | {busy['error']} | | | | |")
            continue
        loads = ", ".join(f"{load:.2f}" for load in busy["load_1min"])
        lines.append(f"| {run['label']} | {run['entry']['mode']} | {run['median_s']:.3g} | {busy['busy_median_s']:.3g} | "
                     f"{busy['slowdown']:.3g} | {busy['worst_slowdown']:.3g} | {len(busy['times_s'])} | {loads} |")
    return lines + [""]


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: machine and versions, one section per workload, then the targets."""
    meta = report["meta"]
    lines = ["## Machine and versions", "", f"- command: `{meta['command']}`", f"- started: {meta['started']}, took {meta.get('wall_s', 0):.0f} s",
             f"- somtorch source: {meta.get('revision', 'not recorded')}",
             f"- timed runs per library: {meta['repeats']} (median reported; runs slower than 20 s once); CPU threads: {meta['threads']}"]
    if meta.get("busy"):
        lines.append("- busy-machine mode: each timed run also ran beside one CPU-bound competitor process (`python -c 'while True: pass'`)")
    lines += [f"- {key}: {value}" for key, value in meta["machine"].items()]
    lines.append("- libraries: " + ", ".join(f"{name} {version or '(not installed)'}" for name, version in meta["versions"].items()))
    lines += ["", "## Results", ""]
    for name, workload in report["workloads"].items():
        lines += _workload_section(name, workload)
    lines += ["## Targets", "", "| target | measured | limit | status | how |", "| --- | --- | --- | --- | --- |"]
    for target in report["targets"]:
        lines.append(f"| {target['name']} | {_fmt(target['measured'])} {target['unit']} | {_fmt(target['limit'])} | "
                     f"**{target['status']}** | {target['detail']} |")
    return "\n".join(lines) + "\n"
