#!/usr/bin/env bash
# GPU check of issue 13, about 8 minutes on one H200: the cuda-marked tests; W1 online latency, the W3 epoch (fused
# BMU kernel and the unfused chunked search) against cuBLAS GEMM and GEMM + argmin, the 10^7 × 64 epoch on a 100 × 100
# map in GPU memory and streamed from the host next to the host-to-device copy time; the main job
# (python train.py som.x=15 som.iters=10000) stage by stage with device=cuda and device=cpu, on the default data and
# on 10^6 customers; a profile of W3. It prints one table of the issue's targets (measured ratio, PASS/MISS) and
# leaves in $OUT (default ./gpu_out): summary.txt, gpu_info.txt, cuda_tests.log, bench_cuda.md, pipeline_1m.md,
# jobs.md and results.tar.gz (every log, JSON and profile; the full set is also kept in $GPU_CHECK_WORK).
#
#   bash benchmarks/gpu_check.sh             # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --dry-run   # on a CPU: every step with device=cpu at tiny sizes, then the summary
#
# Without CUDA (and without --dry-run) it prints "no CUDA" and exits 0. Exit status otherwise: 0 when every step ran
# (whatever the targets say), 1 when a step failed or ran out of time. Steps stop at their own time limits and at
# the overall budget GPU_CHECK_BUDGET_S (default 480 s); a step with too little time left is skipped and says so.
#
# Wheels (.whl/, carried): the machine's image has torch, Triton, numpy, pandas, pyarrow, scipy, scikit-learn,
# matplotlib, pytest; the pipeline also needs polars and polars-runtime-32 2.1.0, hydra-core 1.3.8, omegaconf 2.3.1,
# antlr4-python3-runtime 4.9.3, hydra-joblib-launcher 1.2.0 and (tests) minisom 2.3.6, about 55 MB. Download for
# Python 3.12 with `pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform
# manylinux_2_17_x86_64 -d .whl NAME==VERSION`; antlr4 4.9.3 and minisom have no wheel: `pip wheel --no-deps -w .whl`.
set -uo pipefail

MODE=full
if [ "${1:-}" = "--dry-run" ]; then
    MODE=dry
elif [ $# -gt 0 ]; then
    echo "usage: bash benchmarks/gpu_check.sh [--dry-run]" >&2
    exit 2
fi
OUT="${OUT:-$PWD/gpu_out}"
WORK="${GPU_CHECK_WORK:-/tmp/gpu_check_work}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-480}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }
# The time limit of the next step: its own cap, or what is left of the budget when that is less.
limit() { local left=$(( BUDGET_S - $(elapsed) )); [ "$left" -lt "$1" ] && echo "$left" || echo "$1"; }
status=0
# run_step NAME CAP MIN LOG COMMAND...: COMMAND under its time limit, output to LOG; skipped below MIN seconds left.
run_step() {
    local name=$1 cap=$2 minimum=$3 log=$4
    shift 4
    local seconds
    seconds=$(limit "$cap")
    if [ "$seconds" -lt "$minimum" ]; then
        echo "== [$(elapsed) s] $name: SKIPPED, ${seconds} s of the ${BUDGET_S} s budget left" | tee -a "$WORK/steps.txt"
        status=1
        return
    fi
    echo "== [$(elapsed) s] $name (at most ${seconds} s)"
    timeout "$seconds" "$@" > "$log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $(elapsed) s" >> "$WORK/steps.txt"
    if [ $rc -ne 0 ]; then
        echo "   $name FAILED (exit $rc$([ $rc -eq 124 ] && echo ', timed out')); tail of $log:"
        tail -n 15 "$log" | sed 's/^/   | /'
        status=1
    fi
}

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || echo "warning: installing the carried wheels failed; going on with what is installed"
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$MODE" = full ]; then
    if ! python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
        echo "no CUDA: torch.cuda.is_available() is False (or torch is missing); nothing to check here" | tee "$OUT/no_cuda.txt"
        exit 0
    fi
    DEVICE=cuda
    ROWS_1M=1150000                     # sample-mode files: 1.15 rows a customer, so 10^6 customers
    BENCH_ARGS=(--workload W1,W3,gpu10m --repeats 2)
    JOB_ARGS=()
    JOB_DEVICES=(cuda:cuda_cold cpu:cpu cuda:cuda)  # the first CUDA run fills the compile caches; the second is timed
    PIPELINE_DEVICES=cpu,cuda
else
    DEVICE=cpu
    ROWS_1M=3000
    BENCH_ARGS=(--workload W1,W3 --quick)
    JOB_ARGS=(data.n_customers=1500 plots.enabled=false)
    JOB_DEVICES=(cpu:cuda_cold cpu:cpu cpu:cuda)    # the same steps, every one on the CPU
    PIPELINE_DEVICES=cpu
fi
rm -rf "$WORK" && mkdir -p "$WORK"

{
    echo "mode: $MODE, started $(date -u +%Y-%m-%dT%H:%M:%SZ), revision $(git rev-parse --short HEAD 2> /dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2> /dev/null
    python3 -c 'import torch, numpy; print("torch", torch.__version__, "CUDA", torch.version.cuda, "numpy", numpy.__version__)'
    python3 -c 'import triton; print("triton", triton.__version__)' 2> /dev/null || echo "triton: not installed (fused kernels off)"
    python3 -c "import torch; from somtorch.batch import fused_search_applies; from somtorch.distances import ActivationDistance as A
print('fused BMU search in batch epochs on $DEVICE:', fused_search_applies(torch.zeros(4, 3, device='$DEVICE'), A('euclidean')))"
} | tee "$WORK/gpu_info.txt"

# 1. Every cuda-marked test (they all live in tests/somtorch; the other folders would only add import risk).
run_step "cuda-marked tests" 150 30 "$WORK/cuda_tests.log" \
    python3 -m pytest -q -m cuda -p no:cacheprovider tests/somtorch

# 2. The library's GPU workloads: W1 (online), W3 (fused, unfused, host stream), gpu10m (10^7 rows, the same three).
run_step "benchmark W1, W3, gpu10m on $DEVICE" 240 60 "$WORK/bench_cuda.log" \
    python3 benchmarks/run.py --device "$DEVICE" "${BENCH_ARGS[@]}" --libraries somtorch --no-ttq \
    --worker-timeout 120 --out "$WORK/bench_cuda"

# 3. The mission command on the default data, stage by stage (metrics.json timings_s), per device.
for spec in "${JOB_DEVICES[@]}"; do
    device=${spec%%:*} label=${spec##*:}
    run_step "main job, default data, device=$device ($label)" 90 20 "$WORK/job_$label.log" \
        python3 train.py som.x=15 som.iters=10000 "device=$device" "${JOB_ARGS[@]}" "hydra.run.dir=$WORK/job_$label"
done

# 4. The same command on 10^6 customers (a synthetic cproducts.csv), once per device, through the pipeline harness.
run_step "main job, 10^6 customers, device=$PIPELINE_DEVICES" 240 60 "$WORK/pipeline_1m.log" \
    python3 benchmarks/pipeline.py --rows "$ROWS_1M" --device "$PIPELINE_DEVICES" --override som.x=15 \
    --override som.iters=10000 --cache "$WORK/pipeline_cache" --timeout 110 --out "$WORK/pipeline_1m.json"
rm -rf "$WORK/pipeline_cache"

# 5. Where W3's time goes (torch.profiler). profiling.py runs every section in one process with the fused search.
run_step "profile of W3 on $DEVICE" 45 30 "$WORK/profile_W3.txt" \
    python3 benchmarks/run.py --device "$DEVICE" --workload W3 --profile --out "$WORK" $([ "$MODE" = dry ] && echo --quick)

echo "== [$(elapsed) s] summary"
python3 - "$WORK" "$MODE" <<'PY' | tee "$WORK/summary.txt"
import json
import re
import sys
from pathlib import Path

work, mode = Path(sys.argv[1]), sys.argv[2]
SMALL_STAGE_S = 0.1  # stages under this on both devices count as equal (timer noise, not a device difference)
targets = []  # (target, measured, limit, status, how)


def load(path):
    return json.loads(path.read_text()) if path.is_file() else None


def check(name, value, limit, how, unit="×"):
    if value is None:
        targets.append((name, "—", f"{limit:g}", "n/a", how))
    else:
        targets.append((name, f"{value:.4g} {unit}", f"{limit:g}", "PASS" if value <= limit else "MISS", how))


def info(name, value, how, unit="×"):
    targets.append((name, "—" if value is None else f"{value:.4g} {unit}", "", "info", how))


def run_of(workload, label):
    return next((r for r in workload.get("runs", []) if r["label"] == label and r.get("median_s")), None)


def ratio(a, b):
    return a / b if a is not None and b else None


# 1. cuda tests
log = work / "cuda_tests.log"
lines = [l for l in (log.read_text(errors="replace").splitlines() if log.is_file() else []) if re.search(r"\d+ (passed|failed|skipped|deselected)", l)]
counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected)", lines[-1])} if lines else {}
bad = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
passed = counts.get("passed", 0)
targets.append(("every CUDA test passes", f"{passed} passed, {bad} failed", "0 failed",
                "n/a" if passed == 0 and bad == 0 else ("PASS" if bad == 0 else "MISS"),
                "pytest -m cuda tests/somtorch: " + (lines[-1].strip("= ") if lines else "no pytest summary")))

# 2. library workloads
report = load(work / "bench_cuda.json") or {"workloads": {}}
w1, w3, big = (report["workloads"].get(name, {}) for name in ("W1", "W3", "gpu10m"))
floor3 = w3.get("floor", {}).get("variants", {})
gemm = floor3.get("cublas_gemm", {}).get("median_s")
gemm_argmin = floor3.get("cublas_gemm_argmin", {}).get("median_s")
fused3, unfused3 = run_of(w3, "somtorch"), run_of(w3, "somtorch (unfused)")
t_fused3 = fused3 and fused3["median_s"]
t_unfused3 = unfused3 and unfused3["median_s"]
gemm_how = f"GEMM {gemm * 1e3:.3g} ms" if gemm else "no cuBLAS floor"
check("W3 epoch ≤ 2 × cuBLAS float32 GEMM", ratio(t_fused3, gemm), 2.0,
      (f"fused epoch {t_fused3:.4g} s; " if t_fused3 else "no epoch; ") + gemm_how)
check("W3 epoch ≤ 1.3 × GEMM + argmin", ratio(t_fused3, gemm_argmin), 1.3,
      f"GEMM + argmin {gemm_argmin * 1e3:.3g} ms" if gemm_argmin else "no cuBLAS floor")
info("W3 unfused epoch ÷ GEMM", ratio(t_unfused3, gemm), f"unfused epoch {t_unfused3:.4g} s" if t_unfused3 else "not measured")
info("W3 unfused epoch ÷ GEMM + argmin", ratio(t_unfused3, gemm_argmin), "the chunked search of somtorch.bmu")
tf32x3 = run_of(w3, "somtorch (tf32x3)")
info("W3 fused, three-TF32 products ÷ GEMM", ratio(tf32x3 and tf32x3["median_s"], gemm),
     f"epoch {tf32x3['median_s']:.4g} s (SOMTORCH_FUSED_FP32_PRODUCTS=tf32x3)" if tf32x3 else "not measured")
same = w3.get("comparisons", {}).get("somtorch (tf32x3)")
check("W3: three-TF32 weights = exact float32 weights", same and same["max_abs_weight_diff"], 1e-4, "max abs ΔW, same start", "")
for name, workload in (("W3", w3), ("gpu10m", big)):
    same = workload.get("comparisons", {}).get("somtorch (unfused)")
    check(f"{name}: fused weights = unfused weights", same and same["max_abs_weight_diff"], 1e-4, "max abs ΔW, same start", "")
    streamed = workload.get("comparisons", {}).get("somtorch (host stream)")
    check(f"{name}: streamed weights = in-memory weights", streamed and streamed["max_abs_weight_diff"], 1e-4, "max abs ΔW", "")
epoch10 = run_of(big, "somtorch")
check("10^7 × 64, 100×100: one epoch in GPU memory ≤ 1 s", epoch10 and epoch10["median_s"], 1.0, "fused search", "s")
unfused10 = run_of(big, "somtorch (unfused)")
info("10^7 epoch, unfused search", unfused10 and unfused10["median_s"], "chunked search of somtorch.bmu", "s")
floor10 = big.get("floor", {})
copies = floor10.get("copy", {})
streamed10 = run_of(big, "somtorch (host stream)")
pinned = copies.get("h2d_pinned", {}).get("median_s")
staged = copies.get("h2d_staged", {}).get("median_s")
check("10^7 epoch streamed from the host ≤ 2 × host-to-device copy", ratio(streamed10 and streamed10["median_s"], pinned), 2.0,
      f"copy from pinned memory {pinned:.3g} s" if pinned else "no copy floor")
info("10^7 streamed epoch ÷ somtorch's staged copy alone", ratio(streamed10 and streamed10["median_s"], staged),
     f"pageable → pinned → GPU copy {staged:.3g} s" if staged else "no copy floor")
gemm_argmin10 = floor10.get("variants", {}).get("cublas_gemm_argmin", {}).get("median_s")
info("10^7 epoch ÷ GEMM + argmin", ratio(epoch10 and epoch10["median_s"], gemm_argmin10),
     f"GEMM + argmin {gemm_argmin10:.3g} s" if gemm_argmin10 else "no cuBLAS floor")
online = next((r for r in w1.get("runs", []) if r["label"] == "somtorch" and r["entry"]["mode"] == "online" and r.get("median_s")), None)
check("W1: 10,000 online updates on 15×15 ≤ 25 ms", online and online["median_s"] * 1e3, 25.0, "median wall time", "ms")


# 3-4. the main job per device
def stage_rows(cpu, cuda):
    """[(stage, cpu s, cuda s)] of two timings_s dicts, in the CPU run's order."""
    return [(stage, cpu.get(stage), cuda.get(stage)) for stage in dict.fromkeys([*cpu, *cuda])]


def slowest(rows):
    """(stage, cuda ÷ cpu) of the stage the GPU run loses most on; stages under SMALL_STAGE_S on both count as equal."""
    ratios = [(stage, c / p) for stage, p, c in rows if p and c is not None and max(p, c) >= SMALL_STAGE_S]
    return max(ratios, key=lambda item: item[1]) if ratios else (None, None)


job_tables = []
jobs = {label: load(work / f"job_{label}" / "metrics.json") for label in ("cpu", "cuda_cold", "cuda")}
if jobs["cpu"] and jobs["cuda"]:
    rows = stage_rows(jobs["cpu"]["timings_s"], jobs["cuda"]["timings_s"])
    cold = (jobs["cuda_cold"] or {}).get("timings_s", {})
    job_tables.append(("default data (10,000 customers)", rows, cold))
    stage, worst = slowest(rows)
    check("main job, default data: no stage slower on CUDA than on the CPU", worst, 1.0,
          f"slowest stage {stage} (cuda ÷ cpu; second CUDA run, caches warm)")
else:
    check("main job, default data: no stage slower on CUDA than on the CPU", None, 1.0, "a run is missing")
pipeline = load(work / "pipeline_1m.json")
by_device = {run.get("device"): run for run in (pipeline or {}).get("runs", []) if run["returncode"] == 0}
if "cpu" in by_device and "cuda" in by_device:
    rows = stage_rows(by_device["cpu"]["timings_s"], by_device["cuda"]["timings_s"])
    job_tables.append((f"{by_device['cpu']['rows']:,} rows, {pipeline['files'][0].get('customers', 0):,} customers", rows, {}))
    stage, worst = slowest(rows)
    check("main job, 10^6 customers: no stage slower on CUDA than on the CPU", worst, 1.0, f"slowest stage {stage} (cuda ÷ cpu)")
else:
    check("main job, 10^6 customers: no stage slower on CUDA than on the CPU", None, 1.0,
          "a run is missing" + (f"; ran: {sorted(map(str, by_device))}" if by_device else ""))

print(f"issue 13 targets ({mode} run; ratios from this run)")
width = max(len(t[0]) for t in targets)
print(f"{'target':{width}}  {'measured':>12}  {'limit':>7}  {'status':6}  how")
for name, measured, limit, state, how in targets:
    print(f"{name:{width}}  {measured:>12}  {limit:>7}  {state:6}  {how}")
for title, rows, cold in job_tables:
    print(f"\nmain job stages, {title}: seconds per stage" + (" (CUDA cold = first CUDA run)" if cold else ""))
    print(f"{'stage':10} {'cpu':>8} {'cuda':>8} {'cuda÷cpu':>9}" + (f" {'cuda cold':>10}" if cold else ""))
    for stage, cpu_s, cuda_s in rows:
        share = f"{cuda_s / cpu_s:.3g}" if cpu_s and cuda_s is not None else "—"
        cells = [f"{v:8.3f}" if v is not None else f"{'—':>8}" for v in (cpu_s, cuda_s)]
        print(f"{stage:10} {cells[0]} {cells[1]} {share:>9}" + (f" {cold.get(stage, float('nan')):10.3f}" if cold else ""))
(work / "summary.json").write_text(json.dumps({"targets": targets, "jobs": job_tables}, indent=1))
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "summary FAILED"; status=1; }

# Jobs table (Markdown) and the files that come back: at most 8 in $OUT.
python3 - "$WORK" > "$WORK/jobs.md" <<'PY'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
print("| run | stage seconds (metrics.json timings_s) |\n| --- | --- |")
for path in sorted(work.glob("job_*/metrics.json")):
    timings = json.loads(path.read_text()).get("timings_s", {})
    print(f"| {path.parent.name} | " + ", ".join(f"{k} {v:.3f}" for k, v in timings.items()) + " |")
PY
for file in summary.txt gpu_info.txt cuda_tests.log bench_cuda.md pipeline_1m.md jobs.md; do
    [ -f "$WORK/$file" ] && cp "$WORK/$file" "$OUT/"
done
# the jobs' tables, plots, report and model are MBs each and not measurements: left out of the archive
tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude='./job_*/*.csv' --exclude='./job_*/plots' --exclude='./job_*/*.html' \
    --exclude='./job_*/*.pt' --exclude='./job_*/*.parquet' . 2> /dev/null \
    || echo "warning: packing $WORK into results.tar.gz failed"
echo "== done in $(elapsed) s (mode $MODE); results in $OUT, everything in $WORK"
exit $status
