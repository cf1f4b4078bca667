"""Streaming the batch map from host data or chunk iterables gives the in-memory result."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from somtorch import SOM


def fresh(d, device):
    return SOM(6, 6, d, sigma=2.0, random_seed=8, device=device, dtype=torch.float64)


def test_streamed_equals_in_memory(breast_cancer, device):
    reference = fresh(breast_cancer.shape[1], device).train_batch(breast_cancer, 4, stream=False)
    streamed = fresh(breast_cancer.shape[1], device).train_batch(breast_cancer, 4, stream=True, stream_rows=97)
    chunks = np.array_split(breast_cancer, 5)
    from_chunks = fresh(breast_cancer.shape[1], device).train_batch(chunks, 4)
    host_tensor = fresh(breast_cancer.shape[1], device).train_batch(torch.tensor(breast_cancer), 4, stream=True, stream_rows=128)
    for other in (streamed, from_chunks, host_tensor):
        np.testing.assert_allclose(other.get_weights(), reference.get_weights(), atol=1e-12)


def test_one_shot_iterator_fails_clearly_on_second_epoch(breast_cancer):
    som = fresh(breast_cancer.shape[1], "cpu")
    with pytest.raises(ValueError, match="yielded no rows"):
        som.train_batch((c for c in np.array_split(breast_cancer, 3)), 2)


def test_streamed_chunks_are_validated(breast_cancer):
    bad = np.array_split(breast_cancer.copy(), 3)
    bad[1][4, 2] = np.nan
    with pytest.raises(ValueError, match="chunk 1 contains 1 NaN"):
        fresh(breast_cancer.shape[1], "cpu").train_batch(bad, 1)
