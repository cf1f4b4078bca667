"""Streaming Big Bazaar customer features: per-chunk partial statistics merged by customer key.

``BigBazaarCustomerAggregates`` computes the ``customer`` feature set's units
(``pipeline.features.feature_sets._bigbazaar_customer_units``) and its learned store addresses
(``_learn_store_addresses``) without holding the rows: each clean chunk (a Polars frame of the clean-chunk
contract, in input order) is reduced to three partial tables, and each table is merged with the running state by
``concat`` + ``group_by(keys)`` + sum/min/max. What it holds grows with customers and visits, never with rows:

- ``lines``, keyed by customerID: line count, first and last day, purchase-line count, spend and Σ log price over
  purchase lines, the numerators of every share (returns, free items, weekend, Wednesday, festive season, promo,
  the six loyalty tokens, the three product families) and Σ Age;
- ``visits``: the distinct (customerID, store_code, day, till_no, transaction_number_by_till), because a basket's
  lines may lie in two chunks and a customer's in many, so visits are counted only at the end;
- ``profile``, keyed by (customerID, store_code, Gender, state key, PIN prefix): line counts. It gives the modes
  (Gender, home store), the stores' addresses (most frequent state key / PIN prefix per store) and, once those
  are known, the address flags: the flags compare each line's home address with its store's, learned from all
  rows, so they cannot be counted chunk by chunk.

Merging is amortised: a table's partials are queued and merged into its state when the queue holds more rows than
the state (or ``MIN_MERGE_ROWS``), so each partial row is merged O(1) times and the queue never outgrows the state
by more than one chunk's partial.

Equality with the pandas functions: counts, days, modes, shares (count / lines) and the Age mean (Σ of integers)
are exact; ``monetary_total`` and the Σ log price are float sums added in another order (per chunk, then across
chunks), and Polars' log may differ from NumPy's by an ulp, so they and the columns derived from them
(``monetary_mean``, ``typical_price``) agree to ~1e-14 relative, not bit for bit.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from pipeline.features.feature_sets import (
    BIGBAZAAR_CUSTOMER_COLUMNS,
    FESTIVE_MONTHS,
    LOYALTY_TOKENS,
    N_ROWS,
    PIN_RANGE,
    PRODUCT_FAMILIES,
    REVENUE,
    SATURDAY,
    WEDNESDAY,
    Units,
    activity_columns,
)

logger = logging.getLogger(__name__)

ID, STORE, DAY = "customerID", "store_code", "day"
STATE_KEY, PIN_PREFIX, COUNT = "state_key", "pin_prefix", "n"
TOKEN_SEPARATOR = ","
# The characters Python's str.strip() removes (none lies above U+3000), as a regex class body.
PYTHON_WHITESPACE_CLASS = "".join(f"\\x{{{code:x}}}" for code in range(0x3001) if chr(code).isspace())
MIN_MERGE_ROWS = 1_000_000
# Line counts are UInt32 (half the state of Int64): every count is at most the rows fed, kept below MAX_ROWS.
COUNT_DTYPE = pl.UInt32
MAX_ROWS = 2**32 - 1
# product_family's digit-count bounds: |code| < 10**9 has at most 9 digits, < 10**10 has 10
FAMILY_UPPER_BOUNDS = (10**9, 10**10)

VISIT_KEYS = (ID, STORE, DAY, "till_no", "transaction_number_by_till")
PROFILE_KEYS = (ID, STORE, "Gender", STATE_KEY, PIN_PREFIX)
LINE_SHARES = (
    ("return_share", "n_return"),
    ("free_item_share", "n_free"),
    ("weekend_share", "n_weekend"),
    ("wednesday_share", "n_wednesday"),
    ("festive_share", "n_festive"),
    ("promo_share", "n_promo"),
    *((f"share_{token}", f"n_{token}") for token in LOYALTY_TOKENS),
    *((f"share_{family}", f"n_{family}") for family in PRODUCT_FAMILIES),
)
LINE_SUMS = (
    N_ROWS, "n_purchase", REVENUE, "log_price_sum", "age_sum", *(count for _, count in LINE_SHARES)
)


def state_key_expr(state: pl.Expr) -> pl.Expr:
    """Polars ``feature_sets.state_key``: letters only, upper case ('Tamil Nadu' -> 'TAMILNADU'); '' -> null.

    pandas upper-cases its (pyarrow) strings with the simple case mapping, under which only ASCII letters and
    'ı', 'ſ' (-> 'I', 'S') become A-Z; Polars' full mapping would also turn 'ß' into 'SS', so the other
    characters are dropped before upper-casing.
    """
    letters = state.str.replace_all(r"[^A-Za-zıſ]", "").str.to_uppercase()
    return pl.when(letters != "").then(letters)


def pin_prefix_expr(pincode: pl.Expr) -> pl.Expr:
    """Polars ``feature_sets.pin_prefix``: PinCode // 1000 for a six-digit PIN in ``PIN_RANGE``, else null."""
    low, high = PIN_RANGE
    return pl.when(pincode.is_between(low, high)).then(pincode // 1000).cast(pl.Int64)


def product_family_expr(product_code: pl.Expr) -> pl.Expr:
    """Polars ``feature_sets.product_family``: ≤ 9 digits of |code| fmcg, 10 general, 11+ apparel_home."""
    magnitude = product_code.abs()
    fmcg, general, apparel_home = PRODUCT_FAMILIES
    nine_digits, ten_digits = FAMILY_UPPER_BOUNDS
    return (
        pl.when(magnitude < nine_digits).then(pl.lit(fmcg))
        .when(magnitude < ten_digits).then(pl.lit(general))
        .otherwise(pl.lit(apparel_home))
    )


def token_flag_expr(discount_used: pl.Expr, token: str) -> pl.Expr:
    """Polars ``TokenSetEncoder.encode`` column of one token: one of the comma-separated pieces, stripped of
    Python's whitespace (``str.strip``, which also strips U+001C..U+001F, unlike Rust's), is ``token``; missing
    -> no token."""
    blanks = f"[{PYTHON_WHITESPACE_CLASS}]*"
    separator = re.escape(TOKEN_SEPARATOR)
    return discount_used.fill_null("").str.contains(f"(^|{separator}){blanks}{re.escape(token)}{blanks}({separator}|$)")


def pandas_weekday_expr(date: pl.Expr) -> pl.Expr:
    """The day of the week as pandas numbers it (Monday = 0 ... Sunday = 6; Polars' weekday is 1..7)."""
    return date.dt.weekday().cast(pl.Int64) - 1


class _MergedTable:
    """A partial-aggregate table keyed by ``keys``, its value columns merged by ``merges`` (column -> 'sum', 'min'
    or 'max'); with no value columns it is a set of distinct keys.

    ``add`` queues a partial; the queue is merged into the state (concat, then group_by(keys) + the merges) once
    it holds more rows than the state or ``MIN_MERGE_ROWS``.
    """

    def __init__(self, keys: Sequence[str], merges: Mapping[str, str]) -> None:
        self.keys = list(keys)
        self.merges = dict(merges)
        self.state: pl.DataFrame | None = None
        self.queue: list[pl.DataFrame] = []
        self.queued_rows = 0

    def add(self, partial: pl.DataFrame) -> None:
        self.queue.append(partial)
        self.queued_rows += partial.height
        state_rows = 0 if self.state is None else self.state.height
        if self.queued_rows > max(state_rows, MIN_MERGE_ROWS):
            self._merge()

    def merged(self) -> pl.DataFrame:
        """The state with every queued partial merged (one row per distinct key)."""
        if self.queue:
            self._merge()
        if self.state is None:
            raise ValueError("no chunk was added: call update() with the clean rows first")
        return self.state

    @property
    def n_rows_held(self) -> int:
        return (0 if self.state is None else self.state.height) + self.queued_rows

    def _merge(self) -> None:
        parts = self.queue if self.state is None else [self.state, *self.queue]
        stacked = pl.concat(parts, how="vertical")
        if self.merges:
            aggregations = [getattr(pl.col(column), how)() for column, how in self.merges.items()]
            self.state = stacked.group_by(self.keys).agg(aggregations)
        else:
            self.state = stacked.unique()
        self.queue, self.queued_rows = [], 0


class BigBazaarCustomerAggregates:
    """The ``customer`` feature set's units of Big Bazaar clean rows fed in chunks (see the module docstring).

    ``update(chunk)`` for each clean chunk in input order, then ``store_addresses()`` (the learned values),
    ``units(reference, learned)`` (one unit per customer, sorted ids) and ``unit_codes(ids)``. ``n_rows_seen``
    counts the rows fed (at most ``MAX_ROWS``).
    """

    def __init__(self) -> None:
        self._lines = _MergedTable([ID], {
            "first_day": "min", "last_day": "max", **{column: "sum" for column in LINE_SUMS},
        })
        self._visits = _MergedTable(VISIT_KEYS, {})
        self._profile = _MergedTable(PROFILE_KEYS, {COUNT: "sum"})
        self._customer_ids: np.ndarray | None = None
        self.n_rows_seen = 0

    def update(self, clean_chunk: pl.DataFrame) -> None:
        """Merge one clean chunk's partial statistics (rows of the clean-chunk contract) into the running state."""
        missing = [column for column in BIGBAZAAR_CUSTOMER_COLUMNS if column not in clean_chunk.columns]
        if missing:
            raise ValueError(
                f"clean_chunk lacks the columns {missing} of the customer feature set; it has {clean_chunk.columns}"
            )
        if clean_chunk.height == 0:
            return
        if clean_chunk["Age"].null_count():
            raise ValueError(
                f"clean_chunk has {clean_chunk['Age'].null_count()} rows without Age: the customer features need "
                "clean_bigbazaar(..., drop_missing_age=True)"
            )
        if clean_chunk[ID].null_count():
            raise ValueError(f"{clean_chunk[ID].null_count()} rows have a missing {ID}; clean the data first")
        if self.n_rows_seen + clean_chunk.height > MAX_ROWS:
            raise ValueError(
                f"more than {MAX_ROWS} rows fed: the per-customer line counts ({COUNT_DTYPE}) would overflow"
            )
        self.n_rows_seen += clean_chunk.height
        lines = _line_columns(clean_chunk)
        self._lines.add(_line_partial(lines))
        self._visits.add(lines.select(VISIT_KEYS).unique())
        self._profile.add(lines.group_by(PROFILE_KEYS).agg(pl.len().cast(COUNT_DTYPE).alias(COUNT)))
        self._customer_ids = None

    def merge(self, other: BigBazaarCustomerAggregates) -> None:
        """Merge the aggregates of another shard of the input (after its last ``update``): sums, minima, maxima and
        distinct keys, so any order gives the same tables (float sums up to their rounding order, ~1e-16)."""
        if other.n_rows_seen == 0:
            return
        if self.n_rows_seen + other.n_rows_seen > MAX_ROWS:
            raise ValueError(f"more than {MAX_ROWS} rows merged: the per-customer line counts ({COUNT_DTYPE}) would overflow")
        self.n_rows_seen += other.n_rows_seen
        for mine, theirs in ((self._lines, other._lines), (self._visits, other._visits), (self._profile, other._profile)):
            mine.add(theirs.merged())
        self._customer_ids = None

    @property
    def n_customers(self) -> int:
        """Number of distinct customers seen so far."""
        return len(self._sorted_ids())

    @property
    def n_rows_held(self) -> dict[str, int]:
        """Rows held per partial table (state + queue): O(customers), O(visits), O(customer × address keys)."""
        return {"lines": self._lines.n_rows_held, "visits": self._visits.n_rows_held,
                "profile": self._profile.n_rows_held}

    def store_addresses(self) -> dict[str, Any]:
        """== ``_learn_store_addresses(all rows)``: {"store_state": {str(store): state key}, "store_pin_prefix":
        {str(store): PIN prefix}}, each the most frequent known value among the store's rows, ties to the smallest."""
        profile = self._profile.merged()
        return {
            "store_state": _most_frequent(profile, STORE, STATE_KEY),
            "store_pin_prefix": _most_frequent(profile, STORE, PIN_PREFIX),
        }

    def units(self, reference: pd.Timestamp | None, learned: Mapping[str, Any]) -> Units:
        """== ``_bigbazaar_customer_units(all rows, SCHEMAS["bigbazaar"], reference, learned)``, customers in sorted
        id order; ``learned`` as returned by ``store_addresses`` (or from a fit on other rows)."""
        if reference is None:
            raise ValueError("customer-level features need a reference date")
        customers = self._lines.merged()
        reference_day = int(np.datetime64(pd.Timestamp(reference).normalize().date(), "D").astype(np.int64))
        frequency = self._visits.merged().group_by(ID).agg(pl.len().alias("frequency"))
        profile = self._profile.merged()
        flags = _address_flag_counts(profile, learned)
        table = (
            customers
            .join(frequency, on=ID, how="left")
            .join(_mode(profile, STORE).rename({STORE: "home_store_code"}), on=ID, how="left")
            .join(_mode(profile, "Gender"), on=ID, how="left")
            .join(flags, on=ID, how="left")
            .sort(ID)
        )
        return _units_frame(table, reference_day)

    def unit_codes(self, customer_ids: np.ndarray | pl.Series) -> np.ndarray:
        """Each row's position among the sorted distinct customer ids (== ``customer_codes``), (n_rows,) int64."""
        ids = customer_ids.to_numpy() if isinstance(customer_ids, pl.Series) else np.asarray(customer_ids)
        sorted_ids = self._sorted_ids()
        codes = np.searchsorted(sorted_ids, ids)
        unknown = (codes >= len(sorted_ids)) | (sorted_ids[np.minimum(codes, len(sorted_ids) - 1)] != ids)
        if unknown.any():
            raise ValueError(
                f"customer_ids holds {int(unknown.sum())} ids never seen by update(), e.g. {ids[unknown][:5].tolist()}"
            )
        return codes.astype(np.int64)

    def _sorted_ids(self) -> np.ndarray:
        if self._customer_ids is None:
            self._customer_ids = np.sort(self._lines.merged()[ID].to_numpy())
        return self._customer_ids


def _line_columns(chunk: pl.DataFrame) -> pl.DataFrame:
    """The per-line inputs: keys (day = days since 1970-01-01), state key, PIN prefix and the 0/1 line flags."""
    price = pl.col("sale_price_after_promo").cast(pl.Float64)
    weekday = pandas_weekday_expr(pl.col("transactionDate"))
    purchase = price > 0  # purchase lines: positive amount and not a return (a return is a negative price)
    family = product_family_expr(pl.col("product_code"))
    return chunk.select(
        pl.col(ID).cast(pl.Int64),
        pl.col(STORE).cast(pl.Int64),
        pl.col("transactionDate").cast(pl.Date).cast(pl.Int32).alias(DAY),
        pl.col("till_no").cast(pl.Int64),
        pl.col("transaction_number_by_till").cast(pl.Int64),
        pl.col("Gender").cast(pl.Utf8),
        state_key_expr(pl.col("State").cast(pl.Utf8)).alias(STATE_KEY),
        pin_prefix_expr(pl.col("PinCode").cast(pl.Int64)).alias(PIN_PREFIX),
        purchase.alias("purchase"),
        pl.when(purchase).then(price).otherwise(0.0).alias(REVENUE),
        pl.when(purchase).then(price.log()).otherwise(0.0).alias("log_price_sum"),
        pl.col("Age").cast(pl.Int64).alias("age_sum"),
        (price < 0).alias("n_return"),
        (price == 0).alias("n_free"),
        (weekday >= SATURDAY).alias("n_weekend"),
        (weekday == WEDNESDAY).alias("n_wednesday"),
        pl.col("transactionDate").dt.month().is_in(list(FESTIVE_MONTHS)).alias("n_festive"),
        (pl.col("promo_code") != 0).alias("n_promo"),
        *(token_flag_expr(pl.col("discountUsed"), token).alias(f"n_{token}") for token in LOYALTY_TOKENS),
        *((family == name).alias(f"n_{name}") for name in PRODUCT_FAMILIES),
    )


def _line_partial(lines: pl.DataFrame) -> pl.DataFrame:
    """One chunk's per-customer line statistics (the ``lines`` table's columns)."""
    counts = ["purchase", "n_return", "n_free", "n_weekend", "n_wednesday", "n_festive", "n_promo",
              *(f"n_{token}" for token in LOYALTY_TOKENS), *(f"n_{family}" for family in PRODUCT_FAMILIES)]
    return lines.group_by(ID).agg(
        pl.col(DAY).min().alias("first_day"),
        pl.col(DAY).max().alias("last_day"),
        pl.len().cast(COUNT_DTYPE).alias(N_ROWS),
        pl.col("purchase").sum().cast(COUNT_DTYPE).alias("n_purchase"),
        pl.col(REVENUE).sum(),
        pl.col("log_price_sum").sum(),
        pl.col("age_sum").sum(),
        *(pl.col(column).sum().cast(COUNT_DTYPE) for column in counts if column != "purchase"),
    )


def _ranked_first(counts: pl.DataFrame, group: str, value: str) -> pl.DataFrame:
    """Per ``group``, the ``value`` with the largest summed COUNT; ties to the smallest value; sorted by group."""
    return (
        counts.sort([group, COUNT, value], descending=[False, True, False])
        .unique(subset=group, keep="first", maintain_order=True)
        .select(group, value)
    )


def _mode(profile: pl.DataFrame, value: str) -> pl.DataFrame:
    """Per customer, the most frequent ``value`` of its lines (as ``_mode_per_customer``)."""
    counts = profile.group_by([ID, value]).agg(pl.col(COUNT).sum())
    return _ranked_first(counts, ID, value)


def _most_frequent(profile: pl.DataFrame, group: str, value: str) -> dict[str, Any]:
    """{str(group): its most frequent non-null ``value``} (as ``_most_frequent_per_store``)."""
    counts = profile.drop_nulls(value).group_by([group, value]).agg(pl.col(COUNT).sum())
    best = _ranked_first(counts, group, value)
    return {str(key): item for key, item in zip(best[group].to_list(), best[value].to_list())}


def _address_flag_counts(profile: pl.DataFrame, learned: Mapping[str, Any]) -> pl.DataFrame:
    """Per customer, the lines flagged out of state and outside the store's PIN city (as ``_address_flags``)."""
    for key in ("store_state", "store_pin_prefix"):
        if key not in learned:
            raise ValueError(f"learned lacks {key!r}: pass store_addresses() (keys store_state, store_pin_prefix)")
    store_text = pl.col(STORE).cast(pl.Utf8)
    seen = {str(store) for store in profile[STORE].unique().to_list()}
    unknown_stores = sorted(seen - set(learned["store_state"]) - set(learned["store_pin_prefix"]))
    if unknown_stores:
        logger.warning("stores %s were not seen at fit: their rows get no address flags", unknown_stores[:10])
    store_state = pl.DataFrame(
        {"store_text": list(learned["store_state"]), "store_state": list(learned["store_state"].values())},
        schema={"store_text": pl.Utf8, "store_state": pl.Utf8},
    )
    store_prefix = pl.DataFrame(
        {"store_text": list(learned["store_pin_prefix"]),
         "store_prefix": [int(value) for value in learned["store_pin_prefix"].values()]},
        schema={"store_text": pl.Utf8, "store_prefix": pl.Int64},
    )
    with_store = (
        profile.with_columns(store_text.alias("store_text"))
        .join(store_state, on="store_text", how="left")
        .join(store_prefix, on="store_text", how="left")
    )
    out_of_state = pl.col(STATE_KEY).is_not_null() & pl.col("store_state").is_not_null() & (
        pl.col(STATE_KEY) != pl.col("store_state"))
    outside_city = pl.col(PIN_PREFIX).is_not_null() & pl.col("store_prefix").is_not_null() & (
        pl.col(PIN_PREFIX) != pl.col("store_prefix"))
    return with_store.group_by(ID).agg(
        pl.col(COUNT).filter(out_of_state).sum().cast(pl.Int64).alias("n_out_of_state"),
        pl.col(COUNT).filter(outside_city).sum().cast(pl.Int64).alias("n_outside_city"),
    )


def _units_frame(table: pl.DataFrame, reference_day: int) -> Units:
    """The pandas Units of the merged per-customer table (sorted ids), with the formulas of ``_customer_activity``
    and ``_bigbazaar_customer_units``: shares = count / n_rows, means = sum / count."""
    def column(name: str, dtype: type = np.int64) -> np.ndarray:
        return table[name].to_numpy().astype(dtype)

    n_rows, frequency = column(N_ROWS), column("frequency")
    first_day, last_day = column("first_day"), column("last_day")
    monetary_total = column(REVENUE, np.float64)
    n_purchase = column("n_purchase").astype(np.float64)
    log_price_sum = column("log_price_sum", np.float64)
    sources = pd.DataFrame({
        **activity_columns(reference_day, first_day, last_day, frequency, n_rows, monetary_total, n_purchase,
                           log_price_sum),
        **{share: column(count, np.float64) / n_rows for share, count in LINE_SHARES},
        "out_of_state_share": column("n_out_of_state", np.float64) / n_rows,
        "pin_outside_city_share": column("n_outside_city", np.float64) / n_rows,
        "Age": column("age_sum", np.float64) / n_rows,
        "Gender": table["Gender"].to_numpy().astype(object),
        "home_store_code": column("home_store_code"),
    })
    ids = pd.DataFrame({ID: column(ID), N_ROWS: n_rows, REVENUE: monetary_total})
    return Units(ids, sources)
