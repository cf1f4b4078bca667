"""somtorch.dask against the single-process SOM on the concatenated rows (itself checked against NumPy in
test_batch_map.py): partitions of uneven sizes, Dask arrays and DataFrames, inits, evaluation and errors."""
from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import somtorch.dask as som_dask  # noqa: E402
from somtorch import SOM  # noqa: E402

# Row partitions of the 178 wine samples: one block, two, five of uneven sizes (one of a single row), and eleven
# (more than MERGE_FAN_IN: the merge is a two-level tree)
PARTITIONS = [(178,), (50, 128), (7, 60, 1, 90, 20), (20,) * 8 + (10, 5, 3)]
EPOCHS = 5


@pytest.fixture(scope="module")
def client():
    """Two in-process workers with one thread each; not the default client, so client=None is testable."""
    with LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as connected:
        yield connected


def make_som(d: int, dtype: torch.dtype = torch.float64, **options) -> SOM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SOM(6, 5, d, sigma=2.0, random_seed=3, dtype=dtype, device="cpu", **options)


def as_dask(data: np.ndarray, sizes: tuple[int, ...]) -> da.Array:
    return da.from_array(data, chunks=(sizes, data.shape[1]))


def as_frame(data: np.ndarray, sizes: tuple[int, ...]) -> dd.DataFrame:
    """A Dask DataFrame whose partitions hold ``sizes`` rows, in order."""
    frame = pd.DataFrame(data, columns=[f"f{k}" for k in range(data.shape[1])])
    bounds = np.cumsum((0,) + sizes)
    return dd.from_pandas(frame, npartitions=1).repartition(divisions=[int(b) for b in bounds[:-1]] + [int(bounds[-1]) - 1])


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


@pytest.mark.parametrize("sizes", PARTITIONS, ids=lambda s: f"{len(s)}parts")
def test_float64_weights_match_single_process(client, wine, sizes):
    single, spread = make_som(wine.shape[1]), make_som(wine.shape[1])
    single.train_batch(wine, EPOCHS)
    som_dask.train_batch(spread, as_dask(wine, sizes), EPOCHS, client=client)
    assert relative_gap(single.weights, spread.weights) <= 1e-12
    assert not torch.equal(single.weights, make_som(wine.shape[1]).weights)  # training moved the weights


@pytest.mark.parametrize("sizes", PARTITIONS, ids=lambda s: f"{len(s)}parts")
def test_exact_weights_are_bit_identical(client, wine, sizes):
    single, spread = make_som(wine.shape[1]), make_som(wine.shape[1])
    single.train_batch(wine, EPOCHS, accumulate="exact")
    som_dask.train_batch(spread, as_dask(wine, sizes), EPOCHS, client=client, accumulate="exact")
    assert torch.equal(single.weights, spread.weights)


def test_exact_statistics_are_the_single_process_counts(client, wine):
    """The merged counts of one epoch are every row's BMU counted once (the hit histogram of the start weights)."""
    som = make_som(wine.shape[1])
    hits = np.bincount(som.bmu_indices(wine).numpy(), minlength=som.n_neurons)
    stats = som.partial_stats(wine, accumulate="exact")
    assert np.array_equal(stats.counts.numpy(), hits)
    spread = make_som(wine.shape[1])
    som_dask.train_batch(spread, as_dask(wine, PARTITIONS[2]), 1, client=client, accumulate="exact")
    som.apply_update(stats, som.batch_sigma(0, 1))
    assert torch.equal(som.weights, spread.weights)


def test_float32_som_matches_single_process(client, wine):
    single, spread = make_som(wine.shape[1], torch.float32), make_som(wine.shape[1], torch.float32)
    single.train_batch(wine, EPOCHS)
    som_dask.train_batch(spread, as_dask(wine, PARTITIONS[2]), EPOCHS, client=client)
    assert spread.weights.dtype == torch.float32
    torch.testing.assert_close(spread.weights, single.weights, rtol=1e-6, atol=1e-6)
    single_exact, spread_exact = make_som(wine.shape[1], torch.float32), make_som(wine.shape[1], torch.float32)
    single_exact.train_batch(wine, EPOCHS, accumulate="exact")
    som_dask.train_batch(spread_exact, as_dask(wine, PARTITIONS[3]), EPOCHS, client=client, accumulate="exact")
    assert torch.equal(single_exact.weights, spread_exact.weights)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_som_trains_on_the_workers_gpu(client, wine):
    """In-process workers see the SOM's GPU and search there; exact sums make the weights the single-process ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single, spread = (SOM(6, 5, wine.shape[1], sigma=2.0, random_seed=3, dtype=torch.float64, device="cuda") for _ in range(2))
    single.train_batch(wine, EPOCHS, accumulate="exact")
    som_dask.train_batch(spread, as_dask(wine, PARTITIONS[2]), EPOCHS, client=client, accumulate="exact")
    assert spread.weights.is_cuda and torch.equal(single.weights, spread.weights)
    kernel = som_dask.PartitionKernel.of(spread)
    assert kernel.device.type == "cuda"


def test_cpu_som_keeps_the_workers_on_their_cpu(wine):
    assert som_dask.PartitionKernel.of(make_som(wine.shape[1])).device == torch.device("cpu")


def test_dataframe_input_matches_single_process(client, wine):
    frame = as_frame(wine, PARTITIONS[2])
    assert frame.npartitions == 5
    single, spread = make_som(wine.shape[1]), make_som(wine.shape[1])
    single.train_batch(wine, EPOCHS, accumulate="exact")
    som_dask.train_batch(spread, frame, EPOCHS, client=client, accumulate="exact")
    assert torch.equal(single.weights, spread.weights)


def test_integer_and_column_chunked_arrays(client, wine):
    """Integer data is converted as the SOM converts it; column blocks are joined into one per row partition."""
    counts = np.round(wine * 10).astype(np.int64)
    single, spread = make_som(wine.shape[1]), make_som(wine.shape[1])
    single.train_batch(counts, 3, accumulate="exact")
    som_dask.train_batch(spread, da.from_array(counts, chunks=(70, 4)), 3, client=client, accumulate="exact")
    assert torch.equal(single.weights, spread.weights)


def test_persisted_partitions_give_the_same_weights(client, wine):
    plain, kept = make_som(wine.shape[1]), make_som(wine.shape[1])
    som_dask.train_batch(plain, as_dask(wine, PARTITIONS[1]), 3, client=client)
    som_dask.train_batch(kept, as_dask(wine, PARTITIONS[1]), 3, client=client, persist=True)
    assert torch.equal(plain.weights, kept.weights)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pca_init_matches_single_process(client, wine, dtype):
    single, spread = make_som(wine.shape[1], dtype), make_som(wine.shape[1], dtype)
    single.pca_weights_init(wine)
    som_dask.pca_weights_init(spread, as_dask(wine, PARTITIONS[2]), client=client)
    gap = relative_gap(single.weights.double(), spread.weights.double())
    assert gap <= (1e-12 if dtype == torch.float64 else 1e-6)
    from_frame = make_som(wine.shape[1], dtype)
    som_dask.pca_weights_init(from_frame, as_frame(wine, PARTITIONS[1]), client=client)
    assert relative_gap(single.weights.double(), from_frame.weights.double()) <= (1e-12 if dtype == torch.float64 else 1e-6)


def test_pca_init_covariance_is_numpys(client, wine):
    """Independent reference: the plane built from np.cov of all rows."""
    som = make_som(wine.shape[1])
    som_dask.pca_weights_init(som, as_dask(wine, PARTITIONS[2]), client=client)
    values, vectors = np.linalg.eigh(np.cov(wine, rowvar=False))
    pc1, pc2 = vectors[:, -1], vectors[:, -2]
    expected = wine.mean(0) + np.linspace(-1, 1, 6)[:, None, None] * pc1 + np.linspace(-1, 1, 5)[None, :, None] * pc2
    np.testing.assert_allclose(som.get_weights(), expected, rtol=0, atol=1e-12)


def test_random_init_is_bit_identical_with_an_empty_partition(client, wine):
    single, spread = make_som(wine.shape[1]), make_som(wine.shape[1])
    single.random_weights_init(wine)
    som_dask.random_weights_init(spread, as_dask(wine, (40, 0, 100, 38)), client=client)
    assert torch.equal(single.weights, spread.weights)
    # the SOM's generator advanced by the same draw
    assert single.state_dict()["rng"]["pos"] == spread.state_dict()["rng"]["pos"]
    assert torch.equal(single.state_dict()["rng"]["keys"], spread.state_dict()["rng"]["keys"])
    from_frame = make_som(wine.shape[1], torch.float32)
    reference = make_som(wine.shape[1], torch.float32)
    reference.random_weights_init(wine)
    som_dask.random_weights_init(from_frame, as_frame(wine, PARTITIONS[2]), client=client)
    assert torch.equal(reference.weights, from_frame.weights)


def test_random_init_rows_are_drawn_by_global_position(client, wine):
    som = make_som(wine.shape[1])
    picks = np.random.RandomState(3)
    picks.rand(6, 5, wine.shape[1])  # the constructor's draw of the initial weights
    expected = wine[picks.randint(wine.shape[0], size=30)].reshape(6, 5, -1)
    som_dask.random_weights_init(som, as_dask(wine, PARTITIONS[2]), client=client)
    np.testing.assert_array_equal(som.get_weights(), expected)


@pytest.mark.parametrize("distance", ["euclidean", "manhattan"])
def test_evaluate_matches_single_process(client, wine, distance):
    som = make_som(wine.shape[1], activation_distance=distance)
    som.train_batch(wine, 3)
    single = som.evaluate(wine)
    spread = som_dask.evaluate(som, as_dask(wine, PARTITIONS[2]), client=client)
    assert spread.n == single.n == wine.shape[0]
    assert torch.equal(spread.bmu, single.bmu)
    assert math.isclose(spread.quantization_error, single.quantization_error, rel_tol=1e-12)
    assert math.isclose(spread.topographic_error, single.topographic_error, rel_tol=1e-12)
    # independent QE: NumPy distances to the euclidean BMU
    W = som.get_weights().reshape(-1, wine.shape[1])
    distances = np.sqrt(((wine[:, None, :] - W[None]) ** 2).sum(-1))
    assert math.isclose(spread.quantization_error, distances.min(1).mean(), rel_tol=1e-12)


def test_bmu_indices_are_lazy_and_match(client, wine):
    som = make_som(wine.shape[1])
    som.train_batch(wine, 2)
    expected = som.bmu_indices(wine).numpy()
    lazy = som_dask.bmu_indices(som, as_dask(wine, PARTITIONS[2]))
    assert isinstance(lazy, da.Array) and lazy.chunks == (PARTITIONS[2],) and lazy.dtype == np.int64
    np.testing.assert_array_equal(client.compute(lazy, sync=True), expected)
    from_frame = som_dask.bmu_indices(som, as_frame(wine, PARTITIONS[1]))
    np.testing.assert_array_equal(client.compute(from_frame, sync=True), expected)


def test_temporary_cluster_when_no_client_is_running(wine, caplog):
    single, spread = make_som(wine.shape[1]), make_som(wine.shape[1])
    single.train_batch(wine, 2, accumulate="exact")
    with caplog.at_level(logging.INFO, logger="somtorch.dask"):
        som_dask.train_batch(spread, as_dask(wine, PARTITIONS[1]), 2, accumulate="exact")
    assert torch.equal(single.weights, spread.weights)
    assert "temporary in-process cluster" in caplog.text


# ---------------------------------------------------------------------------------------------- errors
def test_rejects_data_that_is_not_dask(client, wine):
    with pytest.raises(TypeError, match="dask.array.Array .* got ndarray"):
        som_dask.train_batch(make_som(wine.shape[1]), wine, 1, client=client)


def test_rejects_wrong_number_of_columns(client, wine):
    with pytest.raises(ValueError, match="12 features per row, but the SOM expects input_len=13"):
        som_dask.train_batch(make_som(wine.shape[1]), as_dask(wine[:, :12], (178,)), 1, client=client)
    with pytest.raises(ValueError, match="12 columns, but the SOM expects input_len=13"):
        som_dask.evaluate(make_som(wine.shape[1]), as_frame(wine[:, :12], (178,)), client=client)


def test_rejects_non_numeric_columns(client, wine):
    frame = pd.DataFrame(wine[:, :2], columns=["a", "b"]).assign(b=lambda f: f["b"].map("{:.2f}".format))
    with pytest.raises(TypeError, match=r"non-numeric columns \['b'\]"):
        som_dask.train_batch(make_som(2), dd.from_pandas(frame, npartitions=2), 1, client=client)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_is_reported_by_partition(client, wine, bad):
    data = wine.copy()
    data[7 + 60 + 1 + 4, 2] = bad  # row 4 of partition 3
    with pytest.raises(ValueError, match="partition 3 contains 1 NaN or infinite value.*row 4, column 2"):
        som_dask.train_batch(make_som(wine.shape[1]), as_dask(data, PARTITIONS[2]), 1, client=client)


def test_exact_range_error_names_the_partition(client, wine):
    data = wine.copy()
    data[60, 0] = 500.0  # partition 1 of (50, 128)
    with pytest.raises(ValueError, match=r"partition 1: accumulate='exact' needs \|x\| < 128"):
        som_dask.train_batch(make_som(wine.shape[1]), as_dask(data, PARTITIONS[1]), 1, client=client, accumulate="exact")


def test_online_modes_and_bad_arguments_are_refused(client, wine):
    som = make_som(wine.shape[1])
    with pytest.raises(ValueError, match="mode='random' is online training.*cannot be split"):
        som_dask.train(som, as_dask(wine, PARTITIONS[1]), 10, mode="random", client=client)
    with pytest.raises(ValueError, match=r"mode='minibatch' is not supported; choose one of \['random', 'sequential', 'batch'\]"):
        som_dask.train(som, as_dask(wine, PARTITIONS[1]), 10, mode="minibatch", client=client)
    with pytest.raises(ValueError, match=r"accumulate='float32' is not supported; choose one of \['float64', 'exact'\]"):
        som_dask.train_batch(som, as_dask(wine, PARTITIONS[1]), 1, client=client, accumulate="float32")
    with pytest.raises(ValueError, match="num_epochs must be an integer ≥ 1; got 0"):
        som_dask.train_batch(som, as_dask(wine, PARTITIONS[1]), 0, client=client)


def test_train_with_batch_mode_runs_the_batch_map(client, wine):
    single, spread = make_som(wine.shape[1]), make_som(wine.shape[1])
    single.train(wine, 2, mode="batch")
    som_dask.train(spread, as_dask(wine, PARTITIONS[1]), 2, mode="batch", client=client)
    assert relative_gap(single.weights, spread.weights) <= 1e-12


@pytest.mark.slow
def test_separate_worker_processes_give_bit_identical_weights(wine):
    single, spread = make_som(wine.shape[1]), make_som(wine.shape[1])
    single.train_batch(wine, 3, accumulate="exact")
    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as separate:
        som_dask.train_batch(spread, as_dask(wine, PARTITIONS[2]), 3, client=separate, accumulate="exact")
        quality = som_dask.evaluate(spread, as_frame(wine, PARTITIONS[1]), client=separate)
    assert torch.equal(single.weights, spread.weights)
    assert math.isclose(quality.quantization_error, single.quantization_error(wine), rel_tol=1e-12)
