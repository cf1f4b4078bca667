"""End to end on the real Big Bazaar file with the seed project's settings; skipped when ../shared/data is absent.

The reference is the original author's own cleaned file (cleaned_cproducts.csv, 11,148 rows of which 16 have no
Age): the features in result.csv, back in original units, must equal it row for row.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import LabelEncoder

from pipeline.app.run import run
from tests.pipeline.test_run import PLOTS, assert_valid_png, tiny_config

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CPRODUCTS = DATA / "bigbazaar_skrohit" / "cproducts.csv"
CLEANED = DATA / "bigbazaar_skrohit" / "cleaned_cproducts.csv"
NUMERIC_SEED_COLUMNS = ["PinCode", "store_code", "till_no", "transaction_number_by_till", "promo_code",
                        "product_code", "sale_price_after_promo", "Age", "Week", "Month"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    for path in (CPRODUCTS, CLEANED):
        if not path.is_file():
            pytest.skip(f"real data absent: {path}")
    output_dir = tmp_path_factory.mktemp("real")
    config = tiny_config(
        output_dir, data__source="file", data__path=str(CPRODUCTS), data__age_reference_date="2018-03-01",
        data__age_range=None, features__name="seed", som__x=15, som__y=15, som__iters=10_000,
        clustering__refine="none", clustering__min_segment_share=0.0, plots__enabled=True, plots__dpi=40,
    )
    return output_dir, run(config)


def test_row_counts_and_drop_reasons(real_run) -> None:
    output_dir, metrics = real_run
    result = pd.read_csv(output_dir / "result.csv")
    dropped = pd.read_csv(output_dir / "dropped_rows.csv")
    assert (len(result), len(dropped), metrics["rows_in"]) == (11_132, 840, 11_972)
    assert dropped["reason"].notna().all()
    nana = dropped["reason"].str.contains("NANA")
    assert nana.sum() == 16  # DOB 'NANA' rows survive the author's dropna and lose their Age later
    assert dropped.loc[~nana, "reason"].str.contains("missing").all()
    assert sorted([*result["row_id"], *dropped["row_id"]]) == list(range(11_972))


def test_eight_clusters_numbered_by_size(real_run) -> None:
    output_dir, metrics = real_run
    result = pd.read_csv(output_dir / "result.csv")
    profiles = pd.read_csv(output_dir / "cluster_profiles.csv")
    assert metrics["n_clusters"] == 8 and profiles["cluster"].tolist() == list(range(8))
    rows = np.bincount(result["cluster"], minlength=8)
    assert rows.sum() == 11_132 and (np.diff(rows) <= 0).all()
    assert profiles["n_neurons"].sum() == 225


def test_features_in_original_units_equal_the_authors_cleaned_file(real_run) -> None:
    output_dir, _ = real_run
    result = pd.read_csv(output_dir / "result.csv", dtype={"Gender": str})
    golden = pd.read_csv(CLEANED).dropna(subset=["Age"]).reset_index(drop=True)
    assert len(golden) == len(result)
    np.testing.assert_array_equal(result["customerID"], golden["customerID"])
    for column in NUMERIC_SEED_COLUMNS:
        np.testing.assert_allclose(result[column], golden[column], rtol=1e-9, atol=1e-6, err_msg=column)
    for column in ("Gender", "discountUsed"):  # the author label-encoded these two over their sorted labels
        np.testing.assert_array_equal(LabelEncoder().fit_transform(result[column]), golden[column], err_msg=column)


def test_every_plot_is_a_valid_png(real_run) -> None:
    output_dir, _ = real_run
    for name in PLOTS:
        assert_valid_png(output_dir / "plots" / name)
