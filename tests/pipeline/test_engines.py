"""The pipeline's engines: a multi-file input, the Dask engine and the torch engine give the local engine's result.

The reference of every comparison is the single-process (local engine) run of the same configuration on the same
rows: every row's BMU and cluster, the dropped rows with their reasons, and the SOM weights (batch map, float64
accumulation: equal to 1e-12; the cluster labels then coincide).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipeline.app.run import run
from pipeline.engines.base import make_engine
from pipeline.segmentation.segmenter import CustomerSegmenter
from pipeline.sources.synthetic import write_synthetic
from pipeline.sources.transactions import TransactionSource

REPO = Path(__file__).resolve().parents[2]
N_FILES = 3
# A quick batch-map run: 400 synthetic customers with their full history (~7,000 rows), a 6 x 6 map, no plots.
SOM = {"x": 6, "y": 6, "mode": "batch", "epochs": 5, "sigma": 2.0, "init": "pca"}
CLUSTERING = {"n_clusters": 4}
TORCHRUN_TIMEOUT = 240


@pytest.fixture(scope="module")
def split_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(one synthetic Big Bazaar CSV, a folder holding the same rows split into N_FILES CSVs in order)."""
    folder = tmp_path_factory.mktemp("engines")
    whole, _ = write_synthetic(folder, n_customers=400, seed=5, rows_per_customer="history", dirt="real")
    lines = whole.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    parts = folder / "parts"
    parts.mkdir()
    bounds = np.linspace(0, len(rows), N_FILES + 1).astype(int)
    for index in range(N_FILES):
        (parts / f"part-{index}.csv").write_text(header + "".join(rows[bounds[index]:bounds[index + 1]]))
    return whole, parts


def config(path: str | list[str], output_dir: Path, engine: dict | None = None) -> dict:
    return {
        "seed": 0, "paths": {"output_dir": str(output_dir)},
        "data": {"source": "file", "schema": "bigbazaar", "path": path, "chunk_rows": 2_000},
        "features": {"name": "customer"}, "som": SOM, "device": {"type": "cpu", "dtype": "float64"},
        "clustering": CLUSTERING, "plots": {"enabled": False}, "outputs": {"format": "parquet"},
        "engine": engine or {"name": "local"},
    }


def read_rows(output_dir: Path, name: str) -> pl.DataFrame:
    """``name`` (result or dropped_rows) of a run, one file or a dataset of part files, sorted by row_id."""
    single = output_dir / f"{name}.parquet"
    frame = pl.read_parquet(single if single.exists() else output_dir / name / "*.parquet")
    return frame.sort("row_id")


@pytest.fixture(scope="module")
def local_run(split_input: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the local engine on the single file."""
    output_dir = tmp_path_factory.mktemp("local")
    run(config(str(split_input[0]), output_dir))
    return output_dir


def weights(output_dir: Path) -> np.ndarray:
    return CustomerSegmenter.load(output_dir / "model.pt", device="cpu").som_.get_weights()


def assert_same_rows(run_dir: Path, reference_dir: Path) -> None:
    for name in ("result", "dropped_rows"):
        got, expected = read_rows(run_dir, name), read_rows(reference_dir, name)
        assert got.columns == expected.columns, name
        assert got.height == expected.height, name
        for column in expected.columns:  # values as text: the dropped rows' raw cells are text in every engine
            assert got[column].cast(pl.Utf8).equals(expected[column].cast(pl.Utf8)), (name, column)


def test_a_glob_of_files_is_one_input_with_row_ids_across_files(split_input, local_run, tmp_path):
    run(config(str(split_input[1] / "part-*.csv"), tmp_path))
    assert_same_rows(tmp_path, local_run)
    # other chunk boundaries: the customers' float sums merge in another order (~1e-16)
    np.testing.assert_allclose(weights(tmp_path), weights(local_run), rtol=1e-12, atol=1e-13)


def test_a_list_of_files_reads_them_in_the_list_order(split_input):
    paths = sorted(split_input[1].glob("*.csv"))
    source = TransactionSource.of([str(path) for path in reversed(paths)])
    assert source.paths == tuple(reversed(paths))
    assert "and 2 more files" in source.name
    n_rows, _ = source.bigbazaar_summary()
    ids = np.concatenate([chunk["row_id"].to_numpy() for chunk in source.chunks()])
    np.testing.assert_array_equal(ids, np.arange(n_rows))


def test_a_glob_matching_nothing_names_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="no input file matches"):
        TransactionSource.of(str(tmp_path / "*.csv"))


def test_unknown_engine_is_named():
    with pytest.raises(ValueError, match="engine.name='spark' is not supported"):
        make_engine({"name": "spark"})


def test_online_training_on_a_distributed_engine_is_refused_with_the_reason(split_input, tmp_path):
    cfg = config(str(split_input[0]), tmp_path, {"name": "dask", "processes": False})
    cfg["som"] = {**SOM, "mode": "random"}
    with pytest.raises(ValueError, match="online training updates the map after every sample"):
        run(cfg)
    assert not any(tmp_path.iterdir())  # refused before any output


def test_dask_engine_needs_parquet_row_outputs(split_input, tmp_path):
    cfg = config(str(split_input[0]), tmp_path, {"name": "dask", "processes": False})
    cfg["outputs"] = {"format": "csv"}
    with pytest.raises(ValueError, match="set outputs.format=parquet"):
        run(cfg)


def test_torch_engine_outside_a_launch_says_how_to_launch():
    with pytest.raises(ValueError, match="torchrun --standalone --nproc-per-node"):
        make_engine({"name": "torch"})


def test_dask_engine_equals_the_local_engine(split_input, local_run, tmp_path):
    engine = {"name": "dask", "n_workers": 2, "processes": False, "blocksize": "150kB"}
    run(config(str(split_input[1] / "*.csv"), tmp_path, engine))
    assert len(list((tmp_path / "dropped_rows").glob("*.parquet"))) > N_FILES  # files split into several blocks
    assert_same_rows(tmp_path, local_run)
    np.testing.assert_allclose(weights(tmp_path), weights(local_run), rtol=1e-12, atol=1e-13)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dask_engine_on_an_existing_cluster_of_worker_processes(split_input, local_run, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        run(config(str(split_input[1] / "*.csv"), tmp_path, {"name": "dask", "address": cluster.scheduler_address}))
        assert len(cluster.scheduler.workers) == 2  # the engine closed its client, not the user's cluster
    assert_same_rows(tmp_path, local_run)
    np.testing.assert_allclose(weights(tmp_path), weights(local_run), rtol=1e-12, atol=1e-13)


def test_exact_accumulation_on_dask_equals_it_in_one_process(split_input, tmp_path):
    local_dir, dask_dir = tmp_path / "local", tmp_path / "dask"
    run(config(str(split_input[0]), local_dir, {"name": "local", "accumulate": "exact"}))
    run(config(str(split_input[1] / "*.csv"), dask_dir,
               {"name": "dask", "processes": False, "blocksize": "150kB", "accumulate": "exact"}))
    assert_same_rows(dask_dir, local_dir)
    # the units themselves differ by ~1e-16 (the customers' float sums merge in another order), hence not bit-equal
    np.testing.assert_allclose(weights(dask_dir), weights(local_dir), rtol=1e-12, atol=1e-13)


def torchrun(*arguments: str, timeout: int = TORCHRUN_TIMEOUT) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "train.py",
               *arguments]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=environment)


def hydra_arguments(path: Path, run_dir: Path) -> list[str]:
    return [
        "engine=torch", "som.mode=batch", "som.x=6", "som.y=6", "som.epochs=5", "som.sigma=2.0", "som.init=pca",
        "data=bigbazaar", f"data.path={path}", "data.chunk_rows=2000", "clustering.n_clusters=4",
        "plots.enabled=false", "outputs.format=parquet", "device=cpu", "device.dtype=float64", f"hydra.run.dir={run_dir}",
    ]


@pytest.mark.slow
@pytest.mark.timeout(TORCHRUN_TIMEOUT + 30)
def test_train_py_under_torchrun_equals_the_local_run(split_input, local_run, tmp_path):
    run_dir = tmp_path / "run"
    scratch_before = set(Path(tempfile.gettempdir()).glob("somtorch-rank*"))
    finished = torchrun(*hydra_arguments(split_input[1] / "*.csv", run_dir))
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert_same_rows(run_dir, local_run)
    np.testing.assert_allclose(weights(run_dir), weights(local_run), rtol=1e-12, atol=1e-13)
    output = finished.stdout + finished.stderr
    assert output.count("stage clean took") == 1 and output.count("report:") == 1  # rank 0 alone logs and reports
    assert "rank 1 of 2" not in output  # rank 1's INFO log is off
    assert set(Path(tempfile.gettempdir()).glob("somtorch-rank*")) == scratch_before  # rank 1's scratch folder is gone


@pytest.mark.slow
@pytest.mark.timeout(TORCHRUN_TIMEOUT + 30)
def test_a_failing_rank_stops_the_launch_fast_with_its_error(split_input, tmp_path):
    parts = tmp_path / "parts"
    shutil.copytree(split_input[1], parts)
    (parts / "part-2.csv").write_text("not,a,big,bazaar,file\n1,2,3,4,5\n")  # rank 1 reads it and fails
    started = time.monotonic()
    finished = torchrun(*hydra_arguments(parts / "*.csv", tmp_path / "run"), "engine.timeout_s=600")
    elapsed = time.monotonic() - started
    assert finished.returncode != 0
    assert "lacks the columns" in finished.stderr or "missing" in finished.stderr, finished.stderr[-3000:]
    assert elapsed < 60  # not the 600 s collective timeout: torchrun stops rank 0 when rank 1 exits
    assert not (tmp_path / "run" / "result").exists()
