"""Tests for pipeline.features.customer_aggregates: streamed customer units == the pandas feature-set functions."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipeline.features.customer_aggregates import (
    BigBazaarCustomerAggregates,
    pandas_weekday_expr,
    pin_prefix_expr,
    product_family_expr,
    state_key_expr,
    token_flag_expr,
)
from pipeline.features.encoding import TokenSetEncoder
from pipeline.features.feature_sets import (
    LOYALTY_TOKENS,
    SCHEMAS,
    Units,
    _bigbazaar_customer_units,
    _learn_store_addresses,
    customer_codes,
    pin_prefix,
    product_family,
    state_key,
)
from pipeline.sources.cleaning import clean_bigbazaar
from pipeline.sources.loading import read_bigbazaar
from pipeline.sources.synthetic import generate

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CPRODUCTS = DATA / "bigbazaar_skrohit" / "cproducts.csv"
SCHEMA = SCHEMAS["bigbazaar"]


def to_polars(clean: pd.DataFrame) -> pl.DataFrame:
    """The clean-chunk contract's frame of a pandas clean frame (the ISSUE9_CONTEXT converter)."""
    return pl.from_pandas(clean).with_columns(pl.col("transactionDate").cast(pl.Date))


def streamed(clean: pl.DataFrame, bounds: list[int]) -> BigBazaarCustomerAggregates:
    """The aggregates after feeding the rows split at ``bounds`` (sorted positions), in input order."""
    aggregates = BigBazaarCustomerAggregates()
    edges = [0, *bounds, clean.height]
    for start, stop in zip(edges[:-1], edges[1:]):
        aggregates.update(clean.slice(start, stop - start))
    return aggregates


def fixed_bounds(n_rows: int, size: int) -> list[int]:
    return list(range(size, n_rows, size))


BASKET = ["customerID", "store_code", "transactionDate", "till_no", "transaction_number_by_till"]


def splitting_bounds(clean: pd.DataFrame, seed: int) -> list[int]:
    """30 random chunk bounds plus one inside each of up to 10 multi-line baskets (after its first line)."""
    rng = np.random.default_rng(seed)
    positions = pd.Series(np.arange(len(clean))).groupby([clean[c].to_numpy() for c in BASKET])
    first, last = positions.min().to_numpy(), positions.max().to_numpy()
    spanning = np.flatnonzero(last > first)
    chosen = rng.choice(spanning, min(10, len(spanning)), replace=False)
    inside = [int(rng.integers(first[b] + 1, last[b] + 1)) for b in chosen]
    random = rng.choice(np.arange(1, len(clean)), 30, replace=False).tolist()
    return sorted(set(random) | set(inside))


def chunks_spanned(clean: pd.DataFrame, bounds: list[int], keys: list[str]) -> pd.Series:
    """Per group of ``keys``, the number of chunks its rows lie in."""
    chunk = np.searchsorted(bounds, np.arange(len(clean)), side="right")
    return pd.Series(chunk).groupby([clean[c].to_numpy() for c in keys]).nunique()


def assert_units_equal(expected: Units, actual: Units) -> None:
    """Same columns, order and dtypes; integer and text columns exact, floats to 1e-12 relative."""
    for what, left, right in (("ids", expected.ids, actual.ids), ("sources", expected.sources, actual.sources)):
        assert list(right.columns) == list(left.columns), what
        assert right.dtypes.to_dict() == left.dtypes.to_dict(), what
        assert len(right) == len(left), what
        for column in left.columns:
            want, got = left[column].to_numpy(), right[column].to_numpy()
            if want.dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=f"{what}.{column}")
            else:
                assert np.array_equal(got, want), f"{what}.{column}"


def pandas_reference(clean: pd.DataFrame) -> tuple[pd.Timestamp, dict, Units]:
    reference = pd.Timestamp(clean["transactionDate"].max()) + pd.Timedelta(days=3)
    learned = _learn_store_addresses(clean)
    return reference, learned, _bigbazaar_customer_units(clean, SCHEMA, reference, learned)


def synthetic_clean(n_customers: int, mode: str, dirt: str, seed: int) -> pd.DataFrame:
    raw = generate(n_customers, seed=seed, rows_per_customer=mode, dirt=dirt).transactions
    return clean_bigbazaar(raw).clean


@pytest.fixture(scope="module", params=[("history", "heavy", 0), ("history", "real", 1), ("sample", "heavy", 2)],
                ids=lambda p: f"{p[0]}-{p[1]}")
def synthetic(request: pytest.FixtureRequest) -> pd.DataFrame:
    mode, dirt, seed = request.param
    return synthetic_clean(1500 if mode == "history" else 6000, mode, dirt, seed)


@pytest.mark.parametrize("chunking", ["997", "all", "shuffled"])
def test_streamed_units_equal_pandas_units(synthetic: pd.DataFrame, chunking: str) -> None:
    clean = to_polars(synthetic)
    if chunking == "997":
        bounds = fixed_bounds(clean.height, 997)
    elif chunking == "all":
        bounds = []
    else:
        bounds = splitting_bounds(synthetic, seed=5)
    reference, learned, expected = pandas_reference(synthetic)
    aggregates = streamed(clean, bounds)
    assert aggregates.store_addresses() == learned
    assert aggregates.n_customers == synthetic["customerID"].nunique()
    assert_units_equal(expected, aggregates.units(reference, learned))
    codes, _ = customer_codes(synthetic, SCHEMA)
    assert np.array_equal(aggregates.unit_codes(clean["customerID"]), codes)
    assert np.array_equal(aggregates.unit_codes(synthetic["customerID"].to_numpy()), codes)


def test_splitting_bounds_split_baskets_and_customers(synthetic: pd.DataFrame) -> None:
    """The shuffled chunking above does cut baskets and customers into several chunks."""
    bounds = splitting_bounds(synthetic, seed=5)
    assert (chunks_spanned(synthetic, bounds, BASKET) > 1).sum() >= 5
    assert (chunks_spanned(synthetic, bounds, ["customerID"]) > 1).sum() >= 5


def test_one_row_chunks_equal_pandas_units() -> None:
    clean_pd = synthetic_clean(40, "history", "heavy", seed=4)
    clean_pd = clean_pd.iloc[:250].reset_index(drop=True)
    reference, learned, expected = pandas_reference(clean_pd)
    aggregates = streamed(to_polars(clean_pd), fixed_bounds(len(clean_pd), 1))
    assert aggregates.store_addresses() == learned
    assert_units_equal(expected, aggregates.units(reference, learned))


def test_merges_keep_state_keyed_by_customer(monkeypatch: pytest.MonkeyPatch, synthetic: pd.DataFrame) -> None:
    """With merging forced early, what is held stays below 2× the distinct keys plus one chunk's partial."""
    monkeypatch.setattr("pipeline.features.customer_aggregates.MIN_MERGE_ROWS", 0)
    clean = to_polars(synthetic)
    reference, learned, expected = pandas_reference(synthetic)
    aggregates = BigBazaarCustomerAggregates()
    n_visits = synthetic.groupby(
        ["customerID", "store_code", "transactionDate", "till_no", "transaction_number_by_till"]).ngroups
    for start in range(0, clean.height, 500):
        aggregates.update(clean.slice(start, 500))
        held = aggregates.n_rows_held
        assert held["lines"] <= 2 * synthetic["customerID"].nunique() + 500
        assert held["visits"] <= 2 * n_visits + 500
    assert_units_equal(expected, aggregates.units(reference, learned))
    assert aggregates.n_rows_held["lines"] == synthetic["customerID"].nunique()
    assert aggregates.n_rows_held["visits"] == n_visits


def test_units_with_learned_values_of_other_rows(synthetic: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    """Address flags from a fit on other rows, one store unseen there: same flags and warning as pandas."""
    fit_rows = synthetic[synthetic["store_code"] != synthetic["store_code"].iloc[0]].iloc[: len(synthetic) // 2]
    learned = _learn_store_addresses(fit_rows)
    reference = pd.Timestamp("2018-01-01")
    expected = _bigbazaar_customer_units(synthetic, SCHEMA, reference, learned)
    aggregates = streamed(to_polars(synthetic), fixed_bounds(len(synthetic), 2000))
    with caplog.at_level(logging.WARNING, logger="pipeline.features.customer_aggregates"):
        actual = aggregates.units(reference, learned)
    assert "were not seen at fit" in caplog.text
    assert_units_equal(expected, actual)


def test_real_file_streamed_equals_pandas() -> None:
    if not CPRODUCTS.exists():
        pytest.skip(f"{CPRODUCTS} not present")
    clean_pd = clean_bigbazaar(read_bigbazaar(CPRODUCTS)).clean
    reference, learned, expected = pandas_reference(clean_pd)
    clean = to_polars(clean_pd)
    for bounds in (fixed_bounds(clean.height, 997), []):
        aggregates = streamed(clean, bounds)
        assert aggregates.store_addresses() == learned
        assert_units_equal(expected, aggregates.units(reference, learned))


STATES = [
    "TAMIL NADU", "TamilNadu", "madhya  pradesh", "", "  ", "X-1", "Straße", "ﬁji", "Çanakkale", None, "ıstanbul", "ſ",
]


def test_state_key_expr_equals_pandas() -> None:
    expected = state_key(pd.Series(STATES, dtype=object)).tolist()
    got = pl.DataFrame({"s": STATES}, schema={"s": pl.Utf8}).select(state_key_expr(pl.col("s")))["s"].to_list()
    assert got == expected


def test_state_key_expr_equals_pandas_on_every_character() -> None:
    """Each non-ASCII character next to ASCII letters: only case mappings onto A-Z may survive, as in pandas."""
    characters = [chr(code) for code in range(128, 0x30000) if not 0xD800 <= code < 0xE000]
    names = [f"a{character}b" for character in characters]
    expected = state_key(pd.Series(names, dtype=object)).tolist()
    got = pl.DataFrame({"s": names}).select(state_key_expr(pl.col("s")))["s"].to_list()
    assert got == expected


def test_pin_prefix_expr_equals_pandas() -> None:
    pins = [100_000, 99_999, 452_001, 899_999, 900_000, 999_999, 0, -452_001, 12_345]
    expected = pin_prefix(pd.Series(pins)).astype(object).where(lambda s: s.notna(), None).tolist()
    got = pl.DataFrame({"p": pins}).select(pin_prefix_expr(pl.col("p")))["p"].to_list()
    assert got == expected


def test_product_family_expr_equals_pandas() -> None:
    codes = [0, 7, 999_999_999, 1_000_000_000, -1_000_000_000, 9_999_999_999, 10_000_000_000, 123_456_789_012]
    expected = product_family(pd.Series(codes)).tolist()
    got = pl.DataFrame({"c": codes}).select(product_family_expr(pl.col("c")).alias("c"))["c"].to_list()
    assert got == expected


def test_token_flag_expr_equals_token_set_encoder() -> None:
    values = ["T24Club,Payback", " Payback , BBSavingsClub ", "", None, "Unknown,T24Club", "T24Club,T24Club",
              "Payback,", "FuturePrivilegeClub,FGShoppingFest,BBProfitClub", "payback", "Payback2", "xT24Club",
              *(f"{chr(code)}Payback{chr(code)},T24Club" for code in range(0x3001))]
    expected = TokenSetEncoder("discountUsed", LOYALTY_TOKENS).encode(pd.Series(values, dtype=object))
    frame = pl.DataFrame({"d": values}, schema={"d": pl.Utf8})
    got = np.column_stack([
        frame.select(token_flag_expr(pl.col("d"), token))["d"].to_numpy() for token in LOYALTY_TOKENS
    ]).astype(np.float64)
    assert np.array_equal(got, expected)


def test_pandas_weekday_expr_equals_pandas_day_of_week() -> None:
    dates = pd.Series(pd.date_range("2016-02-25", periods=10, freq="D"))
    got = pl.DataFrame({"d": dates.dt.date}).select(pandas_weekday_expr(pl.col("d")))["d"].to_numpy()
    assert np.array_equal(got, dates.dt.day_of_week.to_numpy())


def test_errors_name_the_problem(synthetic: pd.DataFrame) -> None:
    aggregates = BigBazaarCustomerAggregates()
    with pytest.raises(ValueError, match="call update"):
        aggregates.store_addresses()
    clean = to_polars(synthetic)
    with pytest.raises(ValueError, match="PinCode"):
        aggregates.update(clean.drop("PinCode"))
    with pytest.raises(ValueError, match="drop_missing_age=True"):
        aggregates.update(clean.with_columns(pl.lit(None, dtype=pl.Int64).alias("Age")))
    aggregates.update(clean)
    with pytest.raises(ValueError, match="reference date"):
        aggregates.units(None, aggregates.store_addresses())
    with pytest.raises(ValueError, match="store_pin_prefix"):
        aggregates.units(pd.Timestamp("2018-01-01"), {"store_state": {}})
    with pytest.raises(ValueError, match="never seen"):
        aggregates.unit_codes(np.array([-1]))
