"""Segment descriptions against pandas/NumPy computations on small hand-made unit tables."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.segmentation.segments import describe_segments, feature_label, format_value

# 9 customers in 3 segments. Segment 0: apparel lovers, young; segment 1: older, FMCG; segment 2: mixed.
UNITS = pd.DataFrame({
    "share_apparel_home": [0.9, 0.8, 0.85, 0.05, 0.0, 0.1, 0.3, 0.2, 0.4],
    "Age": [22.0, 25.0, 24.0, 61.0, 58.0, 66.0, 40.0, 45.0, 38.0],
    "Gender": ["F", "F", "M", "M", "M", "F", "F", "M", "F"],
    "home_store_code": [1, 1, 2, 3, 3, 3, 2, 2, 1],
    "monetary_total": [1200.0, 900.0, 1500.0, 80.0, 120.0, 60.0, 400.0, 350.0, 500.0],
    "loyalty_points": [3.0, 1.0, 2.0, 7.0, 9.0, 8.0, 5.0, 5.0, 4.0],
})
SEGMENT = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
ROWS = np.array([5, 3, 4, 1, 2, 1, 2, 2, 3])
REVENUE = UNITS["monetary_total"].to_numpy()
FEATURES = list(UNITS.columns)


def describe(units=UNITS, segment=SEGMENT, n_segments=3, outlier=None, rows=ROWS, revenue=REVENUE,
             features=FEATURES, top_traits=3):
    outlier = np.zeros(n_segments, bool) if outlier is None else np.asarray(outlier)
    return describe_segments(units, segment, n_segments=n_segments, outlier=outlier, rows=rows, revenue=revenue,
                             feature_columns=features, top_traits=top_traits)


def reference_d(values: pd.Series, segment: np.ndarray) -> pd.Series:
    """d per segment = (segment mean − overall mean) / population std, skipping NaN."""
    present = values.dropna()
    return (values.groupby(segment).mean() - present.mean()) / np.std(present.to_numpy())


def trait(description, segment: int, feature: str) -> pd.Series:
    rows = description.traits[(description.traits["segment"] == segment) & (description.traits["feature"] == feature)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_numeric_traits_match_pandas_means_and_population_std():
    description = describe()
    for feature in ("share_apparel_home", "Age", "monetary_total", "loyalty_points"):
        expected = reference_d(UNITS[feature], SEGMENT)
        for seg in range(3):
            row = trait(description, seg, feature)
            assert row["std_diff"] == pytest.approx(expected[seg], rel=1e-12)
            assert row["segment_value"] == pytest.approx(UNITS[feature][SEGMENT == seg].mean())
            assert row["overall_value"] == pytest.approx(UNITS[feature].mean())


def test_categorical_trait_is_the_label_with_the_largest_standardised_difference():
    description = describe()
    for feature in ("Gender", "home_store_code"):
        indicators = pd.get_dummies(UNITS[feature].astype(str)).astype(float)
        d = pd.DataFrame({label: reference_d(indicators[label], SEGMENT) for label in indicators.columns})
        for seg in range(3):
            row = trait(description, seg, feature)
            best = d.loc[seg].abs().round(9)
            winners = best[best == best.max()].index
            positive_winners = [label for label in winners if d.loc[seg, label] > 0]
            assert row["category"] == sorted(positive_winners or winners)[0]
            assert row["std_diff"] == pytest.approx(d.loc[seg, row["category"]], rel=1e-12)
            assert row["segment_value"] == pytest.approx(indicators[row["category"]][SEGMENT == seg].mean())


def test_binary_category_tie_is_told_by_its_over_represented_label():
    # Segment 0 is 2 F of 3 against 5 F of 9: d(F) = −d(M); the trait names the label above its overall share.
    row = trait(describe(), 0, "Gender")
    assert (row["category"], row["label"]) == ("F", "gender F")
    assert row["std_diff"] > 0


def test_traits_rank_by_absolute_difference_and_the_table_shows_the_top_k():
    description = describe(top_traits=2)
    for seg in range(3):
        mine = description.traits[description.traits["segment"] == seg]
        assert mine["rank"].tolist() == list(range(1, len(FEATURES) + 1))
        magnitudes = mine["std_diff"].abs().to_numpy()
        assert (np.diff(magnitudes) <= 1e-12).all()
        table_row = description.table.loc[seg]
        assert [table_row["trait_1"], table_row["trait_2"]] == mine["text"].head(2).tolist()
    assert "trait_3" not in description.table.columns


def test_ties_between_features_keep_the_feature_order():
    units = UNITS.assign(age_copy=UNITS["Age"])
    for features in (["age_copy", "Age"], ["Age", "age_copy"]):
        description = describe(units=units, features=features)
        first = description.traits[(description.traits["segment"] == 0) & (description.traits["rank"] == 1)]
        assert first["feature"].item() == features[0]


def test_sizes_and_shares_match_groupby_sums():
    table = describe().table
    frame = pd.DataFrame({"segment": SEGMENT, "rows": ROWS, "revenue": REVENUE})
    expected = frame.groupby("segment").agg(customers=("rows", "size"), rows=("rows", "sum"),
                                            revenue=("revenue", "sum"))
    assert table["customers"].tolist() == expected["customers"].tolist()
    assert table["rows"].tolist() == expected["rows"].tolist()
    np.testing.assert_allclose(table["revenue"], expected["revenue"])
    np.testing.assert_allclose(table["customer_share"], expected["customers"] / len(SEGMENT))
    np.testing.assert_allclose(table["row_share"], expected["rows"] / ROWS.sum())
    np.testing.assert_allclose(table["revenue_share"], expected["revenue"] / REVENUE.sum())
    assert list(table.columns[:9]) == ["segment", "name", "outlier_group", "customers", "customer_share", "rows",
                                       "row_share", "revenue", "revenue_share"]


def test_trait_text_is_in_original_units():
    description = describe()
    apparel = trait(description, 0, "share_apparel_home")
    assert apparel["text"] == "apparel & home share 85% vs 40% overall"  # (0.9+0.8+0.85)/3; 3.6/9
    age = trait(description, 1, "Age")
    assert age["text"] == "age 62 years vs 42 years overall"  # (61+58+66)/3 = 61.7; 379/9 = 42.1
    spend = trait(description, 2, "monetary_total")
    assert spend["text"] == "total spend 416.67 vs 567.78 overall"  # 1250/3; 5110/9
    points = trait(description, 1, "loyalty_points")
    assert (points["label"], points["text"]) == ("loyalty_points", "loyalty_points 8 vs 4.89 overall")
    store = trait(description, 1, "home_store_code")
    assert store["text"] == "home store 3 100% vs 33% overall"


@pytest.mark.parametrize("value, kind, text", [
    (0.853, "share", "85%"), (0.0012, "share", "0.12%"), (0.0, "share", "0%"), (1234.5, "money", "1,234.50"),
    (12.3, "days", "12 days"), (2.26, "days", "2.3 days"), (34.6, "years", "35 years"), (2.26, "count", "2.3"),
    (1234.0, "count", "1,234"), (0.012345, "number", "0.0123"), (12345.6, "number", "12,346"),
    (float("nan"), "money", "n/a"),
])
def test_format_value(value, kind, text):
    assert format_value(value, kind) == text


def test_format_value_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of .*'share'.*got 'percent'"):
        format_value(0.5, "percent")


def test_labels_known_share_prefix_and_fallback():
    assert feature_label("recency_days").label == "days since last visit"
    assert feature_label("share_FuturePrivilegeClub").label == "FuturePrivilegeClub share"
    assert feature_label("some_new_column").label == "some_new_column"


def test_names_come_from_the_top_traits():
    numeric = ["share_apparel_home", "Age", "monetary_total", "loyalty_points"]
    d0 = {feature: reference_d(UNITS[feature], SEGMENT)[0] for feature in numeric}
    assert sorted(d0, key=lambda feature: -abs(d0[feature]))[:2] == ["share_apparel_home", "monetary_total"]
    names = describe().table["name"].tolist()
    assert names[0] == "High apparel & home share · High spend"  # d +1.33, +1.29
    # all of segment 1 in store 3: d = (1 − 1/3) / sqrt(1/3 · 2/3) = 1.41, then age +1.24
    assert names[1] == "Mostly home store 3 · Older"
    assert describe(features=["share_apparel_home", "Age"]).table["name"][0] == "High apparel & home share · Young"


def test_names_are_deterministic_unique_and_outliers_are_numbered():
    # Segments 0 and 1 hold the same values, so they describe alike; the second gets a number.
    units = pd.concat([UNITS.iloc[:3], UNITS.iloc[:3], UNITS], ignore_index=True)
    segment = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4])
    rows = np.ones(len(units), dtype=int)
    kwargs = dict(units=units, segment=segment, n_segments=5, outlier=[False, False, True, False, True],
                  rows=rows, revenue=None)
    first, second = describe(**kwargs), describe(**kwargs)
    names = first.table["name"].tolist()
    assert names == second.table["name"].tolist()
    assert names[1] == f"{names[0]} 2"
    assert (names[2], names[4]) == ("Outlier group 1", "Outlier group 2")
    assert first.table["outlier_group"].tolist() == [False, False, True, False, True]


def test_a_name_uses_one_trait_of_shares_that_add_up_to_one():
    fmcg = np.array([0.95, 0.9, 1.0, 0.2, 0.1, 0.3, 0.5, 0.6, 0.4])
    units = pd.DataFrame({"share_fmcg": fmcg, "share_general": 1 - fmcg, "Age": UNITS["Age"]})
    description = describe(units=units, features=list(units.columns))
    top = description.traits[description.traits["segment"] == 0].head(3)["feature"].tolist()
    assert top == ["share_fmcg", "share_general", "Age"]  # |d| of the two shares tie: feature order
    assert description.table["name"][0] == "High FMCG share · Young"


@pytest.mark.parametrize("labels, name", [
    ("aab" + "bbbccc", "Mostly channel a"),  # a: 67% vs 22%, d +1.07
    ("abc" + "bbbccc", "Many channel a"),  # a: 33% vs 11%, d +0.71
    ("abc" + "aaaaaa", "Few channel a"),  # a: 33% vs 78%, d −1.07
    ("bcd" + "aaaaaa", "No channel a"),  # a: 0% vs 67%, d −1.41
])
def test_category_words_in_names_follow_the_segment_share(labels, name):
    units = pd.DataFrame({"channel": list(labels)})
    segment = np.repeat([0, 1], [3, 6])
    description = describe(units=units, segment=segment, n_segments=2, rows=np.ones(9, int), revenue=None,
                           features=["channel"])
    best = trait(description, 0, "channel")
    assert best["category"] == "a"
    assert description.table["name"][0] == name


def test_segment_equal_to_the_population_is_close_to_average():
    units = pd.concat([UNITS, UNITS], ignore_index=True)
    segment = np.repeat([0, 1], len(UNITS))
    description = describe(units=units, segment=segment, n_segments=2, rows=np.ones(len(units), int), revenue=None)
    assert description.table["name"].tolist() == ["Close to average", "Close to average 2"]
    assert np.allclose(description.traits["std_diff"], 0.0)


def test_empty_segment_and_missing_revenue_do_not_crash_and_give_json_safe_metrics():
    description = describe(n_segments=4, revenue=None)
    empty = description.table.loc[3]
    assert (empty["customers"], empty["rows"], empty["name"], empty["trait_1"]) == (0, 0, "Empty segment", "")
    assert description.table["revenue"].isna().all()
    assert (description.traits["segment"] != 3).all()
    metrics = description.to_metrics()
    json.dumps(metrics, allow_nan=False)
    assert [entry["segment"] for entry in metrics] == [0, 1, 2, 3]
    assert metrics[0]["revenue"] is None and metrics[3]["traits"] == []
    top_three = description.table.loc[0, ["trait_1", "trait_2", "trait_3"]].tolist()
    assert [entry["text"] for entry in metrics[0]["traits"]] == top_three


def test_missing_values_are_left_out_of_means_and_std():
    units = UNITS.assign(Age=UNITS["Age"].where(UNITS.index != 4))
    description = describe(units=units)
    expected = reference_d(units["Age"], SEGMENT)
    for seg in range(3):
        assert trait(description, seg, "Age")["std_diff"] == pytest.approx(expected[seg], rel=1e-12)
    units = UNITS.assign(Gender=UNITS["Gender"].where(UNITS.index != 0))
    labels = set(describe(units=units).traits.query("feature == 'Gender'")["category"])
    assert labels <= {"F", "M", "(missing)"}


def test_unknown_flag_column_reads_as_a_share():
    units = UNITS.assign(foreign_address=[1, 1, 1, 0, 0, 0, 0, 0, 1])
    row = trait(describe(units=units, features=["foreign_address"]), 0, "foreign_address")
    assert (row["kind"], row["text"]) == ("share", "foreign_address 100% vs 44% overall")


@pytest.mark.parametrize("change, message", [
    (dict(segment=np.array([0, 0, 0, 1, 1, 1, 2, 2, 3])), r"segment values must lie in 0\.\.2, got 0\.\.3"),
    (dict(segment=SEGMENT[:-1]), r"segment must be \(9,\) integers"),
    (dict(outlier=[False, True]), r"outlier must have shape \(3,\)"),
    (dict(rows=ROWS[:4]), r"rows must have shape \(9,\)"),
    (dict(revenue=REVENUE[:2]), r"revenue must have shape \(9,\) or be None"),
    (dict(features=["Age", "income"]), r"feature_columns \['income'\] are not columns of units"),
    (dict(top_traits=0), "top_traits must be at least 1, got 0"),
    (dict(n_segments=0, outlier=[]), "n_segments must be at least 1, got 0"),
])
def test_bad_arguments_raise_value_errors_naming_them(change, message):
    with pytest.raises(ValueError, match=message):
        describe(**change)


def test_category_share_columns_read_as_their_category() -> None:
    outside = feature_label("share_Country!=United Kingdom")
    assert (outside.label, outside.high, outside.low) == (
        "Country other than United Kingdom", "Outside United Kingdom", "Mostly United Kingdom")
    germany = feature_label("share_Country=Germany")
    assert (germany.label, germany.high, germany.group) == ("Country Germany", "Many from Germany", "Country")
    assert feature_label("share_fmcg").label == "FMCG share"
    assert feature_label("share_some_token").label == "some token share"


def test_huge_values_give_finite_traits() -> None:
    """Sums and squares of 1e300 would overflow; d must match the same table in units of 1e300."""
    units = pd.DataFrame({"monetary_total": [1e300, 2e300, 3e300, 4e300], "Age": [20.0, 30.0, 40.0, 50.0]})
    segment = np.array([0, 0, 1, 1])
    arguments = dict(n_segments=2, outlier=np.zeros(2, bool), rows=np.ones(4), revenue=None,
                     feature_columns=["monetary_total", "Age"])
    huge = describe_segments(units, segment, **arguments).traits
    small = describe_segments(units.assign(monetary_total=units["monetary_total"] / 1e300), segment,
                              **arguments).traits
    assert np.isfinite(huge["std_diff"]).all()
    np.testing.assert_allclose(huge["std_diff"], small["std_diff"], rtol=1e-12)
    np.testing.assert_allclose(huge.loc[huge["feature"] == "monetary_total", "segment_value"], [1.5e300, 3.5e300])
