"""Tests for pipeline.features.preprocessor and pipeline.features.encoding: feature sets, scaling, inverse transform, state."""
from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

from pipeline.sources.cleaning import clean_bigbazaar, clean_generic
from pipeline.features.feature_sets import FEATURE_SETS, SEED_COLUMNS
from pipeline.features.preprocessor import FeaturePreprocessor
from pipeline.sources.loading import read_bigbazaar

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CPRODUCTS = DATA / "bigbazaar_skrohit" / "cproducts.csv"
TOKENS = ["FuturePrivilegeClub", "FGShoppingFest", "BBSavingsClub", "T24Club", "BBProfitClub", "Payback"]
STORES = [4796, 2655, 4843, 4986, 2906, 2615, 3692]


def random_bigbazaar_raw(n_rows: int, seed: int) -> pd.DataFrame:
    """Raw rows in the cproducts.csv schema with plausible random values (no dependency on the generator)."""
    rng = np.random.default_rng(seed)
    customers = rng.integers(10_000, 10_000 + n_rows // 3, n_rows)
    token_sets = [",".join(t for t in TOKENS if rng.random() < p) or "Payback"
                  for p in rng.uniform(0.05, 0.6, n_rows)]
    digits = rng.choice([9, 10, 13], n_rows, p=[0.6, 0.3, 0.1])
    dates = pd.Timestamp("2015-05-01") + pd.to_timedelta(rng.integers(0, 790, n_rows), unit="D")
    births = pd.Timestamp("1940-01-01") + pd.to_timedelta(rng.integers(0, 60 * 365, n_rows), unit="D")
    return pd.DataFrame({
        "customerID": [f"BBID_{c}" for c in customers],
        "DOB": births.strftime("%Y-%m-%d"),
        "Gender": rng.choice(np.array(["male", "female", None], dtype=object), n_rows, p=[0.6, 0.3, 0.1]),
        "State": rng.choice(np.array(["MADHYA PRADESH", "Karnataka ", "TAMILNADU", "TAMIL NADU", None, "DUMMY"],
                                     dtype=object), n_rows, p=[0.3, 0.3, 0.1, 0.1, 0.15, 0.05]),
        "PinCode": rng.choice([452001.0, 580020.0, 625001.0, 999999.0], n_rows),
        "transactionDate": dates.strftime("%Y-%m-%d"),
        "store_code": rng.choice(STORES, n_rows),
        "store_description": "S",
        "till_no": rng.integers(1, 20, n_rows),
        "transaction_number_by_till": rng.integers(11, 99_999, n_rows),
        "promo_code": rng.choice(np.array(["NONPROMO", "0000971754", "0001268186", "LOCALPROMO"], dtype=object),
                                 n_rows, p=[0.7, 0.15, 0.149, 0.001]),
        "promotion_description": None,
        "product_code": [int(rng.integers(10 ** (d - 1), 10**d)) for d in digits],
        "product_description": "P",
        "sale_price_after_promo": np.round(np.exp(rng.normal(4.3, 1.0, n_rows)), 2)
        * rng.choice([1, -1], n_rows, p=[0.97, 0.03]),
        "discountUsed": token_sets,
    })


@pytest.fixture(scope="module")
def random_clean() -> pd.DataFrame:
    return clean_bigbazaar(random_bigbazaar_raw(600, seed=3)).clean


@pytest.fixture(scope="module")
def real_clean() -> pd.DataFrame:
    if not CPRODUCTS.is_file():
        pytest.skip(f"real data absent: {CPRODUCTS}")
    return clean_bigbazaar(read_bigbazaar(CPRODUCTS)).clean


@pytest.fixture(params=["random", "real"])
def bigbazaar_clean(request) -> pd.DataFrame:
    return request.getfixturevalue(f"{request.param}_clean")


def expected_behavioural_sources(clean: pd.DataFrame) -> pd.DataFrame:
    digits = clean["product_code"].astype(str).str.len()
    return pd.DataFrame({
        "Age": clean["Age"],
        "Gender": clean["Gender"],
        "sale_price_after_promo": clean["sale_price_after_promo"],
        "promo": (clean["promo_code"] != 0).astype(int),
        "discountUsed": clean["discountUsed"],
        "Month": clean["Month"],
        "store_code": clean["store_code"],
        "product_family": np.where(digits <= 9, "fmcg", np.where(digits == 10, "general", "apparel_home")),
    })


def state_keys(states: pd.Series) -> pd.Series:
    """Letters-only upper-case State, None when missing (the comparison the address flag should make)."""
    return states.map(lambda v: None if v is None or pd.isna(v) else "".join(c for c in v.upper() if c.isalpha()) or None)


def pin_prefixes(pins: pd.Series) -> pd.Series:
    return pins.map(lambda v: int(v) // 1000 if 100_000 <= v <= 899_999 else None)


def mode_or_smallest(values: pd.Series):
    counts = values.dropna().value_counts()
    return None if counts.empty else min(counts.index[counts == counts.max()])


def reference_store_addresses(clean: pd.DataFrame) -> tuple[dict, dict]:
    """Each store's most frequent state key and PIN prefix, one store at a time."""
    frame = clean.assign(key=state_keys(clean["State"]), prefix=pin_prefixes(clean["PinCode"]))
    states = {store: mode_or_smallest(group["key"]) for store, group in frame.groupby("store_code")}
    prefixes = {store: mode_or_smallest(group["prefix"]) for store, group in frame.groupby("store_code")}
    return states, prefixes


def expected_customer_sources(clean: pd.DataFrame, reference: pd.Timestamp, customers: np.ndarray) -> pd.DataFrame:
    """Aggregates of the given customers (in that order), computed with plain pandas one customer at a time."""
    store_state, store_prefix = reference_store_addresses(clean)
    rows = []
    for customer in customers:
        group = clean[clean["customerID"] == customer]
        days = pd.to_datetime(group["transactionDate"]).dt.normalize()
        price = group["sale_price_after_promo"]
        visits = len(group[["store_code", "transactionDate", "till_no", "transaction_number_by_till"]].drop_duplicates())
        total = price[price > 0].sum()
        digits = group["product_code"].astype(str).str.len()
        stores = group["store_code"].value_counts()
        genders = group["Gender"].value_counts()
        months = max((reference - days.min()).days, 365.25 / 12) / (365.25 / 12)
        keys, prefixes = state_keys(group["State"]), pin_prefixes(group["PinCode"])
        own_state, own_prefix = group["store_code"].map(store_state), group["store_code"].map(store_prefix)
        rows.append({
            "recency_days": (reference - days.max()).days,
            "frequency": visits,
            "monetary_total": total,
            "monetary_mean": total / visits,
            "visit_rate": visits / months,
            "tenure_days": (days.max() - days.min()).days,
            "lines_per_visit": len(group) / visits,
            "typical_price": float(np.exp(np.log(price[price > 0]).mean())) if (price > 0).any() else 0.0,
            "return_share": (price < 0).mean(),
            "free_item_share": (price == 0).mean(),
            "weekend_share": days.dt.day_of_week.isin([5, 6]).mean(),
            "wednesday_share": (days.dt.day_of_week == 2).mean(),
            "festive_share": days.dt.month.isin([10, 11]).mean(),
            "promo_share": (group["promo_code"] != 0).mean(),
            **{f"share_{t}": group["discountUsed"].str.split(",").apply(lambda s, t=t: t in s).mean() for t in TOKENS},
            "share_fmcg": (digits <= 9).mean(),
            "share_general": (digits == 10).mean(),
            "share_apparel_home": (digits >= 11).mean(),
            "out_of_state_share": np.mean([pd.notna(k) and pd.notna(o) and k != o for k, o in zip(keys, own_state)]),
            "pin_outside_city_share": np.mean([
                pd.notna(k) and pd.notna(o) and k != o for k, o in zip(prefixes, own_prefix)
            ]),
            "Age": group["Age"].mean(),
            "Gender": min(genders.index[genders == genders.max()]),
            "home_store_code": min(stores.index[stores == stores.max()]),
        })
    return pd.DataFrame(rows)


def assert_frames_close(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns)
    for column in expected.columns:
        if pd.api.types.is_numeric_dtype(expected[column]):
            np.testing.assert_allclose(actual[column].to_numpy(float), expected[column].to_numpy(float),
                                       rtol=1e-9, atol=1e-9, err_msg=column)
        else:
            assert actual[column].tolist() == expected[column].tolist(), column


def test_feature_set_registry_levels():
    assert {name: fs.level for name, fs in FEATURE_SETS.items()} == {
        "seed": "transaction", "behavioural": "transaction", "customer": "customer"}


# ---------------------------------------------------------------- seed


def test_seed_columns_order_and_scaler_equal_sklearn(bigbazaar_clean):
    X, units = FeaturePreprocessor("seed").fit_transform(bigbazaar_clean)
    reference = bigbazaar_clean[list(SEED_COLUMNS)].copy()
    for column in ("Gender", "discountUsed"):
        reference[column] = LabelEncoder().fit_transform(reference[column])
    assert list(SEED_COLUMNS)[:3] == ["customerID", "Gender", "PinCode"] and len(SEED_COLUMNS) == 13
    np.testing.assert_allclose(X, StandardScaler().fit_transform(reference.to_numpy(float)), rtol=1e-9, atol=1e-9)
    assert X.dtype == np.float64 and X.shape == (len(bigbazaar_clean), 13)
    np.testing.assert_array_equal(units["row_id"], bigbazaar_clean["row_id"])
    np.testing.assert_allclose(units[list(SEED_COLUMNS)].to_numpy(float), reference.to_numpy(float))


# ---------------------------------------------------------------- behavioural


def test_behavioural_matrix_equals_independent_construction(bigbazaar_clean):
    preprocessor = FeaturePreprocessor("behavioural")
    X, _ = preprocessor.fit_transform(bigbazaar_clean)
    sources = expected_behavioural_sources(bigbazaar_clean)
    price = sources["sale_price_after_promo"].to_numpy()
    angle = 2 * np.pi * (sources["Month"].to_numpy() - 1) / 12
    tokens = np.column_stack([sources["discountUsed"].str.split(",").apply(lambda s, t=t: t in s) for t in TOKENS])
    one_hot = OneHotEncoder(sparse_output=False)
    onehots = {c: one_hot.fit_transform(sources[[c]].astype(str)) for c in ("Gender", "store_code", "product_family")}
    unscaled = np.column_stack([
        sources["Age"], onehots["Gender"], np.sign(price) * np.log(1 + np.abs(price)), sources["promo"],
        tokens, np.sin(angle), np.cos(angle), onehots["store_code"], onehots["product_family"],
    ]).astype(float)
    # continuous columns: sklearn's StandardScaler; [0, 1] columns (indicators): centred and divided by 0.5
    proportions = (unscaled.min(0) >= 0) & (unscaled.max(0) <= 1)
    expected = StandardScaler().fit_transform(unscaled)
    expected[:, proportions] = (unscaled[:, proportions] - unscaled[:, proportions].mean(0)) / 0.5
    assert proportions.sum() == X.shape[1] - 4  # all but Age, log price, month sin and cos
    np.testing.assert_allclose(X, np.clip(expected, -5, 5), rtol=1e-9, atol=1e-9)
    assert len(preprocessor.feature_names) == X.shape[1] == unscaled.shape[1]


# ---------------------------------------------------------------- round trips and state


@pytest.mark.parametrize("feature_set", ["seed", "behavioural", "customer"])
def test_decode_and_inverse_transform_recover_original_units(bigbazaar_clean, feature_set):
    preprocessor = FeaturePreprocessor(feature_set)
    X, units = preprocessor.fit_transform(bigbazaar_clean)
    exact = preprocessor.decode(units[preprocessor.feature_names])
    inverse = preprocessor.inverse_transform(X)
    assert units["unit_id"].tolist() == list(range(len(X)))
    if feature_set == "seed":
        expected = bigbazaar_clean[list(SEED_COLUMNS)].reset_index(drop=True)
    elif feature_set == "behavioural":
        expected = expected_behavioural_sources(bigbazaar_clean).reset_index(drop=True)
    else:
        # The 150 customers with most rows plus a random 150: the one-customer-at-a-time reference is slow.
        busiest = units.nlargest(150, "n_rows", keep="first")["unit_id"].to_numpy()
        sampled = np.random.default_rng(0).choice(len(units), size=min(150, len(units)), replace=False)
        chosen = np.union1d(busiest, sampled)
        latest = pd.to_datetime(bigbazaar_clean["transactionDate"]).max()
        expected = expected_customer_sources(bigbazaar_clean, latest, units["customerID"].to_numpy()[chosen])
        exact, inverse = exact.iloc[chosen].reset_index(drop=True), inverse.iloc[chosen].reset_index(drop=True)
        np.testing.assert_allclose(units["monetary_total"].to_numpy()[chosen], expected["monetary_total"], rtol=1e-12)
    assert_frames_close(exact, expected)
    # inverse_transform(X) agrees wherever no z-score of the unit was capped (seed: never capped)
    Z = (units[preprocessor.feature_names].to_numpy(float) - preprocessor.standardizer_.mean) / preprocessor.standardizer_.scale
    uncapped = np.abs(Z).max(axis=1) < (np.inf if feature_set == "seed" else 5)
    if feature_set == "customer":
        uncapped = uncapped[chosen]
    assert uncapped.mean() > 0.75  # real customers: 1.15 lines each, so a long tenure or a big basket is rare
    assert_frames_close(inverse[uncapped].reset_index(drop=True), expected[uncapped].reset_index(drop=True))


@pytest.mark.parametrize("feature_set", ["seed", "behavioural", "customer"])
def test_state_dict_round_trips_through_torch_weights_only(random_clean, feature_set):
    fitted = FeaturePreprocessor(feature_set).fit(random_clean)
    buffer = io.BytesIO()
    torch.save({"preprocessor": fitted.state_dict()}, buffer)
    buffer.seek(0)
    restored = FeaturePreprocessor.from_state_dict(torch.load(buffer, weights_only=True)["preprocessor"])
    new_rows = clean_bigbazaar(random_bigbazaar_raw(200, seed=11)).clean
    for frame in (random_clean, new_rows):
        X_fitted, units_fitted = fitted.transform(frame)
        X_restored, units_restored = restored.transform(frame)
        np.testing.assert_array_equal(X_fitted, X_restored)
        pd.testing.assert_frame_equal(units_fitted, units_restored)
        pd.testing.assert_frame_equal(fitted.inverse_transform(X_fitted), restored.inverse_transform(X_restored))
    assert restored.feature_names == fitted.feature_names


# ---------------------------------------------------------------- customer level, hand-computed


def hand_made_clean() -> pd.DataFrame:
    """Customers 5 (3 lines, 2 baskets, one return at the other store), 3 (1 line), 7 (a free item, 2 visits).

    Store 2655's rows are all MADHYA PRADESH / PIN 452..., store 4796's mostly KARNATAKA / 580..., so customer 5's
    line at 4796 is out of state and outside the city; customer 7's blank State and 999999 PIN flag nothing.
    """
    return pd.DataFrame({
        "row_id": [10, 11, 12, 13, 14, 15],
        "customerID": [5, 5, 5, 3, 7, 7],
        "Gender": ["male", "male", "male", "female", "male", "male"],
        "PinCode": [452001, 452001, 452001, 580020, 999999, 580001],
        "store_code": [2655, 2655, 4796, 4796, 4796, 4796],
        "till_no": [1, 1, 1, 2, 2, 3],
        "transaction_number_by_till": [11, 11, 11, 12, 13, 14],
        "promo_code": [0, 971754, 0, 1, 0, 0],
        "product_code": [300000001, 1000000001, 1000077851005, 300000002, 300000003, 300000004],
        "sale_price_after_promo": [100.0, 50.0, -10.0, 20.0, 0.0, 40.0],
        "discountUsed": ["Payback", "T24Club,Payback", "Payback", "BBProfitClub", "Payback", "Payback"],
        "Age": [30, 30, 30, 50, 40, 40],
        "Week": 2,
        "Month": 1,
        # Tue, Tue, Sat, Wed, Wed, Sun
        "transactionDate": pd.to_datetime(
            ["2017-01-10", "2017-01-10", "2017-01-21", "2017-02-01", "2017-02-01", "2017-02-05"]
        ),
        "State": ["MADHYA PRADESH", "MADHYA PRADESH", "MADHYA PRADESH", "KARNATAKA", None, "KARNATAKA"],
    })


def test_customer_aggregation_hand_computed():
    preprocessor = FeaturePreprocessor("customer", level="customer", reference_date="2017-02-11")
    X, units = preprocessor.fit_transform(hand_made_clean())
    assert units["customerID"].tolist() == [3, 5, 7] and units["n_rows"].tolist() == [1, 3, 2]
    assert units["monetary_total"].tolist() == [20.0, 150.0, 40.0]
    month = 365.25 / 12
    expected = pd.DataFrame({
        "recency_days": [10, 21, 6],
        "frequency": [1, 2, 2],
        "monetary_total": [20.0, 150.0, 40.0],
        "monetary_mean": [20.0, 75.0, 20.0],
        "visit_rate": [1.0, 2 / (32 / month), 2.0],  # first visits 10, 32 and 10 days before the reference
        "tenure_days": [0, 11, 4],
        "lines_per_visit": [1.0, 1.5, 1.0],
        "typical_price": [20.0, np.sqrt(100 * 50), 40.0],
        "return_share": [0.0, 1 / 3, 0.0],
        "free_item_share": [0.0, 0.0, 0.5],
        "weekend_share": [0.0, 1 / 3, 0.5],
        "wednesday_share": [1.0, 0.0, 0.5],
        "festive_share": [0.0, 0.0, 0.0],  # all lines in January and February
        "promo_share": [1.0, 1 / 3, 0.0],
        "share_FuturePrivilegeClub": [0.0, 0.0, 0.0],
        "share_FGShoppingFest": [0.0, 0.0, 0.0],
        "share_BBSavingsClub": [0.0, 0.0, 0.0],
        "share_T24Club": [0.0, 1 / 3, 0.0],
        "share_BBProfitClub": [1.0, 0.0, 0.0],
        "share_Payback": [0.0, 1.0, 1.0],
        "share_fmcg": [1.0, 1 / 3, 1.0],
        "share_general": [0.0, 1 / 3, 0.0],
        "share_apparel_home": [0.0, 1 / 3, 0.0],
        "out_of_state_share": [0.0, 1 / 3, 0.0],
        "pin_outside_city_share": [0.0, 1 / 3, 0.0],
        "Age": [50.0, 30.0, 40.0],
        "Gender": ["female", "male", "male"],
        "home_store_code": [4796, 2655, 4796],
    })
    assert_frames_close(preprocessor.inverse_transform(X), expected)
    assert_frames_close(preprocessor.decode(units[preprocessor.feature_names]), expected)
    np.testing.assert_allclose(units["slog1p_monetary_total"], np.log1p([20.0, 150.0, 40.0]))
    np.testing.assert_array_equal(preprocessor.unit_index(hand_made_clean()), [1, 1, 1, 0, 2, 2])
    assert preprocessor.state_dict()["reference_date"] == "2017-02-11"
    assert preprocessor.learned_ == {
        "store_state": {"2655": "MADHYAPRADESH", "4796": "KARNATAKA"},
        "store_pin_prefix": {"2655": 452, "4796": 580},
    }


def test_store_addresses_learned_at_fit_are_applied_unchanged_to_new_data(caplog):
    fitted = FeaturePreprocessor("customer", reference_date="2017-02-11").fit(hand_made_clean())
    restored = FeaturePreprocessor.from_state_dict(fitted.state_dict())
    # New data in which store 2655 is mostly KARNATAKA / 580: re-learning would flip its state and prefix.
    new = hand_made_clean()
    new["store_code"] = 2655
    new["State"] = ["Karnataka", "KARNATAKA", "MADHYA  PRADESH", "KARNATAKA", "KARNATAKA", "TamilNadu"]
    new["PinCode"] = [580001, 580002, 452001, 580003, 580004, 625001]
    new.loc[5, "store_code"] = 9999  # a store never seen at fit: its line flags nothing
    for preprocessor in (fitted, restored):
        with caplog.at_level(logging.WARNING, logger="pipeline.features.feature_sets"):
            decoded = preprocessor.decode(preprocessor.transform(new)[1][preprocessor.feature_names])
        # customers 3, 5, 7: lines against 2655 = MADHYAPRADESH / 452
        np.testing.assert_allclose(decoded["out_of_state_share"], [1.0, 2 / 3, 0.5])
        np.testing.assert_allclose(decoded["pin_outside_city_share"], [1.0, 2 / 3, 0.5])
        assert "9999" in caplog.text


def test_valid_pin_prefix_and_state_key():
    from pipeline.features.feature_sets import pin_prefix, state_key

    pins = pd.Series([452001.0, 999999.0, 56001.0, np.nan, 110001.0, 899999.0])
    assert pin_prefix(pins).tolist() == [452, pd.NA, pd.NA, pd.NA, 110, 899]
    states = pd.Series(["TAMIL NADU", "TamilNadu", "Madhya  Pradesh", None, " "])
    assert state_key(states).tolist() == ["TAMILNADU", "TAMILNADU", "MADHYAPRADESH", None, None]


def test_transaction_unit_index_is_identity(random_clean):
    preprocessor = FeaturePreprocessor("behavioural").fit(random_clean)
    np.testing.assert_array_equal(preprocessor.unit_index(random_clean), np.arange(len(random_clean)))


# ---------------------------------------------------------------- new data and bad input


def test_unseen_categories_encode_as_zero_or_minus_one_with_warning(random_clean, caplog):
    novel = random_clean.head(3).copy()
    novel["store_code"] = [9999, 2655, 2655]
    novel["Gender"] = ["other", "male", "male"]
    behavioural = FeaturePreprocessor("behavioural").fit(random_clean)
    with caplog.at_level(logging.WARNING, logger="pipeline.features.encoding"):
        _, units = behavioural.transform(novel)
    store_columns = [name for name in behavioural.feature_names if name.startswith("store_code=")]
    assert units.loc[0, store_columns].sum() == 0 and units.loc[1, "store_code=2655"] == 1
    assert "9999" in caplog.text and "'store_code'" in caplog.text
    seed = FeaturePreprocessor("seed").fit(random_clean)
    with caplog.at_level(logging.WARNING, logger="pipeline.features.encoding"):
        _, seed_units = seed.transform(novel)
    assert seed_units.loc[0, "Gender"] == -1 and "'other'" in caplog.text


def test_nan_reaching_x_names_column_and_count():
    raw = random_bigbazaar_raw(30, seed=5)
    raw.loc[[2, 7], "DOB"] = "NANA"
    clean = clean_bigbazaar(raw, drop_missing_age=False).clean
    with pytest.raises(ValueError, match=r"'Age': 2"):
        FeaturePreprocessor("seed").fit(clean)


def test_argument_and_state_errors(random_clean):
    with pytest.raises(ValueError, match="unknown feature_set 'rfm'.*behavioural"):
        FeaturePreprocessor("rfm")
    with pytest.raises(ValueError, match="'transaction' level, not level='customer'"):
        FeaturePreprocessor("seed", level="customer")
    with pytest.raises(RuntimeError, match="not fitted"):
        FeaturePreprocessor("seed").transform(random_clean)
    fitted = FeaturePreprocessor("seed").fit(random_clean)
    with pytest.raises(ValueError, match=r"\(n x 13\)"):
        fitted.inverse_transform(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="format"):
        FeaturePreprocessor.from_state_dict({"format": "other"})


def test_state_dict_holds_only_plain_python(random_clean):
    def check(value):
        if isinstance(value, dict):
            assert all(isinstance(key, str) for key in value)
            for item in value.values():
                check(item)
        elif isinstance(value, list):
            for item in value:
                check(item)
        else:
            assert value is None or type(value) in (str, int, float, bool), (type(value), value)

    for feature_set in FEATURE_SETS:
        check(FeaturePreprocessor(feature_set).fit(random_clean).state_dict())


# ---------------------------------------------------------------- generic data


def generic_clean() -> pd.DataFrame:
    channels = [f"ch{index:02d}" for index in range(12)]
    raw = pd.DataFrame({
        "cust": ["b", "a", "b", "c", "a", "b"] * 4,
        "invoice": [f"I{index // 2}" for index in range(24)],
        "when": pd.date_range("2021-01-01 09:00", periods=24, freq="5D").strftime("%Y-%m-%d %H:%M:%S"),
        "spend": np.linspace(-5, 200, 24),
        "qty": np.arange(1, 25),
        "channel": [channels[index % 12] if index < 20 else "ch00" for index in range(24)],
        "score": np.linspace(0, 1, 24),
    })
    mapping = {"id": "cust", "date": "when", "amount": "spend", "quantity": "qty", "invoice": "invoice",
               "categoricals": ["channel"], "numerics": ["score"]}
    return clean_generic(raw, mapping).clean


def test_generic_behavioural_round_trip_and_majority_groups():
    clean = generic_clean()
    preprocessor = FeaturePreprocessor("behavioural")
    X, units = preprocessor.fit_transform(clean)
    # ch00: 6 rows, ch01..ch07: 2 rows each, ch08..ch11: 1 row -> majority ch00, then ch01, ch02, ch03 (ties: smaller)
    channel_columns = [name for name in preprocessor.feature_names if name.startswith("channel")]
    assert channel_columns == ["channel!=ch00", "channel=ch01", "channel=ch02", "channel=ch03"]
    channel = clean["channel"].to_numpy()
    expected_block = np.column_stack([channel != "ch00", *(channel == c for c in ("ch01", "ch02", "ch03"))])
    np.testing.assert_array_equal(units[channel_columns].to_numpy(), expected_block.astype(float))
    decoded = preprocessor.inverse_transform(X)
    np.testing.assert_allclose(decoded["amount"], clean["amount"], atol=1e-9)
    np.testing.assert_allclose(decoded["quantity"], clean["quantity"], atol=1e-9)
    np.testing.assert_allclose(decoded["score"], clean["score"], atol=1e-12)
    np.testing.assert_array_equal(decoded["Month"], clean["date"].dt.month)
    listed = np.isin(channel, ["ch00", "ch01", "ch02", "ch03"])
    assert decoded["channel"][listed].tolist() == channel[listed].tolist()
    assert set(decoded["channel"][~listed]) == {"(other)"}
    with pytest.raises(ValueError, match="'seed' needs \\['bigbazaar'\\] data"):
        FeaturePreprocessor("seed").fit(clean)


def test_generic_customer_features_against_groupby():
    clean = generic_clean()
    preprocessor = FeaturePreprocessor("customer")
    X, units = preprocessor.fit_transform(clean)
    decoded = preprocessor.decode(units[preprocessor.feature_names])
    np.testing.assert_allclose(preprocessor.inverse_transform(X).to_numpy(float),
                               decoded.to_numpy(float), rtol=1e-9, atol=1e-9)
    frame = clean.assign(
        day=clean["date"].dt.normalize(),
        purchase=clean["amount"].where(clean["amount"] > 0),
        log_price=np.log((clean["amount"] / clean["quantity"]).where(clean["amount"] > 0)),
        returned=(clean["amount"] < 0) | (clean["quantity"] < 0),
        weekend=clean["date"].dt.day_of_week >= 5,
    )
    grouped = frame.groupby("customer_id")
    reference = clean["date"].max().normalize()
    visits = grouped["invoice"].nunique()
    assert units["customer_id"].tolist() == ["a", "b", "c"]
    assert units["n_rows"].tolist() == grouped.size().tolist()
    np.testing.assert_array_equal(decoded["recency_days"], (reference - grouped["day"].max()).dt.days)
    np.testing.assert_array_equal(decoded["tenure_days"], (grouped["day"].max() - grouped["day"].min()).dt.days)
    np.testing.assert_array_equal(decoded["frequency"], visits)
    np.testing.assert_allclose(decoded["monetary_total"], grouped["purchase"].sum(), rtol=1e-9)
    np.testing.assert_allclose(units["monetary_total"], grouped["purchase"].sum(), rtol=1e-12)
    np.testing.assert_allclose(decoded["monetary_mean"], grouped["purchase"].sum() / visits, rtol=1e-9)
    months = np.maximum((reference - grouped["day"].min()).dt.days, 365.25 / 12) / (365.25 / 12)
    np.testing.assert_allclose(decoded["visit_rate"], visits / months, rtol=1e-9)
    np.testing.assert_allclose(decoded["lines_per_visit"], grouped.size() / visits, rtol=1e-9)
    np.testing.assert_allclose(decoded["typical_price"], np.exp(grouped["log_price"].mean()), rtol=1e-9)
    np.testing.assert_allclose(decoded["return_share"], grouped["returned"].mean(), rtol=1e-9)
    assert decoded["return_share"].max() > 0  # the -5 line
    np.testing.assert_allclose(decoded["weekend_share"], grouped["weekend"].mean(), rtol=1e-9)
    np.testing.assert_allclose(decoded["score"], grouped["score"].mean(), rtol=1e-9)
    for name, label, equal in (("share_channel!=ch00", "ch00", False), ("share_channel=ch02", "ch02", True)):
        expected = grouped["channel"].apply(lambda c, label=label, equal=equal: ((c == label) == equal).mean())
        np.testing.assert_allclose(decoded[name], expected, rtol=1e-9)
    codes = preprocessor.unit_index(clean)
    assert (units["customer_id"].to_numpy()[codes] == clean["customer_id"].to_numpy()).all()


def online_retail_raw() -> pd.DataFrame:
    """A UCI-shaped table: UK customers 1-6, one customer each in 5 other countries, a cancellation, a free line."""
    countries = ["United Kingdom"] * 6 + ["Germany", "France", "EIRE", "Spain", "Norway"]
    rows = []
    for number, country in enumerate(countries):
        lines = 3 if country in ("Germany", "France") else 2 if country == "EIRE" else 1
        for line in range(lines):
            rows.append({"InvoiceNo": f"5{number:02d}{line}", "StockCode": "A", "Description": "x", "Quantity": 2,
                         "InvoiceDate": f"2011-0{1 + line}-0{3 + number % 5} 10:00:00", "UnitPrice": 1.5 + number,
                         "CustomerID": 12_000.0 + number, "Country": country})
    rows.append({**rows[0], "InvoiceNo": "C9001", "Quantity": -2, "InvoiceDate": "2011-03-01 09:00:00"})
    rows.append({**rows[0], "InvoiceNo": "9002", "UnitPrice": 0.0, "InvoiceDate": "2011-03-02 09:00:00"})
    return pd.DataFrame(rows)


def test_online_retail_country_as_domestic_foreign_plus_three_largest_and_return_share():
    from pipeline.sources.cleaning import clean_online_retail

    clean = clean_online_retail(online_retail_raw()).clean
    preprocessor = FeaturePreprocessor("customer")
    X, units = preprocessor.fit_transform(clean)
    country_columns = [name for name in preprocessor.feature_names if "Country" in name]
    # most frequent line country: United Kingdom; then France and Germany (3 lines, tie -> alphabetical), EIRE (2)
    assert country_columns == [
        "share_Country!=United Kingdom", "share_Country=France", "share_Country=Germany", "share_Country=EIRE",
    ]
    decoded = preprocessor.decode(units[preprocessor.feature_names])
    by_customer = clean.groupby("customer_id")
    np.testing.assert_array_equal(decoded["share_Country!=United Kingdom"],
                                  by_customer["Country"].apply(lambda c: (c != "United Kingdom").mean()))
    np.testing.assert_array_equal(decoded["share_Country=EIRE"], by_customer["Country"].apply(lambda c: (c == "EIRE").mean()))
    first = units["customer_id"] == 12_000
    # customer 12000: the purchase (2 x 1.5), its cancellation and a free line
    assert decoded.loc[first, "return_share"].item() == pytest.approx(1 / 3)
    assert decoded.loc[first, "free_item_share"].item() == pytest.approx(1 / 3)
    assert decoded.loc[first, "monetary_total"].item() == pytest.approx(3.0)
    assert units.loc[first, "n_rows"].item() == 3


def test_synthetic_generator_output_runs_through_every_feature_set():
    synthetic = pytest.importorskip("pipeline.sources.synthetic")
    clean = clean_bigbazaar(synthetic.generate(300, seed=2).transactions).clean
    for feature_set in FEATURE_SETS:
        preprocessor = FeaturePreprocessor(feature_set)
        X, units = preprocessor.fit_transform(clean)
        assert np.isfinite(X).all() and len(units) == len(X)
        raw = units[preprocessor.feature_names].to_numpy(float)
        proportion = (raw.min(0) >= 0) & (raw.max(0) <= 1) & (feature_set != "seed")
        constant = raw.min(0) == raw.max(0)
        # standardised columns: sklearn's StandardScaler; [0, 1] columns: centred, divided by 0.5; then |z| <= 5
        expected = StandardScaler().fit_transform(raw)
        expected[:, proportion] = (raw[:, proportion] - raw[:, proportion].mean(0)) / 0.5
        expected[:, constant] = 0.0
        if feature_set != "seed":
            expected = np.clip(expected, -5, 5)
        np.testing.assert_allclose(X, expected, rtol=1e-9, atol=1e-9, err_msg=feature_set)
    behavioural = FeaturePreprocessor("behavioural")
    assert_frames_close(behavioural.inverse_transform(behavioural.fit_transform(clean)[0]),
                        expected_behavioural_sources(clean).reset_index(drop=True))
