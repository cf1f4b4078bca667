"""``somtorch.compat.MiniSom`` gives MiniSom 2.3.6's numbers to the last bit on the CPU in float64 (issue 12).

Every comparison is ``==`` against MiniSom run in the same test: on maps with near-ties (units 1 ulp apart and
bit-identical units, samples on and between them) and on three workflows of MiniSom's example notebooks, written
in our own words: colour quantisation, classification through ``labels_map``, and outlier detection by
quantisation error.
"""
from __future__ import annotations

import warnings

import minisom
import numpy as np
import pytest

from somtorch import compat

DISTANCES = ["euclidean", "cosine", "manhattan", "chebyshev"]


def make_pair(x, y, input_len, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return minisom.MiniSom(x, y, input_len, **kwargs), compat.MiniSom(x, y, input_len, **kwargs)


def near_tie_map(seed: int, x: int = 6, y: int = 7, features: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Weights (x, y, D) where unit pairs are 1 ulp apart or bit-identical, and samples on, between and around them."""
    rng = np.random.RandomState(seed)
    weights = rng.normal(size=(x * y, features)) * 10
    weights[8] = weights[2]
    weights[8, 1] = np.nextafter(weights[2, 1], np.inf)  # 1 ulp apart
    weights[30] = weights[11]  # bit-identical
    weights[x * y - 1] = weights[5]
    samples = np.concatenate([
        np.repeat(weights[[2, 8, 11, 5]], 6, axis=0),
        (weights[[2, 11]] + weights[[13, 20]]) / 2,  # halfway between two units
        weights[[2, 8, 11, 5]] + 1e-14 * rng.normal(size=(4, features)),
        rng.normal(size=(60, features)) * 10,
    ])
    samples[:3, 1] = np.nextafter(weights[8, 1], np.inf)
    return weights.reshape(x, y, features), samples[rng.permutation(len(samples))]


def assert_winmaps_equal(reference, facade):
    assert list(reference) == list(facade)
    for key in reference:
        assert len(reference[key]) == len(facade[key])
        assert all(np.array_equal(a, b) for a, b in zip(reference[key], facade[key]))


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_query_matches_minisom_on_near_ties(seed, topology):
    weights, samples = near_tie_map(seed)
    labels = np.arange(len(samples)) % 3
    reference, facade = make_pair(*weights.shape, sigma=1.5, topology=topology, random_seed=seed)
    reference._weights, facade._weights = weights.copy(), weights.copy()
    assert [reference.winner(s) for s in samples] == [facade.winner(s) for s in samples]
    np.testing.assert_array_equal(facade.activate(samples[0]), reference.activate(samples[0]))
    np.testing.assert_array_equal(facade.activation_response(samples), reference.activation_response(samples))
    assert_winmaps_equal(reference.win_map(samples), facade.win_map(samples))
    assert facade.win_map(samples, return_indices=True) == reference.win_map(samples, return_indices=True)
    assert facade.labels_map(samples, labels) == reference.labels_map(samples, labels)
    np.testing.assert_array_equal(facade.quantization(samples), reference.quantization(samples))
    assert facade.quantization_error(samples) == reference.quantization_error(samples)
    assert facade.topographic_error(samples) == reference.topographic_error(samples)
    assert facade.distortion_measure(samples) == reference.distortion_measure(samples)
    for scaling in ("sum", "mean"):
        np.testing.assert_array_equal(facade.distance_map(scaling), reference.distance_map(scaling))
    np.testing.assert_array_equal(facade._activation_map, reference._activation_map)


@pytest.mark.parametrize("distance", DISTANCES)
def test_winner_queries_match_minisom_for_every_distance(distance):
    weights, samples = near_tie_map(3)
    reference, facade = make_pair(*weights.shape, activation_distance=distance, random_seed=3)
    reference._weights, facade._weights = weights.copy(), weights.copy()
    np.testing.assert_array_equal(facade.activation_response(samples), reference.activation_response(samples))
    assert facade.win_map(samples, return_indices=True) == reference.win_map(samples, return_indices=True)
    assert facade.distortion_measure(samples) == reference.distortion_measure(samples)


@pytest.mark.parametrize("neighborhood", ["gaussian", "mexican_hat", "bubble", "triangle"])
def test_train_batch_offline_makes_minisom_decisions_on_tied_units(neighborhood):
    """Bit-identical units: every iteration's winners and weights are MiniSom's."""
    weights, samples = near_tie_map(4)
    reference, facade = make_pair(*weights.shape, sigma=2.0, neighborhood_function=neighborhood, random_seed=4)
    reference._weights, facade._weights = weights.copy(), weights.copy()
    for _ in range(5):
        reference.train_batch_offline(samples, 1)
        facade.train_batch_offline(samples, 1)
        np.testing.assert_array_equal(facade.get_weights(), reference.get_weights())
        assert facade.win_map(samples, return_indices=True) == reference.win_map(samples, return_indices=True)


def test_colour_quantisation_workflow_matches_minisom():
    """Train on an image's pixels, then replace every pixel by its codebook colour (MiniSom's colour notebook)."""
    rng = np.random.RandomState(5)
    palette = rng.uniform(size=(6, 3))
    image = palette[rng.randint(6, size=(40, 50))] + 0.05 * rng.normal(size=(40, 50, 3))
    pixels = np.clip(image.reshape(-1, 3), 0, 1)
    reference, facade = make_pair(3, 3, 3, sigma=1.0, learning_rate=0.2, neighborhood_function="bubble", random_seed=5)
    for som in (reference, facade):
        som.random_weights_init(pixels)
    starting_weights = facade.get_weights().copy()
    for som in (reference, facade):
        som.train(pixels, 500, random_order=True)
    np.testing.assert_array_equal(facade.get_weights(), reference.get_weights())
    assert not np.array_equal(starting_weights, facade.get_weights())
    np.testing.assert_array_equal(facade.quantization(pixels), reference.quantization(pixels))
    assert facade.quantization_error(pixels) == reference.quantization_error(pixels)
    np.testing.assert_array_equal(facade.activation_response(pixels), reference.activation_response(pixels))


def test_classification_by_labels_map_matches_minisom():
    """Label each unit by its most common training label, classify held-out samples by their winner (iris)."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    data = (iris.data - iris.data.mean(0)) / iris.data.std(0)
    order = np.random.RandomState(6).permutation(len(data))
    train, test = order[:100], order[100:]
    reference, facade = make_pair(7, 7, 4, sigma=3, learning_rate=0.5, neighborhood_function="triangle", random_seed=10)
    predictions = []
    for som in (reference, facade):
        som.pca_weights_init(data[train])
        som.train_random(data[train], 500)
        label_map = som.labels_map(data[train], iris.target[train])
        default = np.bincount(iris.target[train]).argmax()
        predictions.append([label_map[som.winner(x)].most_common(1)[0][0] if som.winner(x) in label_map else default
                            for x in data[test]])
        predictions.append(dict(label_map))
    assert predictions[2:] == predictions[:2]
    assert facade.topographic_error(data) == reference.topographic_error(data)


def test_outlier_detection_by_quantisation_error_matches_minisom():
    """Per-sample distance to the codebook, threshold at a percentile (MiniSom's outlier notebook)."""
    rng = np.random.RandomState(7)
    inliers = rng.normal(size=(300, 2)) * 0.5
    outliers = rng.uniform(-4, 4, size=(20, 2))
    data = np.concatenate([inliers, outliers])
    reference, facade = make_pair(5, 5, 2, sigma=1.2, learning_rate=0.5, random_seed=8)
    flagged = []
    for som in (reference, facade):
        som.train(data, 1000)
        errors = np.linalg.norm(som.quantization(data) - data, axis=1)
        flagged.append((errors, np.flatnonzero(errors > np.percentile(errors, 95)), som.quantization_error(data)))
    np.testing.assert_array_equal(flagged[1][0], flagged[0][0])
    np.testing.assert_array_equal(flagged[1][1], flagged[0][1])
    assert flagged[1][2] == flagged[0][2]


def test_assigned_weights_are_copied():
    """``som._weights = array`` keeps a copy: training never writes into the caller's array."""
    weights, samples = near_tie_map(9)
    given = weights.copy()
    _, facade = make_pair(*weights.shape, random_seed=9)
    facade._weights = given
    facade.train(samples, 50)
    facade.train_batch_offline(samples, 2)
    np.testing.assert_array_equal(given, weights)


def test_large_queries_take_the_candidate_search_and_still_match_minisom():
    """Past the direct-evaluation sizes (``DIRECT_PAIRS``, ``DIRECT_DIFFERENCES``) the facade ranks candidates and
    re-checks near-ties; on the same tied map every answer is still MiniSom's."""
    from somtorch import _minisom_search

    weights, samples = near_tie_map(10)
    samples = np.concatenate([samples] * 25)  # 2,250 samples × 42 units
    units = weights.shape[0] * weights.shape[1]
    assert samples.size * units > _minisom_search.DIRECT_DIFFERENCES and len(samples) * units > _minisom_search.DIRECT_PAIRS
    reference, facade = make_pair(*weights.shape, sigma=1.5, random_seed=10)
    reference._weights, facade._weights = weights.copy(), weights.copy()
    np.testing.assert_array_equal(facade.activation_response(samples), reference.activation_response(samples))
    np.testing.assert_array_equal(facade.quantization(samples), reference.quantization(samples))
    assert facade.quantization_error(samples) == reference.quantization_error(samples)
    assert facade.topographic_error(samples) == reference.topographic_error(samples)
