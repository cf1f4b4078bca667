"""One measurement in a fresh process: ``python -m benchmarks.worker SPEC.json``.

The orchestrator (:mod:`benchmarks.run`) starts one worker per run so that runs never share memory, threads or
caches. A worker loads the workload's data, warms the library up on a small slice, resets the peak-RSS mark, times
one training (or one time-to-quality sweep, or the distance floor), scores the map, and writes its result as JSON
to the path named in the spec. Library output (prints, warnings) goes to the worker's own stdout/stderr.
"""
from __future__ import annotations

import functools
import gc
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from pipeline.outputs.atomic import write_json_atomic

from .floor import measure_floor
from .memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from .peers import PCA_SCHEDULE, Inputs, get_peer, get_quantizer, pca_plane, train_somtorch
from .scoring import best_two_units, score_map
from .workloads import WORKLOADS, Entry, Workload, make_blobs, make_blobs_torch

logger = logging.getLogger(__name__)

MIB = 2**20
WARMUP_ROWS_SHARE = 100  # warm-up trains on 1/100 of the rows (at least WARMUP_MIN_ROWS)
WARMUP_MIN_ROWS = 200
TORCH_LIBRARIES = ("somtorch", "torchsom", "quicksom")  # their GPU memory shows in torch.cuda.max_memory_allocated


def workload_from_spec(spec: dict[str, Any]) -> Workload:
    workload = WORKLOADS[spec["workload"]]
    return workload.quick() if spec.get("quick") else workload


def load_inputs(workload: Workload, device: str, cache_dir: Path, host_copy: bool = False) -> Inputs:
    """The workload's data: a host array (cached as .npy in ``cache_dir``) and on CUDA a device copy.

    Workloads generated on the GPU have no host array unless ``host_copy`` asks for one (host-streaming runs); the
    device copy is then dropped.
    """
    if workload.data_on_device:
        import torch

        tensor = make_blobs_torch(workload.n_rows, workload.n_features, device)
        if not host_copy:
            return Inputs(None, tensor)
        host = tensor.cpu().numpy()
        del tensor
        torch.cuda.empty_cache()
        return Inputs(host, None)
    path = cache_dir / f"{workload.name}_{workload.n_rows}x{workload.n_features}.npy"
    if path.exists():
        host = np.load(path)
    else:
        host = make_blobs(workload.n_rows, workload.n_features)
        partial = path.with_suffix(f".{id(host)}.tmp.npy")
        np.save(partial, host)
        partial.replace(path)
    if device != "cuda":
        return Inputs(host)
    import torch

    return Inputs(host, torch.from_numpy(host).to(device))


def synchronizer(device: str) -> Callable[[], None]:
    if device != "cuda":
        return lambda: None
    import torch

    return torch.cuda.synchronize


def _slice(inputs: Inputs, rows: int) -> Inputs:
    return Inputs(None if inputs.host is None else inputs.host[:rows],
                  None if inputs.device_tensor is None else inputs.device_tensor[:rows], inputs.initial_weights)


def warm_up(train: Callable[..., np.ndarray], inputs: Inputs, shape: tuple[int, int, int], entry: Entry, device: str) -> None:
    """A short training on a slice (same map shape), so one-off costs (thread pools, kernels, CUDA context) are paid."""
    rows = min(inputs.n_rows, max(WARMUP_MIN_ROWS, inputs.n_rows // WARMUP_ROWS_SHARE))
    budget = min(entry.budget, rows) if entry.unit == "updates" else 1
    train(_slice(inputs, rows), shape, entry, budget, device)


def timed_training(train: Callable[..., np.ndarray], inputs: Inputs, shape: tuple[int, int, int], entry: Entry, budget: int,
                   device: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Train once; return the weights and the wall time and memory readings of that training alone."""
    synchronize = synchronizer(device)
    gc.collect()
    cuda_before = None
    if device == "cuda":
        import torch

        synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    rss_before = current_rss_bytes()
    peak_resettable = reset_peak_rss()
    start = time.perf_counter()
    weights = train(inputs, shape, entry, budget, device)
    synchronize()
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    readings: dict[str, Any] = {
        "seconds": seconds, "rss_before_mb": rss_before / MIB, "peak_rss_mb": peak / MIB,
        "peak_extra_mb": (peak - rss_before) / MIB, "peak_method": "VmHWM after reset" if peak_resettable else "ru_maxrss",
    }
    if cuda_before is not None:
        import torch

        readings["cuda_peak_extra_mb"] = (torch.cuda.max_memory_allocated() - cuda_before) / MIB
    return weights, readings


def _score(inputs: Inputs, weights: np.ndarray, device: str) -> dict[str, float]:
    data = inputs.device_tensor if inputs.device_tensor is not None else inputs.host
    score = score_map(data, weights, device="cuda" if device == "cuda" else "cpu")
    return {"qe": score.quantization_error, "te": score.topographic_error}


def add_schedule_start(inputs: Inputs, entry: Entry, shape: tuple[int, int, int], device: str) -> None:
    """For the ``pca3`` schedule, set ``inputs.initial_weights`` to somtorch's PCA plane of the data: the same start for
    every library, computed before the clock. Other entries are left as they are."""
    if entry.schedule == PCA_SCHEDULE:
        inputs.initial_weights = pca_plane(inputs.host if inputs.host is not None else inputs.device_tensor, shape, device)


def run_training(spec: dict[str, Any], workload: Workload, cache_dir: Path) -> dict[str, Any]:
    """Task ``train``: warm up, time one training of ``spec['entry']``, score it, optionally save its weights."""
    entry = Entry(**spec["entry"])
    peer = get_peer(entry.library)
    device = peer.runs_on(spec["device"]) or "cpu"
    inputs = load_inputs(workload, device, cache_dir, host_copy=entry.variant == "host_stream")
    shape = (workload.x, workload.y, workload.n_features)
    add_schedule_start(inputs, entry, shape, device)
    warm_up(peer.train, inputs, shape, entry, device)
    weights, readings = timed_training(peer.train, inputs, shape, entry, entry.budget, device)
    if entry.library not in TORCH_LIBRARIES:
        readings.pop("cuda_peak_extra_mb", None)  # its GPU memory is not torch's allocator's to count
    result = {"label": entry.label, "entry": asdict(entry), "device_used": device, **readings}
    if spec.get("score"):
        result.update(_score(inputs, weights, device))
    if spec.get("weights_path"):
        np.save(spec["weights_path"], weights)
        result["weights_path"] = spec["weights_path"]
    return result


def run_quantization(spec: dict[str, Any], workload: Workload, cache_dir: Path) -> dict[str, Any]:
    """Task ``qe``: time one quantization error over all rows of a fixed map (:func:`benchmarks.evaluation.preset_map`
    of the data, trained before the clock) with ``spec['entry']``'s library; its ``qe`` is the library's own value."""
    from .evaluation import preset_map

    entry = Entry(**spec["entry"])
    quantization_error = get_quantizer(entry.library)
    device = get_peer(entry.library).runs_on(spec["device"]) or "cpu"
    inputs = load_inputs(workload, device, cache_dir)
    shape = (workload.x, workload.y, workload.n_features)
    if workload.x != workload.y:
        raise ValueError(f"workload {workload.name}: the qe task needs a square map; got {workload.x}×{workload.y}")
    inputs.initial_weights = preset_map(inputs.host, workload.x, "cpu").get_weights()

    def run(part: Inputs, _shape: tuple[int, int, int], _entry: Entry, _budget: int, on: str) -> float:
        return quantization_error(part, part.initial_weights, on)

    warm_up(run, inputs, shape, entry, device)
    value, readings = timed_training(run, inputs, shape, entry, 1, device)
    return {"label": entry.label, "entry": asdict(entry), "device_used": device, **readings, "qe": value}


def run_time_to_quality(spec: dict[str, Any], workload: Workload, cache_dir: Path) -> dict[str, Any]:
    """Task ``ttq``: train with each budget in ``spec['budgets']`` (fresh model each) until QE ≤ ``target_qe``.

    Stops early when the summed training time passes ``spec['time_cap_s']``. Each step records budget, seconds, QE.
    """
    entry = Entry(**spec["entry"])
    peer = get_peer(entry.library)
    device = peer.runs_on(spec["device"]) or "cpu"
    inputs = load_inputs(workload, device, cache_dir)
    shape = (workload.x, workload.y, workload.n_features)
    warm_up(peer.train, inputs, shape, entry, device)
    steps, spent, reached = [], 0.0, None
    for budget in spec["budgets"]:
        weights, readings = timed_training(peer.train, inputs, shape, entry, budget, device)
        qe = _score(inputs, weights, device)["qe"]
        steps.append({"budget": budget, "seconds": readings["seconds"], "qe": qe})
        spent += readings["seconds"]
        if qe <= spec["target_qe"]:
            reached = steps[-1]
            break
        if spent > spec["time_cap_s"]:
            break
    return {"label": entry.label, "entry": asdict(entry), "device_used": device, "target_qe": spec["target_qe"],
            "steps": steps, "reached": reached, "stopped_by_cap": reached is None and spent > spec["time_cap_s"]}


def run_floor(spec: dict[str, Any], workload: Workload, cache_dir: Path) -> dict[str, Any]:
    """Task ``floor``: time the bare distance pass for the workload's shape (see :mod:`benchmarks.floor`)."""
    inputs = load_inputs(workload, spec["device"], cache_dir)
    return measure_floor(inputs.host, inputs.device_tensor, workload.n_neurons, spec["device"], spec["repeats"])


def run_tf32(spec: dict[str, Any], workload: Workload, cache_dir: Path) -> dict[str, Any]:
    """Task ``tf32``: one batch epoch with exact float32 and with ``allow_tf32=True`` from the same start.

    Reports both times, QE/TE of both maps, the max weight difference, the BMU agreement of the two maps, and the BMU
    agreement of a TF32 search against an exact search on the same (exact) weights.
    """
    from somtorch import SOM

    device = spec["device"]
    inputs = load_inputs(workload, device, cache_dir)
    data = inputs.device_tensor if inputs.device_tensor is not None else inputs.host
    entry = Entry("somtorch", "batch", 1, "epochs")
    shape = (workload.x, workload.y, workload.n_features)
    maps, seconds = {}, {}
    for allow_tf32 in (False, True):
        train = functools.partial(train_somtorch, allow_tf32=allow_tf32)
        warm_up(train, inputs, shape, entry, device)
        maps[allow_tf32], readings = timed_training(train, inputs, shape, entry, 1, device)
        seconds[allow_tf32] = readings["seconds"]
    scores = {flag: score_map(data, weights, device) for flag, weights in maps.items()}
    searches = {}
    for allow_tf32 in (False, True):
        som = SOM(*shape, device=device, allow_tf32=allow_tf32)
        som.set_weights(maps[False])
        searches[allow_tf32] = som.bmu_indices(data)
    exact_units = best_two_units(data, maps[False], device)[:, 0]
    tf32_units = best_two_units(data, maps[True], device)[:, 0]
    return {
        "exact_s": seconds[False], "tf32_s": seconds[True], "speedup": seconds[False] / seconds[True],
        "qe_exact": scores[False].quantization_error, "qe_tf32": scores[True].quantization_error,
        "qe_relative_change": scores[True].quantization_error / scores[False].quantization_error - 1,
        "te_exact": scores[False].topographic_error, "te_tf32": scores[True].topographic_error,
        "max_abs_weight_diff": float(np.abs(maps[True].astype(np.float64) - maps[False]).max()),
        "bmu_agreement_maps": float((exact_units == tf32_units).double().mean()),
        "bmu_agreement_search": float((searches[False] == searches[True]).double().mean()),
    }


TASKS: dict[str, Callable[[dict[str, Any], Workload, Path], dict[str, Any]]] = {
    "train": run_training, "qe": run_quantization, "ttq": run_time_to_quality, "floor": run_floor, "tf32": run_tf32,
}


def main(argv: Optional[list[str]] = None) -> int:
    """Read the spec file named on the command line, run its task, write the result JSON."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m benchmarks.worker SPEC.json")
    spec = json.loads(Path(args[0]).read_text())
    if spec["task"] not in TASKS:
        raise ValueError(f"task {spec['task']!r} is not known; choose one of {sorted(TASKS)}")
    logging.basicConfig(level=logging.WARNING)
    result = TASKS[spec["task"]](spec, workload_from_spec(spec), Path(spec["cache_dir"]))
    write_json_atomic(result, spec["result_path"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
