"""Tests for pipeline.sources.loading: table reading, row ids, column checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.sources.loading import read_bigbazaar, read_table, require_columns, with_row_id

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CPRODUCTS = DATA / "bigbazaar_skrohit" / "cproducts.csv"


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"customer": ["a", "b", "c"], "amount": [1.5, 2.0, -3.25], "code": ["007", "010", "123"]})


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet", ".pq"])
def test_read_table_round_trips_each_format_and_adds_positional_row_id(tmp_path, frame, suffix):
    path = tmp_path / f"table{suffix}"
    if suffix.endswith((".parquet", ".pq")):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    table = read_table(path, dtype={"code": str})
    assert list(table.columns) == ["row_id", "customer", "amount", "code"]
    np.testing.assert_array_equal(table["row_id"].to_numpy(), [0, 1, 2])
    assert table["code"].tolist() == ["007", "010", "123"]
    np.testing.assert_allclose(table["amount"].to_numpy(), frame["amount"].to_numpy())


def test_read_table_nrows_and_usecols(tmp_path, frame):
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    table = read_table(path, usecols=["amount"], nrows=2)
    assert list(table.columns) == ["row_id", "amount"]
    assert table["amount"].tolist() == [1.5, 2.0]


def test_read_table_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_table(missing)


def test_read_table_unknown_suffix_lists_supported(tmp_path):
    path = tmp_path / "table.xlsx"
    path.write_text("x")
    with pytest.raises(ValueError, match=r"\.csv.*\.csv\.gz.*\.parquet.*\.pq"):
        read_table(path)


def test_existing_row_id_is_kept_and_validated():
    labelled = pd.DataFrame({"row_id": [7, 3], "value": [1, 2]})
    assert with_row_id(labelled)["row_id"].tolist() == [7, 3]
    with pytest.raises(ValueError, match="duplicate"):
        with_row_id(pd.DataFrame({"row_id": [1, 1], "value": [1, 2]}))
    with pytest.raises(TypeError, match="integers"):
        with_row_id(pd.DataFrame({"row_id": ["a", "b"]}))


def test_require_columns_names_missing_and_present():
    table = pd.DataFrame({"a": [1], "b": [2]})
    require_columns(table, ["a"], what="test table")
    with pytest.raises(ValueError) as error:
        require_columns(table, ["a", "x", "y"], what="test table")
    message = str(error.value)
    assert "test table" in message and "'x'" in message and "'y'" in message and "'b'" in message


def test_read_bigbazaar_keeps_zero_padded_promo_codes_even_when_all_numeric(tmp_path):
    header = ("customerID,DOB,Gender,State,PinCode,transactionDate,store_code,store_description,till_no,"
              "transaction_number_by_till,promo_code,promotion_description,product_code,product_description,"
              "sale_price_after_promo,discountUsed")
    row = "BBID_1,1980-01-01,male,X,452001,2016-01-01,2655,S,1,11,0000971754,P,100000000,D,5,Payback"
    path = tmp_path / "cproducts.csv"
    path.write_text(header + "\n" + row + "\n")
    table = read_bigbazaar(path)
    assert table.loc[0, "promo_code"] == "0000971754"


def test_read_bigbazaar_names_a_missing_column(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("customerID,DOB\nBBID_1,1980-01-01\n")
    with pytest.raises(ValueError, match="discountUsed"):
        read_bigbazaar(path)


def test_read_bigbazaar_real_file():
    if not CPRODUCTS.is_file():
        pytest.skip(f"real data absent: {CPRODUCTS}")
    table = read_bigbazaar(CPRODUCTS)
    assert table.shape == (11_972, 17)
    np.testing.assert_array_equal(table["row_id"].to_numpy(), np.arange(11_972))
    assert (table["promo_code"] == "0000971754").any()
    assert table.loc[0, "customerID"] == "BBID_20482"
