"""The columnar path of CustomerSegmenter (Big Bazaar customers): the same model whatever the chunk size and
whatever the input's form (pandas, Polars, a CSV or a Parquet file), equal to the in-memory pandas computation
of the customer units; Polars in gives Polars out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipeline.features.feature_sets import FEATURE_SETS, SCHEMAS
from pipeline.segmentation.segmenter import CustomerSegmenter
from pipeline.sources.cleaning import clean_bigbazaar
from pipeline.sources.synthetic import generate
from pipeline.sources.transactions import TransactionSource

FIT_ARGUMENTS = dict(x=5, y=5, iters=1500, seed=3, device="cpu", n_clusters=4)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return generate(700, seed=5, rows_per_customer="history", dirt="heavy").transactions


@pytest.fixture(scope="module")
def whole(raw: pd.DataFrame) -> CustomerSegmenter:
    return CustomerSegmenter(**FIT_ARGUMENTS).fit(TransactionSource(table=raw, chunk_rows=10**9))


def test_units_equal_the_in_memory_pandas_units(raw: pd.DataFrame, whole: CustomerSegmenter) -> None:
    clean = clean_bigbazaar(raw, age_reference_date=whole.cleaning_["age_reference_date"]).clean
    recipe = FEATURE_SETS["customer"].recipes["bigbazaar"]
    learned = recipe.learn(clean)
    reference = pd.Timestamp(clean["transactionDate"].max()).normalize()
    units = recipe.build_units(clean, SCHEMAS["bigbazaar"], reference, learned)
    assert whole.preprocessor_.learned_ == learned
    assert whole.preprocessor_.reference_date_ == reference
    expected = whole.preprocessor_.transform_units(units)[0]
    np.testing.assert_allclose(whole.training_.X, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk_rows", [37, 997])
def test_chunk_size_does_not_change_the_model(raw: pd.DataFrame, whole: CustomerSegmenter, chunk_rows: int) -> None:
    chunked = CustomerSegmenter(**FIT_ARGUMENTS).fit(TransactionSource(table=raw, chunk_rows=chunk_rows))
    np.testing.assert_allclose(chunked.training_.X, whole.training_.X, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(chunked.training_.unit_cluster, whole.training_.unit_cluster)
    np.testing.assert_array_equal(chunked.training_.row_ids, whole.training_.row_ids)
    assert chunked.training_.cleaning.reason_counts == whole.training_.cleaning.reason_counts
    pd.testing.assert_frame_equal(
        chunked.training_.cleaning.dropped.reset_index(drop=True), whole.training_.cleaning.dropped.reset_index(drop=True)
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_gives_the_model_of_the_frame(raw: pd.DataFrame, whole: CustomerSegmenter, tmp_path: Path,
                                             suffix: str) -> None:
    path = tmp_path / f"transactions{suffix}"
    if suffix == ".csv":
        raw.to_csv(path, index=False)
    else:
        raw.to_parquet(path, index=False)
    from_file = CustomerSegmenter(**FIT_ARGUMENTS).fit(path)
    np.testing.assert_allclose(from_file.training_.X, whole.training_.X, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(from_file.training_.unit_cluster, whole.training_.unit_cluster)
    assert from_file.training_.cleaning.n_input == len(raw)


def test_polars_in_gives_polars_out(raw: pd.DataFrame, whole: CustomerSegmenter) -> None:
    table = whole.predict(pl.from_pandas(raw))
    assert isinstance(table, pl.DataFrame)
    expected = whole.predict(raw)
    assert isinstance(expected, pd.DataFrame)
    assert table.height == len(raw) == len(expected)
    np.testing.assert_array_equal(table["row_id"].to_numpy(), expected["row_id"].to_numpy())
    np.testing.assert_array_equal(table["cluster"].fill_null(-1).to_numpy(),
                                  expected["cluster"].fillna(-1).to_numpy())
    assert table["reason"].to_list() == [None if pd.isna(v) else v for v in expected["reason"]]
    assert table["customerID"].to_list() == [str(v) for v in expected["customerID"]]  # mixed ids become text


def test_dropped_rows_go_to_the_sink_and_are_not_kept(raw: pd.DataFrame) -> None:
    chunks: list[pl.DataFrame] = []
    segmenter = CustomerSegmenter(**FIT_ARGUMENTS).fit(TransactionSource(table=raw, chunk_rows=500),
                                                       dropped_sink=chunks.append)
    summary = segmenter.training_.cleaning
    assert summary.dropped is None
    assert sum(chunk.height for chunk in chunks) == summary.n_dropped > 0
    assert summary.n_kept + summary.n_dropped == summary.n_input == len(raw)


def test_predict_on_rows_that_are_all_dropped_lists_each_with_its_reason(raw: pd.DataFrame,
                                                                          whole: CustomerSegmenter) -> None:
    no_dob = raw.head(40).assign(DOB=None)
    table = whole.predict(no_dob)
    assert len(table) == 40 and table["cluster"].isna().all()
    assert set(table["reason"]) <= {"missing DOB", "missing DOB and PinCode"}
    with pytest.raises(ValueError, match="no rows left after cleaning: all 40 input rows were dropped"):
        CustomerSegmenter(**FIT_ARGUMENTS).fit(no_dob)
