"""Built-in synthetic retail data in the exact ``cproducts.csv`` schema, with planted customer segments.

Specification: shared/SYNTHETIC_DATA.md. Calibrated to the real Big Bazaar sample (11,972 rows, 10,410 customers).

How a data set is drawn (all vectorised NumPy; every stage has its own ``default_rng`` stream spawned from
``SeedSequence(seed)``, so one stage's draws never shift another's):

1. **Customers.** IDs ``BBID_`` + a unique integer with 4-9 digits (shares .0001/.0005/.0057/.06/.5757/.357).
   Segments S1..S8 (+S9) by exact apportionment of ``1 - noise_frac`` by segment weight; noise customers get -1.
   Rows per customer: ``sample`` = P(1..7) = .879/.098/.0186/.0037/.0003/.0005/.0001, ``panel`` = 1 + Poisson(6).
2. **Customer attributes** (constant per customer): home store ~ store weights; male share .728 of known genders;
   age at the day after the date range ~ 3.82 + lognormal(3.554, 0.341) (median 39, IQR 31-48, p5 24, p95 65),
   males +0.675 y, females -1.825 y, clipped to 16-85, birthday uniform except 2.8% heaped on 01-01/06-01;
   State = home state (.85/.87) or a neighbour state; PinCode from the city's 100 local codes, Zipf(1.45);
   discount-token set: independent Bernoulli per token with probabilities solved so that, after rejecting the
   empty set, the marginals are FPC .001, FGShoppingFest .02, BBSavingsClub .034, T24Club (store rate),
   BBProfitClub .18, Payback .84. The set is reused on every row with p=.82, else redrawn per row.
3. **Rows.** Store = home store with p=.96, else another store by weight. Daily volume ∝ exp(0.73·t/T)
   × month factor (Feb .65, Dec/Jan 1.1) × 1.5 inside the festival window (Oct 1-Nov 30 of the first full year
   in range) × day-of-week weight (Mon..Sun 1.0, .95, 1.77, .99, 1.05, 1.71, 2.56), zero before the store opens.
   The day of week is drawn first, then the day. Till = floor(triangular(1, mode, Tmax+1)); transaction number
   ~ U{1..99,999}; a row joins its predecessor's basket (same store, day, till, number) with p=.23, at most 3 lines.
   Product pool ~ FMCG .68 / GM .23 / apparel .09, SKU by Zipf-Mandelbrot popularity. Promo with
   p = store rate × family rate (.24/.36/.52) / .29, a code by Zipf popularity within the family, price =
   base × (1 - d), d ~ U(.05, .30). Free items: p=.053 on promo rows, .015 otherwise; returns (-price) p=.001.
   Exactly one row carries LOCALPROMO. FGShoppingFest is added inside the festival window with p=.6.
4. **Segments.** Each segment parameter is interpolated between its background value (separation 0) and the
   listed value (separation 1): probabilities and shares linearly, p = (1-s)·p_bg + s·p_seg; continuous values
   (birth date, till number) through their quantile functions, x = (1-s)·F_bg⁻¹(u) + s·F_seg⁻¹(u); the price
   level by exponential tilting of the SKU popularity, w_j ∝ pop_j · g_s(price_j) / g_0(price_j), with g a
   lognormal whose log-median and sigma move linearly from the pool's own (g_0) to the segment's.
   At separation 0 the transactions are exactly those of a data set with no segments at all.
5. **Dirt** (customer level, independent of segment; rates × 0 / 1 / 3 for none / real / heavy): DOB blank .027,
   NANA .013, junk ages 90-108 .005; Gender blank with p=.95 when the DOB is missing, else so that .08 of rows
   are blank; PinCode blank .068 (p=.978 when the DOB is blank, .90 when NANA, as in the real file, so that
   dropping blank-DOB or blank-PinCode rows removes ~7%), 999999 .043, a 5-digit value .0001; State blank .13
   (p=.62 when the PinCode is blank), junk .002 (DUMMY, x, Other), variant spellings (TAMILNADU for 10% of
   TAMIL NADU, rarer others).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from pipeline.atomic import write_csv_atomic
from pipeline.synthetic_catalog import (
    APPAREL,
    COOKWARE,
    BACKGROUND_POOL_SHARES,
    FMCG,
    GM,
    HOME_TEXTILES,
    POOL_FAMILY,
    POOL_SPECS,
    STORE_SETS,
    StoreSet,
    pin_pools,
    product_catalog,
    promo_catalog,
)

logger = logging.getLogger(__name__)

TRANSACTION_COLUMNS: tuple[str, ...] = (
    "customerID", "DOB", "Gender", "State", "PinCode", "transactionDate", "store_code", "store_description",
    "till_no", "transaction_number_by_till", "promo_code", "promotion_description", "product_code",
    "product_description", "sale_price_after_promo", "discountUsed",
)
SEGMENT_NAMES: dict[int, str] = {
    1: "Young value grocery",
    2: "Family staples",
    3: "Apparel promo hunters",
    4: "Festival shoppers",
    5: "Senior loyalists",
    6: "Big-ticket home",
    7: "Out-of-state visitors",
    8: "Hubli T24 regulars",
    9: "Wednesday deal seekers",
}
NOISE_SEGMENT_ID = -1
NOISE_SEGMENT_NAME = "noise"
TOKENS: tuple[str, ...] = ("FuturePrivilegeClub", "FGShoppingFest", "BBSavingsClub", "T24Club", "BBProfitClub",
                           "Payback")
FPC, FGSF, BBSC, T24, BBPC, PAYBACK = range(6)
ROWS_PER_CUSTOMER_MODES = ("sample", "panel")
DIRT_LEVELS: dict[str, float] = {"none": 0.0, "real": 1.0, "heavy": 3.0}

ID_DIGIT_SHARES = {4: 0.0001, 5: 0.0005, 6: 0.0057, 7: 0.06, 8: 0.5757, 9: 0.357}
SAMPLE_ROWS_PER_CUSTOMER = np.array([0.879, 0.098, 0.0186, 0.0037, 0.0003, 0.0005, 0.0001])
PANEL_POISSON_MEAN = 6.0
AGE_SHIFT, AGE_LOG_MEDIAN, AGE_LOG_SIGMA = 3.821, 3.5538, 0.3413
AGE_MIN, AGE_MAX = 16.0, 85.0
AGE_GENDER_OFFSET = {True: 0.675, False: -1.825}  # female ages ~2.5 y below male, overall median kept at 39
DAYS_PER_YEAR = 365.2425
BIRTHDAY_HEAP_SHARE = 0.028
MALE_SHARE = 0.67 / 0.92
HOME_STATE_SHARE = 0.85 / 0.87
HOME_STORE_SHARE = 0.96
DOW_WEIGHTS = np.array([1.0, 0.95, 1.77, 0.99, 1.05, 1.71, 2.56])
TREND_GROWTH = 0.73
MONTH_FACTORS = {2: 0.65, 12: 1.1, 1: 1.1}
FESTIVAL_FACTOR = 1.5
FESTIVAL_TOKEN_SHARE = 0.6
BASKET_JOIN_SHARE = 0.23
MAX_BASKET_LINES = 3
TRANSACTION_NUMBER_MAX = 99_999
FAMILY_PROMO_RATES = np.array([0.24, 0.36, 0.52])
OVERALL_PROMO_RATE = 0.29
MAX_PROMO_RATE = 0.95
DISCOUNT_RANGE = (0.05, 0.30)
FREE_ITEM_SHARE = {True: 0.053, False: 0.015}
RETURN_SHARE = 0.001
NONPROMO_INDEX, LOCALPROMO_INDEX = -1, -2
TOKEN_RATES = np.array([0.001, 0.02, 0.034, np.nan, 0.18, 0.84])  # T24Club comes from the store
TOKEN_SET_CONSTANT_SHARE = 0.82
TOKEN_FIXED_POINT_ITERATIONS = 200
HIDDEN_SEGMENT_ID = 9
S9_WEIGHT = 0.10

DIRT_DOB_BLANK, DIRT_DOB_NANA, DIRT_JUNK_AGE = 0.027, 0.013, 0.005
JUNK_AGE_RANGE = (90.0, 108.0)
DIRT_GENDER_BLANK, GENDER_BLANK_WHEN_NO_DOB = 0.08, 0.95
DIRT_STATE_BLANK = 0.13
MAX_VARIANT_SHARE = 0.5
DIRT_PIN_PLACEHOLDER, DIRT_PIN_BLANK, DIRT_PIN_SHORT = 0.043, 0.068, 0.0001
PIN_BLANK_WHEN_DOB_BLANK, PIN_BLANK_WHEN_DOB_NANA = 0.978, 0.90  # real file: missing fields travel together,
STATE_BLANK_WHEN_PIN_BLANK = 0.62                                 # so cleaning drops ~7% of rows, not 9%
PIN_PLACEHOLDER = 999999

STREAMS = ("ids", "segments", "customers", "tokens", "stores", "dates", "baskets", "products", "promos", "dirt")


@dataclass(frozen=True)
class SegmentSpec:
    """One planted segment's parameters at separation 1; ``None`` means 'as the background'.

    ``pool_shares`` are row shares over the pools (FMCG, GM, APPAREL, COOKWARE, HOME_TEXTILES). Price level:
    ``price_factor`` multiplies each pool's median, or ``price_lognormal`` = (median, sigma) replaces it.
    ``tokens`` maps a token index to its probability; with ``exact_tokens`` every other token has probability 0.
    ``dow_share`` = (mask over Mon..Sun, share of rows on those days). ``home_store`` is "t24", "visitor" or
    "festival" (stores open during the festival window).
    """

    segment_id: int
    weight: float
    age_range: tuple[float, float] | None = None
    male_share: float | None = None
    pool_shares: tuple[float, ...] | None = None
    price_factor: float | None = None
    price_lognormal: tuple[float, float] | None = None
    promo_rate: float | None = None
    tokens: dict[int, float] | None = None
    exact_tokens: bool = False
    dow_share: tuple[tuple[bool, ...], float] | None = None
    festival: bool = False
    home_store: str | None = None
    home_store_share: float | None = None
    foreign_state: bool = False
    till_range: tuple[int, int] | None = None
    wed_food_promos: bool = False


def _pool_shares(shares: dict[int, float]) -> tuple[float, ...]:
    """Row shares over all product pools from {pool: share}; unlisted pools get 0."""
    return tuple(shares.get(pool, 0.0) for pool in range(len(POOL_SPECS)))


_WEEKEND = (False, False, False, False, False, True, True)
_WEEKDAYS = (True, True, True, True, True, False, False)
_WEDNESDAY = (False, False, True, False, False, False, False)
# Price factors are the listed segment median over the background median of the segment's main goods
# (FMCG 60; FMCG+GM 63; apparel 349). S6: lognormal whose 5%..95% range is 1,000..8,000.
SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(1, 0.20, age_range=(21, 29), male_share=0.85,
                pool_shares=_pool_shares({FMCG: 0.95, GM: 0.04, APPAREL: 0.01}), price_factor=35 / 60,
                promo_rate=0.10, tokens={PAYBACK: 1.0}, exact_tokens=True),
    SegmentSpec(2, 0.18, age_range=(32, 45), male_share=0.30, pool_shares=_pool_shares({FMCG: 0.6, GM: 0.4}),
                price_factor=90 / 63, dow_share=(_WEEKEND, 0.7), tokens={BBPC: 1.0, PAYBACK: 1.0},
                exact_tokens=True),
    SegmentSpec(3, 0.12, age_range=(24, 38), male_share=0.35,
                pool_shares=_pool_shares({FMCG: 0.10, GM: 0.05, APPAREL: 0.85}), price_factor=450 / 349,
                promo_rate=0.90, tokens={T24: 1.0}),
    SegmentSpec(4, 0.08, festival=True, home_store="festival", tokens={FGSF: 1.0},
                pool_shares=_pool_shares({FMCG: 0.40, GM: 0.35, APPAREL: 0.25}), price_factor=2.0),
    SegmentSpec(5, 0.10, age_range=(58, 75), male_share=0.60, tokens={T24: 1.0, BBPC: 1.0, PAYBACK: 1.0},
                exact_tokens=True, dow_share=(_WEEKDAYS, 0.8), promo_rate=0.15),
    SegmentSpec(6, 0.07, age_range=(35, 55), pool_shares=_pool_shares({COOKWARE: 0.5, HOME_TEXTILES: 0.5}),
                price_lognormal=(float(np.sqrt(1000 * 8000)), float(np.log(8) / (2 * 1.645))), promo_rate=0.5,
                tokens={BBSC: 0.8}),
    SegmentSpec(7, 0.10, home_store="visitor", home_store_share=1.0, foreign_state=True),
    SegmentSpec(8, 0.15, home_store="t24", home_store_share=1.0, tokens={T24: 1.0},
                pool_shares=_pool_shares({FMCG: 1.0}), till_range=(15, 19)),
    SegmentSpec(9, S9_WEIGHT, dow_share=(_WEDNESDAY, 0.9), promo_rate=0.8, wed_food_promos=True),
)


@dataclass(frozen=True)
class SyntheticData:
    """A generated data set.

    ``transactions``: the 16 ``cproducts.csv`` columns in order, typed as ``pd.read_csv`` types the real file
    (PinCode float64 with NaN, codes int64, text as strings with NaN for blanks, promo_code zero-padded text).
    ``truth``: one row per customer: customerID, segment_id (1..9, -1 noise), segment_name, is_noise, and the
    latent values drawn for the customer before the dirt overlay.
    """

    transactions: pd.DataFrame
    truth: pd.DataFrame


@dataclass(frozen=True)
class _Calendar:
    """Days of the date range with their weights; per store opening masks; the festival window."""

    days: np.ndarray          # [D] datetime64[D]
    iso: np.ndarray           # [D] 'YYYY-MM-DD' strings
    dow: np.ndarray           # [D] 0 = Monday
    volume: np.ndarray        # [D] trend × month × festival factor (no day-of-week factor)
    festival: np.ndarray      # [D] bool
    store_open: np.ndarray    # [S, D] bool
    background_ref: np.datetime64
    age_ref: np.datetime64


class _GroupedSampler:
    """Inverse-CDF sampling from many discrete distributions in one ``searchsorted``.

    Group g's normalised CDF is stored shifted by +g, so a draw for group g with u ∈ [0, 1) is the first entry
    whose shifted CDF exceeds g + u.
    """

    def __init__(self, values: list[np.ndarray], weights: list[np.ndarray]) -> None:
        sizes = np.array([len(group_values) for group_values in values])
        cumulative = []
        for group, group_weights in enumerate(weights):
            total = group_weights.sum()
            if total > 0:
                cdf = np.cumsum(group_weights) / total
                cdf[-1] = 1.0
            else:
                cdf = np.zeros(len(group_weights))
            cumulative.append(group + cdf)
        self._empty = np.array([group_weights.sum() <= 0 for group_weights in weights])
        self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._ends = self._starts + sizes - 1
        self._cumulative = np.concatenate(cumulative)
        self._values = np.concatenate(values)

    def sample(self, groups: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """One value per entry of ``groups`` (shape [N]), driven by ``uniforms`` in [0, 1) (shape [N])."""
        if np.any(self._empty[groups]):
            raise RuntimeError("internal error: sampling from an empty group")
        positions = np.searchsorted(self._cumulative, groups + uniforms, side="right")
        positions = np.clip(positions, self._starts[groups], self._ends[groups])
        return self._values[positions]


def _categorical(probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw: index k with probability P[n, k] / Σ_k P[n, k]; shapes [N, K], [N] -> [N]."""
    cumulative = np.cumsum(probabilities, axis=1)
    thresholds = uniforms * cumulative[:, -1]
    chosen = np.zeros(len(uniforms), dtype=np.int64)
    for column in range(probabilities.shape[1] - 1):  # K is small; a column loop beats a short-axis reduction
        chosen += cumulative[:, column] <= thresholds
    return chosen


def _blend(background: np.ndarray | float, segment: np.ndarray, separation: float) -> np.ndarray:
    """(1 - s)·background + s·segment, and the background itself where the segment value is NaN."""
    background = np.asarray(background, dtype=np.float64)
    blended = (1.0 - separation) * background + separation * np.nan_to_num(segment)
    return np.where(np.isnan(segment), background, blended)


def _validate(n_customers: Any, seed: Any, rows_per_customer: Any, separation: Any, noise_frac: Any, dirt: Any,
              date_range: Any, age_reference_date: Any, stores: Any, hidden_wednesday_segment: Any) -> None:
    """Raise TypeError/ValueError naming the first bad argument of ``generate``."""
    for name, value in (("n_customers", n_customers), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    choices = {"rows_per_customer": (rows_per_customer, ROWS_PER_CUSTOMER_MODES),
               "dirt": (dirt, tuple(DIRT_LEVELS)), "stores": (stores, tuple(STORE_SETS))}
    for name, (value, valid) in choices.items():
        if value not in valid:
            raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")
    for name, value in (("separation", separation), ("noise_frac", noise_frac)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__} {value!r}")
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    if not isinstance(hidden_wednesday_segment, (bool, np.bool_)):
        raise TypeError(f"hidden_wednesday_segment must be a bool, got {hidden_wednesday_segment!r}")
    if not isinstance(date_range, (tuple, list)) or len(date_range) != 2:
        raise ValueError(f"date_range must be a (start, end) pair of ISO dates, got {date_range!r}")
    for name, value in (("date_range[0]", date_range[0]), ("date_range[1]", date_range[1]),
                        ("age_reference_date", age_reference_date)):
        try:
            np.datetime64(str(value), "D")
        except ValueError as error:
            raise ValueError(f"{name} must be an ISO date YYYY-MM-DD, got {value!r}") from error
    if np.datetime64(str(date_range[0]), "D") >= np.datetime64(str(date_range[1]), "D"):
        raise ValueError(f"date_range must have start < end, got {tuple(date_range)!r}")


def _festival_window(start: np.datetime64, end: np.datetime64) -> tuple[np.datetime64, np.datetime64]:
    """Oct 1 - Nov 30 of the first year whose whole window lies in [start, end]."""
    first_year = start.astype("datetime64[Y]").astype(int) + 1970
    last_year = end.astype("datetime64[Y]").astype(int) + 1970
    for year in range(first_year, last_year + 1):
        window = (np.datetime64(f"{year}-10-01"), np.datetime64(f"{year}-11-30"))
        if window[0] >= start and window[1] <= end:
            return window
    raise ValueError(f"date_range {str(start)}..{str(end)} must contain a whole Oct 1 - Nov 30 festival window")


def _calendar(date_range: tuple[str, str], age_reference_date: str, store_set: StoreSet) -> _Calendar:
    """Day weights: exp(TREND_GROWTH·t/T) × month factor × festival factor; store openings at their fractions."""
    start, end = (np.datetime64(str(day), "D") for day in date_range)
    days = np.arange(start, end + 1)
    span = int((end - start).astype(int))
    months = days.astype("datetime64[M]").astype(int) % 12 + 1
    month_factor = np.ones(len(days))
    for month, factor in MONTH_FACTORS.items():
        month_factor[months == month] = factor
    window = _festival_window(start, end)
    festival = (days >= window[0]) & (days <= window[1])
    elapsed = (days - start).astype(int) / span
    volume = np.exp(TREND_GROWTH * elapsed) * month_factor * np.where(festival, FESTIVAL_FACTOR, 1.0)
    opening = start + np.array([round(store.opening_fraction * span) for store in store_set.stores])
    return _Calendar(days=days, iso=np.datetime_as_string(days, unit="D").astype(object),
                     dow=(days.astype(int) - 4) % 7, volume=volume, festival=festival,
                     store_open=days[None, :] >= opening[:, None], background_ref=end + 1,
                     age_ref=np.datetime64(str(age_reference_date), "D"))


def _segment_specs(hidden_wednesday_segment: bool) -> tuple[SegmentSpec, ...]:
    """S1..S8, plus S9 when asked."""
    return tuple(spec for spec in SEGMENTS if hidden_wednesday_segment or spec.segment_id != HIDDEN_SEGMENT_ID)


def _segment_labels(rng: np.random.Generator, n_customers: int, noise_frac: float,
                    specs: tuple[SegmentSpec, ...]) -> np.ndarray:
    """Segment id per customer: exact largest-remainder counts (noise = round(noise_frac·n)), shuffled.

    S1..S8 share the non-noise customers by weight; S9, when present, takes S9_WEIGHT and scales the others
    by 1 - S9_WEIGHT.
    """
    ids = np.array([spec.segment_id for spec in specs])
    weights = np.array([spec.weight for spec in specs])
    if HIDDEN_SEGMENT_ID in ids:
        weights = np.where(ids == HIDDEN_SEGMENT_ID, weights, weights * (1 - S9_WEIGHT))
    n_noise = int(round(noise_frac * n_customers))
    quotas = weights / weights.sum() * (n_customers - n_noise)
    counts = np.floor(quotas).astype(int)
    remainder_order = np.argsort(-(quotas - counts), kind="stable")
    counts[remainder_order[: n_customers - n_noise - counts.sum()]] += 1
    labels = np.concatenate([np.full(n_noise, NOISE_SEGMENT_ID), np.repeat(ids, counts)])
    return rng.permutation(labels)


def _customer_ids(rng: np.random.Generator, n_customers: int) -> np.ndarray:
    """Unique integers, ascending, whose digit counts follow ID_DIGIT_SHARES."""
    digits = np.array(list(ID_DIGIT_SHARES))
    shares = np.array(list(ID_DIGIT_SHARES.values()))
    counts = rng.multinomial(n_customers, shares / shares.sum())
    blocks = []
    for n_digits, count in zip(digits, counts):
        low = 10 ** (int(n_digits) - 1)
        if count > 9 * low:
            raise ValueError(f"n_customers={n_customers} is too large for {n_digits}-digit customer IDs")
        blocks.append(low + rng.choice(9 * low, size=count, replace=False))
    return np.sort(np.concatenate(blocks).astype(np.int64))


@dataclass(frozen=True)
class _SegmentTable:
    """Segment parameters indexed by slot (0 = background, k = segment k); NaN = background."""

    age_low: np.ndarray           # [10]
    age_high: np.ndarray          # [10]
    male_share: np.ndarray        # [10]
    pool_shares: np.ndarray       # [10, 5]
    promo_rate: np.ndarray        # [10]
    tokens: np.ndarray            # [10, 6]
    dow_mask: np.ndarray          # [10, 7]
    dow_share: np.ndarray         # [10]
    festival: np.ndarray          # [10] bool
    home_store: np.ndarray        # [10, S]
    home_store_share: np.ndarray  # [10]
    foreign_state: np.ndarray     # [10] bool
    till_low: np.ndarray          # [10]
    till_high: np.ndarray         # [10]
    wed_food: np.ndarray          # [10] bool


def _segment_table(specs: tuple[SegmentSpec, ...], store_set: StoreSet, calendar: _Calendar) -> _SegmentTable:
    """Turn the segment specs into per-slot arrays (rows 1..9; row 0 and absent segments stay background)."""
    n_slots, n_stores = 10, len(store_set.stores)
    nan = np.full(n_slots, np.nan)
    table = {name: nan.copy() for name in ("age_low", "age_high", "male_share", "promo_rate", "dow_share",
                                           "home_store_share", "till_low", "till_high")}
    table.update(pool_shares=np.full((n_slots, 5), np.nan), tokens=np.full((n_slots, 6), np.nan),
                 dow_mask=np.zeros((n_slots, 7), dtype=bool), festival=np.zeros(n_slots, dtype=bool),
                 home_store=np.full((n_slots, n_stores), np.nan), foreign_state=np.zeros(n_slots, dtype=bool),
                 wed_food=np.zeros(n_slots, dtype=bool))
    open_in_window = (calendar.store_open & calendar.festival[None, :]).any(axis=1)
    for spec in specs:
        slot = spec.segment_id
        if spec.age_range is not None:
            table["age_low"][slot], table["age_high"][slot] = spec.age_range
        table["male_share"][slot] = np.nan if spec.male_share is None else spec.male_share
        table["promo_rate"][slot] = np.nan if spec.promo_rate is None else spec.promo_rate
        if spec.pool_shares is not None:
            table["pool_shares"][slot] = spec.pool_shares
        if spec.tokens is not None:
            if spec.exact_tokens:
                table["tokens"][slot] = 0.0
            for token, probability in spec.tokens.items():
                table["tokens"][slot, token] = probability
        if spec.dow_share is not None:
            table["dow_mask"][slot] = spec.dow_share[0]
            table["dow_share"][slot] = spec.dow_share[1]
        table["festival"][slot] = spec.festival
        if spec.home_store == "festival":
            weights = store_set.weights * open_in_window
            table["home_store"][slot] = weights / weights.sum()
        elif spec.home_store in ("t24", "visitor"):
            code = store_set.t24_store if spec.home_store == "t24" else store_set.visitor_store
            table["home_store"][slot] = np.eye(n_stores)[store_set.index_of(code)]
        table["home_store_share"][slot] = np.nan if spec.home_store_share is None else spec.home_store_share
        table["foreign_state"][slot] = spec.foreign_state
        if spec.till_range is not None:
            table["till_low"][slot], table["till_high"][slot] = spec.till_range
        table["wed_food"][slot] = spec.wed_food_promos
    return _SegmentTable(**table)


def _token_draw_probabilities(table: _SegmentTable, store_set: StoreSet, separation: float) -> np.ndarray:
    """Bernoulli probabilities per segment slot, store and token, shape [10, S, 6].

    Target marginals m = blend(background, segment) with background TOKEN_RATES (T24Club: the store's rate).
    Rejecting the empty set divides every marginal by Z = 1 - Π(1 - p), so the draw uses p = m·Z, with Z the
    fixed point of Z = 1 - Π(1 - m·Z), found by iterating from Z = 1.
    """
    background = np.tile(TOKEN_RATES, (len(store_set.stores), 1))
    background[:, T24] = [store.t24_rate for store in store_set.stores]
    targets = _blend(background[None, :, :], table.tokens[:, None, :], separation)
    nonempty = np.ones(targets.shape[:2] + (1,))
    for _ in range(TOKEN_FIXED_POINT_ITERATIONS):
        nonempty = 1.0 - np.prod(1.0 - targets * nonempty, axis=2, keepdims=True)
    return targets * nonempty


def _draw_token_bits(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """Independent Bernoulli bits per row of ``probabilities`` [N, 6], redrawing rows with no token at all."""
    if np.any(probabilities.max(axis=1) <= 0):
        raise RuntimeError("internal error: a discount-token row has no token with positive probability")
    bits = rng.random(probabilities.shape) < probabilities
    empty = ~bits.any(axis=1)
    while empty.any():
        bits[empty] = rng.random((int(empty.sum()), probabilities.shape[1])) < probabilities[empty]
        empty = ~bits.any(axis=1)
    return bits


def _token_strings(bits: np.ndarray) -> np.ndarray:
    """Comma-joined token names in canonical order, one per row of ``bits`` [N, 6]."""
    table = np.array([",".join(name for position, name in enumerate(TOKENS) if code >> (5 - position) & 1)
                      for code in range(64)], dtype=object)
    return table[bits.astype(np.int64) @ (1 << np.arange(5, -1, -1))]


@dataclass(frozen=True)
class _Customers:
    """Latent customer attributes, shape [C] each (before the dirt overlay)."""

    ids: np.ndarray
    labels: np.ndarray           # object: 'BBID_<id>'
    segment: np.ndarray
    slot: np.ndarray
    n_rows: np.ndarray
    home_store: np.ndarray
    male: np.ndarray
    dob: np.ndarray              # datetime64[D]
    dob_iso: np.ndarray          # object: 'YYYY-MM-DD'
    state: np.ndarray            # object
    pin: np.ndarray              # int64
    token_probabilities: np.ndarray  # [C, 6]
    token_bits: np.ndarray       # [C, 6] bool
    tokens_constant: np.ndarray  # bool


def _iso_dates(days: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DD' object strings for a datetime64[D] array (formatted once per distinct day)."""
    distinct, inverse = np.unique(days, return_inverse=True)
    return np.datetime_as_string(distinct, unit="D").astype(object)[inverse]


def _rows_per_customer(rng: np.random.Generator, n_customers: int, mode: str) -> np.ndarray:
    """Rows per customer: 'sample' = the real distribution over 1..7, 'panel' = 1 + Poisson(6)."""
    if mode == "panel":
        return 1 + rng.poisson(PANEL_POISSON_MEAN, n_customers)
    shares = SAMPLE_ROWS_PER_CUSTOMER / SAMPLE_ROWS_PER_CUSTOMER.sum()
    return 1 + rng.choice(len(shares), size=n_customers, p=shares)


def _birth_dates(rng: np.random.Generator, slot: np.ndarray, male: np.ndarray, table: _SegmentTable,
                 calendar: _Calendar, separation: float) -> np.ndarray:
    """Birth dates by quantile interpolation between the background age and the segment's uniform age range.

    Background age at ``calendar.background_ref``: AGE_SHIFT + exp(AGE_LOG_MEDIAN + AGE_LOG_SIGMA·z) + gender
    offset, clipped to [16, 85]; segment age at ``calendar.age_ref``: low + u·(high - low), same u = Φ(z).
    """
    n_customers = len(slot)
    normal = rng.standard_normal(n_customers)
    offset = np.where(male, AGE_GENDER_OFFSET[True], AGE_GENDER_OFFSET[False])
    background_age = np.clip(AGE_SHIFT + np.exp(AGE_LOG_MEDIAN + AGE_LOG_SIGMA * normal) + offset, AGE_MIN, AGE_MAX)
    background_day = calendar.background_ref.astype(int) - background_age * DAYS_PER_YEAR
    low, high = table.age_low[slot], table.age_high[slot]
    segment_age = low + special.ndtr(normal) * (high - low)
    segment_day = calendar.age_ref.astype(int) - segment_age * DAYS_PER_YEAR
    birth_day = np.floor(_blend(background_day, segment_day, separation)).astype(np.int64)
    dob = birth_day.astype("datetime64[D]")
    heaped = rng.random(n_customers) < BIRTHDAY_HEAP_SHARE
    heap_month = np.where(rng.random(n_customers) < 0.5, 0, 5)
    heaped_dob = (dob.astype("datetime64[Y]").astype("datetime64[M]") + heap_month).astype("datetime64[D]")
    return np.where(heaped, heaped_dob, dob)


def _states_and_pins(rng: np.random.Generator, home_store: np.ndarray, slot: np.ndarray, table: _SegmentTable,
                     store_set: StoreSet, separation: float) -> tuple[np.ndarray, np.ndarray]:
    """Latent State and PinCode per customer: the home city (Zipf over its local codes) and the home state
    (or a neighbour state), except visitors, who come from a foreign region with a foreign PinCode prefix."""
    n_customers = len(slot)
    stores = store_set.stores
    foreign = rng.random(n_customers) < separation * table.foreign_state[slot]
    home_state = np.array([store.state for store in stores], dtype=object)[home_store]
    neighbour_pick = rng.random(n_customers)
    neighbours = [np.array(store.neighbour_states, dtype=object) for store in stores]
    neighbour_state = np.empty(n_customers, dtype=object)
    for index, options in enumerate(neighbours):
        at_store = home_store == index
        neighbour_state[at_store] = options[(neighbour_pick[at_store] * len(options)).astype(int)]
    state = np.where(rng.random(n_customers) < HOME_STATE_SHARE, home_state, neighbour_state)

    pools = pin_pools(store_set.name)
    cities = list(pools)
    city_of_store = np.array([cities.index(store.city) for store in stores])
    sampler = _GroupedSampler([pools[city].codes for city in cities], [pools[city].weights for city in cities])
    pin = sampler.sample(city_of_store[home_store], rng.random(n_customers))

    regions = store_set.foreign_regions
    region_weights = np.array([weight for _, _, weight in regions])
    region = rng.choice(len(regions), size=n_customers, p=region_weights / region_weights.sum())
    foreign_state = np.array([name for name, _, _ in regions], dtype=object)[region]
    foreign_pin = np.array([prefix for _, prefix, _ in regions])[region] * 1000 + rng.integers(1, 100, n_customers)
    return np.where(foreign, foreign_state, state), np.where(foreign, foreign_pin, pin).astype(np.int64)


def _draw_customers(streams: dict[str, np.random.Generator], n_customers: int, rows_per_customer: str,
                    noise_frac: float, separation: float, specs: tuple[SegmentSpec, ...], table: _SegmentTable,
                    store_set: StoreSet, calendar: _Calendar) -> _Customers:
    """All latent customer-level attributes (see the module docstring, steps 1-2)."""
    ids = _customer_ids(streams["ids"], n_customers)
    segment = _segment_labels(streams["segments"], n_customers, noise_frac, specs)
    slot = np.maximum(segment, 0)
    rng = streams["customers"]
    n_rows = _rows_per_customer(rng, n_customers, rows_per_customer)
    home_probabilities = _blend(store_set.weights[None, :], table.home_store[slot], separation)
    home_store = _categorical(home_probabilities, rng.random(n_customers))
    male = rng.random(n_customers) < _blend(MALE_SHARE, table.male_share[slot], separation)
    dob = _birth_dates(rng, slot, male, table, calendar, separation)
    state, pin = _states_and_pins(rng, home_store, slot, table, store_set, separation)

    token_rng = streams["tokens"]
    token_probabilities = _token_draw_probabilities(table, store_set, separation)[slot, home_store]
    token_bits = _draw_token_bits(token_rng, token_probabilities)
    tokens_constant = token_rng.random(n_customers) < TOKEN_SET_CONSTANT_SHARE
    return _Customers(ids=ids, labels="BBID_" + ids.astype(str).astype(object), segment=segment, slot=slot,
                      n_rows=n_rows, home_store=home_store, male=male, dob=dob, dob_iso=_iso_dates(dob), state=state,
                      pin=pin, token_probabilities=token_probabilities, token_bits=token_bits,
                      tokens_constant=tokens_constant)


@dataclass(frozen=True)
class _Rows:
    """Row-level draws, shape [N] each, in customer order."""

    customer: np.ndarray
    store: np.ndarray
    day: np.ndarray          # index into calendar.days
    till: np.ndarray
    transaction_number: np.ndarray
    sku: np.ndarray
    promo: np.ndarray        # index into the promo catalogue, or NONPROMO_INDEX / LOCALPROMO_INDEX
    price: np.ndarray
    token_bits: np.ndarray   # [N, 6]


def _draw_stores(rng: np.random.Generator, customers: _Customers, customer: np.ndarray, festival: np.ndarray,
                 table: _SegmentTable, store_set: StoreSet, calendar: _Calendar, separation: float) -> np.ndarray:
    """Row store: the home store with p = blend(.96, segment share), else another store by weight; festival
    rows only use stores that are open during the window."""
    n_rows = len(customer)
    home = customers.home_store[customer]
    slot = customers.slot[customer]
    open_in_window = (calendar.store_open & calendar.festival[None, :]).any(axis=1)
    home_share = _blend(HOME_STORE_SHARE, table.home_store_share[slot], separation)
    use_home = (rng.random(n_rows) < home_share) & (~festival | open_in_window[home])
    other_weights = np.tile(store_set.weights, (n_rows, 1))
    other_weights[np.arange(n_rows), home] = 0.0
    other_weights[festival] *= open_in_window
    other = _categorical(other_weights, rng.random(n_rows))
    return np.where(use_home, home, other)


def _draw_days(rng: np.random.Generator, store: np.ndarray, slot: np.ndarray, festival: np.ndarray,
               table: _SegmentTable, calendar: _Calendar, separation: float) -> np.ndarray:
    """Day index per row: day of week from blend(q_store, q_segment), then the day ∝ volume within the store's
    open days of that weekday; festival rows draw from the window ∝ volume × weekday weight instead."""
    n_stores = calendar.store_open.shape[0]
    day_indices = np.arange(len(calendar.days))
    values, weights = [], []
    for store_index in range(n_stores):
        for weekday in range(7):
            values.append(day_indices)
            weights.append(calendar.volume * calendar.store_open[store_index] * (calendar.dow == weekday))
    for store_index in range(n_stores):
        values.append(day_indices)
        weights.append(calendar.volume * DOW_WEIGHTS[calendar.dow] * calendar.store_open[store_index]
                       * calendar.festival)
    sampler = _GroupedSampler(values, weights)

    weekday_mass = np.stack([[w.sum() for w in weights[s * 7:(s + 1) * 7]] for s in range(n_stores)])
    background = weekday_mass * DOW_WEIGHTS[None, :]
    background = background / background.sum(axis=1, keepdims=True)  # [S, 7]
    row_background = background[store]  # [N, 7]
    mask = table.dow_mask[slot]  # [N, 7]
    share = table.dow_share[slot][:, None]
    inside = np.einsum("nk,nk->n", row_background, mask)[:, None]
    segment = np.where(mask, share * row_background / np.maximum(inside, 1e-300),
                       (1 - share) * row_background / np.maximum(1 - inside, 1e-300))
    weekday = _categorical(_blend(row_background, segment, separation), rng.random(len(store)))
    groups = np.where(festival, 7 * n_stores + store, 7 * store + weekday)
    return sampler.sample(groups, rng.random(len(store)))


def _draw_tills(rng: np.random.Generator, store: np.ndarray, slot: np.ndarray, table: _SegmentTable,
                store_set: StoreSet, separation: float) -> np.ndarray:
    """Till by quantile interpolation: background triangular(1, mode, Tmax+1), segment U[low, high+1); floor."""
    uniforms = rng.random(len(store))
    left = 1.0
    mode = np.array([s.till_mode for s in store_set.stores])[store]
    right = np.array([s.till_max for s in store_set.stores])[store] + 1.0
    split = (mode - left) / (right - left)
    background = np.where(uniforms < split,
                          left + np.sqrt(uniforms * (right - left) * (mode - left)),
                          right - np.sqrt((1 - uniforms) * (right - left) * (right - mode)))
    low, high = table.till_low[slot], table.till_high[slot]
    segment = low + uniforms * (high - low + 1.0)
    tills = np.floor(_blend(background, segment, separation)).astype(np.int64)
    upper = np.maximum(right - 1, np.nan_to_num(high, nan=0.0)).astype(np.int64)
    return np.clip(tills, 1, upper)


def _basket_leaders(rng: np.random.Generator, n_rows_per_customer: np.ndarray) -> np.ndarray:
    """Index of each row's basket leader: a row joins the previous one with p=.23 (never across customers),
    and a basket holds at most MAX_BASKET_LINES lines."""
    n_rows = int(n_rows_per_customer.sum())
    first_of_customer = np.zeros(n_rows, dtype=bool)
    first_of_customer[np.concatenate([[0], np.cumsum(n_rows_per_customer)[:-1]])] = True
    starts = first_of_customer | (rng.random(n_rows) >= BASKET_JOIN_SHARE)
    row_index = np.arange(n_rows)
    leader = np.maximum.accumulate(np.where(starts, row_index, 0))
    starts |= (row_index - leader) % MAX_BASKET_LINES == 0
    return np.maximum.accumulate(np.where(starts, row_index, 0))


def _sku_sampler(table: _SegmentTable, specs: tuple[SegmentSpec, ...], store_set: StoreSet,
                 separation: float) -> _GroupedSampler:
    """SKU sampler with groups slot·5 + pool; weights = popularity × g_s(price) / g_0(price).

    g_0 is the pool's base-price lognormal (POOL_SPECS); g_s has log-median and sigma moved linearly towards the
    segment's target (``price_factor`` × the pool median, or ``price_lognormal``). At s = 0 the ratio is exactly 1.
    """
    catalog = product_catalog(store_set.name)
    by_slot = {spec.segment_id: spec for spec in specs}
    values, weights = [], []
    for slot in range(len(table.festival)):
        spec = by_slot.get(slot)
        for pool, pool_spec in enumerate(POOL_SPECS):
            members = catalog.pool_members[pool]
            popularity = catalog.pool_popularity[pool]
            log_median, sigma = np.log(pool_spec.price_median), pool_spec.price_sigma
            if spec is not None and spec.price_lognormal is not None:
                target_log_median, target_sigma = np.log(spec.price_lognormal[0]), spec.price_lognormal[1]
            elif spec is not None and spec.price_factor is not None:
                target_log_median, target_sigma = log_median + np.log(spec.price_factor), sigma
            else:
                target_log_median, target_sigma = log_median, sigma
            tilted_log_median = (1 - separation) * log_median + separation * target_log_median
            tilted_sigma = (1 - separation) * sigma + separation * target_sigma
            log_price = np.log(np.maximum(catalog.base_prices[members], 1.0))
            log_ratio = (np.log(sigma / tilted_sigma) - 0.5 * ((log_price - tilted_log_median) / tilted_sigma) ** 2
                         + 0.5 * ((log_price - log_median) / sigma) ** 2)
            values.append(members)
            weights.append(popularity * np.exp(log_ratio - log_ratio.max()))
    return _GroupedSampler(values, weights)


def _promo_sampler() -> tuple[_GroupedSampler, int]:
    """Promo-code sampler with groups = family 0..2, and the 'WED FOOD' group (returned as the second value)."""
    catalog = promo_catalog()
    values = list(catalog.family_members) + [catalog.wed_food_members]
    weights = list(catalog.family_popularity) + [catalog.wed_food_popularity]
    return _GroupedSampler(values, weights), len(values) - 1


def _draw_products_and_prices(streams: dict[str, np.random.Generator], store: np.ndarray, slot: np.ndarray,
                              table: _SegmentTable, specs: tuple[SegmentSpec, ...], store_set: StoreSet,
                              separation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SKU, promo index (or NONPROMO_INDEX / LOCALPROMO_INDEX) and sale price (rounded to cents) per row."""
    rng = streams["products"]
    n_rows = len(store)
    pool_shares = _blend(BACKGROUND_POOL_SHARES[None, :], table.pool_shares[slot], separation)  # [N, 5]
    pool = _categorical(pool_shares, rng.random(n_rows))
    sku = _sku_sampler(table, specs, store_set, separation).sample(slot * len(POOL_SPECS) + pool, rng.random(n_rows))
    family = POOL_FAMILY[pool]

    promo_rng = streams["promos"]
    store_rates = np.array([s.promo_rate for s in store_set.stores])
    background_rate = np.minimum(store_rates[store] * FAMILY_PROMO_RATES[family] / OVERALL_PROMO_RATE,
                                 MAX_PROMO_RATE)
    is_promo = promo_rng.random(n_rows) < _blend(background_rate, table.promo_rate[slot], separation)
    promo_sampler, wed_food_group = _promo_sampler()
    wed_food = promo_rng.random(n_rows) < separation * table.wed_food[slot]
    promo_group = np.where(wed_food, wed_food_group, family)
    promo = np.where(is_promo, promo_sampler.sample(promo_group, promo_rng.random(n_rows)), NONPROMO_INDEX)
    promo[promo_rng.integers(n_rows)] = LOCALPROMO_INDEX

    discount = promo_rng.uniform(*DISCOUNT_RANGE, n_rows)
    base = product_catalog(store_set.name).base_prices[sku]
    on_promo = promo != NONPROMO_INDEX
    price = np.where(on_promo, base * (1.0 - discount), base)
    free = promo_rng.random(n_rows) < np.where(on_promo, FREE_ITEM_SHARE[True], FREE_ITEM_SHARE[False])
    returned = ~free & (promo_rng.random(n_rows) < RETURN_SHARE)
    price = np.where(free, 0.0, np.where(returned, -price, price))
    return sku, promo, np.rint(price * 100.0) / 100.0 + 0.0  # + 0.0 turns -0.0 into 0.0


def _draw_rows(streams: dict[str, np.random.Generator], customers: _Customers, specs: tuple[SegmentSpec, ...],
               table: _SegmentTable, store_set: StoreSet, calendar: _Calendar, separation: float) -> _Rows:
    """All row-level draws (module docstring, step 3), in customer order."""
    customer = np.repeat(np.arange(len(customers.ids)), customers.n_rows)
    n_rows = len(customer)
    slot = customers.slot[customer]
    store_rng = streams["stores"]
    festival = store_rng.random(n_rows) < separation * table.festival[slot]
    store = _draw_stores(store_rng, customers, customer, festival, table, store_set, calendar, separation)
    date_rng = streams["dates"]
    day = _draw_days(date_rng, store, slot, festival, table, calendar, separation)
    till = _draw_tills(date_rng, store, slot, table, store_set, separation)
    transaction_number = date_rng.integers(1, TRANSACTION_NUMBER_MAX + 1, n_rows)
    leader = _basket_leaders(streams["baskets"], customers.n_rows)
    store, day, till, transaction_number = store[leader], day[leader], till[leader], transaction_number[leader]

    sku, promo, price = _draw_products_and_prices(streams, store, slot, table, specs, store_set, separation)

    token_rng = streams["tokens"]
    redrawn = _draw_token_bits(token_rng, customers.token_probabilities[customer])
    token_bits = np.where(customers.tokens_constant[customer][:, None], customers.token_bits[customer], redrawn)
    festival_token_share = _blend(FESTIVAL_TOKEN_SHARE, table.tokens[slot, FGSF], separation)
    token_bits[:, FGSF] |= calendar.festival[day] & (token_rng.random(n_rows) < festival_token_share)
    return _Rows(customer=customer, store=store, day=day, till=till, transaction_number=transaction_number,
                 sku=sku, promo=promo, price=price, token_bits=token_bits)


@dataclass(frozen=True)
class _Observed:
    """Customer-level values as written (after the dirt overlay), shape [C] each; NaN = blank."""

    dob: np.ndarray      # object: ISO string, 'NANA' or NaN
    gender: np.ndarray   # object
    state: np.ndarray    # object
    pin: np.ndarray      # float64 with NaN


def _rest_rate(marginal: float, conditional: list[tuple[float, float]]) -> float:
    """Rate outside the given groups so the overall rate is ``marginal``: (m - Σ share·rate) / (1 - Σ share).

    ``conditional`` lists (group share, rate inside the group); the result is clipped to [0, 1].
    """
    inside = sum(share * rate for share, rate in conditional)
    outside_share = 1.0 - sum(share for share, _ in conditional)
    return float(np.clip((marginal - inside) / max(outside_share, 1e-12), 0.0, 1.0))


def _dirty_dob(rng: np.random.Generator, customers: _Customers, calendar: _Calendar,
               level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DOB text with blanks (.027), 'NANA' (.013) and junk ages 90-108 (.005), × level; also the two masks."""
    n_customers = len(customers.ids)
    dob = customers.dob_iso.copy()
    dob_pick = rng.random(n_customers)
    blank = dob_pick < DIRT_DOB_BLANK * level
    nana = ~blank & (dob_pick < (DIRT_DOB_BLANK + DIRT_DOB_NANA) * level)
    junk = ~blank & ~nana & (rng.random(n_customers) < DIRT_JUNK_AGE * level)
    junk_age = rng.uniform(*JUNK_AGE_RANGE, int(junk.sum()))
    junk_day = calendar.background_ref.astype(np.int64) - np.floor(junk_age * DAYS_PER_YEAR).astype(np.int64)
    dob[junk] = _iso_dates(junk_day.astype("datetime64[D]"))
    dob[nana] = "NANA"
    dob[blank] = np.nan
    return dob, blank, nana


def _dirty_gender(rng: np.random.Generator, customers: _Customers, missing_dob: np.ndarray,
                  level: float) -> np.ndarray:
    """Gender text: blank with p=.95 when the DOB is missing, otherwise at the rate that makes .08 × level."""
    missing_share = (DIRT_DOB_BLANK + DIRT_DOB_NANA) * level
    other_rate = _rest_rate(DIRT_GENDER_BLANK * level, [(missing_share, GENDER_BLANK_WHEN_NO_DOB)])
    blank = rng.random(len(missing_dob)) < np.where(missing_dob, GENDER_BLANK_WHEN_NO_DOB, other_rate)
    gender = np.where(customers.male, "male", "female").astype(object)
    gender[blank] = np.nan
    return gender


def _dirty_pin(rng: np.random.Generator, customers: _Customers, blank_dob: np.ndarray, nana_dob: np.ndarray,
               level: float) -> np.ndarray:
    """PinCode as float: blank .068 (nearly always when the DOB is blank or NANA, as in the real file),
    999999 .043 and a 5-digit value .0001, × level."""
    n_customers = len(customers.ids)
    blank_share, nana_share = DIRT_DOB_BLANK * level, DIRT_DOB_NANA * level
    other_rate = _rest_rate(DIRT_PIN_BLANK * level, [(blank_share, PIN_BLANK_WHEN_DOB_BLANK),
                                                     (nana_share, PIN_BLANK_WHEN_DOB_NANA)])
    blank_rate = np.where(blank_dob, PIN_BLANK_WHEN_DOB_BLANK, np.where(nana_dob, PIN_BLANK_WHEN_DOB_NANA, other_rate))
    blank = rng.random(n_customers) < blank_rate
    kept_share = 1.0 - DIRT_PIN_BLANK * level
    pick = rng.random(n_customers)
    placeholder = ~blank & (pick < DIRT_PIN_PLACEHOLDER * level / kept_share)
    short = ~blank & ~placeholder & (pick < (DIRT_PIN_PLACEHOLDER + DIRT_PIN_SHORT) * level / kept_share)
    pin = customers.pin.astype(np.float64)
    pin = np.where(short, np.floor(pin / 10.0), pin)
    pin = np.where(placeholder, float(PIN_PLACEHOLDER), pin)
    return np.where(blank, np.nan, pin)


def _dirty_state(rng: np.random.Generator, customers: _Customers, blank_pin: np.ndarray, store_set: StoreSet,
                 level: float) -> np.ndarray:
    """State text: blank .13 (.62 when the PinCode is blank), junk .002, variant spellings, × level."""
    n_customers = len(customers.ids)
    state = customers.state.copy()
    variant_pick = rng.random(n_customers)
    for clean, variants in store_set.state_variants.items():
        threshold = 0.0
        for variant, share in variants:
            share = min(share * level, MAX_VARIANT_SHARE)
            hit = (customers.state == clean) & (variant_pick >= threshold) & (variant_pick < threshold + share)
            state[hit] = variant
            threshold += share
    junk_pick = rng.random(n_customers)
    threshold = 0.0
    for junk_name, share in store_set.junk_states:
        hit = (junk_pick >= threshold) & (junk_pick < threshold + share * level)
        state[hit] = junk_name
        threshold += share * level
    other_rate = _rest_rate(DIRT_STATE_BLANK * level, [(DIRT_PIN_BLANK * level, STATE_BLANK_WHEN_PIN_BLANK)])
    blank = rng.random(n_customers) < np.where(blank_pin, STATE_BLANK_WHEN_PIN_BLANK, other_rate)
    state[blank] = np.nan
    return state


def _apply_dirt(rng: np.random.Generator, customers: _Customers, store_set: StoreSet, calendar: _Calendar,
                level: float) -> _Observed:
    """Blanks, placeholders, junk and variant spellings at the spec's rates × ``level`` (0, 1 or 3)."""
    dob, blank_dob, nana_dob = _dirty_dob(rng, customers, calendar, level)
    gender = _dirty_gender(rng, customers, blank_dob | nana_dob, level)
    pin = _dirty_pin(rng, customers, blank_dob, nana_dob, level)
    state = _dirty_state(rng, customers, np.isnan(pin), store_set, level)
    return _Observed(dob=dob, gender=gender, state=state, pin=pin)


def _transactions_frame(customers: _Customers, rows: _Rows, observed: _Observed, store_set: StoreSet,
                        calendar: _Calendar) -> pd.DataFrame:
    """The 16-column table, rows ordered by customer ID, then date."""
    order = np.lexsort((rows.day, rows.customer))
    customer = rows.customer[order]
    store = rows.store[order]
    promo = rows.promo[order]
    sku = rows.sku[order]
    products = product_catalog(store_set.name)
    promos = promo_catalog()
    promo_code = np.where(promo >= 0, promos.codes[np.maximum(promo, 0)], "NONPROMO")
    promo_code = np.where(promo == LOCALPROMO_INDEX, "LOCALPROMO", promo_code).astype(object)
    promo_text = np.where(promo >= 0, promos.descriptions[np.maximum(promo, 0)], np.nan)
    promo_text = np.where(promo == LOCALPROMO_INDEX, "LOCALPROMO", promo_text).astype(object)
    columns = {
        "customerID": customers.labels[customer],
        "DOB": observed.dob[customer],
        "Gender": observed.gender[customer],
        "State": observed.state[customer],
        "PinCode": observed.pin[customer],
        "transactionDate": calendar.iso[rows.day[order]],
        "store_code": store_set.codes[store],
        "store_description": np.array([s.description for s in store_set.stores], dtype=object)[store],
        "till_no": rows.till[order],
        "transaction_number_by_till": rows.transaction_number[order].astype(np.int64),
        "promo_code": promo_code,
        "promotion_description": promo_text,
        "product_code": products.codes[sku],
        "product_description": products.descriptions[sku],
        "sale_price_after_promo": rows.price[order],
        "discountUsed": _token_strings(rows.token_bits[order]),
    }
    return pd.DataFrame(columns, columns=list(TRANSACTION_COLUMNS))


def _truth_frame(customers: _Customers, store_set: StoreSet, calendar: _Calendar) -> pd.DataFrame:
    """One row per customer: segment labels and latent values (before dirt)."""
    name_of_slot = np.array([NOISE_SEGMENT_NAME] + [SEGMENT_NAMES[slot] for slot in range(1, 10)], dtype=object)
    age = (calendar.age_ref - customers.dob).astype(int) / DAYS_PER_YEAR
    return pd.DataFrame({
        "customerID": customers.labels,
        "segment_id": customers.segment.astype(np.int64),
        "segment_name": name_of_slot[customers.slot],
        "is_noise": (customers.segment == NOISE_SEGMENT_ID).astype(np.int64),
        "n_rows": customers.n_rows.astype(np.int64),
        "home_store_code": store_set.codes[customers.home_store],
        "home_state": customers.state,
        "pin_code": customers.pin,
        "gender": np.where(customers.male, "male", "female"),
        "dob": customers.dob_iso,
        "age_at_reference": np.round(age, 2),
        "discount_tokens": _token_strings(customers.token_bits),
        "discount_tokens_constant": customers.tokens_constant.astype(np.int64),
    })


def generate(n_customers: int = 10_000, *, seed: int = 0, rows_per_customer: str = "sample",
             separation: float = 1.0, noise_frac: float = 0.05, dirt: str = "real",
             date_range: tuple[str, str] = ("2015-05-01", "2017-06-30"), age_reference_date: str = "2018-03-01",
             stores: str = "bigbazaar", hidden_wednesday_segment: bool = False) -> SyntheticData:
    """Draw a synthetic ``cproducts.csv``-shaped data set with planted segments S1..S8 (+S9).

    ``separation`` ∈ [0, 1] moves every segment parameter from the background (0) to its listed value (1);
    ``noise_frac`` of the customers are pure background (segment -1); ``dirt`` adds blanks and junk at 0×/1×/3×
    the real rates; segment ages are ages at ``age_reference_date``. Same arguments -> identical output.
    Rows: ``n_customers`` × ~1.15 (``sample``) or × 7 (``panel``). See the module docstring for the distributions.
    """
    _validate(n_customers, seed, rows_per_customer, separation, noise_frac, dirt, date_range, age_reference_date,
              stores, hidden_wednesday_segment)
    started = time.perf_counter()
    separation, noise_frac = float(separation), float(noise_frac)
    store_set = STORE_SETS[stores]
    calendar = _calendar((str(date_range[0]), str(date_range[1])), str(age_reference_date), store_set)
    specs = _segment_specs(bool(hidden_wednesday_segment))
    table = _segment_table(specs, store_set, calendar)
    children = np.random.SeedSequence(int(seed)).spawn(len(STREAMS))
    streams = {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}

    customers = _draw_customers(streams, int(n_customers), rows_per_customer, noise_frac, separation, specs, table,
                                store_set, calendar)
    rows = _draw_rows(streams, customers, specs, table, store_set, calendar, separation)
    observed = _apply_dirt(streams["dirt"], customers, store_set, calendar, DIRT_LEVELS[dirt])
    transactions = _transactions_frame(customers, rows, observed, store_set, calendar)
    truth = _truth_frame(customers, store_set, calendar)
    logger.info("synthetic data: %d customers, %d rows (seed %d, separation %.2f, dirt %s) in %.2f s",
                n_customers, len(transactions), seed, separation, dirt, time.perf_counter() - started)
    return SyntheticData(transactions=transactions, truth=truth)


def _price_text(prices: pd.Series) -> pd.Series:
    """Prices as the real file writes them: '55', '34.2', '418.95', '-599' (no trailing zeros)."""
    cents = np.rint(prices.to_numpy() * 100.0).astype(np.int64)
    fractions = np.array([""] + [f".{cent:02d}".rstrip("0") for cent in range(1, 100)], dtype=object)
    sign = np.where(cents < 0, "-", "").astype(object)
    whole = (np.abs(cents) // 100).astype(str).astype(object)
    return pd.Series(sign + whole + fractions[np.abs(cents) % 100], index=prices.index, dtype=object)


def write_synthetic(out_dir: str | Path, **generate_kwargs: Any) -> tuple[Path, Path]:
    """Generate (``generate(**generate_kwargs)``) and write ``transactions.csv`` and ``truth.csv`` atomically.

    The transactions file has the real file's text formats: PinCode as an integer or blank, prices without
    trailing zeros, promo codes zero-padded, fields with commas quoted, LF line ends. ``pd.read_csv`` then gives
    the real file's dtypes; with ``dirt="none"`` PinCode has no blanks and is read as int64. Returns both paths.
    """
    data = generate(**generate_kwargs)
    out = Path(out_dir)
    text = data.transactions.copy()
    text["PinCode"] = text["PinCode"].astype("Int64")
    text["sale_price_after_promo"] = _price_text(text["sale_price_after_promo"])
    transactions_path = write_csv_atomic(text, out / "transactions.csv", lineterminator="\n")
    truth_path = write_csv_atomic(data.truth, out / "truth.csv", lineterminator="\n")
    logger.info("wrote %s and %s", transactions_path, truth_path)
    return transactions_path, truth_path
