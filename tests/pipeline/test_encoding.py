"""Tests for pipeline.features.encoding: the capped, overflow-safe Standardizer and the MajorityEncoder."""
from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from pipeline.features.encoding import MajorityEncoder, Standardizer, encoder_from_state


def test_standardizer_caps_z_scores_but_keeps_the_uncapped_mean_and_scale():
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(10, 2, 500), rng.lognormal(0, 1.5, 500)])
    values[7, 1] = 1e4  # one extreme spender
    scaler = Standardizer(z_cap=3.0).fit(values)
    reference = StandardScaler().fit(values)
    np.testing.assert_allclose(scaler.mean, reference.mean_, rtol=1e-12)
    np.testing.assert_allclose(scaler.scale, reference.scale_, rtol=1e-12)
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled, np.clip(reference.transform(values), -3, 3), rtol=1e-12, atol=1e-12)
    assert scaled[7, 1] == 3.0 and np.abs(scaled).max() == 3.0
    # the inverse of a capped value is the value at the cap
    assert scaler.inverse_transform(scaled)[7, 1] == pytest.approx(reference.mean_[1] + 3 * reference.scale_[1])
    uncapped = Standardizer().fit(values)
    assert reference.transform(values)[7, 1] > 20
    assert uncapped.transform(values)[7, 1] == pytest.approx(reference.transform(values)[7, 1], rel=1e-12)


def test_standardizer_fit_does_not_overflow_near_the_float64_limit():
    values = np.array([[1e300, 1.0], [-3e300, 2.0], [5e307, 4.0], [0.0, 8.0]])
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.std(values[:, 0]))  # the naive squares overflow
    scaler = Standardizer().fit(values)
    for column in range(2):
        exact = [float(v) for v in values[:, column]]
        assert scaler.mean[column] == pytest.approx(statistics.fmean(exact), rel=1e-12)
        assert scaler.scale[column] == pytest.approx(statistics.pstdev(exact), rel=1e-12)
    assert np.isfinite(scaler.transform(values)).all()


def test_standardizer_state_round_trip_and_bad_cap():
    values = np.arange(12, dtype=float).reshape(6, 2) ** 2
    fitted = Standardizer(z_cap=1.0).fit(values)
    restored = Standardizer.from_state(fitted.state())
    np.testing.assert_array_equal(restored.transform(values), fitted.transform(values))
    assert fitted.state()["z_cap"] == 1.0
    for bad in (0, -2.0):
        with pytest.raises(ValueError, match=f"z_cap must be None or a positive.*{bad}"):
            Standardizer(z_cap=bad)


def test_majority_encoder_groups_and_decoding():
    values = pd.Series(["UK"] * 6 + ["DE"] * 3 + ["FR"] * 3 + ["IE"] * 2 + ["ES", "NO", None])
    encoder = MajorityEncoder("Country").fit(values)
    # UK most frequent; DE and FR tie (3) -> smaller first; then IE; ES and NO get no column
    assert encoder.output_names == ["Country!=UK", "Country=DE", "Country=FR", "Country=IE"]
    block = encoder.encode(values)
    labels = values.to_numpy(dtype=object)
    expected = np.column_stack([labels != "UK", labels == "DE", labels == "FR", labels == "IE"]).astype(float)
    np.testing.assert_array_equal(block, expected)
    assert encoder.decode(block).tolist() == [
        *["UK"] * 6, *["DE"] * 3, *["FR"] * 3, "IE", "IE", "(other)", "(other)", "(other)",
    ]
    # customer-level shares: majority below half -> majority; else the largest listed share if >= 0.5
    shares = np.array([[0.4, 0.4, 0.0, 0.0], [0.9, 0.2, 0.7, 0.0], [0.8, 0.3, 0.3, 0.2]])
    assert encoder.decode(shares).tolist() == ["UK", "FR", "(other)"]
    restored = encoder_from_state(encoder.state())
    np.testing.assert_array_equal(restored.encode(values), block)
    assert restored.output_names == encoder.output_names


def test_majority_encoder_with_one_other_value_has_one_column():
    encoder = MajorityEncoder("channel").fit(pd.Series(["web", "store", "web"]))
    assert encoder.output_names == ["channel!=web"]
    np.testing.assert_array_equal(encoder.encode(pd.Series(["store", "web", "app"])), [[1.0], [0.0], [1.0]])


def test_majority_encoder_errors():
    with pytest.raises(ValueError, match="no non-missing values"):
        MajorityEncoder("Country").fit(pd.Series([None, None], dtype=object))
    with pytest.raises(ValueError, match="max_others for 'Country' must be at least 0, got -1"):
        MajorityEncoder("Country", max_others=-1)
    with pytest.raises(RuntimeError, match="not fitted"):
        MajorityEncoder("Country").encode(pd.Series(["UK"]))
