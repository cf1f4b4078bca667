"""The distributed batch map: epochs/s and rows/s on 1 and 2 torch.distributed ranks and 1 and 2 Dask workers, on
data larger than one worker's memory budget, with the all-reduce's share of an epoch and the equality of the weights.

    python benchmarks/scaleout.py                      # 8e6 x 32 float32 (1 GiB on disk), 20 x 20 map, 3 epochs
    python benchmarks/scaleout.py --rows 1e6 --epochs 2 --budget-mb 64     # a quick run

The data is a float32 .npy file (cached under ~/.cache/somtorch-bench/scaleout), read with plain file reads (a
memory map's pages would count in the reader's RSS). No worker ever holds its share:
a torch rank streams its rows from a memory map in chunks of ``--budget-mb`` / 8 (``ChunkSource`` over a
re-iterable), a Dask worker reads one block of ``--budget-mb`` / 8 per task (``memory_limit`` = (``--budget-mb`` + the
worker's own footprint after a tiny epoch, measured first) / 0.7, below Dask's 80% pause threshold). Every rank and worker runs one torch thread, so 2 ranks use both cores of
the 2-core machine. Reported per run: seconds per epoch (the mean of the timed epochs, after one warm-up epoch),
epochs/s, rows/s, the peak RSS above the process's start, the all-reduce of the statistics (torch ranks: the
median of 20 all-reduces of the M·(D + 1) sums and M counts, and its share of an epoch; also the all-reduce of a
100 × 100 map's statistics, for the model in BENCHMARKS.md), and max|ΔW| / max|W|
against the 1-rank weights. Writes benchmarks/results/scaleout-<date>.{json,md}.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = Path.home() / ".cache" / "somtorch-bench" / "scaleout"
RESULTS = REPO_ROOT / "benchmarks" / "results"
SIGMA = 3.0
SEED = 0
ALL_REDUCE_REPEATS = 20
# Dask pauses a worker above 80% of its memory_limit (distributed.worker.memory.pause), and a paused worker refuses
# the weights scattered to it: the limit is (footprint + budget) / 0.7
DASK_PAUSE_SHARE = 0.7
PAPER_MAP_NEURONS = 100 * 100  # the all-reduce of a 100 x 100 map's statistics is timed too (BENCHMARKS.md model)


def data_file(rows: int, features: int) -> Path:
    """The cached float32 (rows, features) .npy file of 16 gaussian blobs (written in blocks on first use)."""
    path = CACHE / f"blobs_{rows}x{features}.npy"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    centres = rng.normal(scale=4.0, size=(16, features)).astype(np.float32)
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, features))
    block = 1_000_000
    for start in range(0, rows, block):
        n = min(block, rows - start)
        out[start:start + n] = centres[rng.integers(0, 16, n)] + rng.standard_normal((n, features), dtype=np.float32)
    out.flush()
    del out
    os.replace(tmp, path)
    return path


def npy_header(file: Any) -> tuple[int, int]:
    """(rows, features) of the float32 .npy file open in ``file``, which is left at the first value."""
    version = np.lib.format.read_magic(file)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, _ = read(file)
    return shape


def npy_shape(path: str | Path) -> tuple[int, int]:
    """(rows, features) of a float32 .npy file, from its header."""
    with open(path, "rb") as file:
        return npy_header(file)


def read_rows(path: str | Path, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of a float32 (rows, features) .npy file, read with plain file reads: no memory map, whose
    pages would count in the reader's RSS until it is unmapped."""
    with open(path, "rb") as file:
        _, features = npy_header(file)
        file.seek(file.tell() + start * features * 4)
        return np.fromfile(file, dtype=np.float32, count=(stop - start) * features).reshape(stop - start, features)


class FileChunks:
    """Rows ``bounds`` of a .npy file as a re-iterable of (chunk_rows, D) arrays: each epoch reads them from the file
    again, so no more than one chunk is resident at a time."""

    def __init__(self, path: Path, bounds: slice, chunk_rows: int) -> None:
        self.path, self.bounds, self.chunk_rows = path, bounds, chunk_rows

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(self.bounds.start, self.bounds.stop, self.chunk_rows):
            yield read_rows(self.path, start, min(start + self.chunk_rows, self.bounds.stop))


def new_som(features: int, side: int) -> Any:
    from somtorch import SOM

    return SOM(side, side, features, sigma=SIGMA, random_seed=SEED, device="cpu", dtype="float32")


# ------------------------------------------------------------------------------------------------ torch ranks
def torch_rank(rank: int, world: int, init_file: str, args: dict[str, Any], out_dir: str) -> None:
    """One rank: its shard streamed from the memory map, ``epochs`` + 1 batch epochs, the all-reduce timed."""
    import torch
    import torch.distributed as dist
    from somtorch import distributed as som_distributed
    from somtorch.streaming import ChunkSource

    from benchmarks.memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss

    torch.set_num_threads(1)
    reset_peak_rss()  # VmHWM of this process (ru_maxrss would carry the launching process's peak over the exec)
    start_rss = current_rss_bytes()
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=dt.timedelta(seconds=600))
    rows = npy_shape(args["path"])[0]
    som = new_som(args["features"], args["side"])
    bounds = som_distributed.shard_bounds(rows, rank, world)
    source = ChunkSource(FileChunks(Path(args["path"]), bounds, args["chunk_rows"]), som.input_len, som.device, som.dtype)
    som_distributed.train_batch(som, source, 1)  # warm-up epoch (thread pools, page cache)
    dist.barrier()
    started = time.perf_counter()
    som_distributed.train_batch(som, source, args["epochs"])
    dist.barrier()
    epoch_s = (time.perf_counter() - started) / args["epochs"]
    sums = torch.zeros(som.n_neurons, som.input_len, dtype=torch.float64)
    counts = torch.zeros(som.n_neurons, dtype=torch.int64)
    reduce_s = []
    for _ in range(ALL_REDUCE_REPEATS):
        began = time.perf_counter()
        dist.all_reduce(sums)
        dist.all_reduce(counts)
        reduce_s.append(time.perf_counter() - began)
    paper = torch.zeros(PAPER_MAP_NEURONS, som.input_len + 1, dtype=torch.float64)  # a 100 x 100 map's S and c
    paper_s = []
    for _ in range(ALL_REDUCE_REPEATS):
        began = time.perf_counter()
        dist.all_reduce(paper)
        paper_s.append(time.perf_counter() - began)
    result = {"rank": rank, "epoch_s": epoch_s, "all_reduce_s": statistics.median(reduce_s),
              "paper_all_reduce_s": statistics.median(paper_s),
              "rss_above_start_mb": (peak_rss_bytes() - start_rss) / 2**20, "rows": bounds.stop - bounds.start}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    if rank == 0:
        np.save(Path(out_dir, "weights.npy"), som.get_weights())
    dist.destroy_process_group()


def run_torch(world: int, args: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out_dir:
        init_file = Path(out_dir, "init")
        mp.spawn(torch_rank, args=(world, str(init_file), args, out_dir), nprocs=world, join=True)
        ranks = [json.loads(Path(out_dir, f"rank{r}.json").read_text()) for r in range(world)]
        weights = np.load(Path(out_dir, "weights.npy"))
    epoch_s = max(rank["epoch_s"] for rank in ranks)
    reduce_s = max(rank["all_reduce_s"] for rank in ranks)
    return {"engine": "torch.distributed (gloo)", "workers": world, "epoch_s": epoch_s,
            "all_reduce_ms": 1e3 * reduce_s, "reduce_share": reduce_s / epoch_s,
            "all_reduce_100x100_ms": 1e3 * max(rank["paper_all_reduce_s"] for rank in ranks),
            "peak_rss_above_start_mb": max(rank["rss_above_start_mb"] for rank in ranks)}, weights


# ------------------------------------------------------------------------------------------------ Dask workers
def worker_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def run_dask(workers: int, args: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster
    from somtorch import dask as som_dask

    rows = npy_shape(args["path"])[0]
    features = args["features"]
    blocks = [da.from_delayed(dask.delayed(read_rows)(args["path"], start, min(start + args["chunk_rows"], rows)),
                              shape=(min(start + args["chunk_rows"], rows) - start, features), dtype=np.float32)
              for start in range(0, rows, args["chunk_rows"])]
    data = da.concatenate(blocks)
    memory_limit = int((args["worker_footprint_mb"] + args["budget_mb"]) / DASK_PAUSE_SHARE * 2**20)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                      dashboard_address=":0", env={"OMP_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("torch").set_num_threads(1))
        start = client.run(worker_rss)
        som = new_som(features, args["side"])
        som_dask.train_batch(som, data, 1, client=client)  # warm-up epoch
        started = time.perf_counter()
        som_dask.train_batch(som, data, args["epochs"], client=client)
        epoch_s = (time.perf_counter() - started) / args["epochs"]
        end = client.run(worker_rss)
    above = max((end[address] - start[address]) / 2**20 for address in start)
    return {"engine": "Dask LocalCluster (processes)", "workers": workers, "epoch_s": epoch_s,
            "memory_limit_mb": memory_limit / 2**20, "rss_growth_mb": above}, som.get_weights()


def worker_footprint_mb(features: int, side: int) -> float:
    """RSS of a Dask worker process after one tiny batch epoch (torch, somtorch and the kernels loaded): the part
    of memory_limit that is not the data budget."""
    import dask.array as da
    from distributed import Client, LocalCluster
    from somtorch import dask as som_dask

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env={"OMP_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
        tiny = da.from_array(np.random.default_rng(SEED).standard_normal((256, features), dtype=np.float32), chunks=128)
        som_dask.train_batch(new_som(features, side), tiny, 1, client=client)
        return max(client.run(worker_rss).values()) / 2**20


# ------------------------------------------------------------------------------------------------ report
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=8e6)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--side", type=int, default=20, help="map side (side x side neurons)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--budget-mb", type=float, default=256, help="data a worker may hold (MiB)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--engines", default="torch,dask")
    parser.add_argument("--no-write", action="store_true", help="print only (no results files)")
    args = parser.parse_args(argv)
    rows = int(args.rows)
    path = data_file(rows, args.features)
    # a block is an eighth of the budget: the block, its tensor and the float64 copy the sums take fit twice over
    chunk_rows = max(1, int(args.budget_mb * 2**20 / 8 / (4 * args.features)))
    settings = {"path": str(path), "features": args.features, "side": args.side, "epochs": args.epochs,
                "chunk_rows": chunk_rows, "budget_mb": args.budget_mb}
    settings["worker_footprint_mb"] = worker_footprint_mb(args.features, args.side) if "dask" in args.engines else 0.0
    data_mb = path.stat().st_size / 2**20
    print(f"data {rows:,} x {args.features} float32 = {data_mb:,.0f} MiB; map {args.side}x{args.side}; budget "
          f"{args.budget_mb:g} MiB per worker (chunks of {chunk_rows:,} rows); Dask worker footprint "
          f"{settings['worker_footprint_mb']:.0f} MiB", flush=True)
    runs, reference = [], None
    for engine in args.engines.split(","):
        for workers in (int(text) for text in args.workers.split(",")):
            result, weights = (run_torch if engine == "torch" else run_dask)(workers, settings)
            if reference is None:
                reference = weights
            result["weights_vs_1_rank"] = float(np.abs(weights - reference).max() / np.abs(reference).max())
            result["epochs_per_s"] = 1 / result["epoch_s"]
            result["rows_per_s"] = rows / result["epoch_s"]
            runs.append(result)
            print(json.dumps(result), flush=True)
    report = {"date": dt.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}", "rows": rows, "features": args.features,
              "map": [args.side, args.side], "data_mb": data_mb, "settings": settings, "runs": runs,
              "bytes_per_epoch_reduction": args.side * args.side * (args.features + 1) * 8}
    table = markdown(report)
    print(table)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        stem = RESULTS / f"scaleout-{report['date']}"
        stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
        stem.with_suffix(".md").write_text(table + "\n")
    return 0


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Batch map, {report['rows']:,} × {report['features']} float32 ({report['data_mb']:,.0f} MiB), "
             f"{report['map'][0]}×{report['map'][1]} map, {report['machine']}, {report['date']}",
             "", "| engine | workers | s / epoch | epochs/s | rows/s | speed-up | all-reduce | share | memory | ΔW (max, rel.) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    first = {}
    for run in report["runs"]:
        first.setdefault(run["engine"], run["epoch_s"])
        reduce = f"{run['all_reduce_ms']:.2f} ms" if "all_reduce_ms" in run else "-"
        share = f"{100 * run['reduce_share']:.2f}%" if "reduce_share" in run else "-"
        memory = (f"peak +{run['peak_rss_above_start_mb']:.0f} MiB" if "peak_rss_above_start_mb" in run
                  else f"+{run['rss_growth_mb']:.0f} MiB (limit {run['memory_limit_mb']:.0f})")
        lines.append(f"| {run['engine']} | {run['workers']} | {run['epoch_s']:.2f} | {run['epochs_per_s']:.3f} | "
                     f"{run['rows_per_s']:,.0f} | {first[run['engine']] / run['epoch_s']:.2f}× | {reduce} | {share} | "
                     f"{memory} | {run['weights_vs_1_rank']:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    raise SystemExit(main())
