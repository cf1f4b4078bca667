"""save / load: one weights_only-loadable file with the weights and every hyperparameter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from somtorch import SOM


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(topology="hexagonal", neighborhood_function="mexican_hat", activation_distance="cosine", sigma=1.2),
    dict(periodic=True, neighborhood_function="bubble", sigma=2.0, decay_function="linear_decay_to_zero",
         sigma_decay_function="inverse_decay_to_one", dtype=torch.float64),
])
def test_save_load_round_trip_gives_identical_queries(tmp_path, wine, kwargs):
    som = SOM(6, 4, wine.shape[1], random_seed=3, device="cpu", **kwargs)
    som.train_random(wine, 300)
    path = som.save(tmp_path / "model.pt")
    assert not [p for p in tmp_path.iterdir() if p.name != "model.pt"]  # the temporary file was renamed away
    state = torch.load(path, weights_only=True)  # only tensors and plain values inside
    assert state["hyperparameters"]["x"] == 6
    loaded = SOM.load(path, device="cpu")
    np.testing.assert_array_equal(loaded.get_weights(), som.get_weights())
    assert loaded.hyperparameters() == som.hyperparameters()
    assert torch.equal(loaded.bmu_indices(wine), som.bmu_indices(wine))
    assert loaded.quantization_error(wine) == som.quantization_error(wine)
    assert loaded.topographic_error(wine) == som.topographic_error(wine)
    np.testing.assert_array_equal(loaded.distance_map(), som.distance_map())
    # the random generator state travels too: continued training is identical
    som.train_random(wine, 50)
    loaded.train_random(wine, 50)
    np.testing.assert_array_equal(loaded.get_weights(), som.get_weights())


def test_callable_hyperparameter_cannot_be_saved(tmp_path):
    som = SOM(3, 3, 2, decay_function=lambda p, t, T: p, device="cpu")
    with pytest.raises(ValueError, match="decay_function is a callable"):
        som.save(tmp_path / "m.pt")


def test_load_missing_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        SOM.load(tmp_path / "absent.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a somtorch SOM state"):
        SOM.load(tmp_path / "other.pt")


def test_move_between_devices_keeps_results(wine, device):
    som = SOM(5, 5, wine.shape[1], random_seed=0, device="cpu", dtype=torch.float64)
    som.train_random(wine, 200)
    expected = som.bmu_indices(wine)
    som.to(device)
    assert som.weights.device.type == device
    assert torch.equal(som.bmu_indices(wine).cpu(), expected)
