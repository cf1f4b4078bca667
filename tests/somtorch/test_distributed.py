"""somtorch.distributed against the single-process SOM: a world of one in-process (fast), two spawned ranks (slow).

The references are the SOM's own single-process methods on the shards concatenated in rank order; the equality
contract is ≤ 1e-12 relative with float64 sums and bit-identical weights with exact sums.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from somtorch import SOM, distributed
from somtorch.batch import ACCUMULATIONS

ROWS, FEATURES, EPOCHS, SEED = 1037, 8, 5, 3
UNEVEN_FIRST_SHARD = 1000  # the 2-rank split: rows 0-999 on rank 0, 1000-1036 (37 rows) on rank 1
GROUP_TIMEOUT_S = 60.0
LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "MASTER_ADDR", "MASTER_PORT")


def make_data() -> np.ndarray:
    """Three blobs in 8 dimensions (|x| < 2⁷, so exact accumulation applies), float64 (ROWS, FEATURES)."""
    rng = np.random.default_rng(7)
    centres = rng.normal(scale=3.0, size=(3, FEATURES))
    return centres[rng.integers(3, size=ROWS)] + rng.normal(size=(ROWS, FEATURES))


def make_som(seed: int = SEED, dtype: torch.dtype = torch.float64, x: int = 7, sigma: float = 2.5) -> SOM:
    return SOM(x, 6, FEATURES, sigma=sigma, random_seed=seed, device="cpu", dtype=dtype)


@pytest.fixture
def world_of_one() -> Iterator[None]:
    """A real gloo process group of one rank in this process (HashStore: no files, no ports)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1, timeout=timedelta(seconds=GROUP_TIMEOUT_S))
    try:
        yield
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- fast: one rank
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("accumulate", ACCUMULATIONS)
def test_train_batch_on_a_world_of_one_is_the_single_process_batch_map(world_of_one, accumulate, dtype):
    data = make_data()
    expected = make_som(dtype=dtype).train_batch(data, EPOCHS, accumulate=accumulate)
    trained = distributed.train_batch(make_som(dtype=dtype), data, EPOCHS, accumulate=accumulate)
    assert torch.equal(trained.weights, expected.weights)


def test_without_a_process_group_every_function_runs_as_one_process():
    assert not dist.is_initialized()
    data = make_data()
    expected = make_som().train_batch(data, EPOCHS)
    assert torch.equal(distributed.train_batch(make_som(), data, EPOCHS).weights, expected.weights)
    evaluation, reference = distributed.evaluate(expected, data), expected.evaluate(data)
    assert torch.equal(evaluation.bmu, reference.bmu) and evaluation.n == reference.n == ROWS
    assert evaluation.quantization_error == pytest.approx(reference.quantization_error, rel=1e-12)


@pytest.mark.parametrize("as_chunks", [False, True], ids=["matrix", "list of chunks"])
def test_initialisation_and_evaluation_on_a_world_of_one_match_the_som(world_of_one, as_chunks):
    data = make_data()
    shard = [data[:400], data[400:401], data[401:]] if as_chunks else data  # the picks' offsets cross chunk borders
    randomly, expected_random = make_som(), make_som()
    distributed.random_weights_init(randomly, shard)
    expected_random.random_weights_init(data)
    assert torch.equal(randomly.weights, expected_random.weights)
    by_pca, expected_pca = make_som(), make_som()
    distributed.pca_weights_init(by_pca, shard)
    expected_pca.pca_weights_init(data)
    np.testing.assert_allclose(by_pca.get_weights(), expected_pca.get_weights(), rtol=1e-12, atol=1e-14)
    trained = make_som().train_batch(data, EPOCHS, accumulate="exact")
    assert torch.equal(distributed.train_batch(make_som(), shard, EPOCHS, accumulate="exact").weights, trained.weights)
    evaluation, reference = distributed.evaluate(trained, shard), trained.evaluate(data)
    assert torch.equal(evaluation.bmu, reference.bmu) and evaluation.n == reference.n
    assert evaluation.quantization_error == pytest.approx(reference.quantization_error, rel=1e-12)
    assert evaluation.topographic_error == reference.topographic_error


def test_an_empty_shard_contributes_nothing(world_of_one):
    som = make_som()
    initial = som.get_weights()
    distributed.train_batch(som, np.empty((0, FEATURES)), 2)  # no hits anywhere: every denominator is 0
    np.testing.assert_array_equal(som.get_weights(), initial)
    with pytest.raises(ValueError, match=r"shape \(0, 8\)"):
        distributed.train_batch(som, np.empty((0, FEATURES + 1)), 2)
    with pytest.raises(ValueError, match="no rows"):
        distributed.evaluate(som, np.empty((0, FEATURES)))


def test_a_bad_shard_raises_its_own_error(world_of_one):
    data = make_data()
    data[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        distributed.train_batch(make_som(), data, 2)


def test_online_modes_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="cannot be distributed.*previous sample"):
        distributed.train(make_som(), make_data(), 10, mode="random")
    with pytest.raises(ValueError, match=r"\['batch'\]"):
        distributed.train(make_som(), make_data(), 10, mode="minibatch")


@pytest.mark.parametrize("n_rows, world_size", [(10, 3), (1037, 2), (5, 8), (0, 2), (12, 4)])
def test_shard_bounds_split_like_numpy_array_split(n_rows, world_size):
    expected = np.array_split(np.arange(n_rows), world_size)
    for rank in range(world_size):
        np.testing.assert_array_equal(np.arange(n_rows)[distributed.shard_bounds(n_rows, rank, world_size)], expected[rank])


@pytest.mark.parametrize("args", [(10, 3, 3), (10, -1, 3), (-1, 0, 1), (10, 0, 0)])
def test_shard_bounds_rejects_impossible_splits(args):
    with pytest.raises(ValueError, match="must be an integer"):
        distributed.shard_bounds(*args)


def test_backend_follows_the_device():
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.backend_for(torch.device("cuda:1")) == "nccl"
    with pytest.raises(ValueError, match="no distributed backend"):
        distributed.backend_for("meta")


def test_init_process_group_reads_the_launcher_environment(monkeypatch):
    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_process_group() is False  # not launched: one process, no group
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init_process_group() is False
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ValueError, match="RANK is set but WORLD_SIZE is not"):
        distributed.init_process_group()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        distributed.init_process_group()
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="rank must be"):
        distributed.init_process_group(init_method="file:///nonexistent")
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    with pytest.raises(ValueError, match="SLURM_NTASKS is set but SLURM_PROCID is not"):
        distributed.init_process_group()
    monkeypatch.delenv("SLURM_NTASKS")
    with pytest.raises(ValueError, match="needs rank and world_size"):
        distributed.init_process_group(init_method="file:///nonexistent")
    with pytest.raises(ValueError, match="timeout_s"):
        distributed.init_process_group(timeout_s=0)
    assert not dist.is_initialized()


def test_init_process_group_starts_a_gloo_group_with_the_given_timeout(tmp_path):
    started = distributed.init_process_group("cpu", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1,
                                             timeout_s=42)
    try:
        assert started and dist.is_initialized() and dist.get_backend() == "gloo"
        # the group's own timeout (torch 2.13 keeps it on the backend's options), not torch's 30-minute default
        assert dist.group.WORLD._get_backend(torch.device("cpu")).options._timeout == timedelta(seconds=42)
        assert distributed.init_process_group() is True  # an existing group (e.g. Ray Train's) is kept
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- slow: two ranks
def join_group(rank: int, init_file: str) -> None:
    torch.set_num_threads(1)  # two ranks on two cores
    assert distributed.init_process_group("cpu", init_method=f"file://{init_file}", rank=rank, world_size=2,
                                          timeout_s=GROUP_TIMEOUT_S)


def equality_worker(rank: int, init_file: str, out_dir: str) -> None:
    """Every driver on the uneven split (and an empty shard on rank 1); rank 1's SOM has another seed, so only rank
    0's initial weights and draws can make the results equal. Results go to a .npz file (not through a queue)."""
    join_group(rank, init_file)
    try:
        data, seed = make_data(), SEED if rank == 0 else SEED + 1
        uneven = data[:UNEVEN_FIRST_SHARD] if rank == 0 else data[UNEVEN_FIRST_SHARD:]
        empty_on_1 = data if rank == 0 else data[:0]
        found = {}
        for accumulate in ACCUMULATIONS:
            for dtype in (torch.float64, torch.float32):
                found[f"uneven_{accumulate}_{dtype}"] = distributed.train_batch(
                    make_som(seed, dtype), uneven, EPOCHS, accumulate=accumulate).get_weights()
            found[f"empty_{accumulate}"] = distributed.train_batch(make_som(seed), empty_on_1, EPOCHS,
                                                                   accumulate=accumulate).get_weights()
        for name, initialise in (("random", distributed.random_weights_init), ("pca", distributed.pca_weights_init)):
            som = make_som(seed)
            initialise(som, uneven)
            found[name] = som.get_weights()
        trained = make_som(SEED).train_batch(data, EPOCHS)  # the same map on both ranks
        evaluation = distributed.evaluate(trained, uneven)
        found.update(bmu=evaluation.bmu.numpy(), qe=evaluation.quantization_error, te=evaluation.topographic_error,
                     n=evaluation.n)
        np.savez(Path(out_dir) / f"rank{rank}.npz", **found)
    finally:
        dist.destroy_process_group()


def assert_equal_weights(found: np.ndarray, expected: np.ndarray, accumulate: str, dtype: torch.dtype) -> None:
    """The contract: exact sums give the same bits; float64 sums agree to 1e-12 relative (float32 maps: to their
    own rounding)."""
    if accumulate == "exact":
        np.testing.assert_array_equal(found, expected)
    else:
        tolerance = 1e-12 if dtype == torch.float64 else 1e-6
        np.testing.assert_allclose(found, expected, rtol=tolerance, atol=tolerance * 1e-2)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_ranks_give_the_single_process_results(tmp_path):
    mp.spawn(equality_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    data = make_data()
    for name in ranks[0]:
        if name != "bmu":
            np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=f"ranks differ on {name}")
    for accumulate in ACCUMULATIONS:
        for dtype in (torch.float64, torch.float32):
            expected = make_som(dtype=dtype).train_batch(data, EPOCHS, accumulate=accumulate).get_weights()
            assert_equal_weights(ranks[0][f"uneven_{accumulate}_{dtype}"], expected, accumulate, dtype)
        expected = make_som().train_batch(data, EPOCHS, accumulate=accumulate).get_weights()
        assert_equal_weights(ranks[0][f"empty_{accumulate}"], expected, accumulate, torch.float64)
    randomly, by_pca = make_som(), make_som()
    randomly.random_weights_init(data)
    by_pca.pca_weights_init(data)
    np.testing.assert_array_equal(ranks[0]["random"], randomly.get_weights())
    np.testing.assert_allclose(ranks[0]["pca"], by_pca.get_weights(), rtol=1e-12, atol=1e-14)
    reference = make_som().train_batch(data, EPOCHS).evaluate(data)
    np.testing.assert_array_equal(np.concatenate([ranks[0]["bmu"], ranks[1]["bmu"]]), reference.bmu.numpy())
    assert len(ranks[1]["bmu"]) == ROWS - UNEVEN_FIRST_SHARD and int(ranks[0]["n"]) == ROWS
    assert float(ranks[0]["qe"]) == pytest.approx(reference.quantization_error, rel=1e-12)
    assert float(ranks[0]["te"]) == reference.topographic_error


class FailingSource:
    """Chunks of a matrix that raise on the given pass (epoch): a data source that breaks mid-training."""

    def __init__(self, data: np.ndarray, failing_pass: int) -> None:
        self.data, self.failing_pass, self.passes = data, failing_pass, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        self.passes += 1
        if self.passes == self.failing_pass:
            raise RuntimeError("rank 1's source broke on purpose")
        yield self.data


def failure_worker(rank: int, init_file: str, out_dir: str) -> None:
    """Three caught failures (a NaN row on rank 1; another map size, another σ on rank 1), then an uncaught one: rank 1's data
    source raises in epoch 1, before that epoch's all_reduce. Each rank writes what it raised."""
    join_group(rank, init_file)
    data, raised = make_data(), {}
    bad = data.copy()
    if rank == 1:
        bad[3, 2] = np.nan
    cases = (("nan_row", make_som(), bad), ("other_map", make_som(x=7 + rank), data),
             ("other_sigma", make_som(sigma=2.5 - rank), data))
    for case, som, shard in cases:
        try:
            distributed.train_batch(som, shard, EPOCHS)
        except Exception as error:
            raised[case] = f"{type(error).__name__}: {error}"
    try:
        distributed.train_batch(make_som(), FailingSource(data, failing_pass=2) if rank == 1 else data, EPOCHS)
    except Exception as error:
        raised["epoch"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(raised))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_failing_rank_stops_every_rank_at_once(tmp_path):
    start = time.monotonic()
    context = mp.spawn(failure_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=False)
    try:
        for process in context.processes:
            process.join(30)  # not context.join(): that would kill rank 0 as soon as rank 1 exits
        elapsed = time.monotonic() - start
        assert all(process.exitcode not in (None, 0) for process in context.processes)
        with pytest.raises(mp.ProcessRaisedException, match="rank 1's source broke on purpose"):
            context.join()
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    assert elapsed < 30, f"the ranks took {elapsed:.1f} s to stop (group timeout {GROUP_TIMEOUT_S:.0f} s)"
    rank0, rank1 = (json.loads(Path(tmp_path, f"rank{r}.json").read_text()) for r in range(2))
    assert rank1["nan_row"].startswith("ValueError") and "NaN" in rank1["nan_row"]
    assert rank0["nan_row"].startswith("RuntimeError: rank 1 failed") and "NaN" in rank0["nan_row"]
    assert all(found["other_map"].startswith("ValueError: the ranks disagree on x: [7, 8]") for found in (rank0, rank1))
    assert all(found["other_sigma"].startswith("ValueError: the ranks disagree on the SOM's options") for found in (rank0, rank1))
    assert rank1["epoch"] == "RuntimeError: rank 1's source broke on purpose"
    assert rank0["epoch"].startswith("RuntimeError: rank 1 failed while computing the statistics of epoch 1")
    assert "broke on purpose" in rank0["epoch"]
