#!/usr/bin/env bash
# GPU check, at most about 6 minutes: install the carried wheels, run the cuda-marked tests, run the GPU workloads
# (W1 online latency, W3 epoch vs cuBLAS, 10^7-row epoch in memory and host-streamed, TF32 accuracy), profile W3,
# print a short table, and leave everything under $OUT (default ./gpu_out).
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# On a machine without CUDA it prints "no CUDA" and exits 0. Exit status otherwise: 0 when the tests and the
# benchmark ran (whatever the targets say), 1 when either failed or timed out.
set -uo pipefail

OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || echo "warning: installing the carried wheels failed; going on with what is installed"
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

if ! python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
    echo "no CUDA: torch.cuda.is_available() is False (or torch is missing); nothing to check here" | tee "$OUT/no_cuda.txt"
    exit 0
fi

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2> /dev/null
    python3 -c 'import torch, numpy; print("torch", torch.__version__, "CUDA", torch.version.cuda, "numpy", numpy.__version__)'
    python3 -c 'import cupy; print("cupy", cupy.__version__)' 2> /dev/null || echo "cupy: not installed (XPySom GPU run skipped)"
} | tee "$OUT/gpu_info.txt"

status=0
echo "== [$(elapsed) s] cuda-marked tests"
timeout 110 python3 -m pytest -q -m cuda -p no:cacheprovider tests 2>&1 | tee "$OUT/cuda_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "cuda tests FAILED or timed out"; status=1; }

echo "== [$(elapsed) s] GPU benchmark: W1, W3, gpu10m, tf32"
timeout 200 python3 benchmarks/run.py --device cuda --workload W1,W3,gpu10m,tf32 --repeats 2 --no-ttq \
    --worker-timeout 120 --out "$OUT/bench_cuda" > "$OUT/bench_cuda.log" 2>&1
[ $? -eq 0 ] || { echo "GPU benchmark FAILED or timed out; tail of its log:"; tail -n 25 "$OUT/bench_cuda.log"; status=1; }

if [ "$(elapsed)" -lt 380 ]; then
    echo "== [$(elapsed) s] profile of somtorch on W3 (torch.profiler)"
    timeout 40 python3 benchmarks/run.py --device cuda --workload W3 --profile > "$OUT/profile_W3_cuda.txt" 2>&1 \
        || echo "profile failed or timed out (see $OUT/profile_W3_cuda.txt)"
fi

echo "== [$(elapsed) s] summary"
python3 - "$OUT/bench_cuda.json" <<'PY' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path

path = Path(sys.argv[1])
if not path.exists():
    sys.exit(f"no results at {path}")
report = json.loads(path.read_text())
print(f"{'workload':8} {'library':24} {'mode':9} {'median s':>10} {'QE':>9} {'GPU MB':>8}")
for name, workload in report["workloads"].items():
    for run in workload.get("runs", []):
        median = f"{run['median_s']:.4g}" if run.get("median_s") else run.get("error", "failed")[:40]
        qe = f"{run['qe']:.5g}" if run.get("qe") is not None else "-"
        gpu = f"{run['cuda_peak_extra_mb']:.0f}" if run.get("cuda_peak_extra_mb") is not None else "-"
        print(f"{name:8} {run['label']:24} {run['entry']['mode']:9} {median:>10} {qe:>9} {gpu:>8}")
    floor = workload.get("floor", {}).get("variants", {})
    for variant, values in floor.items():
        print(f"{name:8} {'floor: ' + variant:24} {'':9} {values['median_s']:>10.4g} {'':>9} {'':>8}")
    if "result" in workload:
        print(f"{name:8} " + ", ".join(f"{k}={v:.5g}" for k, v in workload["result"].items() if isinstance(v, float)))
print()
for target in report["targets"]:
    measured = "-" if target["measured"] is None else f"{target['measured']:.4g}"
    print(f"{target['status']:5} {target['name']}: {measured} {target['unit']} (limit {target['limit']:.4g})")
PY
echo "== done in $(elapsed) s; results in $OUT"
exit $status
