"""The CPU thread policy (somtorch.threads): chunk searches on a pool of single-threaded workers, results in chunk
order, so every answer equals the one-thread answer bit for bit and the NumPy reference of the BMU rule.

The pool is forced on small data by lowering ``threads.PARALLEL_WORK`` and the chunk size, with 3 workers (more than
the CI machine's cores, so that chunks finish out of order)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from somtorch import SOM, get_num_threads, set_num_threads, threads
from somtorch import bmu as bmu_search

from .test_exact_ties import FEATURES, reference_bmus, rows_budget, tied_map

DTYPES = [torch.float32, torch.float64]


@pytest.fixture
def pooled(monkeypatch):
    """Every search of this test goes through 3 workers; one-thread runs use set_num_threads(1)."""
    monkeypatch.setattr(threads, "PARALLEL_WORK", 0)
    yield lambda n: set_num_threads(n)
    set_num_threads(None)


def test_ordered_map_keeps_the_order_and_makes_one_state_per_worker():
    states = []

    def make_state():
        states.append(threading.get_ident())
        return threading.get_ident()

    def work(item, state):
        assert state == threading.get_ident()  # a worker's own state
        return item * item

    assert list(threads.ordered_map(work, range(50), 3, make_state)) == [i * i for i in range(50)]
    assert 1 <= len(states) <= 3 and len(set(states)) == len(states)
    assert list(threads.ordered_map(work, range(5), 1, make_state)) == [i * i for i in range(5)]


def test_ordered_map_raises_a_workers_error_at_its_item():
    def work(item, _):
        if item == 7:
            raise ArithmeticError("item 7")
        return item

    seen = []
    with pytest.raises(ArithmeticError, match="item 7"):
        for value in threads.ordered_map(work, range(20), 2, lambda: None):
            seen.append(value)
    assert seen == list(range(7))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_refuses_what_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match="positive integer"):
        set_num_threads(bad)


def test_the_default_follows_torch_and_an_override_wins():
    set_num_threads(None)
    assert get_num_threads() == torch.get_num_threads()
    set_num_threads(5)
    try:
        assert get_num_threads() == 5
        assert threads.workers_for(threads.PARALLEL_WORK, torch.device("cpu")) == 5
        assert threads.workers_for(threads.PARALLEL_WORK - 1, torch.device("cpu")) == 1
        assert threads.workers_for(threads.PARALLEL_WORK, torch.device("meta")) == 1
    finally:
        set_num_threads(None)


def test_training_uses_torchs_thread_count_by_default(monkeypatch):
    """The default follows torch.get_num_threads() as the caller set it, also inside somtorch's single-threaded
    sections (train_batch runs its epochs in one)."""
    monkeypatch.setattr(threads, "PARALLEL_WORK", 0)
    used = []
    ordered_map = threads.ordered_map

    def spy(work, items, n_workers, make_state):
        used.append(n_workers)
        return ordered_map(work, items, n_workers, make_state)

    monkeypatch.setattr(threads, "ordered_map", spy)
    set_num_threads(None)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        data = np.random.RandomState(0).normal(size=(300, 3))
        SOM(4, 4, 3, random_seed=0, device="cpu").train_batch(data, 2)
        assert used and set(used) == {2}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_the_pool_leaves_torchs_thread_counts_as_they_were(pooled):
    pooled(3)
    before = torch.get_num_threads()
    som, samples = tied_map(torch.float32)
    som.chunk_bytes = rows_budget(7, som.n_neurons, 4)
    som.bmu_indices(samples)
    assert torch.get_num_threads() == before
    seen = []
    fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))  # a thread started after the pool
    fresh.start()
    fresh.join()
    assert seen == [before]


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooled_searches_follow_the_bmu_rule(dtype, pooled):
    pooled(3)
    som, samples = tied_map(dtype)
    som.chunk_bytes = rows_budget(7, som.n_neurons, som.weights.element_size())
    weights = som.get_weights().reshape(-1, FEATURES)
    np.testing.assert_array_equal(som.bmu_indices(samples).numpy(), reference_bmus(samples, weights))
    two = bmu_search.two_best_units(torch.from_numpy(samples), som.weights.reshape(-1, FEATURES),
                                    rows_budget(5, som.n_neurons, som.weights.element_size())).numpy()
    diff = samples[:, None, :].astype(np.float64) - weights[None].astype(np.float64)
    exact = np.einsum("nmd,nmd->nm", diff, diff)
    expected = np.lexsort((np.broadcast_to(np.arange(exact.shape[1]), exact.shape), exact), axis=1)[:, :2]
    np.testing.assert_array_equal(two, expected)


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])  # hexagonal: the blockwise (pooled) smoothing
@pytest.mark.parametrize("dtype", DTYPES)
def test_training_and_evaluation_equal_the_one_thread_run_bit_for_bit(dtype, topology, pooled):
    rng = np.random.RandomState(3)
    data = rng.normal(size=(900, 5)).astype(np.float32 if dtype == torch.float32 else np.float64)
    results = {}
    for n in (1, 3):
        pooled(n)
        som = SOM(6, 7, 5, sigma=2.0, random_seed=1, device="cpu", dtype=dtype, chunk_bytes=rows_budget(37, 42, 8),
                  topology=topology)
        som.pca_weights_init(data)
        som.train_batch(data, 4)
        evaluation = som.evaluate(data)
        results[n] = (som.get_weights(), evaluation.bmu.numpy(), evaluation.quantization_error,
                      evaluation.topographic_error)
    np.testing.assert_array_equal(results[1][0], results[3][0])
    np.testing.assert_array_equal(results[1][1], results[3][1])
    assert results[1][2:] == results[3][2:]


@pytest.mark.parametrize("dtype", DTYPES)
def test_near_ties_decided_pairwise_or_by_a_float64_product_agree(dtype, monkeypatch):
    som, samples = tied_map(dtype, seed=4)
    som.chunk_bytes = rows_budget(9, som.n_neurons, som.weights.element_size())
    expected = reference_bmus(samples, som.get_weights().reshape(-1, FEATURES))
    for pairs_per_product in (0, 10**9):  # 0: always pairwise; 10⁹: float32 near-ties always by the product
        monkeypatch.setattr(bmu_search, "_PAIRS_PER_PRODUCT", pairs_per_product)
        np.testing.assert_array_equal(som.bmu_indices(samples).numpy(), expected)


@pytest.mark.parametrize("spread", [1e-2, 1e-3, 1e-4])
def test_float32_searches_match_the_float64_rule_on_crowded_units(spread, pooled):
    """Units in tight clusters (each unit `spread` from its cluster's centre) and samples among them: most samples are
    float32 near-ties at some spread, decided in float64. Reference: argmin of Σ (x − w)² in float64 on the float32
    values, first minimum."""
    pooled(2)
    rng = np.random.RandomState(11)
    centres = rng.normal(size=(8, 64))
    weights = (np.repeat(centres, 12, axis=0) + spread * rng.normal(size=(96, 64))).astype(np.float32)
    samples = (centres[rng.randint(0, 8, 3000)] + 0.3 * rng.normal(size=(3000, 64))).astype(np.float32)
    som = SOM(8, 12, 64, random_seed=0, device="cpu", dtype=torch.float32, chunk_bytes=rows_budget(257, 96, 4))
    som.set_weights(weights.reshape(8, 12, 64))
    np.testing.assert_array_equal(som.bmu_indices(samples).numpy(), reference_bmus(samples, weights))
