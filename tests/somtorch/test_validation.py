"""Bad input gets a clear ValueError / TypeError / RuntimeError that names the problem."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from somtorch import SOM


@pytest.fixture
def som() -> SOM:
    return SOM(4, 4, 3, random_seed=0, device="cpu")


def test_wrong_width(som):
    with pytest.raises(ValueError, match="has 2 features per row, but the SOM expects input_len=3"):
        som.train_random(np.zeros((5, 2)), 10)


def test_nan_and_inf_are_counted_and_located(som):
    data = np.zeros((6, 3))
    data[2, 1] = np.nan
    data[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 NaN or infinite value\(s\); the first is at row 2, column 1"):
        som.train_batch(data, 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        som.quantization_error(torch.tensor(data))


def test_empty_data_and_wrong_rank(som):
    with pytest.raises(ValueError, match="empty"):
        som.train_random(np.zeros((0, 3)), 10)
    with pytest.raises(ValueError, match="must be 2-D"):
        som.bmu_indices(np.zeros((2, 3, 1)))


def test_non_numeric_inputs(som):
    with pytest.raises(TypeError, match=r"non-numeric columns \['b'\]"):
        som.train_random(pd.DataFrame({"a": [1.0], "b": ["x"], "c": [2.0]}), 5)
    with pytest.raises(TypeError, match="must be numeric"):
        som.train_random([["a", "b", "c"]], 5)


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_bad_iteration_counts(som, n):
    with pytest.raises(ValueError, match="num_iteration must be an integer ≥ 1"):
        som.train_random(np.zeros((3, 3)), n)
    with pytest.raises(ValueError, match="num_iteration"):
        som.train_batch(np.zeros((3, 3)), n)


@pytest.mark.parametrize("kwargs,message", [
    (dict(x=0), "x must be an integer ≥ 1"),
    (dict(y=-1), "y must be an integer ≥ 1"),
    (dict(sigma=0), "sigma must be a finite number > 0"),
    (dict(sigma=-1.0), "sigma must be a finite number > 0"),
    (dict(topology="triangular"), r"topology='triangular' is not supported; choose one of \['rectangular', 'hexagonal'\]"),
    (dict(neighborhood_function="boooom"), "neighborhood_function='boooom' is not supported; choose one of"),
    (dict(activation_distance="ridethewave"), "activation_distance='ridethewave' is not supported"),
    (dict(decay_function="strawberry"), "decay_function='strawberry' is not supported"),
    (dict(sigma_decay_function="linear_decay_to_zero"), "sigma_decay_function='linear_decay_to_zero' is not supported"),
    (dict(topology="hexagonal", periodic=True, y=5), "needs an even y"),
    (dict(dtype=torch.float16), "dtype=torch.float16 is not supported"),
    (dict(device="tpu"), "device='tpu' is not"),
])
def test_bad_constructor_arguments(kwargs, message):
    args = dict(x=4, y=4, input_len=3, device="cpu") | kwargs
    with pytest.raises(ValueError, match=message):
        SOM(**args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_gpu_raises_runtime_error():
    for device in ("cuda", "cuda:1", torch.device("cuda")):
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            SOM(3, 3, 2, device=device)


def test_minisom_warnings_kept():
    with pytest.warns(UserWarning, match="sigma might be too high"):
        SOM(2, 2, 2, sigma=10, device="cpu")
    with pytest.warns(UserWarning, match="sigma should be an integer >=1"):
        SOM(5, 5, 2, sigma=0.5, neighborhood_function="bubble", device="cpu")
    with pytest.warns(UserWarning, match="triangle neighborhood function does not take in account hexagonal"):
        SOM(5, 5, 2, sigma=1, neighborhood_function="triangle", topology="hexagonal", device="cpu")


def test_labels_length_and_weights_shape(som):
    with pytest.raises(ValueError, match="same length"):
        som.labels_map(np.zeros((3, 3)), ["a"])
    with pytest.raises(ValueError, match=r"weights must have shape \(4, 4, 3\)"):
        som.set_weights(np.zeros((4, 3, 3)))
    with pytest.raises(ValueError, match="scaling should be either"):
        som.distance_map(scaling="puppies")
    with pytest.raises(ValueError, match="mode='online' is not supported"):
        som.train(np.zeros((3, 3)), 3, mode="online")
    with pytest.raises(ValueError, match="at least 2 features"):
        SOM(3, 3, 1, device="cpu").pca_weights_init(np.zeros((4, 1)))
