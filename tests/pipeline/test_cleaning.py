"""Tests for pipeline.sources.cleaning: the seed-faithful Big Bazaar cleaning, generic mappings, UCI Online Retail."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import LabelEncoder

from pipeline.sources.cleaning import (
    ONLINE_RETAIL_MAPPING,
    CleanResult,
    clean_bigbazaar,
    clean_generic,
    clean_online_retail,
)
from pipeline.sources.loading import read_bigbazaar, read_table

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CPRODUCTS = DATA / "bigbazaar_skrohit" / "cproducts.csv"
CLEANED = DATA / "bigbazaar_skrohit" / "cleaned_cproducts.csv"
ONLINE_RETAIL = DATA / "online_retail_uci" / "online_retail.csv.gz"

BASE_ROW = {
    "customerID": "BBID_20482", "DOB": "1975-10-20", "Gender": "male", "State": "MADHYA PRADESH",
    "PinCode": 453441.0, "transactionDate": "2016-05-01", "store_code": 2655,
    "store_description": "BB-INDORE-MALHAR MEGA MALL", "till_no": 2, "transaction_number_by_till": 85246,
    "promo_code": "NONPROMO", "promotion_description": None, "product_code": 1000446431,
    "product_description": "PATANJALI CHOCOS 125g", "sale_price_after_promo": 55.0, "discountUsed": "Payback",
}


def bigbazaar_raw(*changes: dict) -> pd.DataFrame:
    """One raw Big Bazaar row per ``changes`` dict, each overriding BASE_ROW."""
    return pd.DataFrame([{**BASE_ROW, **change} for change in changes])


def whole_years(born: date, on: date) -> int:
    """Reference age by counting birthdays (independent of the vectorised formula)."""
    years = on.year - born.year
    birthday = born.replace(year=on.year) if (born.month, born.day) != (2, 29) else date(on.year, 3, 1)
    return years - (on < birthday)


def require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"real data absent: {path}")
    return path


# ---------------------------------------------------------------- Big Bazaar, real data


@pytest.fixture(scope="module")
def cproducts() -> pd.DataFrame:
    return read_bigbazaar(require(CPRODUCTS))


def test_golden_cleaned_file_is_reproduced_column_by_column(cproducts):
    golden = pd.read_csv(require(CLEANED))
    result = clean_bigbazaar(cproducts, age_reference_date="2018-03-01", drop_missing_age=False, age_range=None)
    clean = result.clean
    assert len(clean) == len(golden) == 11_148
    for column in ("Gender", "discountUsed"):
        clean[column] = LabelEncoder().fit_transform(clean[column])
    for column in golden.columns:
        np.testing.assert_allclose(
            clean[column].to_numpy(dtype=float), golden[column].to_numpy(dtype=float),
            rtol=1e-12, atol=0, equal_nan=True, err_msg=column,
        )
    assert int(clean["Age"].isna().sum()) == 16


def test_bigbazaar_final_counts_and_reasons(cproducts):
    result = clean_bigbazaar(cproducts, age_reference_date="2018-03-01", age_range=None)
    assert (result.n_input, len(result.clean), len(result.dropped)) == (11_972, 11_132, 840)
    assert result.dropped["reason"].str.len().gt(0).all()
    assert result.reason_counts()["DOB 'NANA' (no Age)"] == 16
    raw_missing = cproducts["DOB"].isna() | cproducts["PinCode"].isna()
    missing_reasons = result.dropped["reason"].str.startswith("missing")
    assert missing_reasons.sum() == raw_missing.sum() == 824
    ids = np.sort(np.concatenate([result.clean["row_id"], result.dropped["row_id"]]))
    np.testing.assert_array_equal(ids, np.arange(11_972))
    assert list(result.dropped.columns[:3]) == ["row_id", "customerID", "reason"]
    assert set(cproducts.columns) <= set(result.dropped.columns)
    assert not result.clean["Age"].isna().any() and result.clean["Age"].dtype == np.int64


def test_bigbazaar_implausible_ages_are_dropped_by_default(cproducts):
    without_rule = clean_bigbazaar(cproducts, age_reference_date="2018-03-01", age_range=None)
    result = clean_bigbazaar(cproducts, age_reference_date="2018-03-01")
    kept = cproducts.set_index("row_id").loc[without_rule.clean["row_id"]]
    ages = np.array([whole_years(date.fromisoformat(dob), date(2018, 3, 1)) for dob in kept["DOB"]])
    implausible = (ages < 14) | (ages > 100)
    assert implausible.sum() == 58  # ages 10-12 and 101-109 in the real file
    assert result.reason_counts()["implausible Age (outside 14-100)"] == implausible.sum()
    np.testing.assert_array_equal(result.clean["row_id"], without_rule.clean["row_id"][~implausible])
    assert result.clean["Age"].between(14, 100).all()


def test_bigbazaar_default_age_reference_is_latest_transaction(cproducts):
    clean = clean_bigbazaar(cproducts).clean
    latest = pd.to_datetime(cproducts["transactionDate"]).max().date()
    assert latest == date(2017, 6, 30)
    kept = cproducts.set_index("row_id").loc[clean["row_id"]]
    expected = [whole_years(date.fromisoformat(dob), latest) for dob in kept["DOB"]]
    np.testing.assert_array_equal(clean["Age"].to_numpy(), expected)


# ---------------------------------------------------------------- Big Bazaar, hand-made rows


def test_bigbazaar_conversions_on_hand_made_rows():
    raw = bigbazaar_raw(
        {"customerID": "BBID_7", "promo_code": "NONPROMO", "Gender": None},
        {"customerID": "BBID_0042", "promo_code": "LOCALPROMO", "Gender": "female"},
        {"customerID": "BBID_9", "promo_code": "0000971754"},
        {"customerID": "BBID_10", "promo_code": None},
    )
    clean = clean_bigbazaar(raw, age_reference_date="2018-03-01").clean
    assert clean["customerID"].tolist() == [7, 42, 9, 10]
    assert clean["promo_code"].tolist() == [0, 1, 971754, 0]
    assert clean["Gender"].tolist() == ["0", "female", "male", "male"]
    assert list(clean.columns[:14]) == [
        "row_id", "customerID", "Gender", "PinCode", "store_code", "till_no", "transaction_number_by_till",
        "promo_code", "product_code", "sale_price_after_promo", "discountUsed", "Age", "Week", "Month",
    ]
    assert "DOB" not in clean.columns and clean["State"].tolist() == ["MADHYA PRADESH"] * 4


@pytest.mark.parametrize(("dob", "reference"), [
    ("2000-03-01", "2018-03-01"), ("2000-03-02", "2018-03-01"), ("2000-02-29", "2018-02-28"),
    ("2000-02-29", "2018-03-01"), ("1999-12-31", "2018-01-01"), ("1975-10-20", "2018-03-01"),
])
def test_age_is_whole_years_to_the_reference(dob, reference):
    clean = clean_bigbazaar(bigbazaar_raw({"DOB": dob}), age_reference_date=reference).clean
    assert clean["Age"].tolist() == [whole_years(date.fromisoformat(dob), date.fromisoformat(reference))]


@pytest.mark.parametrize("day", ["2015-12-31", "2016-01-03", "2016-01-04", "2017-01-01", "2016-05-01"])
def test_week_is_iso_week_and_month(day):
    clean = clean_bigbazaar(bigbazaar_raw({"transactionDate": day})).clean
    parsed = date.fromisoformat(day)
    assert (clean.loc[0, "Week"], clean.loc[0, "Month"]) == (parsed.isocalendar()[1], parsed.month)


def test_bigbazaar_bad_rows_are_dropped_with_reasons():
    raw = bigbazaar_raw(
        {},
        {"transactionDate": "2016-13-45"},
        {"sale_price_after_promo": "abc"},
        {"DOB": "NANA"},
        {"DOB": None},
        {"PinCode": None, "DOB": None},
        {"promo_code": "PROMO??"},
        {"customerID": "XX_1"},
        {"DOB": "2019-01-01"},
        {"till_no": 2.5},
    )
    result = clean_bigbazaar(raw, age_reference_date="2018-03-01")
    assert result.clean["row_id"].tolist() == [0]
    reasons = dict(zip(result.dropped["row_id"], result.dropped["reason"]))
    assert reasons == {
        1: "unparseable transactionDate '2016-13-45'",
        2: "non-numeric sale_price_after_promo 'abc'",
        3: "DOB 'NANA' (no Age)",
        4: "missing DOB",
        5: "missing DOB and PinCode",
        6: "unparseable promo_code 'PROMO??'",
        7: "unparseable customerID 'XX_1'",
        8: "DOB '2019-01-01' is after the age reference date 2018-03-01",
        9: "non-integer till_no '2.5'",
    }
    assert result.dropped.loc[result.dropped["row_id"] == 2, "sale_price_after_promo"].item() == "abc"


@pytest.mark.parametrize(("age_range", "kept"), [
    ((14, 100), [1, 2]), (None, [0, 1, 2, 3]), ((18, 65.5), []), ((10, 14), [0, 1]),
])
def test_age_range_rule_is_inclusive_and_configurable(age_range, kept):
    # ages on 2018-03-01: 13, 14, 100, 101
    raw = bigbazaar_raw({"DOB": "2004-05-01"}, {"DOB": "2004-03-01"}, {"DOB": "1918-03-01"}, {"DOB": "1917-01-01"})
    result = clean_bigbazaar(raw, age_reference_date="2018-03-01", age_range=age_range)
    assert result.clean["row_id"].tolist() == kept
    reason = f"implausible Age (outside {age_range[0]:g}-{age_range[1]:g})" if age_range else None
    assert result.dropped["reason"].tolist() == [reason] * (4 - len(kept))


@pytest.mark.parametrize("bad", [(100, 14), (14,), "14-100", (14, "old")])
def test_bad_age_range_is_rejected(bad):
    with pytest.raises(ValueError, match="age_range must be None or"):
        clean_bigbazaar(bigbazaar_raw({}), age_range=bad)


def test_state_is_kept_normalised_with_placeholders_as_missing():
    states = ["Madhya  pradesh ", "TAMILNADU", None, " ", "DUMMY", "x", "Other", "NA", "Karnataka"]
    clean = clean_bigbazaar(bigbazaar_raw(*({"State": state} for state in states))).clean
    assert clean["State"].tolist() == ["MADHYA PRADESH", "TAMILNADU", None, None, None, None, None, None, "KARNATAKA"]


def test_bigbazaar_keep_missing_age_keeps_nana_rows():
    result = clean_bigbazaar(bigbazaar_raw({}, {"DOB": "NANA"}), drop_missing_age=False)
    assert len(result.clean) == 2 and result.clean["Age"].isna().tolist() == [False, True]


def test_bigbazaar_missing_column_is_named():
    with pytest.raises(ValueError, match="discountUsed"):
        clean_bigbazaar(bigbazaar_raw({}).drop(columns=["discountUsed"]))


def test_bad_age_reference_date_is_rejected():
    with pytest.raises(ValueError, match="age_reference_date"):
        clean_bigbazaar(bigbazaar_raw({}), age_reference_date="not a date")


def test_clean_result_checks_row_accounting():
    with pytest.raises(ValueError, match="3 input rows"):
        CleanResult(clean=pd.DataFrame({"a": [1]}), dropped=pd.DataFrame({"a": [2]}), n_input=3)


# ---------------------------------------------------------------- generic mapping

MAPPING = {
    "id": "cust", "date": "when", "date_format": "%d/%m/%Y", "amount": "spend",
    "categoricals": ["channel"], "numerics": ["items"],
}


def generic_raw() -> pd.DataFrame:
    return pd.DataFrame({
        "cust": ["A", "B", None, "C", "D", "E", " F "],
        "when": ["01/02/2020", "31/12/2020", "02/02/2020", "45/01/2020", "03/02/2020", "04/02/2020", "05/02/2020"],
        "spend": ["10.5", "n/a", "3", "4", "5", "6", "7"],
        "channel": ["web", "store", "web", "web", None, "web", "store"],
        "items": [1, 2, 3, 4, 5, np.inf, 7],
        "ignored": list("abcdefg"),
    })


def test_generic_mapping_drops_bad_rows_with_column_and_value():
    result = clean_generic(generic_raw(), MAPPING)
    reasons = dict(zip(result.dropped["row_id"], result.dropped["reason"]))
    assert reasons == {
        1: "non-numeric spend 'n/a'",
        2: "missing cust",
        3: "unparseable when '45/01/2020'",
        5: "non-finite items 'inf'",
    }
    clean = result.clean
    assert list(clean.columns) == ["row_id", "customer_id", "date", "amount", "channel", "items"]
    assert clean["customer_id"].tolist() == ["A", "D", "F"]
    assert clean["date"].tolist() == [pd.Timestamp(2020, 2, 1), pd.Timestamp(2020, 2, 3), pd.Timestamp(2020, 2, 5)]
    assert clean["amount"].tolist() == [10.5, 5.0, 7.0]
    assert clean["channel"].tolist() == ["web", "(missing)", "store"]
    assert list(result.dropped.columns[:3]) == ["row_id", "cust", "reason"]
    assert "ignored" in result.dropped.columns


def test_generic_amount_from_quantity_and_unit_price_and_iso_default():
    raw = pd.DataFrame({"id": [1.0, 2.0], "day": ["2020-01-01", "2020-01-02 10:30:00"], "q": [3, -2], "p": [1.5, 2.0]})
    clean = clean_generic(raw, {"id": "id", "date": "day", "quantity": "q", "unit_price": "p"}).clean
    assert clean["customer_id"].tolist() == [1, 2]
    assert clean["amount"].tolist() == [4.5, -4.0]
    assert clean["date"].iloc[1] == pd.Timestamp("2020-01-02 10:30:00")


def test_generic_mapping_errors():
    raw = generic_raw()
    with pytest.raises(ValueError, match=r"\['absent'\]"):
        clean_generic(raw, {**MAPPING, "numerics": ["absent"]})
    with pytest.raises(ValueError, match="unknown mapping key.*'customer'"):
        clean_generic(raw, {**MAPPING, "customer": "cust"})
    with pytest.raises(ValueError, match="'amount'"):
        clean_generic(raw, {"id": "cust", "date": "when"})
    with pytest.raises(ValueError, match="more than one role"):
        clean_generic(raw, {**MAPPING, "numerics": ["spend"]})
    with pytest.raises(TypeError, match="list of column names"):
        clean_generic(raw, {**MAPPING, "categoricals": "channel"})


# ---------------------------------------------------------------- UCI Online Retail


def test_online_retail_slice_against_independent_rules():
    raw = read_table(require(ONLINE_RETAIL), nrows=20_000)
    result = clean_online_retail(raw)
    has_customer = raw["CustomerID"].notna()
    cancelled = raw["InvoiceNo"].astype(str).str.startswith("C")
    assert (has_customer & cancelled).sum() > 100  # cancellations are kept: they are the customers' returns
    expected_kept = raw[has_customer]
    assert result.n_input == 20_000
    np.testing.assert_array_equal(result.clean["row_id"], expected_kept["row_id"])
    np.testing.assert_allclose(result.clean["amount"], expected_kept["Quantity"] * expected_kept["UnitPrice"])
    np.testing.assert_array_equal(result.clean["customer_id"], expected_kept["CustomerID"].astype(np.int64))
    assert result.reason_counts() == {"missing CustomerID": int((~has_customer).sum())}
    assert (result.clean.loc[result.clean["invoice"].str.startswith("C"), "quantity"] < 0).all()
    assert result.clean["date"].iloc[0] == pd.Timestamp("2010-12-01 08:26:00")
    assert ONLINE_RETAIL_MAPPING["categoricals"] == ("Country",)
