"""Tests for pipeline.features and pipeline.encoding: feature sets, scaling, inverse transform, state."""
from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

from pipeline.cleaning import clean_bigbazaar, clean_generic
from pipeline.feature_sets import FEATURE_SETS, SEED_COLUMNS
from pipeline.features import FeaturePreprocessor
from pipeline.loading import read_bigbazaar

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
        "State": "X",
        "PinCode": rng.choice([452001.0, 580020.0, 999999.0], n_rows),
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


def expected_customer_sources(clean: pd.DataFrame, reference: pd.Timestamp, customers: np.ndarray) -> pd.DataFrame:
    """Aggregates of the given customers (in that order), computed with plain pandas one customer at a time."""
    rows = []
    for customer in customers:
        group = clean[clean["customerID"] == customer]
        dates = pd.to_datetime(group["transactionDate"])
        total = group["sale_price_after_promo"].sum()
        visits = dates.dt.date.nunique()
        digits = group["product_code"].astype(str).str.len()
        stores = group["store_code"].value_counts()
        genders = group["Gender"].value_counts()
        rows.append({
            "recency_days": (reference - dates.max()).days,
            "frequency": visits,
            "monetary_total": total,
            "monetary_mean": total / visits,
            "promo_share": (group["promo_code"] != 0).mean(),
            **{f"share_{t}": group["discountUsed"].str.split(",").apply(lambda s, t=t: t in s).mean() for t in TOKENS},
            "share_fmcg": (digits <= 9).mean(),
            "share_general": (digits == 10).mean(),
            "share_apparel_home": (digits >= 11).mean(),
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
    np.testing.assert_allclose(X, expected, rtol=1e-9, atol=1e-9)
    assert len(preprocessor.feature_names) == X.shape[1] == unscaled.shape[1]


# ---------------------------------------------------------------- round trips and state


@pytest.mark.parametrize("feature_set", ["seed", "behavioural", "customer"])
def test_inverse_transform_recovers_original_units(bigbazaar_clean, feature_set):
    preprocessor = FeaturePreprocessor(feature_set)
    X, units = preprocessor.fit_transform(bigbazaar_clean)
    decoded = preprocessor.inverse_transform(X)
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
        decoded = decoded.iloc[chosen].reset_index(drop=True)
    assert_frames_close(decoded, expected)


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
    return pd.DataFrame({
        "row_id": [10, 11, 12, 13],
        "customerID": [5, 5, 5, 3],
        "Gender": ["male", "male", "male", "female"],
        "PinCode": 452001,
        "store_code": [2655, 2655, 4796, 4796],
        "till_no": 1,
        "transaction_number_by_till": 11,
        "promo_code": [0, 971754, 0, 1],
        "product_code": [300000001, 1000000001, 1000077851005, 300000002],
        "sale_price_after_promo": [100.0, 50.0, -10.0, 20.0],
        "discountUsed": ["Payback", "T24Club,Payback", "Payback", "BBProfitClub"],
        "Age": [30, 30, 30, 50],
        "Week": 2,
        "Month": 1,
        "transactionDate": pd.to_datetime(["2017-01-10", "2017-01-10", "2017-01-20", "2017-02-01"]),
    })


def test_customer_aggregation_hand_computed():
    preprocessor = FeaturePreprocessor("customer", level="customer", reference_date="2017-02-11")
    X, units = preprocessor.fit_transform(hand_made_clean())
    assert units["customerID"].tolist() == [3, 5] and units["n_rows"].tolist() == [1, 3]
    decoded = preprocessor.inverse_transform(X)
    expected = pd.DataFrame({
        "recency_days": [10, 22],
        "frequency": [1, 2],
        "monetary_total": [20.0, 140.0],
        "monetary_mean": [20.0, 70.0],
        "promo_share": [1.0, 1 / 3],
        "share_FuturePrivilegeClub": [0.0, 0.0],
        "share_FGShoppingFest": [0.0, 0.0],
        "share_BBSavingsClub": [0.0, 0.0],
        "share_T24Club": [0.0, 1 / 3],
        "share_BBProfitClub": [1.0, 0.0],
        "share_Payback": [0.0, 1.0],
        "share_fmcg": [1.0, 1 / 3],
        "share_general": [0.0, 1 / 3],
        "share_apparel_home": [0.0, 1 / 3],
        "Age": [50.0, 30.0],
        "Gender": ["female", "male"],
        "home_store_code": [4796, 2655],
    })
    assert_frames_close(decoded, expected)
    np.testing.assert_allclose(units["slog1p_monetary_total"], np.log1p([20.0, 140.0]))
    np.testing.assert_array_equal(preprocessor.unit_index(hand_made_clean()), [1, 1, 1, 0])
    assert preprocessor.state_dict()["reference_date"] == "2017-02-11"


def test_transaction_unit_index_is_identity(random_clean):
    preprocessor = FeaturePreprocessor("behavioural").fit(random_clean)
    np.testing.assert_array_equal(preprocessor.unit_index(random_clean), np.arange(len(random_clean)))


# ---------------------------------------------------------------- new data and bad input


def test_unseen_categories_encode_as_zero_or_minus_one_with_warning(random_clean, caplog):
    novel = random_clean.head(3).copy()
    novel["store_code"] = [9999, 2655, 2655]
    novel["Gender"] = ["other", "male", "male"]
    behavioural = FeaturePreprocessor("behavioural").fit(random_clean)
    with caplog.at_level(logging.WARNING, logger="pipeline.encoding"):
        _, units = behavioural.transform(novel)
    store_columns = [name for name in behavioural.feature_names if name.startswith("store_code=")]
    assert units.loc[0, store_columns].sum() == 0 and units.loc[1, "store_code=2655"] == 1
    assert "9999" in caplog.text and "'store_code'" in caplog.text
    seed = FeaturePreprocessor("seed").fit(random_clean)
    with caplog.at_level(logging.WARNING, logger="pipeline.encoding"):
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


def test_generic_behavioural_round_trip_and_other_bucket():
    clean = generic_clean()
    preprocessor = FeaturePreprocessor("behavioural")
    X, units = preprocessor.fit_transform(clean)
    channel_columns = [name for name in preprocessor.feature_names if name.startswith("channel=")]
    assert len(channel_columns) == 10 and channel_columns[-1] == "channel=(other)"
    decoded = preprocessor.inverse_transform(X)
    np.testing.assert_allclose(decoded["amount"], clean["amount"], atol=1e-9)
    np.testing.assert_allclose(decoded["quantity"], clean["quantity"], atol=1e-9)
    np.testing.assert_allclose(decoded["score"], clean["score"], atol=1e-12)
    np.testing.assert_array_equal(decoded["Month"], clean["date"].dt.month)
    kept = decoded["channel"] != "(other)"
    assert decoded["channel"][kept].tolist() == clean["channel"][kept].tolist()
    counts = clean["channel"].value_counts()
    assert set(clean["channel"][~kept]) == set(counts.index[counts == counts.min()][-3:])
    with pytest.raises(ValueError, match="'seed' needs \\['bigbazaar'\\] data"):
        FeaturePreprocessor("seed").fit(clean)


def test_generic_customer_rfm_against_groupby():
    clean = generic_clean()
    preprocessor = FeaturePreprocessor("customer")
    X, units = preprocessor.fit_transform(clean)
    decoded = preprocessor.inverse_transform(X)
    grouped = clean.groupby("customer_id")
    reference = clean["date"].max().normalize()
    assert units["customer_id"].tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(decoded["recency_days"], (reference - grouped["date"].max().dt.normalize()).dt.days)
    np.testing.assert_array_equal(decoded["frequency"], grouped["invoice"].nunique())
    np.testing.assert_allclose(decoded["monetary_total"], grouped["amount"].sum(), rtol=1e-9)
    visits = grouped["invoice"].nunique()
    np.testing.assert_allclose(decoded["monetary_mean"], grouped["amount"].sum() / visits, rtol=1e-9)
    np.testing.assert_allclose(decoded["score"], grouped["score"].mean(), rtol=1e-9)
    assert decoded["channel"].tolist() == [g.value_counts().sort_index().idxmax() for _, g in grouped["channel"]]
    codes = preprocessor.unit_index(clean)
    assert (units["customer_id"].to_numpy()[codes] == clean["customer_id"].to_numpy()).all()


def test_synthetic_generator_output_runs_through_every_feature_set():
    synthetic = pytest.importorskip("pipeline.synthetic")
    clean = clean_bigbazaar(synthetic.generate(300, seed=2).transactions).clean
    for feature_set in FEATURE_SETS:
        preprocessor = FeaturePreprocessor(feature_set)
        X, units = preprocessor.fit_transform(clean)
        assert np.isfinite(X).all() and len(units) == len(X)
        np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-9)
        raw = units[preprocessor.feature_names].to_numpy(float)
        proportion = (raw.min(0) >= 0) & (raw.max(0) <= 1) & (feature_set != "seed")
        std = X.std(axis=0)
        # standardised columns have unit variance; [0, 1] columns have std(p)/0.5 ≤ 1
        assert np.all(np.isclose(std[~proportion], 1) | np.isclose(std[~proportion], 0)), feature_set
        np.testing.assert_allclose(std[proportion], raw[:, proportion].std(0) / 0.5)
    behavioural = FeaturePreprocessor("behavioural")
    assert_frames_close(behavioural.inverse_transform(behavioural.fit_transform(clean)[0]),
                        expected_behavioural_sources(clean).reset_index(drop=True))
