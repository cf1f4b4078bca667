"""The chunked Polars path (pipeline.sources.chunks + bigbazaar_columnar) against the pandas reference
(read_bigbazaar + clean_bigbazaar): the concatenated clean chunks must equal clean_bigbazaar's clean frame, the
dropped chunks its dropped frame (reasons exactly, raw values as numbers or text), for real, synthetic and dirty
inputs, with chunks small enough that customers span chunks."""
from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.sources.bigbazaar_columnar import BigBazaarCleaner, iso8601_dates
from pipeline.sources.chunks import frame_chunks, read_bigbazaar_chunks, read_chunks, scan_bigbazaar_summary
from pipeline.sources.cleaning import CleanResult, clean_bigbazaar
from pipeline.sources.loading import BIGBAZAAR_COLUMNS, read_bigbazaar, read_table
from pipeline.sources.synthetic import generate
from tests.pipeline.test_cleaning import BASE_ROW, CPRODUCTS, bigbazaar_raw, require
from tests.pipeline.test_dirty_input import with_repeated_header
from tests.pipeline.test_read_errors import TABLE_PROBLEMS, broken_table

CHUNK_ROWS = 500
REFERENCE = "2018-03-01"


def columnar_clean(
    chunks, *, reference: date, n_rows: int, age_range=(14, 100)
) -> tuple[pl.DataFrame, pl.DataFrame, BigBazaarCleaner]:
    cleaner = BigBazaarCleaner(age_reference_date=reference, n_rows_total=n_rows, age_range=age_range)
    parts = [cleaner.clean(chunk) for chunk in chunks]
    cleaner.check_parseable()
    return pl.concat([clean for clean, _ in parts]), pl.concat([dropped for _, dropped in parts]), cleaner


def as_polars_clean(result: CleanResult) -> pl.DataFrame:
    """The converter of the clean-chunk contract."""
    return pl.from_pandas(result.clean).with_columns(pl.col("transactionDate").cast(pl.Date))


def cell_texts(values) -> list[str | None]:
    return [None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
            for value in values]


def same_cell(expected: str | None, actual: str | None) -> bool:
    """Equal as text, or as numbers ('453441' == '453441.0')."""
    if expected is None or actual is None:
        return expected is actual
    if expected == actual:
        return True
    try:
        return float(expected) == float(actual)
    except ValueError:
        return False


def assert_same_as_pandas(reference: CleanResult, clean: pl.DataFrame, dropped: pl.DataFrame) -> None:
    assert_frame_equal(clean, as_polars_clean(reference))
    expected = reference.dropped
    assert dropped.columns == list(expected.columns)
    assert dropped["row_id"].to_list() == expected["row_id"].tolist()
    assert dropped["reason"].to_list() == expected["reason"].tolist()
    for column in expected.columns:
        pairs = zip(cell_texts(expected[column]), cell_texts(dropped[column].to_list()))
        mismatched = [(e, a) for e, a in pairs if not same_cell(e, a)]
        assert not mismatched, (column, mismatched[:5])


def assert_file_matches(path: Path, *, age_range=(14, 100), chunk_rows: int = CHUNK_ROWS) -> CleanResult:
    """The file through read_chunks + BigBazaarCleaner (reference date and n from the summary) vs pandas."""
    reference = clean_bigbazaar(read_bigbazaar(path), age_range=age_range)
    n_rows, latest = scan_bigbazaar_summary(path)
    assert n_rows == reference.n_input
    chunks = read_bigbazaar_chunks(path, chunk_rows=chunk_rows)
    clean, dropped, _ = columnar_clean(chunks, reference=latest, n_rows=n_rows, age_range=age_range)
    assert_same_as_pandas(reference, clean, dropped)
    return reference


def assert_frame_matches(raw: pd.DataFrame, *, chunk_rows: int = CHUNK_ROWS, age_range=(14, 100)) -> CleanResult:
    """An in-memory frame (typed columns) through frame_chunks + BigBazaarCleaner vs pandas."""
    reference = clean_bigbazaar(raw, age_reference_date=REFERENCE, age_range=age_range)
    clean, dropped, _ = columnar_clean(frame_chunks(raw, chunk_rows), reference=date.fromisoformat(REFERENCE),
                                       n_rows=len(raw), age_range=age_range)
    assert_same_as_pandas(reference, clean, dropped)
    return reference


# ---------------------------------------------------------------- real and synthetic data


def test_real_file_matches_pandas() -> None:
    reference = assert_file_matches(require(CPRODUCTS))
    assert len(reference.dropped) > 0 and reference.dropped["customerID"].nunique() > 1


@pytest.mark.parametrize("age_range", [(14, 100), None])
@pytest.mark.parametrize("dirt", ["real", "heavy"])
def test_synthetic_file_matches_pandas(tmp_path: Path, dirt: str, age_range) -> None:
    raw = generate(2500, seed=2, rows_per_customer="sample", dirt=dirt).transactions
    path = tmp_path / "cproducts.csv"
    raw.to_csv(path, index=False)
    reference = assert_file_matches(path, age_range=age_range)
    assert reference.n_input > 4 * CHUNK_ROWS and len(reference.dropped) > 0


@pytest.mark.parametrize("dirt", ["real", "heavy"])
def test_synthetic_frame_with_typed_columns_matches_pandas(dirt: str) -> None:
    raw = generate(1500, seed=3, rows_per_customer="sample", dirt=dirt).transactions
    assert raw["PinCode"].dtype == np.float64 and raw["store_code"].dtype == np.int64
    assert len(assert_frame_matches(raw).dropped) > 0


def test_parquet_file_matches_pandas(tmp_path: Path) -> None:
    """read_bigbazaar_chunks reads Parquet as read_bigbazaar does: text columns as text, numbers typed."""
    raw = generate(600, seed=6, rows_per_customer="sample", dirt="heavy").transactions
    path = tmp_path / "cproducts.parquet"
    raw.to_parquet(path)
    reference = clean_bigbazaar(read_bigbazaar(path))
    n_rows, latest = scan_bigbazaar_summary(path)
    chunks = list(read_bigbazaar_chunks(path, chunk_rows=100))
    assert chunks[0]["PinCode"].dtype == pl.Float64 and chunks[0]["promo_code"].dtype == pl.Utf8
    clean, dropped, _ = columnar_clean(chunks, reference=latest, n_rows=n_rows)
    assert_same_as_pandas(reference, clean, dropped)


def test_gzip_and_parquet_give_the_csv_result(tmp_path: Path) -> None:
    raw = generate(300, seed=5, rows_per_customer="sample", dirt="heavy").transactions
    csv, packed = tmp_path / "t.csv", tmp_path / "t.csv.gz"
    raw.to_csv(csv, index=False)
    packed.write_bytes(gzip.compress(csv.read_bytes()))
    n_rows, latest = scan_bigbazaar_summary(csv)
    expected = columnar_clean(read_chunks(csv, chunk_rows=100), reference=latest, n_rows=n_rows)
    assert scan_bigbazaar_summary(packed) == (n_rows, latest)
    from_gzip = columnar_clean(read_chunks(packed, chunk_rows=100), reference=latest, n_rows=n_rows)
    assert_frame_equal(from_gzip[0], expected[0]) and assert_frame_equal(from_gzip[1], expected[1])
    parquet = tmp_path / "t.parquet"
    raw.to_parquet(parquet)
    assert scan_bigbazaar_summary(parquet) == (n_rows, latest)
    clean, _, _ = columnar_clean(read_chunks(parquet, chunk_rows=100), reference=latest, n_rows=n_rows)
    assert_frame_equal(clean, expected[0])


# ---------------------------------------------------------------- dirty cells (test_dirty_input, test_cleaning)

DIRTY_ROWS = {
    "bad cells": [{"sale_price_after_promo": "12,5x"}, {"store_code": "27O5"}, {"PinCode": "45-3441"},
                  {"till_no": "two"}, {"transactionDate": "2016-13-45"}, {"sale_price_after_promo": "abc"}],
    "missing": [{"DOB": None}, {"PinCode": None, "DOB": None}, {"PinCode": None}, {"customerID": None},
                {"discountUsed": None}, {"transactionDate": " "}, {"product_code": None}, {"Gender": None}],
    "ids": [{"customerID": "BBID_２０４８２"}, {"customerID": "BBID_٢٠٤٨٢"},
            {"customerID": "२०४८२"}, {"customerID": "BBID_20４82"}, {"customerID": "20482"},
            {"customerID": "XX_1"},
            {"customerID": "BBID_0042"}, {"customerID": " BBID_7 "}, {"customerID": "BBID_1234567890123456789"}],
    "dates and ages": [{"DOB": "NANA"}, {"DOB": "nana"}, {"DOB": "2019-01-01"}, {"DOB": "1975-13-01"},
                       {"DOB": "2004-05-01"}, {"DOB": "2004-03-01"}, {"DOB": "1918-03-01"}, {"DOB": "1917-01-01"},
                       {"DOB": "1975/10/20"}, {"DOB": "19751020"}, {"transactionDate": "2016-05-01 10:20:30"},
                       {"transactionDate": "2016-5-1"}, {"transactionDate": "2015-12-31"},
                       {"transactionDate": "2016-01-03"}, {"DOB": "2000-02-29"}, {"transactionDate": "2018-02-29"}],
    "codes and states": [{"promo_code": "NONPROMO"}, {"promo_code": "localpromo"}, {"promo_code": "0000971754"},
                         {"promo_code": None}, {"promo_code": "PROMO??"}, {"promo_code": "12.5"},
                         {"State": "Madhya  pradesh "}, {"State": "x"}, {"State": "Other"}, {"State": " "},
                         {"State": "tamil\u3000nadu"}, {"Gender": " female "}],
    # 'abc' keeps the price column text in pandas' read_csv, whose reasons then quote the file's text too
    "numbers": [{"till_no": 2.5}, {"sale_price_after_promo": "abc"}, {"sale_price_after_promo": "1e400"},
                {"sale_price_after_promo": "-inf"},
                {"sale_price_after_promo": "1e300"}, {"sale_price_after_promo": "1.7e308"},
                {"sale_price_after_promo": "nan"}, {"PinCode": "453441.0"}, {"store_code": "1e20"},
                {"sale_price_after_promo": "-0"}, {"transaction_number_by_till": "+85246"}],
}


@pytest.mark.parametrize("case", list(DIRTY_ROWS))
@pytest.mark.parametrize("chunk_rows", [1, 4])
def test_dirty_rows_in_memory_match_pandas(case: str, chunk_rows: int) -> None:
    raw = bigbazaar_raw({}, *DIRTY_ROWS[case], {"customerID": "BBID_99"})
    assert len(assert_frame_matches(raw, chunk_rows=chunk_rows).dropped) > 0


@pytest.mark.parametrize("case", list(DIRTY_ROWS))
def test_dirty_rows_in_a_file_match_pandas(tmp_path: Path, case: str) -> None:
    path = tmp_path / "cproducts.csv"
    bigbazaar_raw({}, *DIRTY_ROWS[case], {"customerID": "BBID_99"}).to_csv(path, index=False)
    assert len(assert_file_matches(path, chunk_rows=3).dropped) > 0


def test_repeated_header_line_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "cproducts.csv"
    generate(200, seed=4).transactions.to_csv(path, index=False)
    with_repeated_header(path, 21)
    reference = assert_file_matches(path, chunk_rows=50)
    assert "unparseable customerID 'customerID'" in reference.reason_counts()


def test_typed_huge_values_are_quoted_as_pandas_writes_them() -> None:
    """'1.7e+308' (Python's repr), not Polars' own float text."""
    raw = bigbazaar_raw({}, {"sale_price_after_promo": 1.7e308}, {"sale_price_after_promo": -1e-5},
                        {"PinCode": 453441.5}, {"sale_price_after_promo": np.inf})
    reference = assert_frame_matches(raw, chunk_rows=2)
    assert reference.dropped["reason"].tolist() == [
        "too large sale_price_after_promo '1.7e+308' (a sum over 5 rows could overflow)",
        "non-integer PinCode '453441.5'", "non-finite sale_price_after_promo 'inf'",
    ]


def test_too_large_limit_uses_the_whole_input_row_count() -> None:
    """1e307 passes in 10 rows (limit 1.8e307) and is too large for a table of 100 rows, whatever the chunk."""
    chunk = next(frame_chunks(bigbazaar_raw({}, {"sale_price_after_promo": 1e307}), 2))
    for n_rows, n_dropped in ((10, 0), (100, 1)):
        _, dropped = BigBazaarCleaner(date(2018, 3, 1), n_rows).clean(chunk)
        assert dropped.height == n_dropped


@pytest.mark.parametrize(("n_bad", "raises"), [(20, False), (21, True)])
def test_mostly_unparseable_is_decided_over_the_whole_input(n_bad: int, raises: bool) -> None:
    """The bad cells all sit in the first chunks, which alone are mostly unparseable; only the whole-input share
    decides, with clean_bigbazaar's message."""
    raw = bigbazaar_raw(*({"customerID": f"BBID_{k}"} for k in range(40)))
    raw["sale_price_after_promo"] = ["price"] * n_bad + ["55"] * (40 - n_bad)
    cleaner = BigBazaarCleaner(date(2018, 3, 1), len(raw))
    for chunk in frame_chunks(raw, 10):
        cleaner.clean(chunk)
    if not raises:
        cleaner.check_parseable()
        return
    with pytest.raises(ValueError) as expected:
        clean_bigbazaar(raw, age_reference_date=REFERENCE)
    with pytest.raises(ValueError) as caught:
        cleaner.check_parseable()
    assert str(caught.value) == str(expected.value)


def test_first_mostly_unparseable_column_in_step_order_is_reported(tmp_path: Path) -> None:
    raw = bigbazaar_raw(*({"customerID": f"BBID_{k}"} for k in range(6)))
    raw["till_no"], raw["transactionDate"] = "two", ["01/05/2016", "2016-13-01", "x", "2016-05-01", "y", "z"]
    path = tmp_path / "cproducts.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(ValueError) as expected:
        clean_bigbazaar(read_bigbazaar(path), age_reference_date=REFERENCE)
    cleaner = BigBazaarCleaner(date(2018, 3, 1), len(raw))
    for chunk in read_chunks(path, chunk_rows=4):
        cleaner.clean(chunk)
    with pytest.raises(ValueError) as caught:
        cleaner.check_parseable()
    assert str(caught.value) == str(expected.value) and "'transactionDate'" in str(caught.value)


@pytest.mark.parametrize("text", [
    "2016-05-01", "2016-5-1", "2016-05", "2016", "20160501", "2016/05/01", "2016.05.01", "2016 05 01",
    "2016-05/01", "2016-0501", "201605", "2016-05-01 10:20:30", "2016-05-01T10:20", "2016-05-01T1",
    "2016-05-01T1:2", "2016-05-01T10:20:30.123456789", "2016-05-01T24:00", "2016-05-01T10:60",
    "2016-02-30", "2000-02-29", "1995-02-29", "2016-13-01", "2016-00-10", "16-05-01", "01/05/2016", "NANA",
    "+2016-05-01", "２０１６-05-01", "2016-05-01T", "2016-005-01", " 2016-05-01 ",
])
def test_iso8601_dates_agree_with_pandas(text: str) -> None:
    expected = pd.to_datetime(pd.Series([text.strip()], dtype=object), format="ISO8601", errors="coerce")[0]
    parsed = iso8601_dates(pl.Series([text])).item()
    assert parsed == (None if pd.isna(expected) else expected.date())


# ---------------------------------------------------------------- read_chunks


def test_csv_chunks_are_the_rows_with_their_positions(tmp_path: Path) -> None:
    raw = generate(200, seed=1).transactions
    path = tmp_path / "t.csv"
    raw.to_csv(path, index=False)
    chunks = list(read_chunks(path, chunk_rows=64))
    assert all(chunk.columns == ["row_id", *raw.columns] for chunk in chunks)
    assert max(chunk.height for chunk in chunks) <= 64 and len(chunks) >= len(raw) // 64
    frame = pl.concat(chunks)
    assert frame["row_id"].to_list() == list(range(len(raw)))
    text = pd.read_csv(path, dtype=str, keep_default_na=True)
    assert all(dtype == pl.Utf8 for dtype in frame.drop("row_id").dtypes)
    for column in raw.columns:
        assert cell_texts(frame[column].to_list()) == cell_texts(text[column]), column


def test_text_columns_only_are_text_and_zero_padding_survives(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("code,amount\n0000971754,1.5\n0042,2\n")
    frame = pl.concat(read_chunks(path, text_columns=["code"]))
    assert frame["code"].to_list() == ["0000971754", "0042"] and frame["amount"].dtype == pl.Float64


def test_blank_lines_and_missing_texts_as_pandas_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('a,b,c\n1,2,3\n\n4,"",NA\nNULL,nan, x \n\n')
    frame = pl.concat(read_chunks(path))
    expected = read_table(path, dtype={"a": str, "b": str, "c": str})
    assert frame["row_id"].to_list() == expected["row_id"].tolist()
    for column in "abc":
        assert cell_texts(frame[column].to_list()) == cell_texts(expected[column])


def test_a_file_with_its_own_row_ids_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": list("abcdef"), "row_id": [10, 11, 12, 20, 21, 22]}).to_csv(path, index=False)
    frame = pl.concat(read_chunks(path, chunk_rows=2))
    assert frame.columns == ["row_id", "x"] and frame["row_id"].to_list() == [10, 11, 12, 20, 21, 22]
    assert frame["row_id"].dtype == pl.Int64


@pytest.mark.parametrize(("ids", "error", "message"), [
    (["1", "2", "x"], TypeError, "must hold integers"), (["1", "2.5", "3"], TypeError, "must hold integers"),
    (["1", "2", "1"], ValueError, "duplicate ids"),
])
def test_bad_own_row_ids_are_rejected(tmp_path: Path, ids, error, message) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"row_id": ids, "x": [1, 2, 3]}).to_csv(path, index=False)
    with pytest.raises(error, match=message):
        list(read_chunks(path))
    with pytest.raises(error, match=message):
        read_table(path)


def test_in_memory_frames_with_duplicate_row_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate ids"):
        frame_chunks(pd.DataFrame({"row_id": [3, 4, 3], "x": [1, 2, 3]}), 2)


@pytest.mark.parametrize("kind", list(TABLE_PROBLEMS))
def test_unreadable_files_give_read_tables_errors(tmp_path: Path, kind: str) -> None:
    path = broken_table(kind, tmp_path, generate(60, seed=3).transactions.to_csv(index=False))
    with pytest.raises(ValueError) as caught:
        list(read_chunks(path, chunk_rows=10))
    message = str(caught.value)
    assert message.startswith(f"cannot read {path}: ") and TABLE_PROBLEMS[kind] in message and "\n" not in message


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
def test_header_only_file_has_no_data_rows(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    frame = bigbazaar_raw().reindex(columns=list(BASE_ROW))
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    chunks = read_chunks(path)
    with pytest.raises(ValueError, match=rf"^{path} has no data rows \(only a header with 16 columns\)"):
        next(chunks)


def test_missing_file_suffix_and_columns(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input table not found"):
        read_chunks(tmp_path / "absent.csv")
    (tmp_path / "t.xlsx").write_text("a\n1\n")
    with pytest.raises(ValueError, match="unsupported table file 't.xlsx'"):
        read_chunks(tmp_path / "t.xlsx")
    path = tmp_path / "t.csv"
    bigbazaar_raw({}).drop(columns=["DOB", "State"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"^Big Bazaar file is missing column\(s\) \['DOB', 'State'\]"):
        read_chunks(path, required_columns=BIGBAZAAR_COLUMNS, what="Big Bazaar file")
    with pytest.raises(ValueError, match="chunk_rows must be a positive integer, got 0"):
        read_chunks(path, chunk_rows=0)


def test_summary_of_a_frame_and_a_file_agree_with_pandas(tmp_path: Path) -> None:
    raw = bigbazaar_raw({"transactionDate": "2017-06-30 23:00"}, {"transactionDate": "bad"}, {})
    path = tmp_path / "t.csv"
    raw.to_csv(path, index=False)
    latest = pd.to_datetime(raw["transactionDate"], format="ISO8601", errors="coerce").max().date()
    assert scan_bigbazaar_summary(path) == scan_bigbazaar_summary(raw) == (3, latest)
    no_dates = bigbazaar_raw({"transactionDate": "bad"})
    assert scan_bigbazaar_summary(no_dates) == (1, None)


def test_summary_counts_rows_as_pandas_does_with_blank_lines(tmp_path: Path) -> None:
    raw = bigbazaar_raw({}, {"transactionDate": None}, {})
    path = tmp_path / "t.csv"
    lines = raw.to_csv(index=False).splitlines()
    path.write_text("\n".join([*lines[:2], "", *lines[2:], "", ""]) + "\n")
    expected = read_bigbazaar(path)
    assert scan_bigbazaar_summary(path)[0] == len(expected) == sum(chunk.height for chunk in read_chunks(path))
