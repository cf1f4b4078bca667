"""Built-in synthetic retail data in the exact ``cproducts.csv`` schema, with planted customer segments.

Specification: shared/SYNTHETIC_DATA.md, revised by issue 15 (item 8); measured calibration in
docs/synthetic_data.md. Calibrated to the real Big Bazaar sample (11,972 rows, 10,410 customers) for its row
marginals, and to UCI Online Retail for the shape of customer histories.

How a data set is drawn (all vectorised NumPy; every stage has its own ``default_rng`` stream spawned from
``SeedSequence(seed)``, so one stage's draws never shift another's):

1. **Customers.** IDs ``BBID_`` + a unique integer with 4-9 digits (shares .0001/.0005/.0057/.06/.5757/.357).
   Segments S1..S8 (+S9) by exact apportionment of ``1 - noise_frac`` by segment weight; noise customers get -1.
2. **Visits.** ``history``: visits = 1 + Poisson(λ), log λ = 0.25 + 1.40·z (median 2, p99 27-39, mean ~4.5, as
   UCI Online Retail), each visit one basket of 1 + Poisson(μ) lines, log μ = log 2 + 0.25·ε. ``sample``: the real
   file's rows per customer P(1..7) = .879/.098/.0186/.0037/.0003/.0005/.0001, a row joining its predecessor's
   basket with p=.23 (at most 3 lines); ``panel``: 1 + Poisson(6) rows, baskets as ``sample``.
   Tenure: the customer is active on a window of the calendar, span fraction L = expit(-0.6 + 1.2·(0.5 z + .87 η))
   (frequent customers stay longer), start = (1 - L)·Φ(ζ); each visit sits at a uniform point of the window, and
   the points of all visits are mapped through their empirical CDF (ranks) so that row dates keep the calendar's
   volume exactly: daily volume ∝ exp(0.73·t/T) × month factor (Feb .65, Dec/Jan 1.1) × 1.5 in the festival
   window (Oct 1-Nov 30 of the first full year in range), zero before a store opens. The weekday is drawn first
   (Mon..Sun weights 1.0, .95, 1.77, .99, 1.05, 1.71, 2.56), then the day at the visit's rank among the store's
   open days of that weekday. Till = floor(triangular(1, mode, Tmax+1)); transaction number ~ U{1..99,999}.
3. **Customer attributes** (constant per customer): home store ~ store weights, used by a visit with p=.96;
   male share .728 of known genders; age at the day after the date range ~ 3.82 + lognormal(3.554, 0.341·z)
   (median 39, IQR 31-48, p5 24, p95 65), males +0.675 y, females -1.825 y, clipped to 16-85, birthday uniform
   except 2.8% heaped on 01-01/06-01; State = home state (.85/.87) or a neighbour state; PinCode from the city's
   100 local codes, Zipf(1.45); discount tokens: independent Bernoulli per token with probabilities solved so
   that, after rejecting the empty set, the marginals are FPC .001, FGShoppingFest .02, BBSavingsClub .034,
   T24Club (store rate), BBProfitClub .18, Payback .84; the set is reused on every visit with p=.82, else
   redrawn per visit. FGShoppingFest is added inside the festival window with p=.6.
4. **Lines.** Family FMCG .68 / GM .23 / apparel .09, SKU by Zipf-Mandelbrot popularity. Promo with
   p = store rate × family rate (.24/.36/.52) / .29, a code by Zipf popularity within the family, price =
   base × (1 - d), d ~ U(.05, .30). Free items: p=.053 on promo rows, .015 otherwise; returns (-price) p=.001.
   Exactly one row carries LOCALPROMO.
5. **Segments** (``SEGMENTS``) are offsets from the background. A parameter at separation s is
   background + s·(offset_k - Σ_j w_j·offset_j): the weighted mean of the offsets is removed (w = each
   segment's share of rows, of a family's rows for prices, or of customers for the visit rate), so the whole
   mixture keeps the real file's marginals at every separation. Offsets act on: the visit rate and basket size
   (log), tenure span (logit) and start (z), age (z), male share, family shares, price level per family (log;
   the SKU popularity is tilted, w_j ∝ pop_j·g_k(price_j)/g_0(price_j), g lognormal), promo rate, token
   probabilities, weekend share, home store. Quantities drawn through a standard normal z (age, visit rate,
   tenure start, price) keep their marginal spread: segment k draws s·c_k + sqrt(1 - s²·Σ_j w_j c_j²)·z.
   Three traits are rare in the real file and cannot be centred: the out-of-state address (S7; the customer's
   State and PinCode come from another region with p = s·0.95), festival visits (S4; a visit falls in the
   festival window with p = s·0.9) and S9's Wednesday share (moved linearly towards 0.9). A segment's token
   offsets sum to about 0 (more T24Club, less Payback), so that a visit keeps at least one token. At
   separation 0 the transactions are exactly those of a data set with no segments at all.
6. **Dirt** (customer level, independent of segment; rates × 0 / 1 / 3 for none / real / heavy): DOB blank .027,
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

from pipeline.outputs.atomic import write_csv_atomic
from pipeline.sources.synthetic_catalog import (
    APPAREL,
    FMCG,
    GM,
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
FAMILIES = (FMCG, GM, APPAREL)
ROWS_PER_CUSTOMER_MODES = ("sample", "panel", "history")
DIRT_LEVELS: dict[str, float] = {"none": 0.0, "real": 1.0, "heavy": 3.0}
N_SLOTS = 10  # 0 = background / noise, 1..9 = segments

ID_DIGIT_SHARES = {4: 0.0001, 5: 0.0005, 6: 0.0057, 7: 0.06, 8: 0.5757, 9: 0.357}
SAMPLE_ROWS_PER_CUSTOMER = np.array([0.879, 0.098, 0.0186, 0.0037, 0.0003, 0.0005, 0.0001])
PANEL_POISSON_MEAN = 6.0
VISIT_LOG_RATE, VISIT_LOG_SIGMA = 0.25, 1.40   # history: visits = 1 + Poisson(exp(0.25 + 1.40 z))
MAX_VISIT_RATE = 500.0
EXTRA_LINES_MEAN, EXTRA_LINES_LOG_SIGMA = 2.0, 0.25  # history: lines per basket = 1 + Poisson(2·exp(0.4 ε))
SPAN_LOGIT, SPAN_LOGIT_SIGMA, SPAN_VISIT_CORRELATION = -0.6, 1.2, 0.5
AGE_SHIFT, AGE_LOG_MEDIAN, AGE_LOG_SIGMA = 3.821, 3.5538, 0.3413
AGE_MIN, AGE_MAX = 16.0, 85.0
AGE_GENDER_OFFSET = {True: 0.675, False: -1.825}  # female ages ~2.5 y below male, overall median kept at 39
DAYS_PER_YEAR = 365.2425
BIRTHDAY_HEAP_SHARE = 0.028
MALE_SHARE = 0.67 / 0.92
HOME_STATE_SHARE = 0.85 / 0.87
HOME_STORE_SHARE = 0.96
DOW_WEIGHTS = np.array([1.0, 0.95, 1.77, 0.99, 1.05, 1.71, 2.56])
WEEKEND = np.array([False, False, False, False, False, True, True])
WEDNESDAY = np.array([False, False, True, False, False, False, False])
TREND_GROWTH = 0.73
MONTH_FACTORS = {2: 0.65, 12: 1.1, 1: 1.1}
FESTIVAL_FACTOR = 1.5
FESTIVAL_TOKEN_SHARE = 0.6
BASKET_JOIN_SHARE = 0.23
MAX_BASKET_LINES = 3
TRANSACTION_NUMBER_MAX = 99_999
BACKGROUND_FAMILY_SHARES = np.array([0.68, 0.23, 0.09])
FAMILY_PROMO_RATES = np.array([0.24, 0.36, 0.52])
OVERALL_PROMO_RATE = 0.29
MAX_PROMO_RATE = 0.95
DISCOUNT_RANGE = (0.05, 0.30)
FREE_ITEM_SHARE = {True: 0.053, False: 0.015}
RETURN_SHARE = 0.001
NONPROMO_INDEX, LOCALPROMO_INDEX = -1, -2
TOKEN_RATES = np.array([0.001, 0.02, 0.034, np.nan, 0.18, 0.84])  # T24Club comes from the store
TOKEN_RATE_BOUNDS = (0.0005, 0.99)
TOKEN_SET_CONSTANT_SHARE = 0.82
TOKEN_FIXED_POINT_ITERATIONS = 200
SHARE_FLOOR = 0.005        # smallest family share, weekend share or store probability a segment is given
MIN_SPREAD_FACTOR = 0.3    # a z-drawn quantity keeps at least 30% of its spread inside a segment
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
    """One planted segment as offsets from the background at separation 1 (0 = as the background).

    Log offsets: ``visit_rate`` (visits, history mode), ``basket_lines`` (extra lines per basket, history mode),
    ``price`` (per family FMCG, GM, apparel). Logit offset: ``tenure_span`` (share of the calendar the customer is
    active). z offsets: ``tenure_start`` (later first visit), ``age``. Additive offsets: ``male`` share, ``families``
    (sum 0), ``promo`` rate, ``tokens`` (one per token, canonical order), ``weekend`` share, ``home_loyalty``
    (share of visits at the home store), ``home_store_boost`` (probability moved to the ``home_store`` of the
    store set: "t24" or "visitor"). Not centred (rare in the real file): ``foreign_address`` (probability of an
    out-of-state State and PinCode), ``festival`` (share of visits in the festival window), ``wednesday`` (share
    of visits on Wednesdays, None = background) and ``wed_food`` (share of promo lines on 'WED FOOD' codes).
    """

    segment_id: int
    weight: float
    visit_rate: float = 0.0
    basket_lines: float = 0.0
    tenure_span: float = 0.0
    tenure_start: float = 0.0
    age: float = 0.0
    male: float = 0.0
    families: tuple[float, float, float] = (0.0, 0.0, 0.0)
    price: tuple[float, float, float] = (0.0, 0.0, 0.0)
    promo: float = 0.0
    tokens: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    weekend: float = 0.0
    home_store: str | None = None
    home_store_boost: float = 0.0
    home_loyalty: float = 0.0
    foreign_address: float = 0.0
    festival: float = 0.0
    wednesday: float | None = None
    wed_food: float = 0.0


def _tokens(**offsets: float) -> tuple[float, float, float, float, float, float]:
    """Token offsets by name (fpc, fgsf, bbsc, t24, bbpc, payback); unlisted tokens get 0."""
    names = ("fpc", "fgsf", "bbsc", "t24", "bbpc", "payback")
    unknown = set(offsets) - set(names)
    if unknown:
        raise ValueError(f"unknown token names {sorted(unknown)}; valid: {list(names)}")
    return tuple(offsets.get(name, 0.0) for name in names)  # type: ignore[return-value]


# Every segment differs from the background in several traits at once, none of them exact. Families are (FMCG, GM,
# apparel) offsets from .68/.23/.09; every offset is bounded by what the real marginals leave to centre (module
# docstring, step 5). Visit rates follow basket value, as shopper segments do: the segments that spend much per
# visit (apparel promo hunters, big-ticket home, family staples, senior loyalists) also come more often, the young
# value-grocery shoppers rarely, so that the whole mixture keeps UCI Online Retail's rank correlation of visits
# and spend (0.81): 0.78 at separation 1 (0.62 with the earlier rates, where apparel, festival and big-ticket
# shoppers came rarely). Basket-size (customer histories only) and tenure offsets are 1.3 times the earlier ones:
# both are centred on the mixture and the row dates are rank-mapped onto the calendar, so the segments sit
# further apart without moving the marginals (weekend offsets x1.3 would clip two segments' weekend shares at
# the floor and move the mixture's weekend share from 0.43 to 0.47, so they stay). 10,000 customers, separation
# 1, seeds 0-2, k-means on the pipeline's customer features: ARI 0.803 without the tenure step, 0.855 with it.
SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(1, 0.20, visit_rate=-1.4, basket_lines=-1.04, tenure_span=0.65, tenure_start=0.52, age=-1.1,
                male=0.15, families=(0.3, -0.25, -0.05), price=(-1.25, -0.75, -0.4), promo=-0.25,
                tokens=_tokens(bbpc=-0.05, payback=0.05), weekend=-0.15),
    SegmentSpec(2, 0.18, visit_rate=1.1, basket_lines=1.17, tenure_span=1.95, age=-0.25, male=-0.45,
                families=(-0.28, 0.31, -0.03), price=(0.6, 0.5, 0.0), tokens=_tokens(t24=-0.05, bbpc=0.35,
                payback=-0.3), weekend=0.45),
    SegmentSpec(3, 0.12, visit_rate=0.6, tenure_span=-0.78, tenure_start=0.975, age=-0.7, male=-0.4,
                families=(-0.72, -0.18, 0.9), price=(0.0, 0.0, 0.6), promo=0.7,
                tokens=_tokens(t24=0.25, payback=-0.25), weekend=0.2),
    SegmentSpec(4, 0.08, visit_rate=0.0, tenure_span=-3.9, families=(-0.38, 0.25, 0.13), price=(1.0, 1.0, 1.0),
                tokens=_tokens(fgsf=0.75, payback=-0.4, bbpc=-0.05), festival=0.9),
    SegmentSpec(5, 0.10, visit_rate=1.3, basket_lines=0.52, tenure_span=3.9, tenure_start=-2.47, age=1.5, male=0.1,
                tokens=_tokens(t24=0.25, bbpc=0.35, payback=-0.6), weekend=-0.4, promo=-0.2),
    SegmentSpec(6, 0.07, visit_rate=0.6, basket_lines=-0.78, age=0.6, families=(-0.69, 0.38, 0.31),
                price=(0.5, 2.2, 1.8), promo=0.38, tokens=_tokens(bbsc=0.8, payback=-0.6)),
    SegmentSpec(7, 0.10, visit_rate=-0.8, tenure_span=-3.25, tenure_start=1.95, age=-0.6, male=0.2, weekend=0.38,
                tokens=_tokens(payback=0.1, bbpc=-0.05), home_store="visitor", home_store_boost=0.9,
                home_loyalty=0.04, foreign_address=0.95),
    SegmentSpec(8, 0.15, visit_rate=0.6, basket_lines=0.975, tenure_span=1.95, age=0.5, home_store="t24",
                home_store_boost=0.9, families=(0.25, -0.2, -0.05), price=(0.5, 0.0, 0.0), promo=0.12,
                tokens=_tokens(t24=0.45, bbpc=-0.1, payback=-0.35), weekend=-0.3),
    SegmentSpec(9, S9_WEIGHT, promo=0.6, wednesday=0.9, wed_food=1.0),
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


def _segment_shares(noise_frac: float, specs: tuple[SegmentSpec, ...]) -> np.ndarray:
    """Customer share per slot, shape [10]: noise in slot 0; S9, when present, takes S9_WEIGHT of the rest."""
    shares = np.zeros(N_SLOTS)
    ids = np.array([spec.segment_id for spec in specs])
    weights = np.array([spec.weight for spec in specs])
    if HIDDEN_SEGMENT_ID in ids:
        weights = np.where(ids == HIDDEN_SEGMENT_ID, weights, weights * (1 - S9_WEIGHT))
    shares[ids] = weights / weights.sum() * (1.0 - noise_frac)
    shares[0] = noise_frac
    return shares


def _segment_labels(rng: np.random.Generator, n_customers: int, noise_frac: float,
                    specs: tuple[SegmentSpec, ...]) -> np.ndarray:
    """Segment id per customer: exact largest-remainder counts (noise = round(noise_frac·n)), shuffled.

    S1..S8 share the non-noise customers by weight; S9, when present, takes S9_WEIGHT and scales the others
    by 1 - S9_WEIGHT.
    """
    ids = np.array([spec.segment_id for spec in specs])
    weights = _segment_shares(0.0, specs)[ids]
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
class _Params:
    """Every segment parameter at the requested separation, indexed by slot (0 = background), shape [10, ...].

    z-drawn quantities are (shift, spread) pairs: a draw is shift + spread·z.
    """

    visit_shift: np.ndarray        # [10] added to VISIT_LOG_RATE
    visit_spread: np.ndarray       # [10] multiplies VISIT_LOG_SIGMA
    extra_lines: np.ndarray        # [10] mean extra lines per basket (before the per-customer lognormal factor)
    span_shift: np.ndarray         # [10] added to SPAN_LOGIT
    start_shift: np.ndarray        # [10]
    start_spread: np.ndarray       # [10]
    age_shift: np.ndarray          # [10]
    age_spread: np.ndarray         # [10]
    male_share: np.ndarray         # [10]
    family_shares: np.ndarray      # [10, 3]
    price_shift: np.ndarray        # [10, 3] log-median shift of the tilted price lognormal
    price_spread: np.ndarray       # [10, 3] its sigma over the pool's sigma
    promo_offset: np.ndarray       # [10]
    token_offset: np.ndarray       # [10, 6]
    weekend_offset: np.ndarray     # [10]
    home_store: np.ndarray         # [10, S] home-store probabilities
    home_loyalty: np.ndarray       # [10]
    foreign_address: np.ndarray    # [10]
    festival: np.ndarray           # [10]
    wednesday: np.ndarray          # [10] Wednesday share at separation 1 (0 where unused)
    wednesday_pull: np.ndarray     # [10] s where the slot sets a Wednesday share, else 0
    wed_food: np.ndarray           # [10]


def _offsets(specs: tuple[SegmentSpec, ...], field: str, width: int = 0) -> np.ndarray:
    """One SegmentSpec field as a per-slot array, shape [10] or [10, width]; slot 0 and absent segments are 0."""
    table = np.zeros((N_SLOTS, width) if width else N_SLOTS)
    for spec in specs:
        table[spec.segment_id] = getattr(spec, field)
    return table


def _centred(offsets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """offsets - Σ_k w_k·offsets_k over slots (axis 0), with w normalised along axis 0 ([10] or [10, K])."""
    weights = weights / weights.sum(axis=0, keepdims=True)
    if offsets.ndim > weights.ndim:
        weights = weights[:, None]
    return offsets - (weights * offsets).sum(axis=0, keepdims=True)


def _z_spread(centred: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Within-segment spread factor that keeps the mixture variance, shape [10]: sqrt(1 - Σ_k w_k c_k²/scale²),
    at least MIN_SPREAD_FACTOR (``centred`` and ``weights`` shape [10])."""
    between = float((weights / weights.sum() * centred**2).sum()) / scale**2
    return np.full(N_SLOTS, np.sqrt(max(1.0 - between, MIN_SPREAD_FACTOR**2)))


def _simplex(background: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """background + offsets, floored at SHARE_FLOOR and renormalised per row ([K] + [10, K] -> [10, K])."""
    shares = np.maximum(background[None, :] + offsets, SHARE_FLOOR)
    return shares / shares.sum(axis=1, keepdims=True)


def _segment_params(specs: tuple[SegmentSpec, ...], noise_frac: float, separation: float, mode: str,
                    store_set: StoreSet) -> _Params:
    """Per-slot parameters at ``separation``: background + s·(centred offsets) (module docstring, step 5).

    Centring weights: customers for the visit rate; rows (customers × expected rows) for everything measured on
    rows; rows of the family for prices. Expected rows: history (1 + E visits)·(1 + E extra lines), else 1.
    """
    s = separation
    customers = _segment_shares(noise_frac, specs)

    visit = s * _centred(_offsets(specs, "visit_rate"), customers)
    visit_spread = _z_spread(visit, customers, VISIT_LOG_SIGMA)
    extra_lines = EXTRA_LINES_MEAN * np.exp(s * _offsets(specs, "basket_lines"))
    if mode == "history":
        sigma = VISIT_LOG_SIGMA * visit_spread
        expected_visits = 1.0 + np.exp(VISIT_LOG_RATE + visit + 0.5 * sigma**2)
        expected_lines = 1.0 + extra_lines * np.exp(0.5 * EXTRA_LINES_LOG_SIGMA**2)
        rows = customers * expected_visits * expected_lines
    else:
        rows = customers.copy()

    span = s * _centred(_offsets(specs, "tenure_span"), customers)
    start = s * _centred(_offsets(specs, "tenure_start"), customers)
    age = s * _centred(_offsets(specs, "age"), rows)
    male = s * _centred(_offsets(specs, "male"), rows)
    family_offsets = s * _centred(_offsets(specs, "families", 3), rows)
    family_shares = _simplex(BACKGROUND_FAMILY_SHARES, family_offsets)
    family_rows = rows[:, None] * family_shares  # [10, 3]
    price = s * _centred(_offsets(specs, "price", 3), family_rows)
    pool_sigma = np.array([POOL_SPECS[family].price_sigma for family in FAMILIES])
    price_spread = np.stack([_z_spread(price[:, f], family_rows[:, f], pool_sigma[f]) for f in range(3)], axis=1)

    n_stores = len(store_set.stores)
    boost = np.zeros((N_SLOTS, n_stores))
    for spec in specs:
        if spec.home_store is not None:
            code = store_set.t24_store if spec.home_store == "t24" else store_set.visitor_store
            target = store_set.index_of(code)
            others = store_set.weights * (np.arange(n_stores) != target)
            boost[spec.segment_id] = -spec.home_store_boost * others / others.sum()
            boost[spec.segment_id, target] = spec.home_store_boost
    wednesday, wednesday_pull = np.zeros(N_SLOTS), np.zeros(N_SLOTS)
    for spec in specs:
        if spec.wednesday is not None:
            wednesday[spec.segment_id], wednesday_pull[spec.segment_id] = spec.wednesday, s
    return _Params(
        visit_shift=visit, visit_spread=visit_spread, extra_lines=extra_lines,
        span_shift=span, start_shift=start, start_spread=_z_spread(start, customers),
        age_shift=age, age_spread=_z_spread(age, rows), male_share=np.clip(MALE_SHARE + male, 0.02, 0.98),
        family_shares=family_shares, price_shift=price, price_spread=price_spread,
        promo_offset=s * _centred(_offsets(specs, "promo"), rows),
        token_offset=s * _centred(_offsets(specs, "tokens", 6), rows),
        weekend_offset=s * _centred(_offsets(specs, "weekend"), rows),
        home_store=_simplex(store_set.weights, s * _centred(boost, rows)),
        home_loyalty=np.clip(HOME_STORE_SHARE + s * _offsets(specs, "home_loyalty"), 0.0, 1.0),
        foreign_address=s * _offsets(specs, "foreign_address"), festival=s * _offsets(specs, "festival"),
        wednesday=wednesday, wednesday_pull=wednesday_pull, wed_food=s * _offsets(specs, "wed_food"))


def _token_draw_probabilities(params: _Params, store_set: StoreSet) -> np.ndarray:
    """Bernoulli probabilities per segment slot, store and token, shape [10, S, 6].

    Target marginals m = background (TOKEN_RATES; T24Club: the store's rate) + the slot's offset, clipped.
    Rejecting the empty set divides every marginal by Z = 1 - Π(1 - p), so the draw uses p = m·Z, with Z the
    fixed point of Z = 1 - Π(1 - m·Z), found by iterating from Z = 1.
    """
    background = np.tile(TOKEN_RATES, (len(store_set.stores), 1))
    background[:, T24] = [store.t24_rate for store in store_set.stores]
    targets = np.clip(background[None, :, :] + params.token_offset[:, None, :], *TOKEN_RATE_BOUNDS)
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
    n_visits: np.ndarray         # baskets (history) or rows before basket joining (sample, panel)
    visit_rate: np.ndarray       # λ of the visit count (history), NaN otherwise
    extra_lines: np.ndarray      # mean extra lines per basket (history), NaN otherwise
    span: np.ndarray             # share of the calendar the customer is active
    start: np.ndarray            # start of the active window, as a share of the calendar
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


def _visit_counts(rng: np.random.Generator, slot: np.ndarray, activity: np.ndarray, mode: str,
                  params: _Params) -> tuple[np.ndarray, np.ndarray]:
    """Visits per customer and the history-mode rate λ (NaN in the other modes).

    history: 1 + Poisson(λ), log λ = VISIT_LOG_RATE + shift + VISIT_LOG_SIGMA·spread·z; sample: the real file's
    rows per customer; panel: 1 + Poisson(6).
    """
    n_customers = len(slot)
    if mode == "history":
        log_rate = VISIT_LOG_RATE + params.visit_shift[slot] + VISIT_LOG_SIGMA * params.visit_spread[slot] * activity
        rate = np.minimum(np.exp(log_rate), MAX_VISIT_RATE)
        return 1 + rng.poisson(rate), rate
    if mode == "panel":
        return 1 + rng.poisson(PANEL_POISSON_MEAN, n_customers), np.full(n_customers, np.nan)
    shares = SAMPLE_ROWS_PER_CUSTOMER / SAMPLE_ROWS_PER_CUSTOMER.sum()
    return 1 + rng.choice(len(shares), size=n_customers, p=shares), np.full(n_customers, np.nan)


def _active_windows(rng: np.random.Generator, slot: np.ndarray, activity: np.ndarray,
                    params: _Params) -> tuple[np.ndarray, np.ndarray]:
    """Span L and start of each customer's active window, as shares of the calendar.

    L = expit(SPAN_LOGIT + shift + SPAN_LOGIT_SIGMA·(ρ z + sqrt(1 - ρ²) η)), z the visit-rate normal;
    start = (1 - L)·Φ(shift + spread·ζ).
    """
    n_customers = len(slot)
    rho = SPAN_VISIT_CORRELATION
    span_normal = rho * activity + np.sqrt(1.0 - rho**2) * rng.standard_normal(n_customers)
    span = special.expit(SPAN_LOGIT + params.span_shift[slot] + SPAN_LOGIT_SIGMA * span_normal)
    start_normal = params.start_shift[slot] + params.start_spread[slot] * rng.standard_normal(n_customers)
    return span, (1.0 - span) * special.ndtr(start_normal)


def _birth_dates(rng: np.random.Generator, slot: np.ndarray, male: np.ndarray, params: _Params,
                 calendar: _Calendar) -> np.ndarray:
    """Birth dates: age at ``calendar.background_ref`` = AGE_SHIFT + exp(AGE_LOG_MEDIAN + AGE_LOG_SIGMA·z')
    + gender offset, clipped to [16, 85], with z' = shift + spread·z for the customer's segment."""
    n_customers = len(slot)
    normal = params.age_shift[slot] + params.age_spread[slot] * rng.standard_normal(n_customers)
    offset = np.where(male, AGE_GENDER_OFFSET[True], AGE_GENDER_OFFSET[False])
    age = np.clip(AGE_SHIFT + np.exp(AGE_LOG_MEDIAN + AGE_LOG_SIGMA * normal) + offset, AGE_MIN, AGE_MAX)
    birth_day = np.floor(calendar.background_ref.astype(int) - age * DAYS_PER_YEAR).astype(np.int64)
    dob = birth_day.astype("datetime64[D]")
    heaped = rng.random(n_customers) < BIRTHDAY_HEAP_SHARE
    heap_month = np.where(rng.random(n_customers) < 0.5, 0, 5)
    heaped_dob = (dob.astype("datetime64[Y]").astype("datetime64[M]") + heap_month).astype("datetime64[D]")
    return np.where(heaped, heaped_dob, dob)


def _states_and_pins(rng: np.random.Generator, home_store: np.ndarray, slot: np.ndarray, params: _Params,
                     store_set: StoreSet) -> tuple[np.ndarray, np.ndarray]:
    """Latent State and PinCode per customer: the home city (Zipf over its local codes) and the home state
    (or a neighbour state), or, with p = foreign_address, a foreign region with a foreign PinCode prefix."""
    n_customers = len(slot)
    stores = store_set.stores
    foreign = rng.random(n_customers) < params.foreign_address[slot]
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


def _draw_customers(streams: dict[str, np.random.Generator], n_customers: int, mode: str, noise_frac: float,
                    specs: tuple[SegmentSpec, ...], params: _Params, store_set: StoreSet,
                    calendar: _Calendar) -> _Customers:
    """All latent customer-level attributes (module docstring, steps 1-3)."""
    ids = _customer_ids(streams["ids"], n_customers)
    segment = _segment_labels(streams["segments"], n_customers, noise_frac, specs)
    slot = np.maximum(segment, 0)
    rng = streams["customers"]
    activity = rng.standard_normal(n_customers)
    n_visits, visit_rate = _visit_counts(rng, slot, activity, mode, params)
    if mode == "history":
        extra_lines = params.extra_lines[slot] * np.exp(EXTRA_LINES_LOG_SIGMA * rng.standard_normal(n_customers))
    else:
        extra_lines = np.full(n_customers, np.nan)
    span, start = _active_windows(rng, slot, activity, params)
    home_store = _categorical(params.home_store[slot], rng.random(n_customers))
    male = rng.random(n_customers) < params.male_share[slot]
    dob = _birth_dates(rng, slot, male, params, calendar)
    state, pin = _states_and_pins(rng, home_store, slot, params, store_set)

    token_rng = streams["tokens"]
    token_probabilities = _token_draw_probabilities(params, store_set)[slot, home_store]
    token_bits = _draw_token_bits(token_rng, token_probabilities)
    tokens_constant = token_rng.random(n_customers) < TOKEN_SET_CONSTANT_SHARE
    return _Customers(ids=ids, labels="BBID_" + ids.astype(str).astype(object), segment=segment, slot=slot,
                      n_visits=n_visits, visit_rate=visit_rate, extra_lines=extra_lines, span=span, start=start,
                      home_store=home_store, male=male, dob=dob, dob_iso=_iso_dates(dob), state=state, pin=pin,
                      token_probabilities=token_probabilities, token_bits=token_bits,
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
    basket: np.ndarray       # index of the row's basket (its visit), ascending in customer order


def _draw_stores(rng: np.random.Generator, customers: _Customers, customer: np.ndarray, festival: np.ndarray,
                 params: _Params, store_set: StoreSet, calendar: _Calendar) -> np.ndarray:
    """Visit store: the home store with p = the slot's home loyalty, else another store by weight; festival
    visits only use stores that are open during the window."""
    n_visits = len(customer)
    home = customers.home_store[customer]
    slot = customers.slot[customer]
    open_in_window = (calendar.store_open & calendar.festival[None, :]).any(axis=1)
    use_home = (rng.random(n_visits) < params.home_loyalty[slot]) & (~festival | open_in_window[home])
    other_weights = np.tile(store_set.weights, (n_visits, 1))
    other_weights[np.arange(n_visits), home] = 0.0
    other_weights[festival] *= open_in_window
    other = _categorical(other_weights, rng.random(n_visits))
    return np.where(use_home, home, other)


def _tilt_days(row_background: np.ndarray, mask: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Scale the masked weekdays of each row of ``row_background`` [N, 7] so that they hold ``target`` [N]."""
    inside = row_background[:, mask].sum(axis=1, keepdims=True)
    target = target[:, None]
    return np.where(mask[None, :], target * row_background / np.maximum(inside, 1e-300),
                    (1.0 - target) * row_background / np.maximum(1.0 - inside, 1e-300))


def _visit_positions(rng: np.random.Generator, customers: _Customers, customer: np.ndarray,
                     festival: np.ndarray) -> np.ndarray:
    """Each visit's place in time as a quantile in [0, 1): a uniform point of its customer's active window,
    replaced by its rank among all non-festival visits (so that the row dates keep the calendar's volume)."""
    points = customers.start[customer] + customers.span[customer] * rng.random(len(customer))
    quantiles = rng.random(len(customer))  # festival visits: uniform inside the window
    regular = np.flatnonzero(~festival)
    order = np.argsort(points[regular], kind="stable")
    ranks = np.empty(len(regular))
    ranks[order] = (np.arange(len(regular)) + rng.random(len(regular))) / max(len(regular), 1)
    quantiles[regular] = ranks
    return quantiles


def _draw_days(rng: np.random.Generator, customers: _Customers, customer: np.ndarray, store: np.ndarray,
               festival: np.ndarray, params: _Params, calendar: _Calendar) -> np.ndarray:
    """Day index per visit: the weekday from the store's weekday mix (tilted to the slot's weekend and Wednesday
    shares), then the day at the visit's time quantile within the store's open days of that weekday; festival
    visits draw from the window ∝ volume × weekday weight instead."""
    n_stores = calendar.store_open.shape[0]
    slot = customers.slot[customer]
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
    row_background = background[store]  # [V, 7]
    weekend = np.clip(row_background[:, WEEKEND].sum(axis=1) + params.weekend_offset[slot], SHARE_FLOOR,
                      1.0 - SHARE_FLOOR)
    mix = _tilt_days(row_background, WEEKEND, weekend)
    wednesday = mix[:, WEDNESDAY].sum(axis=1)
    wednesday = wednesday + params.wednesday_pull[slot] * (params.wednesday[slot] - wednesday)
    mix = _tilt_days(mix, WEDNESDAY, wednesday)
    weekday = _categorical(mix, rng.random(len(store)))
    quantile = _visit_positions(rng, customers, customer, festival)
    groups = np.where(festival, 7 * n_stores + store, 7 * store + weekday)
    return sampler.sample(groups, quantile)


def _draw_tills(rng: np.random.Generator, store: np.ndarray, store_set: StoreSet) -> np.ndarray:
    """Till = floor(triangular(1, mode, Tmax + 1)) of the store, clipped to 1..Tmax."""
    mode = np.array([s.till_mode for s in store_set.stores])[store]
    right = np.array([s.till_max for s in store_set.stores])[store] + 1.0
    tills = np.floor(rng.triangular(1.0, mode, right)).astype(np.int64)
    return np.clip(tills, 1, (right - 1).astype(np.int64))


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


def _sku_sampler(params: _Params, store_set: StoreSet) -> _GroupedSampler:
    """SKU sampler with groups slot·3 + family; weights = popularity × g_k(price) / g_0(price).

    g_0 is the family pool's base-price lognormal (POOL_SPECS); g_k has its log-median shifted by the slot's
    price shift and its sigma scaled by the slot's price spread. At separation 0 the ratio is exactly 1.
    """
    catalog = product_catalog(store_set.name)
    values, weights = [], []
    for slot in range(N_SLOTS):
        for index, family in enumerate(FAMILIES):
            members = catalog.pool_members[family]
            popularity = catalog.pool_popularity[family]
            log_median, sigma = np.log(POOL_SPECS[family].price_median), POOL_SPECS[family].price_sigma
            tilted_log_median = log_median + params.price_shift[slot, index]
            tilted_sigma = sigma * params.price_spread[slot, index]
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
                              params: _Params, store_set: StoreSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SKU, promo index (or NONPROMO_INDEX / LOCALPROMO_INDEX) and sale price (rounded to cents) per row."""
    rng = streams["products"]
    n_rows = len(store)
    family = _categorical(params.family_shares[slot], rng.random(n_rows))
    sku = _sku_sampler(params, store_set).sample(slot * len(FAMILIES) + family, rng.random(n_rows))

    promo_rng = streams["promos"]
    store_rates = np.array([s.promo_rate for s in store_set.stores])
    background_rate = store_rates[store] * FAMILY_PROMO_RATES[family] / OVERALL_PROMO_RATE
    promo_rate = np.clip(background_rate + params.promo_offset[slot], 0.0, MAX_PROMO_RATE)
    is_promo = promo_rng.random(n_rows) < promo_rate
    promo_sampler, wed_food_group = _promo_sampler()
    wed_food = promo_rng.random(n_rows) < params.wed_food[slot]
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


def _draw_rows(streams: dict[str, np.random.Generator], customers: _Customers, params: _Params,
               store_set: StoreSet, calendar: _Calendar, mode: str) -> _Rows:
    """All visit- and row-level draws (module docstring, steps 2 and 4), in customer order.

    A visit fixes store, day, till, transaction number and discount tokens; history mode gives each visit
    several lines, the other modes join consecutive visits of a customer into baskets (``_basket_leaders``).
    """
    customer_of_visit = np.repeat(np.arange(len(customers.ids)), customers.n_visits)
    n_visits = len(customer_of_visit)
    slot = customers.slot[customer_of_visit]
    store_rng = streams["stores"]
    festival = store_rng.random(n_visits) < params.festival[slot]
    store = _draw_stores(store_rng, customers, customer_of_visit, festival, params, store_set, calendar)
    date_rng = streams["dates"]
    day = _draw_days(date_rng, customers, customer_of_visit, store, festival, params, calendar)
    till = _draw_tills(date_rng, store, store_set)
    transaction_number = date_rng.integers(1, TRANSACTION_NUMBER_MAX + 1, n_visits)

    token_rng = streams["tokens"]
    redrawn = _draw_token_bits(token_rng, customers.token_probabilities[customer_of_visit])
    token_bits = np.where(customers.tokens_constant[customer_of_visit][:, None],
                          customers.token_bits[customer_of_visit], redrawn)
    token_bits[:, FGSF] |= calendar.festival[day] & (token_rng.random(n_visits) < FESTIVAL_TOKEN_SHARE)

    basket_rng = streams["baskets"]
    if mode == "history":
        lines = 1 + basket_rng.poisson(customers.extra_lines[customer_of_visit])
        visit_of_row = np.repeat(np.arange(n_visits), lines)
        basket = visit_of_row
    else:
        visit_of_row = np.arange(n_visits)
        basket = _basket_leaders(basket_rng, customers.n_visits)
    customer = customer_of_visit[visit_of_row]
    row_store = store[basket]
    sku, promo, price = _draw_products_and_prices(streams, row_store, customers.slot[customer], params, store_set)
    return _Rows(customer=customer, store=row_store, day=day[basket], till=till[basket],
                 transaction_number=transaction_number[basket], sku=sku, promo=promo, price=price,
                 token_bits=token_bits[visit_of_row], basket=basket)


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
    """The 16-column table, rows ordered by customer ID, then date (a basket's lines stay together)."""
    order = np.lexsort((rows.basket, rows.day, rows.customer))
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


def _truth_frame(customers: _Customers, rows: _Rows, store_set: StoreSet, calendar: _Calendar) -> pd.DataFrame:
    """One row per customer: segment labels and latent values (before dirt)."""
    name_of_slot = np.array([NOISE_SEGMENT_NAME] + [SEGMENT_NAMES[slot] for slot in range(1, N_SLOTS)],
                            dtype=object)
    n_customers = len(customers.ids)
    age = (calendar.age_ref - customers.dob).astype(int) / DAYS_PER_YEAR
    first_line = np.concatenate([[True], rows.basket[1:] != rows.basket[:-1]])
    return pd.DataFrame({
        "customerID": customers.labels,
        "segment_id": customers.segment.astype(np.int64),
        "segment_name": name_of_slot[customers.slot],
        "is_noise": (customers.segment == NOISE_SEGMENT_ID).astype(np.int64),
        "n_rows": np.bincount(rows.customer, minlength=n_customers).astype(np.int64),
        "n_baskets": np.bincount(rows.customer[first_line], minlength=n_customers).astype(np.int64),
        "visit_rate": np.round(customers.visit_rate, 4),
        "extra_lines_mean": np.round(customers.extra_lines, 4),
        "active_start": np.round(customers.start, 4),
        "active_span": np.round(customers.span, 4),
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

    ``rows_per_customer``: ``history`` (customer histories: median 2 baskets, p99 ~30, ~3 lines each, ~12 rows
    per customer), ``sample`` (the real file's line sample, ~1.15 rows per customer) or ``panel`` (~7 rows).
    ``separation`` ∈ [0, 1] scales every segment's offsets from the background (0: no segment signal at all);
    ``noise_frac`` of the customers are pure background (segment -1); ``dirt`` adds blanks and junk at 0×/1×/3×
    the real rates; ``age_at_reference`` in the truth is the age at ``age_reference_date``. Same arguments ->
    identical output. See the module docstring for the distributions.
    """
    _validate(n_customers, seed, rows_per_customer, separation, noise_frac, dirt, date_range, age_reference_date,
              stores, hidden_wednesday_segment)
    started = time.perf_counter()
    separation, noise_frac = float(separation), float(noise_frac)
    store_set = STORE_SETS[stores]
    calendar = _calendar((str(date_range[0]), str(date_range[1])), str(age_reference_date), store_set)
    specs = _segment_specs(bool(hidden_wednesday_segment))
    params = _segment_params(specs, noise_frac, separation, rows_per_customer, store_set)
    children = np.random.SeedSequence(int(seed)).spawn(len(STREAMS))
    streams = {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}

    customers = _draw_customers(streams, int(n_customers), rows_per_customer, noise_frac, specs, params, store_set,
                                calendar)
    rows = _draw_rows(streams, customers, params, store_set, calendar, rows_per_customer)
    observed = _apply_dirt(streams["dirt"], customers, store_set, calendar, DIRT_LEVELS[dirt])
    transactions = _transactions_frame(customers, rows, observed, store_set, calendar)
    truth = _truth_frame(customers, rows, store_set, calendar)
    logger.info("synthetic data: %d customers, %d rows (%s, seed %d, separation %.2f, dirt %s) in %.2f s",
                n_customers, len(transactions), rows_per_customer, seed, separation, dirt,
                time.perf_counter() - started)
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
