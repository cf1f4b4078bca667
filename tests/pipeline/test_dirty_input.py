"""Dirty input never aborts a run and never loses a row (issue 11, classes 1, 2, 5 and 7b).

A bad cell (non-numeric number, repeated header line, non-ASCII-digit customer id, a value float64 cannot hold)
drops its row with a reason naming the column and value; a mostly unparseable column and an empty table stop with
one message naming the column or file. Every check counts rows: rows in = rows kept + rows dropped.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.sources.cleaning import CleanResult, clean_bigbazaar, clean_generic, clean_online_retail
from pipeline.features.encoding import Standardizer
from pipeline.sources.loading import read_bigbazaar, read_table
from pipeline.app.run import run
from pipeline.sources.synthetic import generate
from tests.pipeline.test_cleaning import BASE_ROW, bigbazaar_raw
from tests.pipeline.test_run import assert_no_results, tiny_config

MAPPING = {"id": "client", "date": "day", "amount": "spend", "numerics": ["items"]}
RETAIL_ROW = {
    "InvoiceNo": "536365", "StockCode": "85123A", "Description": "WHITE HANGING HEART", "Quantity": 6,
    "InvoiceDate": "2010-12-01 08:26:00", "UnitPrice": 2.55, "CustomerID": 17850.0, "Country": "United Kingdom",
}
FAST_RUN = {"som__x": 4, "som__y": 4, "som__iters": 300, "clustering__n_clusters": 3}


def generic_frame(n_rows: int = 40) -> pd.DataFrame:
    return pd.DataFrame({
        "client": [f"C{k % 9}" for k in range(n_rows)],
        "day": [f"2021-03-{1 + k % 28:02d}" for k in range(n_rows)],
        "spend": [f"{1 + 0.5 * k:.2f}" for k in range(n_rows)],
        "items": [str(k % 5) for k in range(n_rows)],
    })


def retail_frame(n_rows: int = 20) -> pd.DataFrame:
    return pd.DataFrame([{**RETAIL_ROW, "Quantity": float(1 + k), "CustomerID": 17850.0 + k % 4} for k in range(n_rows)])


def reasons_by_row(result: CleanResult) -> dict[int, str]:
    assert result.n_input == len(result.clean) + len(result.dropped)
    assert result.dropped["reason"].str.len().gt(0).all()
    return dict(zip(result.dropped["row_id"].tolist(), result.dropped["reason"].tolist()))


def with_repeated_header(path: Path, at_line: int) -> None:
    """Insert the header line of a CSV again as line ``at_line`` (1 = first data line)."""
    lines = path.read_text().splitlines()
    lines.insert(at_line, lines[0])
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- class 1: one bad cell drops one row


@pytest.mark.parametrize(("column", "value"), [
    ("sale_price_after_promo", "12,5x"), ("store_code", "27O5"), ("PinCode", "45-3441"), ("till_no", "two"),
])
def test_bigbazaar_bad_cell_drops_its_row_naming_column_and_value(column: str, value: str) -> None:
    raw = bigbazaar_raw(*({"customerID": f"BBID_{k}"} for k in range(6)))
    raw[column] = raw[column].astype(object)
    raw.loc[3, column] = value
    result = clean_bigbazaar(raw, age_reference_date="2018-03-01")
    assert reasons_by_row(result) == {3: f"non-numeric {column} '{value}'"}
    assert result.clean["customerID"].tolist() == [0, 1, 2, 4, 5]


@pytest.mark.parametrize(("column", "value"), [("spend", "n/a"), ("spend", "1.2.3"), ("items", "three")])
def test_generic_bad_cell_drops_its_row(column: str, value: str) -> None:
    raw = generic_frame()
    raw.loc[[7, 30], column] = value
    result = clean_generic(raw, MAPPING)
    assert reasons_by_row(result) == {7: f"non-numeric {column} '{value}'", 30: f"non-numeric {column} '{value}'"}


@pytest.mark.parametrize(("column", "value"), [("Quantity", "6 pcs"), ("UnitPrice", "£2.55")])
def test_online_retail_bad_cell_drops_its_row(column: str, value: str) -> None:
    raw = retail_frame().astype({column: object})
    raw.loc[11, column] = value
    result = clean_online_retail(raw)
    assert reasons_by_row(result) == {11: f"non-numeric {column} '{value}'"}


@pytest.mark.parametrize("at_line", [1, 9, 40])
def test_repeated_header_line_is_one_dropped_row(tmp_path: Path, at_line: int) -> None:
    path = tmp_path / "sales.csv"
    generic_frame().to_csv(path, index=False)
    expected = clean_generic(read_table(path), MAPPING).clean
    with_repeated_header(path, at_line)
    result = clean_generic(read_table(path), MAPPING)
    assert reasons_by_row(result) == {at_line - 1: "unparseable day 'day'"}
    kept = result.clean.drop(columns="row_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, expected.drop(columns="row_id"), check_dtype=False)


def test_repeated_header_line_in_bigbazaar_file(tmp_path: Path) -> None:
    path = tmp_path / "cproducts.csv"
    bigbazaar_raw(*({"customerID": f"BBID_{k}"} for k in range(5))).to_csv(path, index=False)
    with_repeated_header(path, 3)
    result = clean_bigbazaar(read_bigbazaar(path), age_reference_date="2018-03-01")
    assert reasons_by_row(result) == {2: "unparseable customerID 'customerID'"}
    assert result.clean["customerID"].tolist() == [0, 1, 2, 3, 4]
    assert result.clean["sale_price_after_promo"].tolist() == [BASE_ROW["sale_price_after_promo"]] * 5


@pytest.mark.parametrize(("n_bad", "n_blank", "raises"), [(20, 0, False), (21, 0, True), (15, 12, True), (3, 30, False)])
def test_mostly_unparseable_column_is_a_mapping_error(n_bad: int, n_blank: int, raises: bool) -> None:
    """More than half of the non-blank cells unparseable -> ValueError naming the column; blanks do not count."""
    raw = generic_frame(40)
    raw.loc[: n_bad - 1, "items"] = "lots"
    raw.loc[40 - n_blank :, "items"] = ""
    if raises:
        with pytest.raises(ValueError, match=r"column 'items' is mostly unparseable.*'lots'.*mapping looks wrong"):
            clean_generic(raw, MAPPING)
    else:
        reasons = set(reasons_by_row(clean_generic(raw, MAPPING)).values())
        assert reasons <= {"non-numeric items 'lots'", "missing items"}


def test_mostly_unparseable_date_column_is_a_mapping_error() -> None:
    raw = generic_frame(10)
    raw["day"] = ["03/01/2021"] * 6 + ["2021-01-03"] * 4  # the wrong format for most rows
    with pytest.raises(ValueError, match=r"column 'day' is mostly unparseable: 6 of its 10"):
        clean_generic(raw, MAPPING)


# ---------------------------------------------------------------- class 2: extreme magnitudes


@pytest.mark.parametrize("huge", [1e300, -1e300, 1e308])
def test_standardizer_is_overflow_safe(huge: float) -> None:
    """Against statistics.pstdev/fmean, which sum exactly (Fractions / fsum) and cannot overflow."""
    column = [huge, 3.0, 1.0, 250.0, 7.5]
    values = np.array([column, [0.1, 0.2, 0.3, 0.4, 0.5]]).T
    scaler = Standardizer().fit(values)
    exact_mean = math.fsum(v / huge for v in column) / len(column) * huge
    np.testing.assert_allclose(scaler.mean[0], exact_mean, rtol=1e-12)
    np.testing.assert_allclose(scaler.scale[0], abs(huge) * statistics.pstdev(v / abs(huge) for v in column),
                               rtol=1e-12)
    z = scaler.transform(values)
    assert np.isfinite(z).all() and z[:, 0].std() > 0.9  # the column is not flattened to 0
    np.testing.assert_allclose(scaler.inverse_transform(z), values, rtol=1e-9, atol=1e-9 * abs(huge))


@pytest.mark.parametrize(("value", "kept"), [("1e300", True), ("-1.5e307", True), ("1e400", False), ("-1e999", False)])
def test_value_float64_cannot_hold_drops_the_row(value: str, kept: bool) -> None:
    raw = generic_frame(10)
    raw.loc[4, "spend"] = value
    result = clean_generic(raw, MAPPING)
    reasons = reasons_by_row(result)
    if kept:
        assert reasons == {} and result.clean.loc[4, "amount"] == float(value)
    else:
        assert reasons == {4: f"non-finite spend '{value}'"}


@pytest.mark.parametrize("n_rows", [10, 300])
def test_values_too_large_to_sum_are_dropped(n_rows: int) -> None:
    """Kept amounts always sum to a finite total (float64 max is ~1.797e308), whatever their signs."""
    raw = generic_frame(n_rows)
    raw.loc[[0, 1, 2], "spend"] = ["1.7e308", "-1.7e308", "1e300"]
    result = clean_generic(raw, MAPPING)
    reason = "too large spend '{}' (a sum over " + f"{n_rows} rows could overflow)"
    assert reasons_by_row(result) == {0: reason.format("1.7e308"), 1: reason.format("-1.7e308")}
    assert math.isfinite(math.fsum(abs(v) for v in result.clean["amount"]))
    assert np.isfinite(result.clean.groupby("customer_id")["amount"].sum()).all()


def test_quantity_times_price_overflow_drops_the_row() -> None:
    raw = retail_frame()
    raw.loc[2, ["Quantity", "UnitPrice"]] = [1e200, 1e200]
    raw.loc[5, ["Quantity", "UnitPrice"]] = [-1e200, 1e200]
    raw.loc[8, ["Quantity", "UnitPrice"]] = [1e150, 1e150]  # 1e300: representable, kept
    result = clean_online_retail(raw)
    reason = "amount Quantity * UnitPrice overflows float64"
    assert reasons_by_row(result) == {2: reason, 5: reason}
    assert result.clean.set_index("row_id").loc[8, "amount"] == pytest.approx(1e300)


# ---------------------------------------------------------------- class 5: empty input


@pytest.mark.parametrize("clean", [
    lambda: clean_bigbazaar(bigbazaar_raw().reindex(columns=list(BASE_ROW))),
    lambda: clean_bigbazaar(bigbazaar_raw().reindex(columns=list(BASE_ROW)), age_reference_date="2018-03-01"),
    lambda: clean_generic(generic_frame(0), MAPPING),
    lambda: clean_online_retail(retail_frame(0).reindex(columns=list(RETAIL_ROW))),
])
def test_table_without_rows_is_one_message(clean) -> None:
    with pytest.raises(ValueError, match=r"^no data rows"):
        clean()


@pytest.mark.parametrize("name", ["sales.csv", "sales.csv.gz", "sales.parquet"])
def test_header_only_file_names_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    frame = generic_frame(0)
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=rf"^{path} has no data rows"):
        read_table(path)


# ---------------------------------------------------------------- class 7b: non-ASCII digits in ids


@pytest.mark.parametrize("customer", ["BBID_２０４８２", "BBID_٢٠٤٨٢", "२०४८२", "BBID_20４82"])
def test_non_ascii_digit_ids_are_dropped_not_merged(customer: str) -> None:
    raw = bigbazaar_raw({}, {"customerID": customer}, {"customerID": "20482"})
    result = clean_bigbazaar(raw, age_reference_date="2018-03-01")
    assert reasons_by_row(result) == {1: f"customerID is not BBID_ + ASCII digits: '{customer}'"}
    assert result.clean["customerID"].tolist() == [20482, 20482]
    assert result.clean["row_id"].tolist() == [0, 2]


# ---------------------------------------------------------------- end to end through pipeline.app.run


def assert_rows_accounted(output_dir: Path, n_input: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    result = pd.read_csv(output_dir / "result.csv")
    dropped = pd.read_csv(output_dir / "dropped_rows.csv")
    assert len(result) + len(dropped) == n_input
    assert sorted([*result["row_id"], *dropped["row_id"]]) == list(range(n_input))
    assert dropped["reason"].notna().all() and dropped["reason"].str.len().gt(0).all()
    return result, dropped


def test_dirty_bigbazaar_file_runs_and_accounts_for_every_row(tmp_path: Path) -> None:
    raw = generate(250, seed=4).transactions.astype({"sale_price_after_promo": object})
    raw.loc[5, "sale_price_after_promo"] = "12,5x"
    raw.loc[9, "sale_price_after_promo"] = 1e300
    raw.loc[11, "customerID"] = "BBID_２０４８２"
    path = tmp_path / "cproducts.csv"
    raw.to_csv(path, index=False)
    with_repeated_header(path, 21)
    run(tiny_config(tmp_path / "out", data__source="file", data__path=str(path), **FAST_RUN))
    result, dropped = assert_rows_accounted(tmp_path / "out", len(raw) + 1)
    reasons = dict(zip(dropped["row_id"], dropped["reason"]))
    assert reasons[5] == "non-numeric sale_price_after_promo '12,5x'"
    assert reasons[11] == "customerID is not BBID_ + ASCII digits: 'BBID_２０４８２'"
    assert reasons[20] == "unparseable customerID 'customerID'"
    assert 9 not in reasons  # 1e300 is a value float64 holds: kept, and it blanks nothing
    assert result.set_index("row_id").loc[9, "sale_price_after_promo"] == 1e300
    profiles = pd.read_csv(tmp_path / "out" / "cluster_profiles.csv")
    assert not result.isna().any().any() and not profiles.isna().any().any()
    assert np.isfinite(profiles.select_dtypes("number").to_numpy()).all()


def test_dirty_generic_csv_runs_and_accounts_for_every_row(tmp_path: Path) -> None:
    raw = generic_frame(300)
    raw["client"] = [f"C{k % 60}" for k in range(300)]
    raw.loc[42, "items"] = "three"
    raw.loc[77, "spend"] = "12,5x"
    raw.loc[120, "spend"] = "1e400"
    raw.loc[[0, 60], "spend"] = "1.7e308"  # client C0 twice: its total would be inf
    path = tmp_path / "sales.csv"
    raw.to_csv(path, index=False)
    with_repeated_header(path, 200)
    run(tiny_config(tmp_path / "out", data__source="file", data__path=str(path), data__schema="generic",
                    data__columns=MAPPING, features__name="customer", **FAST_RUN))
    _, dropped = assert_rows_accounted(tmp_path / "out", len(raw) + 1)
    too_large = "too large spend '1.7e308' (a sum over 301 rows could overflow)"
    assert dict(zip(dropped["row_id"], dropped["reason"])) == {
        42: "non-numeric items 'three'", 77: "non-numeric spend '12,5x'", 120: "non-finite spend '1e400'",
        199: "unparseable day 'day'", 0: too_large, 60: too_large,
    }


@pytest.mark.parametrize("case", ["header_only", "mostly_unparseable"])
def test_run_stops_with_one_message_and_no_results(tmp_path: Path, case: str) -> None:
    raw = generate(60, seed=1).transactions
    if case == "mostly_unparseable":
        raw["sale_price_after_promo"] = "price"
        message = r"column 'sale_price_after_promo' is mostly unparseable.*mapping looks wrong"
    else:
        raw = raw.iloc[:0]
    path = tmp_path / "cproducts.csv"
    raw.to_csv(path, index=False)
    if case == "header_only":
        message = rf"{path} has no data rows"
    with pytest.raises(ValueError, match=message):
        run(tiny_config(tmp_path / "out", data__source="file", data__path=str(path), **FAST_RUN))
    assert_no_results(tmp_path / "out")
