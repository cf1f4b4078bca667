"""Segment descriptions: sizes, the traits that set each segment apart from all units, and a short name.

Every value is in original units (shares, days, money, years, counts, category labels), read from the unit
table, so an analyst can read a segment without the model's scaling.

- A numeric feature is one trait candidate; a categorical feature (text labels, or a known categorical name such
  as ``home_store_code``) gives one 0/1 indicator per label, whose mean is the share of units with that label.
- Standardised difference of a candidate in segment s: d = (mean_s − mean_all) / std_all, with std_all the
  population standard deviation (ddof 0) over all units; a constant candidate has d = 0. Missing values are
  left out of both means and of the std.
- Per segment and feature the trait is the candidate itself, or for a categorical feature its label with the
  largest |d| (ties: positive d first, then label order). Traits rank by |d|, ties in ``feature_columns`` order;
  |d| is compared rounded to ``TIE_DECIMALS`` decimals, so equal values up to float rounding tie.
- Name: the phrases of the top ``NAME_TRAITS`` traits with |d| ≥ ``NAME_MIN_STD_DIFF`` (Cohen's "small effect"),
  at most one per feature group (the product-family shares add up to 1, so a high one implies a low other),
  joined by " · "; "Close to average" when none qualifies. Outlier groups are "Outlier group N", empty
  segments "Empty segment"; a name already used by an earlier segment gets " 2", " 3", ... appended.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SHARE, MONEY, DAYS, YEARS, COUNT, NUMBER = "share", "money", "days", "years", "count", "number"
VALUE_KINDS = (SHARE, MONEY, DAYS, YEARS, COUNT, NUMBER)
NAME_TRAITS = 2
NAME_MIN_STD_DIFF = 0.2
MISSING_LABEL = "(missing)"
TIE_DECIMALS = 9
PRODUCT_MIX = "product family mix"
TRAIT_COLUMNS = ("segment", "rank", "feature", "category", "label", "kind", "segment_value", "overall_value",
                 "std_diff", "text")


@dataclass(frozen=True)
class FeatureLabel:
    """How a feature reads: its label, the kind of its values, the name phrases for a high and a low mean, and
    its group: features of one group (shares that add up to 1) say the same thing twice, so a name uses one."""

    label: str
    kind: str | None = None  # None: categorical
    high: str | None = None
    low: str | None = None
    group: str | None = None


KNOWN_FEATURES: dict[str, FeatureLabel] = {
    "recency_days": FeatureLabel("days since last visit", DAYS, "Lapsed", "Recent"),
    "tenure_days": FeatureLabel("days as a customer", DAYS, "Long-standing", "New"),
    "frequency": FeatureLabel("visits", COUNT, "Frequent", "Infrequent"),
    "n_rows": FeatureLabel("purchase lines", COUNT, "Many purchase lines", "Few purchase lines"),
    "monetary_total": FeatureLabel("total spend", MONEY, "High spend", "Low spend"),
    "monetary_mean": FeatureLabel("spend per visit", MONEY, "High spend per visit", "Low spend per visit"),
    "sale_price_after_promo": FeatureLabel("price paid", MONEY, "Expensive items", "Cheap items"),
    "amount": FeatureLabel("amount", MONEY, "High amounts", "Low amounts"),
    "promo_share": FeatureLabel("promo share", SHARE),
    "promo": FeatureLabel("promo share", SHARE),
    "weekend_share": FeatureLabel("weekend share", SHARE, "Weekend shoppers", "Weekday shoppers", "week part"),
    "weekday_share": FeatureLabel("weekday share", SHARE, "Weekday shoppers", "Weekend shoppers", "week part"),
    "return_share": FeatureLabel("return share", SHARE, "Frequent returns", "No returns"),
    "free_item_share": FeatureLabel("free-item share", SHARE, "Many free items", "Few free items"),
    "wednesday_share": FeatureLabel("Wednesday share", SHARE, "Wednesday shoppers", "Rarely on Wednesdays"),
    "festive_share": FeatureLabel("festive-season share (Oct-Nov)", SHARE, "Festive-season shoppers",
                                  "Rarely in the festive season"),
    "visit_rate": FeatureLabel("visits per month", COUNT, "Regular visitors", "Occasional visitors"),
    "lines_per_visit": FeatureLabel("lines per visit", COUNT, "Big baskets", "Small baskets"),
    "typical_price": FeatureLabel("typical price", MONEY, "Pricey items", "Cheap items"),
    "out_of_state_share": FeatureLabel("out-of-state address share", SHARE, "Out-of-state", "In-state"),
    "pin_outside_city_share": FeatureLabel("PinCode outside the store's city", SHARE, "From outside the city",
                                           "From the store's city"),
    "share_fmcg": FeatureLabel("FMCG share", SHARE, group=PRODUCT_MIX),
    "share_general": FeatureLabel("general merchandise share", SHARE, group=PRODUCT_MIX),
    "share_apparel_home": FeatureLabel("apparel & home share", SHARE, group=PRODUCT_MIX),
    "Age": FeatureLabel("age", YEARS, "Older", "Young"),
    "Gender": FeatureLabel("gender"),
    "home_store_code": FeatureLabel("home store"),
    "store_code": FeatureLabel("store"),
    "Country": FeatureLabel("country"),
}
MONEY_WORDS = {"spend", "monetary", "price", "amount", "revenue"}
COUNT_WORDS = {"count", "frequency", "visits", "quantity"}


@dataclass(frozen=True)
class SegmentDescription:
    """What each segment is.

    ``table`` (segments.csv), one row per segment 0..k−1: segment, name, outlier_group, customers (units),
    customer_share, rows (input rows), row_share, revenue, revenue_share (NaN without revenue), trait_1..trait_k.
    ``traits`` (long), one row per segment and feature ranked by |d| (``rank`` 1 = most distinctive):
    segment, rank, feature, category (the label of a categorical feature, else None), label, kind,
    segment_value, overall_value, std_diff, text. Empty segments have no trait rows.
    """

    table: pd.DataFrame
    traits: pd.DataFrame

    @property
    def top_traits(self) -> int:
        """k, the number of trait_i columns of ``table``."""
        return sum(column.startswith("trait_") for column in self.table.columns)

    def to_metrics(self) -> list[dict[str, Any]]:
        """The "segments" section of metrics.json: per segment its sizes, name and top-k traits, JSON-safe
        (plain Python numbers, NaN as None)."""
        sections = []
        for row in self.table.itertuples(index=False):
            traits = self.traits[(self.traits["segment"] == row.segment) & (self.traits["rank"] <= self.top_traits)]
            sections.append({
                "segment": int(row.segment),
                "name": str(row.name),
                "outlier_group": bool(row.outlier_group),
                "customers": int(row.customers),
                "customer_share": _json_float(row.customer_share),
                "rows": int(row.rows),
                "row_share": _json_float(row.row_share),
                "revenue": _json_float(row.revenue),
                "revenue_share": _json_float(row.revenue_share),
                "traits": [
                    {
                        "feature": str(trait.feature),
                        "category": None if pd.isna(trait.category) else str(trait.category),
                        "label": str(trait.label),
                        "segment_value": _json_float(trait.segment_value),
                        "overall_value": _json_float(trait.overall_value),
                        "std_diff": _json_float(trait.std_diff),
                        "text": str(trait.text),
                    }
                    for trait in traits.itertuples(index=False)
                ],
            })
        return sections


@dataclass(frozen=True)
class _Candidate:
    """One column whose segment means are compared: a numeric feature, or one label of a categorical one."""

    feature: str
    category: Any  # None for a numeric feature
    label: str
    kind: str
    values: np.ndarray  # (n_units,) float, NaN = missing


def describe_segments(
    units: pd.DataFrame,
    segment: np.ndarray,
    *,
    n_segments: int,
    outlier: np.ndarray,
    rows: np.ndarray,
    revenue: np.ndarray | None,
    feature_columns: Sequence[str],
    top_traits: int = 3,
) -> SegmentDescription:
    """Sizes, ranked traits and a name for each segment 0..n_segments−1 (formulas in the module docstring).

    units: (n_units, ...) one row per clustered unit, the feature columns in original units;
    segment: (n_units,) int in 0..n_segments−1; outlier: (n_segments,) bool, True for an outlier group;
    rows: (n_units,) input rows per unit; revenue: (n_units,) spend per unit, or None;
    feature_columns: the columns of ``units`` to describe, in order (ties rank in this order);
    top_traits: k, the number of trait_i columns of the table and of traits per segment in ``to_metrics``.
    """
    segment, outlier, rows, revenue = _validated(
        units, segment, n_segments, outlier, rows, revenue, feature_columns, top_traits)
    candidates = [candidate for column in feature_columns for candidate in _candidates(units[column], column)]
    traits = _ranked_traits(candidates, segment, n_segments)
    table = _size_table(segment, n_segments, outlier, rows, revenue)
    for position in range(1, top_traits + 1):
        top = traits[traits["rank"] == position].set_index("segment")["text"]
        table[f"trait_{position}"] = top.reindex(table["segment"]).fillna("").to_numpy()
    table.insert(1, "name", _segment_names(traits, table["customers"].to_numpy(), outlier))
    logger.info("described %d segments: %s", n_segments, "; ".join(table["name"]))
    return SegmentDescription(table=table, traits=traits)


def feature_label(column: str) -> FeatureLabel:
    """The readable label of a feature: a known name; a category share ``share_C!=v`` (customers whose C is not
    the most frequent value v) as "C other than v" and ``share_C=v`` as "C v"; ``share_X`` as "X share"; else the
    column name itself."""
    if column in KNOWN_FEATURES:
        return KNOWN_FEATURES[column]
    if column.startswith("share_"):
        share_of = column[len("share_"):]
        if "!=" in share_of:
            source, value = share_of.split("!=", 1)
            return FeatureLabel(f"{source} other than {value}", SHARE, f"Outside {value}", f"Mostly {value}",
                                group=source)
        if "=" in share_of:
            source, value = share_of.split("=", 1)
            return FeatureLabel(f"{source} {value}", SHARE, f"Many from {value}", f"Few from {value}", group=source)
        return FeatureLabel(f"{share_of.replace('_', ' ')} share", SHARE)
    return FeatureLabel(column)


def format_value(value: float, kind: str) -> str:
    """A value in original units as text: share 0.853 -> "85%", money 1234.5 -> "1,234.50", days 12.3 -> "12 days",
    years 34.6 -> "35 years", count 2.26 -> "2.3", number -> 3 significant digits; NaN -> "n/a"."""
    if kind not in VALUE_KINDS:
        raise ValueError(f"kind must be one of {VALUE_KINDS}, got {kind!r}")
    if value is None or not math.isfinite(value):
        return "n/a"
    if kind == SHARE:
        percent = 100 * value
        return "0%" if percent == 0 else f"{percent:.0f}%" if abs(percent) >= 1 else f"{percent:.2g}%"
    if kind == MONEY:
        return f"{value:,.2f}"
    if kind in (DAYS, YEARS):
        return f"{value:,.0f} {kind}" if abs(value) >= 10 else f"{value:.1f} {kind}"
    if kind == COUNT:
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _validated(
    units: pd.DataFrame,
    segment: np.ndarray,
    n_segments: int,
    outlier: np.ndarray,
    rows: np.ndarray,
    revenue: np.ndarray | None,
    feature_columns: Sequence[str],
    top_traits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    n_units = len(units)
    if n_segments < 1:
        raise ValueError(f"n_segments must be at least 1, got {n_segments}")
    if top_traits < 1:
        raise ValueError(f"top_traits must be at least 1, got {top_traits}")
    segment = np.asarray(segment)
    if segment.shape != (n_units,) or (n_units and not np.issubdtype(segment.dtype, np.integer)):
        raise ValueError(f"segment must be ({n_units},) integers, got shape {segment.shape} dtype {segment.dtype}")
    if n_units and (segment.min() < 0 or segment.max() >= n_segments):
        raise ValueError(f"segment values must lie in 0..{n_segments - 1}, got {segment.min()}..{segment.max()}")
    outlier = np.asarray(outlier, dtype=bool)
    if outlier.shape != (n_segments,):
        raise ValueError(f"outlier must have shape ({n_segments},), got {outlier.shape}")
    rows = np.asarray(rows)
    if rows.shape != (n_units,):
        raise ValueError(f"rows must have shape ({n_units},), got {rows.shape}")
    if revenue is not None:
        revenue = np.asarray(revenue, dtype=np.float64)
        if revenue.shape != (n_units,):
            raise ValueError(f"revenue must have shape ({n_units},) or be None, got {revenue.shape}")
    missing = [column for column in feature_columns if column not in units.columns]
    if missing:
        raise ValueError(f"feature_columns {missing} are not columns of units; valid: {list(units.columns)}")
    return segment.astype(np.int64), outlier, rows.astype(np.int64), revenue


def _is_categorical(values: pd.Series, column: str) -> bool:
    known = KNOWN_FEATURES.get(column)
    if known is not None:
        return known.kind is None
    return not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def _numeric_kind(values: np.ndarray, column: str) -> str:
    """The kind of a numeric feature without a known label, from the words of its name, else its values."""
    words = set(column.lower().split("_"))
    if "share" in words:
        return SHARE
    if "log" in words:
        return NUMBER
    if "days" in words:
        return DAYS
    if words & MONEY_WORDS:
        return MONEY
    if words & {"age", "years"}:
        return YEARS
    if words & COUNT_WORDS:
        return COUNT
    present = values[~np.isnan(values)]
    if present.size and np.isin(present, (0.0, 1.0)).all():
        return SHARE  # a 0/1 flag: its mean is the share of units with the flag
    return NUMBER


def _candidates(values: pd.Series, column: str) -> list[_Candidate]:
    label = feature_label(column)
    if not _is_categorical(values, column):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        kind = label.kind or _numeric_kind(numbers, column)
        return [_Candidate(column, None, label.label, kind, numbers)]
    # Each unit's text is str(value), MISSING_LABEL when missing; found per distinct value (factorize), not per unit.
    codes, distinct = pd.factorize(values, use_na_sentinel=True)  # code −1: missing
    texts_of_codes = [str(value) for value in distinct] + [MISSING_LABEL]
    present_codes = np.unique(codes)
    categories = sorted({texts_of_codes[code] for code in present_codes})
    category_of_code = np.array([categories.index(text) if text in categories else -1 for text in texts_of_codes])
    unit_category = category_of_code[codes]  # codes −1 index the last entry: MISSING_LABEL
    return [
        _Candidate(column, category, f"{label.label} {category}", SHARE, (unit_category == k).astype(np.float64))
        for k, category in enumerate(categories)
    ]


def _ranked_traits(candidates: list[_Candidate], segment: np.ndarray, n_segments: int) -> pd.DataFrame:
    """Per segment and feature the most distinctive candidate, ranked by |d| (ties: feature order)."""
    if not candidates:
        return pd.DataFrame(columns=list(TRAIT_COLUMNS))
    # One candidate column at a time: memory O(n_units), not O(n_units x n_candidates). Each column is divided by
    # its largest magnitude first, so sums and squares of huge values (1e300) cannot overflow; d is scale-free
    # and the means are scaled back to original units.
    shape = (n_segments, len(candidates))
    means, std_diff, overall = np.empty(shape), np.empty(shape), np.empty(len(candidates))
    for position, candidate in enumerate(candidates):
        values = np.asarray(candidate.values, dtype=np.float64)
        present = ~np.isnan(values)
        magnitude = np.max(np.abs(values), where=present, initial=0.0)
        magnitude = magnitude if magnitude > 0 else 1.0
        filled = np.where(present, values / magnitude, 0.0)
        # bincount adds the values in row order, as np.add.at did
        sums = np.bincount(segment, weights=filled, minlength=n_segments)
        counts = np.bincount(segment, weights=present, minlength=n_segments)
        with np.errstate(invalid="ignore", divide="ignore"):
            n_present = present.sum()
            scaled_overall = filled.sum() / n_present
            spread = np.sqrt(np.where(present, (filled - scaled_overall) ** 2, 0.0).sum() / n_present)
            scaled_means = sums / counts  # NaN where a segment has no value
            std_diff[:, position] = (scaled_means - scaled_overall) / spread if spread > 0 else 0.0
        overall[position], means[:, position] = scaled_overall * magnitude, scaled_means * magnitude
    std_diff = np.where(np.isnan(means), np.nan, std_diff)
    feature_order = {name: position for position, name in enumerate(dict.fromkeys(c.feature for c in candidates))}
    records = []
    for seg in range(n_segments):
        best: dict[str, tuple[tuple[float, int, int], int]] = {}
        for position, candidate in enumerate(candidates):
            d = std_diff[seg, position]
            if np.isnan(d):
                continue
            # |d| rounded so that the two labels of a binary feature (d and −d up to rounding) tie
            key = (-round(abs(d), TIE_DECIMALS), 0 if d >= 0 else 1, position)
            if candidate.feature not in best or key < best[candidate.feature][0]:
                best[candidate.feature] = (key, position)
        chosen = sorted(best.values(), key=lambda item: (item[0][0], feature_order[candidates[item[1]].feature]))
        for rank, (_, position) in enumerate(chosen, start=1):
            candidate = candidates[position]
            seg_value, all_value = float(means[seg, position]), float(overall[position])
            records.append({
                "segment": seg, "rank": rank, "feature": candidate.feature, "category": candidate.category,
                "label": candidate.label, "kind": candidate.kind, "segment_value": seg_value,
                "overall_value": all_value, "std_diff": float(std_diff[seg, position]),
                "text": f"{candidate.label} {format_value(seg_value, candidate.kind)} vs "
                        f"{format_value(all_value, candidate.kind)} overall",
            })
    return pd.DataFrame.from_records(records, columns=list(TRAIT_COLUMNS))


def _size_table(segment: np.ndarray, n_segments: int, outlier: np.ndarray, rows: np.ndarray,
                revenue: np.ndarray | None) -> pd.DataFrame:
    customers = np.bincount(segment, minlength=n_segments)
    segment_rows = np.bincount(segment, weights=rows, minlength=n_segments).astype(np.int64)
    if revenue is None:
        segment_revenue = np.full(n_segments, np.nan)
    else:
        segment_revenue = np.bincount(segment, weights=np.nan_to_num(revenue), minlength=n_segments)
    return pd.DataFrame({
        "segment": np.arange(n_segments),
        "outlier_group": outlier,
        "customers": customers,
        "customer_share": _shares(customers),
        "rows": segment_rows,
        "row_share": _shares(segment_rows),
        "revenue": segment_revenue,
        "revenue_share": _shares(segment_revenue),
    })


def _shares(totals: np.ndarray) -> np.ndarray:
    """totals / their sum; NaN where the sum is 0 or NaN."""
    total = totals.sum()
    if not np.isfinite(total) or total == 0:
        return np.full(len(totals), np.nan)
    return totals / total


def _trait_phrase(trait: pd.Series) -> str:
    """"High apparel & home share", "Young", "Mostly gender F": the words of one trait in a name.

    A category label reads "Mostly" (share ≥ 50%) or "Many" when over-represented, "Few" or "No" (share 0) when
    under-represented."""
    positive = trait["std_diff"] >= 0
    if not pd.isna(trait["category"]):
        share = trait["segment_value"]
        word = ("Mostly" if share >= 0.5 else "Many") if positive else ("Few" if share > 0 else "No")
        return f"{word} {trait['label']}"
    label = feature_label(trait["feature"])
    phrase = label.high if positive else label.low
    return phrase or f"{'High' if positive else 'Low'} {trait['label']}"


def _segment_names(traits: pd.DataFrame, customers: np.ndarray, outlier: np.ndarray) -> list[str]:
    names = []
    outlier_number = 0
    for seg in range(len(customers)):
        if outlier[seg]:
            outlier_number += 1
            names.append(f"Outlier group {outlier_number}")
            continue
        if customers[seg] == 0:
            names.append("Empty segment")
            continue
        mine = traits[(traits["segment"] == seg) & (traits["std_diff"].abs() >= NAME_MIN_STD_DIFF)]
        phrases, groups = [], set()
        for _, trait in mine.iterrows():
            group = feature_label(trait["feature"]).group or trait["feature"]
            if group not in groups:
                phrases.append(_trait_phrase(trait))
                groups.add(group)
            if len(phrases) == NAME_TRAITS:
                break
        names.append(" · ".join(phrases) if phrases else "Close to average")
    return _unique(names)


def _unique(names: list[str]) -> list[str]:
    """Append " 2", " 3", ... to a name an earlier entry already uses."""
    used: set[str] = set()
    unique = []
    for name in names:
        candidate, number = name, 1
        while candidate in used:
            number += 1
            candidate = f"{name} {number}"
        used.add(candidate)
        unique.append(candidate)
    return unique


def _json_float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
