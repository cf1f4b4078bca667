"""Values a SOM's dtype cannot represent (1e300 into float32) are a ValueError naming row and column, never inf
weights; values that fit (float32 max itself, 1e300 into float64) pass."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from somtorch import SOM
from somtorch._inputs import _CHECK_ROWS, check_matrix

FLOAT32_MAX = float(np.finfo(np.float32).max)  # independent of torch.finfo, used by the code under test


def small_data(n_rows: int = 40, n_cols: int = 3) -> np.ndarray:
    return np.random.default_rng(0).random((n_rows, n_cols))


@pytest.mark.parametrize(("row", "col", "value"), [(0, 0, 1e300), (7, 2, -1e300), (39, 1, 3.5e38), (12, 0, 1e39)])
def test_too_large_for_float32_names_row_and_column(row: int, col: int, value: float) -> None:
    data = small_data()
    data[row, col] = value
    som = SOM(3, 3, 3, dtype="float32", device="cpu", random_seed=0)
    with pytest.raises(ValueError, match=rf"1 value\(s\) too large for float32.*at row {row}, column {col}"):
        som.train(data, 10)
    assert torch.isfinite(som._weights).all()


@pytest.mark.parametrize("wrap", [torch.from_numpy, pd.DataFrame, lambda a: a.tolist()])
def test_every_input_kind_is_checked(wrap) -> None:
    data = small_data()
    data[[3, 5], 1] = 1e300
    som = SOM(2, 2, 3, dtype="float32", device="cpu", random_seed=0)
    with pytest.raises(ValueError, match=r"2 value\(s\) too large for float32.*at row 3, column 1"):
        som.quantization_error(wrap(data))


def test_first_bad_value_beyond_the_first_check_block() -> None:
    data = np.zeros((_CHECK_ROWS + 10, 2))
    data[_CHECK_ROWS + 4, 1] = -2e300
    with pytest.raises(ValueError, match=rf"at row {_CHECK_ROWS + 4}, column 1"):
        check_matrix(data, 2, dtype=torch.float32)


def test_values_that_fit_pass() -> None:
    data = small_data()
    data[0, 0], data[1, 1] = FLOAT32_MAX, -FLOAT32_MAX  # the limit itself is representable
    check_matrix(data, 3, dtype=torch.float32)
    data[2, 2] = 1e300
    check_matrix(data, 3, dtype=torch.float64)
    check_matrix(data, 3)  # no dtype: only the NaN / inf check
    data[2, 2] = 1e30
    som = SOM(2, 2, 3, dtype="float32", device="cpu", random_seed=0)
    assert som.bmu_indices(data).shape == (len(data),)


def test_float32_input_to_float32_map_needs_no_range_check() -> None:
    data = small_data().astype(np.float32)
    data[4, 0] = np.float32(FLOAT32_MAX)
    check_matrix(data, 3, dtype=torch.float32)
    data[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\).*row 4, column 0"):
        check_matrix(data, 3, dtype=torch.float32)
