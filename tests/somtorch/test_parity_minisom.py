"""Parity with MiniSom 2.3.6 in float64: initial weights, online training, initialisers and queries."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from minisom import MiniSom

from somtorch import SOM

NEIGHBORHOODS = ["gaussian", "mexican_hat", "bubble", "triangle"]
TOPOLOGIES = ["rectangular", "hexagonal"]
LR_DECAYS = ["asymptotic_decay", "inverse_decay_to_zero", "linear_decay_to_zero"]
SIGMA_DECAYS = ["asymptotic_decay", "inverse_decay_to_one", "linear_decay_to_one"]
TOLERANCE = 1e-8


def make_pair(x, y, d, seed, device="cpu", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = MiniSom(x, y, d, random_seed=seed, **kwargs)
        ours = SOM(x, y, d, random_seed=seed, device=device, dtype=torch.float64, **kwargs)
    return reference, ours


def sigma_for(neighborhood: str) -> float:
    return 2.0 if neighborhood in ("bubble", "triangle") else 1.3


@pytest.mark.parametrize("x,y", [(5, 5), (7, 4), (3, 9)])
@pytest.mark.parametrize("seed", [0, 7])
def test_initial_weights_equal(x, y, seed):
    reference, ours = make_pair(x, y, 6, seed)
    np.testing.assert_array_equal(ours.get_weights(), reference.get_weights())


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("neighborhood", NEIGHBORHOODS)
@pytest.mark.parametrize("lr_decay", LR_DECAYS)
@pytest.mark.parametrize("sigma_decay", SIGMA_DECAYS)
def test_train_random_matches_minisom(wine, topology, neighborhood, lr_decay, sigma_decay):
    reference, ours = make_pair(6, 5, wine.shape[1], 3, sigma=sigma_for(neighborhood), neighborhood_function=neighborhood,
                                topology=topology, decay_function=lr_decay, sigma_decay_function=sigma_decay)
    reference.train_random(wine, 400)
    ours.train_random(wine, 400)
    assert np.abs(ours.get_weights() - reference.get_weights()).max() <= TOLERANCE


@pytest.mark.parametrize("x,y,seed", [(4, 7, 1), (8, 8, 11), (10, 3, 5)])
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_train_random_more_seeds_and_sizes(breast_cancer, x, y, seed, topology):
    reference, ours = make_pair(x, y, breast_cancer.shape[1], seed, sigma=1.5, topology=topology)
    reference.train_random(breast_cancer, 1500)  # T > N: the order cycles through the data
    ours.train_random(breast_cancer, 1500)
    assert np.abs(ours.get_weights() - reference.get_weights()).max() <= TOLERANCE


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("neighborhood", NEIGHBORHOODS)
def test_train_sequential_matches_minisom_train_batch(wine, topology, neighborhood):
    reference, ours = make_pair(5, 6, wine.shape[1], 2, sigma=sigma_for(neighborhood), neighborhood_function=neighborhood, topology=topology)
    reference.train_batch(wine, 300)
    ours.train_sequential(wine, 300)
    assert np.abs(ours.get_weights() - reference.get_weights()).max() <= TOLERANCE


@pytest.mark.parametrize("distance", ["cosine", "manhattan"])
def test_train_random_other_distances(wine, distance):
    reference, ours = make_pair(6, 6, wine.shape[1], 4, activation_distance=distance)
    reference.train_random(wine, 300)
    ours.train_random(wine, 300)
    assert np.abs(ours.get_weights() - reference.get_weights()).max() <= TOLERANCE


def test_callable_decay_matches(wine):
    def halving(p, t, T):
        return p / (1 + t / T)

    reference, ours = make_pair(5, 5, wine.shape[1], 9, decay_function=halving)
    reference.train_random(wine, 200)
    ours.train_random(wine, 200)
    assert np.abs(ours.get_weights() - reference.get_weights()).max() <= TOLERANCE


@pytest.mark.parametrize("seed", [0, 5])
def test_random_weights_init_matches(wine, seed):
    reference, ours = make_pair(7, 5, wine.shape[1], seed)
    reference.random_weights_init(wine)
    ours.random_weights_init(wine)
    np.testing.assert_array_equal(ours.get_weights(), reference.get_weights())
    reference.train_random(wine, 100)  # the generator advanced identically
    ours.train_random(wine, 100)
    assert np.abs(ours.get_weights() - reference.get_weights()).max() <= TOLERANCE


@pytest.mark.parametrize("x,y", [(6, 4), (5, 5)])
def test_pca_weights_init_matches(breast_cancer, x, y):
    reference, ours = make_pair(x, y, breast_cancer.shape[1], 0)
    reference.pca_weights_init(breast_cancer)
    ours.pca_weights_init(breast_cancer)
    np.testing.assert_allclose(ours.get_weights(), reference.get_weights(), atol=1e-10)


@pytest.mark.parametrize("topology,y", [("rectangular", 6), ("hexagonal", 7), ("hexagonal", 5)])
def test_queries_match_on_same_weights(wine, topology, y):
    reference, ours = make_pair(7, y, wine.shape[1], 1, sigma=1.5, topology=topology)
    reference.train_random(wine, 500)
    ours.set_weights(reference.get_weights())
    assert ours.quantization_error(wine) == pytest.approx(reference.quantization_error(wine), abs=1e-12)
    assert ours.topographic_error(wine) == pytest.approx(reference.topographic_error(wine), abs=1e-12)
    np.testing.assert_array_equal(ours.activation_response(wine), reference.activation_response(wine))
    np.testing.assert_allclose(ours.quantization(wine), reference.quantization(wine), atol=1e-12)
    ours_map, ref_map = ours.win_map(wine, return_indices=True), reference.win_map(wine, return_indices=True)
    assert dict(ours_map) == dict(ref_map)
    rows_map = ours.win_map(wine)
    for key, rows in reference.win_map(wine).items():
        np.testing.assert_array_equal(np.array(rows_map[key]), np.array(rows))
    labels = np.arange(len(wine)) % 3
    assert dict(ours.labels_map(wine, labels)) == dict(reference.labels_map(wine, labels))
    for scaling in ("sum", "mean"):  # hexagonal with odd y: MiniSom's offsets are the true neighbours
        np.testing.assert_allclose(ours.distance_map(scaling), reference.distance_map(scaling), atol=1e-12)
    for sample in wine[:5]:
        assert ours.winner(sample) == tuple(int(v) for v in reference.winner(sample))
        np.testing.assert_allclose(ours.activate(sample), reference.activate(sample), atol=1e-12)


def test_euclidean_coordinates_match():
    for topology in TOPOLOGIES:
        reference, ours = make_pair(4, 6, 2, 0, topology=topology)
        for mine, theirs in zip(ours.get_euclidean_coordinates(), reference.get_euclidean_coordinates()):
            np.testing.assert_array_equal(mine, theirs)
        assert ours.convert_map_to_euclidean((2, 3)) == reference.convert_map_to_euclidean((2, 3))
