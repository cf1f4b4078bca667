"""Where somtorch's time goes: ``python benchmarks/run.py --profile --workload W2 [--device cuda]``.

For each somtorch run of each workload (same settings as the benchmark), in this process: warm up on a slice, then
profile one full training. On CPU: cProfile, top functions by own time and by cumulative time. On CUDA:
torch.profiler with CPU and CUDA activities, operators sorted by total CUDA time. Each report is printed and
written to ``<results>/profile_<workload>_<device>.txt``.
"""
from __future__ import annotations

import cProfile
import importlib
import io
import logging
import pstats
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from pipeline.outputs.atomic import write_text_atomic

from .peers import train_somtorch
from .workloads import VARIANT_SWITCHES
from .worker import add_schedule_start, synchronizer, warm_up, load_inputs, workload_from_spec

logger = logging.getLogger(__name__)

TOP_ENTRIES = 25


def _cpu_profile(run: Callable[[], None]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    text.write("-- by own time (tottime) --\n")
    stats.sort_stats("tottime").print_stats(TOP_ENTRIES)
    text.write("-- by cumulative time --\n")
    stats.sort_stats("cumulative").print_stats(TOP_ENTRIES)
    return text.getvalue()


def _cuda_profile(run: Callable[[], None]) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        run()
        torch.cuda.synchronize()
    return profiler.key_averages().table(sort_by="cuda_time_total", row_limit=TOP_ENTRIES)


@contextmanager
def variant_switches(variant: Optional[str]) -> Iterator[None]:
    """Set, in this process, the somtorch switch of ``variant`` (``workloads.VARIANT_SWITCHES``), which the
    benchmark's workers get through their environment; restored after the block."""
    switch = VARIANT_SWITCHES.get(variant)
    if switch is None:
        yield
        return
    module = importlib.import_module(switch.module)
    previous = getattr(module, switch.attribute)
    setattr(module, switch.attribute, switch.value)
    try:
        yield
    finally:
        setattr(module, switch.attribute, previous)


def profile_workloads(names: list[str], device: str, quick: bool, results_dir: Path) -> list[Path]:
    """Profile somtorch's runs of ``names`` on ``device``; returns the report files written."""
    written = []
    with tempfile.TemporaryDirectory(prefix="somtorch_profile_") as cache:
        for name in names:
            if name == "tf32":
                continue
            workload = workload_from_spec({"workload": name, "quick": quick})
            shape = (workload.x, workload.y, workload.n_features)
            sections = []
            for entry in workload.entries(device, slow_peers=False):
                if entry.library != "somtorch" or entry.mode == "qe":
                    continue
                inputs = load_inputs(workload, device, Path(cache), host_copy=entry.variant == "host_stream")
                add_schedule_start(inputs, entry, shape, device)
                synchronize = synchronizer(device)

                def run() -> None:
                    train_somtorch(inputs, shape, entry, entry.budget, device)
                    synchronize()

                with variant_switches(entry.variant):
                    warm_up(train_somtorch, inputs, shape, entry, device)
                    start = time.perf_counter()
                    table = _cpu_profile(run) if device == "cpu" else _cuda_profile(run)
                    elapsed = time.perf_counter() - start
                sections.append(f"== {name} {entry.label} {entry.mode}, {entry.budget} {entry.unit}, {workload.n_rows:,} × "
                                f"{workload.n_features}, {workload.x}×{workload.y}, {device}: {elapsed:.3f} s under the profiler ==\n{table}")
            report = "\n".join(sections)
            print(report)
            path = results_dir / f"profile_{name}_{device}{'_quick' if quick else ''}.txt"
            write_text_atomic(report, path)
            written.append(path)
    return written
