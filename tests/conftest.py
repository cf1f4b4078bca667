"""Shared fixtures: the compute device (CUDA cases skip without a GPU) and real data sets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")]),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Run a test once on the CPU and once on CUDA (skipped without a GPU)."""
    return request.param


@pytest.fixture(scope="session")
def wine() -> np.ndarray:
    """scikit-learn's wine data (178 × 13), standardised, float64."""
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(load_wine().data)


@pytest.fixture(scope="session")
def breast_cancer() -> np.ndarray:
    """scikit-learn's breast-cancer data (569 × 30), standardised, float64."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(load_breast_cancer().data)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder not found: {SHARED_DATA}")
    return SHARED_DATA
