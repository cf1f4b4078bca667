"""End-to-end tests of pipeline.app.run.run on tiny synthetic configurations: output files, their contents against
independent recomputation (NumPy float64, pandas, sklearn), reproducibility, and bad input."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import silhouette_score

from pipeline.sources.cleaning import clean_bigbazaar
from pipeline.features.preprocessor import FeaturePreprocessor
from pipeline.app.run import objective_value, run
from pipeline.segmentation.segmenter import CustomerSegmenter
from pipeline.sources.synthetic import generate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("u_matrix.png", "dendrogram.png", "dendrogram_truncated.png", "cluster_map.png", "component_planes.png",
         "k_selection.png")
OUTPUTS = ("result.csv", "dropped_rows.csv", "cluster_profiles.csv", "segments.csv", "k_selection.csv",
           "metrics.json", "model.pt", "report.html")
TINY_CUSTOMERS = 700
BEHAVIOURAL_SOURCES = ["Age", "Gender", "sale_price_after_promo", "promo", "discountUsed", "Month", "store_code",
                       "product_family"]

BASE_CONFIG: dict[str, Any] = {
    "seed": 0,
    "paths": {"output_dir": None},
    "data": {
        "source": "synthetic", "schema": "bigbazaar", "path": None, "n_customers": TINY_CUSTOMERS, "seed": None,
        "separation": 1.0, "noise_frac": 0.05, "dirt": "real", "rows_per_customer": "sample",
        "age_reference_date": None, "columns": None,
    },
    "features": {"name": "behavioural"},
    "som": {
        "x": 6, "y": 6, "sigma": 1.0, "learning_rate": 0.5, "mode": "random", "iters": 2000, "epochs": 5,
        "topology": "rectangular", "periodic": False, "neighborhood_function": "gaussian",
        "activation_distance": "euclidean", "decay_function": "asymptotic_decay",
        "sigma_decay_function": "asymptotic_decay", "init": "random_unit",
    },
    "device": {"type": "cpu", "dtype": "float32", "allow_tf32": False},
    "clustering": {"method": "average", "n_clusters": 8, "max_d": None, "truncate_p": 12, "annotate_above": None},
    "plots": {"enabled": False, "dpi": 40},
    "objective": {"name": "qe_te", "te_weight": 1.0},
}


def tiny_config(output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """BASE_CONFIG writing to ``output_dir``; overrides are ``section__key=value``."""
    config = copy.deepcopy(BASE_CONFIG)
    config["paths"]["output_dir"] = str(output_dir)
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        config[section][key] = value
    return config


def assert_valid_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0.01, f"{path.name} is blank"


def assert_no_results(output_dir: Path) -> None:
    """A failed run leaves no output file (and no staging folder) behind."""
    leftovers = list(output_dir.rglob("*")) if output_dir.exists() else []
    assert leftovers == []


@pytest.fixture(scope="module")
def plotted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    output_dir = tmp_path_factory.mktemp("plotted")
    metrics = run(tiny_config(output_dir, plots__enabled=True))
    return output_dir, metrics


@pytest.fixture(scope="module")
def synthetic_clean() -> pd.DataFrame:
    """The tiny run's data, cleaned independently of the run (same generator arguments, same reference day)."""
    raw = generate(TINY_CUSTOMERS, seed=0).transactions
    latest = pd.to_datetime(raw["transactionDate"]).max()
    return clean_bigbazaar(raw, age_reference_date=latest.date().isoformat()).clean


def test_every_output_file_is_written_and_nothing_else(plotted_run) -> None:
    output_dir, _ = plotted_run
    for name in OUTPUTS:
        assert (output_dir / name).is_file(), name
    for name in PLOTS:
        assert_valid_png(output_dir / "plots" / name)
    written = sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*") if p.is_file())
    assert written == sorted([*OUTPUTS, *(f"plots/{name}" for name in PLOTS)])


def test_rows_in_equal_clustered_plus_dropped(plotted_run) -> None:
    output_dir, metrics = plotted_run
    result = pd.read_csv(output_dir / "result.csv")
    dropped = pd.read_csv(output_dir / "dropped_rows.csv")
    rows_in = len(generate(TINY_CUSTOMERS, seed=0).transactions)
    assert metrics["rows_in"] == rows_in == len(result) + len(dropped)
    assert (metrics["rows_clustered"], metrics["rows_dropped"]) == (len(result), len(dropped))
    assert sorted([*result["row_id"], *dropped["row_id"]]) == list(range(rows_in))
    assert list(dropped.columns[:3]) == ["row_id", "customerID", "reason"]
    assert dropped["reason"].notna().all() and len(dropped) > 0


def test_result_header_and_features_in_original_units(plotted_run, synthetic_clean) -> None:
    output_dir, _ = plotted_run
    result = pd.read_csv(output_dir / "result.csv", dtype={"Gender": str})
    assert list(result.columns) == ["customerID", "row_id", *BEHAVIOURAL_SOURCES, "bmu_i", "bmu_j", "cluster"]
    clean = synthetic_clean
    assert result["row_id"].tolist() == clean["row_id"].tolist()
    assert result["customerID"].tolist() == clean["customerID"].tolist()
    np.testing.assert_array_equal(result["Age"], clean["Age"])
    np.testing.assert_allclose(result["sale_price_after_promo"], clean["sale_price_after_promo"], rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(result["promo"], (clean["promo_code"] != 0).astype(int))
    np.testing.assert_array_equal(result["Month"], clean["Month"])
    np.testing.assert_array_equal(result["store_code"], clean["store_code"])
    assert result["Gender"].tolist() == clean["Gender"].tolist()
    assert result["discountUsed"].tolist() == clean["discountUsed"].tolist()
    digits = clean["product_code"].astype(str).str.len()
    family = np.where(digits <= 9, "fmcg", np.where(digits == 10, "general", "apparel_home"))
    assert result["product_family"].tolist() == family.tolist()


def test_clusters_numbered_by_size_and_taken_from_the_bmu(plotted_run) -> None:
    output_dir, metrics = plotted_run
    result = pd.read_csv(output_dir / "result.csv")
    state = torch.load(output_dir / "model.pt", map_location="cpu", weights_only=True)
    neuron_clusters = state["neuron_clusters"].numpy()
    assert neuron_clusters.shape == (6, 6) and set(np.unique(neuron_clusters)) == set(range(8))
    np.testing.assert_array_equal(result["cluster"], neuron_clusters[result["bmu_i"], result["bmu_j"]])
    rows_per_cluster = np.bincount(result["cluster"], minlength=8)
    assert (np.diff(rows_per_cluster) <= 0).all(), rows_per_cluster
    assert metrics["cluster_sizes"]["rows"] == rows_per_cluster.tolist()
    assert metrics["n_clusters"] == 8


def test_bmus_qe_te_and_objective_match_a_float64_recomputation(plotted_run, synthetic_clean) -> None:
    output_dir, metrics = plotted_run
    result = pd.read_csv(output_dir / "result.csv")
    state = torch.load(output_dir / "model.pt", map_location="cpu", weights_only=True)
    X, _ = FeaturePreprocessor.from_state_dict(state["preprocessor"]).transform(synthetic_clean)
    weights = state["som"]["weights"].double().numpy().reshape(36, -1)
    distances = np.sqrt(((X[:, None, :] - weights[None, :, :]) ** 2).sum(axis=2))  # [N, M]
    reported = result["bmu_i"].to_numpy() * 6 + result["bmu_j"].to_numpy()
    assert np.all(distances[np.arange(len(X)), reported] <= distances.min(axis=1) + 1e-4)
    qe = distances.min(axis=1).mean()
    two_best = np.argsort(distances, axis=1)[:, :2]
    grid_gap = np.hypot(*np.subtract(np.divmod(two_best[:, 0], 6), np.divmod(two_best[:, 1], 6)))
    te = float((grid_gap > 1.42).mean())
    assert metrics["quantization_error"] == pytest.approx(qe, rel=1e-5)
    assert metrics["topographic_error"] == pytest.approx(te, abs=2 / len(X))
    assert metrics["objective"] == pytest.approx(metrics["quantization_error"] + metrics["topographic_error"])


def test_metrics_json_contents(plotted_run) -> None:
    output_dir, returned = plotted_run
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["rows_clustered"] == returned["rows_clustered"]
    for key in ("rows_in", "rows_dropped", "rows_clustered", "units", "quantization_error", "topographic_error",
                "cophenetic_correlation", "cluster_sizes", "n_clusters", "cut_height", "timings_s", "device",
                "dtype", "seed", "versions", "config", "objective"):
        assert key in metrics, key
    assert set(metrics["timings_s"]) >= {"load", "clean", "features", "train", "cluster", "write", "plots"}
    assert set(metrics["versions"]) >= {"somtorch", "torch", "numpy", "pandas", "sklearn", "scipy"}
    assert (metrics["device"], metrics["dtype"], metrics["seed"]) == ("cpu", "float32", 0)
    assert metrics["config"]["som"]["x"] == 6
    assert 0.0 < metrics["cophenetic_correlation"] <= 1.0
    assert sum(metrics["cluster_sizes"]["neurons"]) == 36
    assert -1.0 <= metrics["recovery"]["ari_rows"] <= 1.0


def test_cluster_profiles_agree_with_result(plotted_run) -> None:
    output_dir, _ = plotted_run
    result = pd.read_csv(output_dir / "result.csv", dtype={"Gender": str})
    profiles = pd.read_csv(output_dir / "cluster_profiles.csv").set_index("cluster")
    assert profiles.index.tolist() == list(range(8))
    grouped = result.groupby("cluster")
    np.testing.assert_array_equal(profiles["rows"], grouped.size().reindex(range(8), fill_value=0))
    customers = grouped["customerID"].nunique().reindex(range(8), fill_value=0)
    np.testing.assert_array_equal(profiles["customers"], customers)
    hit = profiles["rows"] > 0
    np.testing.assert_allclose(profiles.loc[hit, "Age_mean"], grouped["Age"].mean(), rtol=1e-8)
    np.testing.assert_allclose(profiles.loc[hit, "sale_price_after_promo_median"],
                               grouped["sale_price_after_promo"].median(), rtol=1e-8)
    male_share = (result["Gender"] == "male").groupby(result["cluster"]).mean()
    np.testing.assert_allclose(profiles.loc[hit, "Gender=male_share"], male_share, rtol=1e-8)
    payback = result["discountUsed"].str.split(",").apply(lambda tokens: "Payback" in tokens)
    np.testing.assert_allclose(profiles.loc[hit, "discountUsed:Payback_share"],
                               payback.groupby(result["cluster"]).mean(), rtol=1e-8)
    assert profiles["n_neurons"].sum() == 36


def test_same_seed_gives_byte_identical_result_and_another_seed_does_not(plotted_run, tmp_path: Path) -> None:
    output_dir, _ = plotted_run
    run(tiny_config(tmp_path / "again"))
    assert (tmp_path / "again" / "result.csv").read_bytes() == (output_dir / "result.csv").read_bytes()
    other_seed = tiny_config(tmp_path / "other")
    other_seed["seed"], other_seed["data"]["seed"] = 1, 0  # same data, another SOM seed
    run(other_seed)
    other = pd.read_csv(tmp_path / "other" / "result.csv")
    first = pd.read_csv(output_dir / "result.csv")
    assert (other[["bmu_i", "bmu_j"]].to_numpy() != first[["bmu_i", "bmu_j"]].to_numpy()).any()


def test_customer_level_run_writes_customers_and_every_transaction(tmp_path: Path) -> None:
    metrics = run(tiny_config(tmp_path, features__name="customer", som__mode="batch", som__init="pca"))
    result = pd.read_csv(tmp_path / "result.csv")
    customers = pd.read_csv(tmp_path / "customers.csv")
    dropped = pd.read_csv(tmp_path / "dropped_rows.csv")
    assert len(result) + len(dropped) == metrics["rows_in"]
    assert customers["customerID"].is_unique and len(customers) == result["customerID"].nunique()
    assert metrics["units"] == len(customers) and metrics["unit_level"] == "customer"
    rows_per_customer = result.groupby("customerID").size().reindex(customers["customerID"])
    np.testing.assert_array_equal(customers["n_rows"], rows_per_customer)
    joined = result.merge(customers, on="customerID", suffixes=("", "_customer"))
    for column in ("cluster", "bmu_i", "bmu_j", "monetary_total", "Age"):
        np.testing.assert_array_equal(joined[column], joined[f"{column}_customer"])
    totals = generate(TINY_CUSTOMERS, seed=0).transactions
    spend = totals.loc[result["row_id"], "sale_price_after_promo"].groupby(result["customerID"].to_numpy()).sum()
    expected_spend = spend.reindex(customers["customerID"])
    np.testing.assert_allclose(customers["monetary_total"], expected_spend, rtol=1e-8, atol=1e-6)
    units_per_cluster = customers["cluster"].value_counts().reindex(range(8), fill_value=0)
    assert (np.diff(units_per_cluster.to_numpy()) <= 0).all()


def test_generic_csv_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "client": rng.integers(1, 150, 600),
        "day": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 365, 600), unit="D"),
        "spend": rng.lognormal(3, 1, 600).round(2),
        "channel": rng.choice(["web", "shop", "phone"], 600),
    })
    frame.loc[[5, 17], "spend"] = np.nan
    path = tmp_path / "sales.csv.gz"
    frame.to_csv(path, index=False)
    columns = {"id": "client", "date": "day", "amount": "spend", "categoricals": ["channel"]}
    metrics = run(tiny_config(tmp_path / "out", data__source="file", data__path=str(path), data__schema="generic",
                              data__columns=columns))
    result = pd.read_csv(tmp_path / "out" / "result.csv")
    assert result.columns[0] == "customer_id" and len(result) == 598 and metrics["rows_dropped"] == 2
    np.testing.assert_allclose(result["amount"], frame["spend"].drop([5, 17]).to_numpy(), rtol=1e-9)
    assert result["channel"].tolist() == frame["channel"].drop([5, 17]).tolist()


def test_silhouette_objective_is_minus_the_silhouette_of_the_units(tmp_path: Path) -> None:
    raw = generate(400, seed=2).transactions
    segmenter = CustomerSegmenter("behavioural", x=5, y=5, iters=1000, n_clusters=4, device="cpu").fit(raw)
    training = segmenter.training_
    expected = -silhouette_score(training.X, training.unit_cluster)
    assert objective_value(segmenter, "silhouette") == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="objective.name='fast'.*qe_te"):
        objective_value(segmenter, "fast")


# ---------------------------------------------------------------- bad input


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        run(tiny_config(tmp_path / "out", data__source="file", data__path=str(missing)))
    assert_no_results(tmp_path / "out")


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "no_dob.csv"
    generate(200, seed=0).transactions.drop(columns=["DOB", "PinCode"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['DOB', 'PinCode'\]"):
        run(tiny_config(tmp_path / "out", data__source="file", data__path=str(path)))
    assert_no_results(tmp_path / "out")


def test_empty_table_after_cleaning_is_an_error(tmp_path: Path) -> None:
    raw = generate(150, seed=0).transactions
    raw["DOB"] = pd.NA
    path = tmp_path / "no_dates_of_birth.csv"
    raw.to_csv(path, index=False)
    message = rf"no rows left after cleaning: all {len(raw)} input rows were dropped.*missing DOB"
    with pytest.raises(ValueError, match=message):
        run(tiny_config(tmp_path / "out", data__source="file", data__path=str(path)))
    assert_no_results(tmp_path / "out")


def test_more_clusters_than_neurons_fails_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the SOM must not be trained when the configuration is invalid")

    monkeypatch.setattr(CustomerSegmenter, "_train_som", no_training)
    with pytest.raises(ValueError, match=r"n_clusters=8 is more than the 2×3 map's 6 neurons"):
        run(tiny_config(tmp_path / "out", som__x=2, som__y=3))
    assert_no_results(tmp_path / "out")


def test_fewer_rows_than_neurons_warns_once_but_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="pipeline.segmentation.segmenter"):
        metrics = run(tiny_config(tmp_path, data__n_customers=90, som__x=12, som__y=12))
    pattern = re.compile(r"only \d+ transaction units to train a 12×12 map of 144 neurons")
    assert len([record for record in caplog.records if pattern.search(record.getMessage())]) == 1
    assert metrics["units"] < 144 and (tmp_path / "result.csv").is_file()


def test_unknown_configuration_values_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data.source='ftp'.*'synthetic', 'file'"):
        run(tiny_config(tmp_path, data__source="ftp"))
    with pytest.raises(ValueError, match=r"mode='online'.*'random', 'sequential', 'batch'"):
        run(tiny_config(tmp_path, som__mode="online"))
    with pytest.raises(ValueError, match=r"feature_set='rfm'"):
        run(tiny_config(tmp_path, features__name="rfm"))
    assert_no_results(tmp_path)


def test_segments_csv_and_metrics_describe_every_segment(tmp_path: Path) -> None:
    metrics = run(tiny_config(tmp_path, features__name="customer", clustering__method="hit_weighted_ward",
                              clustering__refine="kmeans"))
    segments = pd.read_csv(tmp_path / "segments.csv")
    customers = pd.read_csv(tmp_path / "customers.csv")
    result = pd.read_csv(tmp_path / "result.csv")
    assert segments["segment"].tolist() == list(range(metrics["n_clusters"]))
    np.testing.assert_array_equal(
        segments["customers"], customers["cluster"].value_counts().reindex(segments["segment"], fill_value=0))
    np.testing.assert_array_equal(
        segments["rows"], result["cluster"].value_counts().reindex(segments["segment"], fill_value=0))
    revenue = customers.groupby("cluster")["monetary_total"].sum().reindex(segments["segment"], fill_value=0)
    np.testing.assert_allclose(segments["revenue"], revenue, rtol=1e-6)
    np.testing.assert_allclose(segments["customer_share"], segments["customers"] / len(customers))
    assert segments["name"].is_unique and segments["name"].str.len().gt(0).all()
    assert [entry["name"] for entry in metrics["segments"]] == segments["name"].tolist()
    assert metrics["n_segments"] + metrics["n_outlier_groups"] == metrics["n_clusters"]
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert report.count('class="segment-card"') == metrics["n_clusters"]
    assert "http://" not in report and "https://" not in report


@pytest.mark.parametrize("map_side", [6, 14])
def test_no_segment_is_ever_empty(tmp_path: Path, map_side: int) -> None:
    """A 14 × 14 map over 700 customers leaves most neurons empty; none of them may become a segment."""
    metrics = run(tiny_config(tmp_path, features__name="customer", som__x=map_side, som__y=map_side,
                              clustering__method="hit_weighted_ward", clustering__refine="kmeans"))
    customers = pd.read_csv(tmp_path / "customers.csv")
    per_segment = np.bincount(customers["cluster"], minlength=metrics["n_clusters"])
    assert (per_segment > 0).all(), per_segment
    assert metrics["cluster_sizes"]["units"] == per_segment.tolist()


def test_a_run_failing_while_writing_the_report_publishes_nothing(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_report(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full while writing report.html")

    monkeypatch.setattr("pipeline.app.run.write_report_html", broken_report)
    with pytest.raises(RuntimeError, match="report.html"):
        run(tiny_config(tmp_path / "out", features__name="customer"))
    assert_no_results(tmp_path / "out")
