"""Parity matrix: ``somtorch.compat.MiniSom`` against MiniSom 2.3.6 on scikit-learn's bundled data sets.

The same seed and data must give MiniSom's numbers: weights after training to 1e-8 in float64 (measured: online
training bit-identical, train_batch_offline within 3e-12), queries to 1e-12 relative, and identical maps, winners
and counts. Both sides run in the same test, so nothing here is a number copied from the facade's output.
"""
from __future__ import annotations

import pickle
import warnings
from collections import Counter, defaultdict

import minisom
import numpy as np
import pytest
import torch

from somtorch import compat

TOPOLOGIES = ["rectangular", "hexagonal"]
NEIGHBORHOODS = ["gaussian", "mexican_hat", "bubble", "triangle"]
DISTANCES = ["euclidean", "cosine", "manhattan", "chebyshev"]
LR_DECAYS = ["asymptotic_decay", "inverse_decay_to_zero", "linear_decay_to_zero"]
SIGMA_DECAYS = ["asymptotic_decay", "inverse_decay_to_one", "linear_decay_to_one"]
WEIGHT_TOLERANCE = 1e-8
QUERY_RTOL = 1e-12

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


@pytest.fixture(scope="module")
def iris() -> np.ndarray:
    """scikit-learn's iris data (150 × 4), standardised, float64."""
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(load_iris().data)


@pytest.fixture(scope="module")
def iris_labels() -> np.ndarray:
    from sklearn.datasets import load_iris

    return load_iris().target_names[load_iris().target]


def make_pair(x, y, input_len, **kwargs):
    """(MiniSom, facade) built with the same arguments, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return minisom.MiniSom(x, y, input_len, **kwargs), compat.MiniSom(x, y, input_len, **kwargs)


def sigma_for(neighborhood: str) -> float:
    return 2.0 if neighborhood in ("bubble", "triangle") else 1.3


def assert_same_weights(reference, facade, tolerance=WEIGHT_TOLERANCE):
    assert facade.get_weights().shape == reference.get_weights().shape
    assert np.abs(facade.get_weights() - reference.get_weights()).max() <= tolerance


def assert_same_queries(reference, facade, data, labels):
    """Every batched query of the two maps on ``data`` agrees (values, types and dict layouts)."""
    np.testing.assert_allclose(facade.quantization_error(data), reference.quantization_error(data), rtol=QUERY_RTOL)
    assert facade.topographic_error(data) == reference.topographic_error(data)
    np.testing.assert_allclose(facade.quantization(data), reference.quantization(data), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(facade.activation_response(data), reference.activation_response(data))
    np.testing.assert_allclose(facade.distortion_measure(data), reference.distortion_measure(data), rtol=QUERY_RTOL)
    for row in data[:5]:
        assert facade.winner(row) == reference.winner(row)
        np.testing.assert_allclose(facade.activate(row), reference.activate(row), rtol=QUERY_RTOL, atol=1e-12)
    for return_indices in (False, True):
        got, expected = facade.win_map(data, return_indices), reference.win_map(data, return_indices)
        assert isinstance(got, defaultdict) and list(got) == list(expected)  # same keys, same insertion order
        for position in expected:
            np.testing.assert_array_equal(np.asarray(got[position]), np.asarray(expected[position]))
    got, expected = facade.labels_map(data, labels), reference.labels_map(data, labels)
    assert list(got) == list(expected) and all(isinstance(c, Counter) and c == expected[p] for p, c in got.items())
    np.testing.assert_allclose(facade._activation_map, reference._activation_map, rtol=QUERY_RTOL, atol=1e-12)


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("neighborhood", NEIGHBORHOODS)
@pytest.mark.parametrize("distance", DISTANCES)
def test_train_random_and_queries(wine, topology, neighborhood, distance):
    reference, facade = make_pair(5, 4, wine.shape[1], sigma=sigma_for(neighborhood), neighborhood_function=neighborhood,
                                  topology=topology, activation_distance=distance, random_seed=3)
    reference.train_random(wine, 300)
    facade.train_random(wine, 300)
    assert_same_weights(reference, facade)
    np.testing.assert_array_equal(facade._activation_map, reference._activation_map)
    labels = np.arange(len(wine)) % 3
    assert_same_queries(reference, facade, wine, labels)


@pytest.mark.parametrize("lr_decay", LR_DECAYS)
@pytest.mark.parametrize("sigma_decay", SIGMA_DECAYS)
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_decay_schedules(iris, lr_decay, sigma_decay, topology):
    reference, facade = make_pair(6, 7, iris.shape[1], sigma=2.5, learning_rate=0.8, decay_function=lr_decay,
                                  sigma_decay_function=sigma_decay, topology=topology, random_seed=11)
    reference.train_batch(iris, 400)  # MiniSom's train_batch: sequential online training
    facade.train_batch(iris, 400)
    assert_same_weights(reference, facade)


@pytest.mark.parametrize("seed", [0, 5])
@pytest.mark.parametrize("random_order", [False, True])
@pytest.mark.parametrize("use_epochs", [False, True])
@pytest.mark.parametrize("fixed", [None, {0: (0, 0), 17: (4, 6), 149: (2, 3)}])
def test_train_options(iris, iris_labels, seed, random_order, use_epochs, fixed):
    reference, facade = make_pair(5, 7, iris.shape[1], sigma=1.5, topology="hexagonal", random_seed=seed)
    iterations = 3 if use_epochs else 320
    options = dict(random_order=random_order, use_epochs=use_epochs, fixed_points=fixed)
    reference.train(iris, iterations, **options)
    facade.train(iris, iterations, **options)
    assert_same_weights(reference, facade)
    assert_same_queries(reference, facade, iris, iris_labels)
    # the shared RandomState has advanced identically: the next draws agree
    assert facade._random_generator.randint(10**9) == reference._random_generator.randint(10**9)


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("neighborhood", NEIGHBORHOODS)
def test_train_batch_offline(breast_cancer, topology, neighborhood):
    reference, facade = make_pair(6, 5, breast_cancer.shape[1], sigma=sigma_for(neighborhood), learning_rate=0.7,
                                  neighborhood_function=neighborhood, topology=topology, random_seed=2)
    reference.train_batch_offline(breast_cancer, 4)
    facade.train_batch_offline(breast_cancer, 4)
    assert_same_weights(reference, facade)
    np.testing.assert_allclose(facade._activation_map, reference._activation_map, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("distance", ["cosine", "manhattan", "chebyshev"])
def test_train_batch_offline_other_distances(wine, distance):
    reference, facade = make_pair(5, 5, wine.shape[1], sigma=1.2, activation_distance=distance,
                                  decay_function="linear_decay_to_zero", sigma_decay_function="linear_decay_to_one",
                                  random_seed=4)
    reference.train_batch_offline(wine, 3)
    facade.train_batch_offline(wine, 3)
    assert_same_weights(reference, facade)


def test_chebyshev_keeps_minisoms_missing_abs():
    """MiniSom's chebyshev is max(x − w): a sample far *below* every weight gets a negative 'distance'."""
    reference, facade = make_pair(3, 3, 2, activation_distance="chebyshev", random_seed=0)
    x = np.array([-10.0, -10.0])
    expected = np.max(x - reference.get_weights(), axis=-1)
    np.testing.assert_array_equal(facade.activate(x), expected)
    assert facade.activate(x).max() < 0
    batch = np.array([[-10.0, -10.0], [3.0, 0.5], [0.1, -0.2]])
    np.testing.assert_array_equal(facade.activation_response(batch), reference.activation_response(batch))


@pytest.mark.parametrize("x,y", [(5, 4), (6, 7), (4, 6), (3, 3)])
@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("scaling", ["sum", "mean"])
def test_distance_map(iris, x, y, topology, scaling):
    """Including even y on hexagonal maps, where MiniSom's fixed offsets are not the true neighbours."""
    reference, facade = make_pair(x, y, iris.shape[1], topology=topology, random_seed=x * y)
    reference.train_random(iris, 200)
    facade.train_random(iris, 200)
    np.testing.assert_allclose(facade.distance_map(scaling), reference.distance_map(scaling), rtol=1e-13, atol=0)


def test_weight_initialisers(iris):
    reference, facade = make_pair(6, 4, iris.shape[1], random_seed=8)
    reference.random_weights_init(iris)
    facade.random_weights_init(iris)
    np.testing.assert_array_equal(facade.get_weights(), reference.get_weights())
    reference.pca_weights_init(iris)
    facade.pca_weights_init(iris)
    np.testing.assert_array_equal(facade.get_weights(), reference.get_weights())


def test_callables_and_custom_neighborhood(wine):
    """A callable distance (MiniSom's signature), a callable decay and a replaced ``neighborhood`` attribute."""
    def l1(x, w):
        return np.abs(x - w).sum(axis=-1)

    def halving(p, t, T):
        return p / (1 + t / T)

    kwargs = dict(sigma=1.4, activation_distance=l1, decay_function=halving, random_seed=6)
    reference, facade = make_pair(4, 5, wine.shape[1], **kwargs)
    reference.train_random(wine, 150)
    facade.train_random(wine, 150)
    assert_same_weights(reference, facade)
    np.testing.assert_array_equal(facade.activation_response(wine), reference.activation_response(wine))

    def plateau(c, sigma):  # a user's own neighbourhood; the facade must fall back to it step by step
        return (reference._gaussian(c, sigma) > 0.3).astype(float)

    reference, facade = make_pair(4, 5, wine.shape[1], sigma=1.4, random_seed=6)
    reference.neighborhood = plateau
    facade.neighborhood = plateau
    reference.train_random(wine, 120)
    facade.train_random(wine, 120)
    assert_same_weights(reference, facade)
    reference.train_batch_offline(wine, 2)
    facade.train_batch_offline(wine, 2)
    assert_same_weights(reference, facade, tolerance=1e-10)
    np.testing.assert_allclose(facade.distortion_measure(wine), reference.distortion_measure(wine), rtol=QUERY_RTOL)


def test_weights_attribute_is_live_and_assignable(iris):
    reference, facade = make_pair(4, 4, iris.shape[1], random_seed=1)
    for som in (reference, facade):
        som._weights[1, 2] = iris[10]  # item assignment
        som.get_weights()[0, 0] = iris[20]
    assert facade.winner(iris[10]) == reference.winner(iris[10]) == (1, 2)
    assert facade.winner(iris[20]) == (0, 0)
    replacement = np.random.RandomState(0).normal(size=(4, 4, iris.shape[1]))
    reference._weights, facade._weights = replacement, replacement.copy()  # wholesale assignment
    assert facade.quantization_error(iris) == pytest.approx(reference.quantization_error(iris), rel=QUERY_RTOL)
    reference.train_random(iris, 50)
    facade.train_random(iris, 50)
    assert_same_weights(reference, facade)


def test_pickle_round_trip_keeps_state(iris):
    reference, facade = make_pair(5, 5, iris.shape[1], sigma=1.2, random_seed=9)
    reference.train_random(iris, 100)
    facade.train_random(iris, 100)
    restored = pickle.loads(pickle.dumps(facade))
    assert type(restored) is compat.MiniSom
    restored.train_random(iris, 100)  # the RandomState travelled with it
    reference.train_random(iris, 100)
    assert_same_weights(reference, restored)


def test_return_types(iris):
    reference, facade = make_pair(3, 4, iris.shape[1], random_seed=0)
    for got, expected in [(facade.winner(iris[0]), reference.winner(iris[0])),
                          (facade.quantization_error(iris), reference.quantization_error(iris)),
                          (facade.topographic_error(iris), reference.topographic_error(iris)),
                          (facade.distortion_measure(iris), reference.distortion_measure(iris))]:
        assert type(got) is type(expected)
    assert all(type(v) is type(e) for v, e in zip(facade.winner(iris[0]), reference.winner(iris[0])))
    key = next(iter(facade.win_map(iris)))
    assert tuple(map(type, key)) == tuple(map(type, next(iter(reference.win_map(iris)))))
    assert facade.get_euclidean_coordinates()[0].shape == (3, 4)
    np.testing.assert_array_equal(facade.convert_map_to_euclidean((2, 3)), reference.convert_map_to_euclidean((2, 3)))
    assert facade.train_random(iris, 5) is None


def caught(factory):
    """The warning messages and the exception type that calling ``factory`` produces."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            factory()
            error = None
        except Exception as exc:  # noqa: BLE001 - the type is what is compared
            error = type(exc)
    return [str(w.message) for w in seen], error


CONSTRUCTOR_CASES = [
    dict(sigma=9),
    dict(neighborhood_function="bubble", sigma=1.5),
    dict(neighborhood_function="triangle", sigma=0.5, topology="hexagonal"),
    dict(topology="pentagonal"),
    dict(neighborhood_function="boooom"),
    dict(activation_distance="ridethewave"),
    dict(decay_function="strawberry"),
    dict(sigma_decay_function="strawberry"),
    dict(sigma_decay_function=lambda s, t, T: s),
]


@pytest.mark.parametrize("kwargs", CONSTRUCTOR_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_constructor_warnings_and_errors(kwargs):
    expected = caught(lambda: minisom.MiniSom(3, 4, 2, **kwargs))
    assert caught(lambda: compat.MiniSom(3, 4, 2, **kwargs)) == expected


def bad_calls(iris):
    return [
        lambda som: som.train(iris, 0),
        lambda som: som.train_batch_offline(iris, 0),
        lambda som: som.train_random(iris[:, :3], 5),
        lambda som: som.quantization_error(iris[:, :2]),
        lambda som: som.labels_map(iris, ["a"]),
        lambda som: som.train(iris, 5, fixed_points={"oops": (0, 0)}),
        lambda som: som.train(iris, 5, fixed_points={150: (0, 0)}),
        lambda som: som.train(iris, 5, fixed_points={3: (3, 0)}),
        lambda som: som.train(iris, 5, fixed_points={3: (0, -1)}),
        lambda som: som.distance_map("puppies"),
        lambda som: som.pca_weights_init(iris[:, :1]),
    ]


def test_method_errors(iris):
    reference, facade = make_pair(3, 4, iris.shape[1], random_seed=0)
    for call in bad_calls(iris):
        expected = caught(lambda: call(reference))
        assert expected[1] is not None
        assert caught(lambda: call(facade)) == expected


def test_method_warnings():
    reference, facade = make_pair(1, 1, 2, random_seed=0)
    data = np.array([[0.5, 0.1], [0.2, 0.3]])
    assert caught(lambda: facade.topographic_error(data)) == caught(lambda: reference.topographic_error(data))
    with pytest.warns(UserWarning, match="1-by-1"):
        assert np.isnan(facade.topographic_error(data))
    reference, facade = make_pair(1, 3, 2, random_seed=0)
    assert caught(lambda: facade.pca_weights_init(data)) == caught(lambda: reference.pca_weights_init(data))


def test_float32_is_equal_up_to_float32_rounding(wine):
    reference, _ = make_pair(5, 4, wine.shape[1], random_seed=3)
    facade = compat.MiniSom(5, 4, wine.shape[1], random_seed=3, dtype=torch.float32)
    reference.train_random(wine, 300)
    facade.train_random(wine, 300)
    assert facade.get_weights().dtype == np.float32
    np.testing.assert_allclose(facade.get_weights(), reference.get_weights(), atol=1e-4)
    np.testing.assert_allclose(facade.quantization_error(wine), reference.quantization_error(wine), rtol=1e-5)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-8), (torch.float32, 1e-3)])
@pytest.mark.parametrize("neighborhood", ["gaussian", "bubble"])
@pytest.mark.parametrize("distance", ["euclidean", "chebyshev"])
@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.cuda
@needs_cuda
def test_cuda_matches_minisom(wine, dtype, tolerance, neighborhood, distance, topology):
    kwargs = dict(sigma=sigma_for(neighborhood), neighborhood_function=neighborhood, activation_distance=distance,
                  topology=topology, random_seed=5)
    reference, _ = make_pair(5, 6, wine.shape[1], **kwargs)
    facade = compat.MiniSom(5, 6, wine.shape[1], device="cuda", dtype=dtype, **kwargs)
    reference.train_random(wine, 400)
    facade.train_random(wine, 400)
    assert np.abs(facade.get_weights() - reference.get_weights()).max() <= tolerance
    reference.train_batch_offline(wine, 3)
    facade.train_batch_offline(wine, 3)
    assert np.abs(facade.get_weights() - reference.get_weights()).max() <= tolerance
    np.testing.assert_allclose(facade.quantization_error(wine), reference.quantization_error(wine), rtol=10 * tolerance)
    np.testing.assert_allclose(facade.distance_map(), reference.distance_map(), rtol=10 * tolerance)
    if dtype == torch.float64:  # in float32 a sample within rounding of a tie may pick the other neuron
        np.testing.assert_array_equal(facade.activation_response(wine), reference.activation_response(wine))
        assert facade.topographic_error(wine) == reference.topographic_error(wine)
    restored = pickle.loads(pickle.dumps(facade))
    np.testing.assert_array_equal(restored.get_weights(), facade.get_weights())


@pytest.mark.cuda
@needs_cuda
def test_cuda_training_options_and_callables(iris, iris_labels):
    """float64 on CUDA: epochs, fixed points, cosine, and the step-by-step path of a callable distance."""
    def l1(x, w):
        return np.abs(x - w).sum(axis=-1)

    for kwargs, options in [(dict(activation_distance="cosine", topology="hexagonal"), dict(use_epochs=True, random_order=True)),
                            (dict(neighborhood_function="mexican_hat"), dict(fixed_points={0: (1, 1), 60: (4, 3)})),
                            (dict(activation_distance=l1), dict(random_order=True))]:
        reference, _ = make_pair(5, 4, iris.shape[1], sigma=1.3, random_seed=7, **kwargs)
        facade = compat.MiniSom(5, 4, iris.shape[1], sigma=1.3, random_seed=7, device="cuda", **kwargs)
        iterations = 2 if options.get("use_epochs") else 200
        reference.train(iris, iterations, **options)
        facade.train(iris, iterations, **options)
        assert_same_weights(reference, facade)
        assert_same_queries(reference, facade, iris, iris_labels)
