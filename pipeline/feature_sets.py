"""The feature-set registry: which units are clustered and which model columns describe them.

A feature set fixes the clustered *unit* (its level) and the model columns, per schema (the cleaned frame's
source family: ``bigbazaar`` from ``clean_bigbazaar``, ``generic`` from ``clean_generic``/``clean_online_retail``):

- ``seed`` (transaction level, Big Bazaar only): the original author's 13 columns in his order,
  customerID, Gender, PinCode, store_code, till_no, transaction_number_by_till, promo_code, product_code,
  sale_price_after_promo, discountUsed, Age, Week, Month; Gender and discountUsed label-encoded over their
  sorted classes (as sklearn's LabelEncoder). Seven of them are identifiers used as magnitudes; the set exists
  to reproduce the 2018 pipeline, not because it is a good one.
- ``behavioural`` (transaction level): only what describes the shopper or the purchase, no identifier treated
  as a magnitude. Big Bazaar:

  - ``Age``: the strongest demographic signal;
  - ``Gender`` one-hot (female / male / '0' = unknown): a category, not a number;
  - ``slog1p_sale_price_after_promo``: prices are heavy-tailed (median 71, max 8,576) and can be negative
    (returns), so the signed log sign(v)·log(1+|v|) keeps one apparel row from dominating the distances;
  - ``promo`` = 1 when promo_code != 0: the code itself is an identifier, whether a promotion was used is not;
  - ``discountUsed:<token>`` for the six loyalty tokens: the 28 joined strings are combinations of six
    memberships, so six 0/1 columns carry the same information without an arbitrary label order;
  - ``Month_sin``/``Month_cos``: seasonality on a circle (December next to January); Month rather than Week
    because 12 points are enough for the festival season and Week 53 exists only in some years;
  - ``store_code`` one-hot: seven stores in different cities, a category;
  - ``product_family`` one-hot from the product_code length (9 digits FMCG, 10 general merchandise, 11+
    apparel and home textiles): the only non-identifier content of product_code.

  PinCode (nearly determined by the store), till_no and transaction_number_by_till (checkout counters) are left
  out. Generic data: ``slog1p_amount``, ``slog1p_quantity`` when mapped (a mapped unit_price is implied by
  the two and left out), every mapped numeric column,
  every categorical one-hot (at most 10 columns: beyond 10 categories, the 9 most frequent plus ``(other)``),
  and the month on a circle.
- ``customer`` (customer level, one unit per customer): recency_days (days from the customer's last purchase
  to the reference date), frequency (distinct visits: invoices when mapped, else calendar days), monetary_total
  and monetary_mean (spend per visit), the last three through slog1p; Big Bazaar adds promo_share, the share of
  rows with each loyalty token and each product family, Age, Gender and the home store (the most frequent
  store_code); generic data adds the mean of each numeric column and the most frequent value of each categorical.

Scaling: continuous columns are standardised; columns within [0, 1] (indicators, one-hot columns, shares) are
centred and divided by 0.5 instead of by their own standard deviation (``pipeline.encoding.Standardizer``), so a
rare indicator such as FuturePrivilegeClub (0.1% of rows) stays within ±2 instead of reaching z ≈ 30 and turning
its few rows into outlier neurons. On synthetic data with planted segments this raised the SOM + average-linkage
ARI from 0.03–0.11 to 0.26–0.35 (behavioural) and from 0.08 to 0.20 (customer), 4,000 customers, two data seeds.

Each builder returns the units' identifier columns and their source columns in original units; each encoder
factory lists the column encoders (pipeline.encoding) that turn the sources into model columns.
``pipeline.features.FeaturePreprocessor`` applies them and a standard scaler.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.cleaning import AMOUNT, CUSTOMER_ID, DATE, INVOICE, QUANTITY, UNIT_PRICE
from pipeline.encoding import (
    ColumnEncoder,
    CyclicEncoder,
    LabelCodeEncoder,
    NumericEncoder,
    OneHotEncoder,
    TokenSetEncoder,
)
from pipeline.loading import ROW_ID, require_columns

logger = logging.getLogger(__name__)

TRANSACTION, CUSTOMER = "transaction", "customer"
BIGBAZAAR, GENERIC = "bigbazaar", "generic"
N_ROWS = "n_rows"

SEED_COLUMNS = (
    "customerID", "Gender", "PinCode", "store_code", "till_no", "transaction_number_by_till", "promo_code",
    "product_code", "sale_price_after_promo", "discountUsed", "Age", "Week", "Month",
)
SEED_LABEL_COLUMNS = ("Gender", "discountUsed")
LOYALTY_TOKENS = ("FuturePrivilegeClub", "FGShoppingFest", "BBSavingsClub", "T24Club", "BBProfitClub", "Payback")
PRODUCT_FAMILIES = ("fmcg", "general", "apparel_home")
GENERIC_MAX_CATEGORIES = 10
CANONICAL_GENERIC_COLUMNS = (ROW_ID, CUSTOMER_ID, DATE, AMOUNT, QUANTITY, UNIT_PRICE, INVOICE)


@dataclass(frozen=True)
class Schema:
    """Where the roles live in a cleaned frame of one source family."""

    id: str
    date: str
    amount: str


SCHEMAS = {
    BIGBAZAAR: Schema(id="customerID", date="transactionDate", amount="sale_price_after_promo"),
    GENERIC: Schema(id=CUSTOMER_ID, date=DATE, amount=AMOUNT),
}


@dataclass(frozen=True)
class Units:
    """The clustered units of a cleaned frame: identifier columns and source columns (original units), aligned."""

    ids: pd.DataFrame
    sources: pd.DataFrame


UnitBuilder = Callable[[pd.DataFrame, Schema, "pd.Timestamp | None"], Units]
EncoderFactory = Callable[[pd.DataFrame], list[ColumnEncoder]]


@dataclass(frozen=True)
class FeatureSet:
    """A registered feature set: its level and, per schema, how to build units and which encoders to fit."""

    name: str
    level: str
    builders: Mapping[str, tuple[UnitBuilder, EncoderFactory]]


def detect_schema(clean: pd.DataFrame) -> str:
    """``'bigbazaar'`` for a frame from ``clean_bigbazaar``, ``'generic'`` for one from ``clean_generic``."""
    if {"customerID", "discountUsed", "sale_price_after_promo"}.issubset(clean.columns):
        return BIGBAZAAR
    if {CUSTOMER_ID, DATE, AMOUNT}.issubset(clean.columns):
        return GENERIC
    raise ValueError(
        "cannot tell the cleaned frame's schema: Big Bazaar needs customerID, discountUsed, sale_price_after_promo; "
        f"generic needs {CUSTOMER_ID}, {DATE}, {AMOUNT}; columns present: {list(map(str, clean.columns))}"
    )


def product_family(product_codes: pd.Series) -> pd.Series:
    """Big Bazaar product family from the code's digit count: 9 or fewer fmcg, 10 general, 11+ apparel_home."""
    digits = product_codes.astype(np.int64).abs().astype(str).str.len()
    family = np.select([digits <= 9, digits == 10], PRODUCT_FAMILIES[:2], default=PRODUCT_FAMILIES[2])
    return pd.Series(family, index=product_codes.index, name="product_family", dtype=object)


def _transaction_ids(clean: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    row_ids = clean[ROW_ID].to_numpy() if ROW_ID in clean.columns else np.arange(len(clean))
    return pd.DataFrame({ROW_ID: row_ids, schema.id: clean[schema.id].to_numpy()})


def _seed_units(clean: pd.DataFrame, schema: Schema, reference: pd.Timestamp | None) -> Units:
    require_columns(clean, SEED_COLUMNS, what="cleaned Big Bazaar frame for the seed feature set")
    return Units(_transaction_ids(clean, schema), clean[list(SEED_COLUMNS)].reset_index(drop=True))


def _seed_encoders(sources: pd.DataFrame) -> list[ColumnEncoder]:
    return [
        LabelCodeEncoder(column) if column in SEED_LABEL_COLUMNS else NumericEncoder(column)
        for column in SEED_COLUMNS
    ]


def _bigbazaar_behaviour_units(clean: pd.DataFrame, schema: Schema, reference: pd.Timestamp | None) -> Units:
    needed = (
        "Age", "Gender", "sale_price_after_promo", "promo_code", "discountUsed", "Month", "store_code", "product_code"
    )
    require_columns(clean, needed, what="cleaned Big Bazaar frame for the behavioural feature set")
    sources = pd.DataFrame({
        "Age": clean["Age"],
        "Gender": clean["Gender"],
        "sale_price_after_promo": clean["sale_price_after_promo"],
        "promo": (clean["promo_code"] != 0).astype(np.int64),
        "discountUsed": clean["discountUsed"],
        "Month": clean["Month"],
        "store_code": clean["store_code"],
        "product_family": product_family(clean["product_code"]),
    }).reset_index(drop=True)
    return Units(_transaction_ids(clean, schema), sources)


def _bigbazaar_behaviour_encoders(sources: pd.DataFrame) -> list[ColumnEncoder]:
    return [
        NumericEncoder("Age"),
        OneHotEncoder("Gender"),
        NumericEncoder("sale_price_after_promo", transform="slog1p"),
        NumericEncoder("promo"),
        TokenSetEncoder("discountUsed", LOYALTY_TOKENS),
        CyclicEncoder("Month", period=12, start=1),
        OneHotEncoder("store_code"),
        OneHotEncoder("product_family"),
    ]


def _generic_extra_columns(clean: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The mapped numerics and categoricals of a generic clean frame (the non-canonical columns), in order."""
    extra = [column for column in clean.columns if column not in CANONICAL_GENERIC_COLUMNS]
    numerics = [column for column in extra if pd.api.types.is_numeric_dtype(clean[column])]
    return numerics, [column for column in extra if column not in numerics]


def _generic_behaviour_units(clean: pd.DataFrame, schema: Schema, reference: pd.Timestamp | None) -> Units:
    numerics, categoricals = _generic_extra_columns(clean)
    sources = pd.DataFrame({AMOUNT: clean[AMOUNT]})
    if QUANTITY in clean.columns:
        sources[QUANTITY] = clean[QUANTITY]
    for column in (*numerics, *categoricals):
        sources[column] = clean[column]
    sources["Month"] = pd.to_datetime(clean[DATE]).dt.month
    return Units(_transaction_ids(clean, schema), sources.reset_index(drop=True))


def _generic_behaviour_encoders(sources: pd.DataFrame) -> list[ColumnEncoder]:
    encoders: list[ColumnEncoder] = [NumericEncoder(AMOUNT, transform="slog1p")]
    if QUANTITY in sources.columns:
        encoders.append(NumericEncoder(QUANTITY, transform="slog1p"))
    for column in sources.columns.drop([AMOUNT, QUANTITY, "Month"], errors="ignore"):
        if pd.api.types.is_numeric_dtype(sources[column]):
            encoders.append(NumericEncoder(column))
        else:
            encoders.append(OneHotEncoder(column, max_categories=GENERIC_MAX_CATEGORIES))
    encoders.append(CyclicEncoder("Month", period=12, start=1))
    return encoders


def customer_codes(clean: pd.DataFrame, schema: Schema) -> tuple[np.ndarray, pd.Index]:
    """Position of each row's customer among the sorted distinct customer ids, and those ids."""
    codes, customers = pd.factorize(clean[schema.id], sort=True)
    if (codes < 0).any():
        raise ValueError(f"{int((codes < 0).sum())} rows have a missing {schema.id}; clean the data first")
    return codes, pd.Index(customers)


def _recency_frequency_monetary(
    clean: pd.DataFrame, schema: Schema, reference: pd.Timestamp | None, visit_column: str | None
) -> Units:
    """Per customer (sorted ids): n_rows, recency_days, frequency, monetary_total, monetary_mean.

    recency_days = (reference − last purchase day) in days; frequency = distinct ``visit_column`` values (or
    calendar days); monetary_total = Σ amount; monetary_mean = monetary_total / frequency.
    """
    if reference is None:
        raise ValueError("customer-level features need a reference date")
    codes, customers = customer_codes(clean, schema)
    days = pd.to_datetime(clean[schema.date]).dt.normalize()
    rows = pd.DataFrame({
        "customer": codes,
        "day": days.to_numpy(),
        "visit": clean[visit_column].to_numpy() if visit_column else days.to_numpy(),
        "amount": clean[schema.amount].to_numpy(dtype=np.float64),
    })
    grouped = rows.groupby("customer", sort=True)
    monetary_total = grouped["amount"].sum().to_numpy()
    frequency = grouped["visit"].nunique().to_numpy()
    sources = pd.DataFrame({
        "recency_days": (reference - grouped["day"].max()).dt.days.to_numpy(),
        "frequency": frequency,
        "monetary_total": monetary_total,
        "monetary_mean": monetary_total / frequency,
    })
    ids = pd.DataFrame({schema.id: customers.to_numpy(), N_ROWS: grouped.size().to_numpy()})
    return Units(ids, sources)


def _mode_per_customer(codes: np.ndarray, values: pd.Series, n_customers: int) -> np.ndarray:
    """Most frequent value per customer; ties go to the smallest value."""
    pairs = pd.DataFrame({"customer": codes, "value": values.to_numpy()})
    counts = pairs.groupby(["customer", "value"], sort=True).size().rename("count").reset_index()
    ranked = counts.sort_values(["customer", "count", "value"], ascending=[True, False, True], kind="stable")
    modes = ranked.drop_duplicates("customer").set_index("customer")["value"]
    return modes.reindex(range(n_customers)).to_numpy()


def _mean_per_customer(codes: np.ndarray, values: np.ndarray, n_customers: int) -> np.ndarray:
    """Per customer, the mean of each column over the customer's rows: (n_rows x k) -> (n_customers x k).

    The mean of a 0/1 indicator column is the customer's share of rows with that property.
    """
    sums = np.zeros((n_customers, values.shape[1]))
    np.add.at(sums, codes, values)
    return sums / np.bincount(codes, minlength=n_customers)[:, None]


def _bigbazaar_customer_units(clean: pd.DataFrame, schema: Schema, reference: pd.Timestamp | None) -> Units:
    needed = ("customerID", "transactionDate", "sale_price_after_promo", "promo_code", "discountUsed",
              "product_code", "Age", "Gender", "store_code")
    require_columns(clean, needed, what="cleaned Big Bazaar frame for the customer feature set")
    units = _recency_frequency_monetary(clean, schema, reference, visit_column=None)
    codes, customers = customer_codes(clean, schema)
    n_customers = len(customers)
    sources = units.sources
    promo = (clean["promo_code"] != 0).to_numpy(float)[:, None]
    sources["promo_share"] = _mean_per_customer(codes, promo, n_customers)[:, 0]
    tokens = TokenSetEncoder("discountUsed", LOYALTY_TOKENS).encode(clean["discountUsed"])
    token_shares = _mean_per_customer(codes, tokens, n_customers)
    for position, token in enumerate(LOYALTY_TOKENS):
        sources[f"share_{token}"] = token_shares[:, position]
    families = product_family(clean["product_code"]).to_numpy()
    in_family = families[:, None] == np.asarray(PRODUCT_FAMILIES)[None, :]
    family_shares = _mean_per_customer(codes, in_family, n_customers)
    for position, family in enumerate(PRODUCT_FAMILIES):
        sources[f"share_{family}"] = family_shares[:, position]
    sources["Age"] = _mean_per_customer(codes, clean["Age"].to_numpy(float)[:, None], n_customers)[:, 0]
    sources["Gender"] = _mode_per_customer(codes, clean["Gender"], n_customers)
    sources["home_store_code"] = _mode_per_customer(codes, clean["store_code"], n_customers).astype(np.int64)
    return Units(units.ids, sources)


def _rfm_encoders() -> list[ColumnEncoder]:
    return [
        NumericEncoder("recency_days"),
        NumericEncoder("frequency", transform="slog1p"),
        NumericEncoder("monetary_total", transform="slog1p"),
        NumericEncoder("monetary_mean", transform="slog1p"),
    ]


def _bigbazaar_customer_encoders(sources: pd.DataFrame) -> list[ColumnEncoder]:
    shares = ["promo_share", *(f"share_{token}" for token in LOYALTY_TOKENS), *(f"share_{f}" for f in PRODUCT_FAMILIES)]
    return [
        *_rfm_encoders(),
        *(NumericEncoder(column) for column in shares),
        NumericEncoder("Age"),
        OneHotEncoder("Gender"),
        OneHotEncoder("home_store_code"),
    ]


def _generic_customer_units(clean: pd.DataFrame, schema: Schema, reference: pd.Timestamp | None) -> Units:
    visit_column = INVOICE if INVOICE in clean.columns else None
    units = _recency_frequency_monetary(clean, schema, reference, visit_column=visit_column)
    codes, customers = customer_codes(clean, schema)
    numerics, categoricals = _generic_extra_columns(clean)
    for column in numerics:
        column_values = clean[column].to_numpy(float)[:, None]
        units.sources[column] = _mean_per_customer(codes, column_values, len(customers))[:, 0]
    for column in categoricals:
        units.sources[column] = _mode_per_customer(codes, clean[column], len(customers))
    return units


def _generic_customer_encoders(sources: pd.DataFrame) -> list[ColumnEncoder]:
    extra = sources.columns.drop(["recency_days", "frequency", "monetary_total", "monetary_mean"])
    return [
        *_rfm_encoders(),
        *(
            NumericEncoder(column) if pd.api.types.is_numeric_dtype(sources[column])
            else OneHotEncoder(column, max_categories=GENERIC_MAX_CATEGORIES)
            for column in extra
        ),
    ]


FEATURE_SETS: dict[str, FeatureSet] = {
    "seed": FeatureSet("seed", TRANSACTION, {BIGBAZAAR: (_seed_units, _seed_encoders)}),
    "behavioural": FeatureSet("behavioural", TRANSACTION, {
        BIGBAZAAR: (_bigbazaar_behaviour_units, _bigbazaar_behaviour_encoders),
        GENERIC: (_generic_behaviour_units, _generic_behaviour_encoders),
    }),
    "customer": FeatureSet("customer", CUSTOMER, {
        BIGBAZAAR: (_bigbazaar_customer_units, _bigbazaar_customer_encoders),
        GENERIC: (_generic_customer_units, _generic_customer_encoders),
    }),
}
