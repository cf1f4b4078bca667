"""Tests for pipeline.segmentation.segmenter: fit / predict / save / load / segment_file, against the run's own outputs and
against rows the model was trained on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.app.run import run
from pipeline.app.segment_file import segment_file
from pipeline.segmentation.segmenter import CustomerSegmenter, _hit_means
from pipeline.sources.synthetic import generate
from somtorch import SOM
from tests.pipeline.test_run import tiny_config

FIT_ARGUMENTS = dict(x=6, y=6, iters=2000, seed=0, device="cpu")


@pytest.fixture(scope="module")
def training_raw() -> pd.DataFrame:
    return generate(600, seed=0).transactions


@pytest.fixture(scope="module")
def fitted(training_raw: pd.DataFrame) -> CustomerSegmenter:
    return CustomerSegmenter("behavioural", **FIT_ARGUMENTS).fit(training_raw)


@pytest.fixture(scope="module")
def saved_model(fitted: CustomerSegmenter, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fitted.save(tmp_path_factory.mktemp("model") / "model.pt")


def test_model_file_holds_only_plain_values_and_tensors(saved_model: Path, fitted: CustomerSegmenter) -> None:
    state = torch.load(saved_model, map_location="cpu", weights_only=True)
    assert {"som", "preprocessor", "cleaning", "neuron_clusters"} <= set(state)
    assert state["cleaning"] == {"schema": "bigbazaar", "age_reference_date": fitted.cleaning_["age_reference_date"],
                                 "columns": None, "age_range": [14.0, 100.0]}
    np.testing.assert_array_equal(state["neuron_clusters"].numpy(), fitted.neuron_clusters_.labels)
    np.testing.assert_array_equal(state["som"]["weights"].numpy(), fitted.som_.get_weights())


def test_loaded_model_gives_training_rows_their_training_clusters_inside_new_data(
    saved_model: Path, fitted: CustomerSegmenter, training_raw: pd.DataFrame
) -> None:
    training = fitted.training_.row_segments("customerID")
    reused = training_raw.iloc[training["row_id"].to_numpy()[::7]]  # kept training rows, verbatim
    new_rows = generate(400, seed=5).transactions
    mixed = pd.concat([new_rows, reused], ignore_index=True)
    loaded = CustomerSegmenter.load(saved_model, device="cpu")
    predicted = loaded.predict(mixed)
    assert predicted["row_id"].tolist() == list(range(len(mixed)))
    tail = predicted.iloc[len(new_rows):]
    expected = training.set_index("row_id").loc[reused.index]
    assert tail["reason"].isna().all()
    np.testing.assert_array_equal(tail["cluster"].to_numpy(dtype=int), expected["cluster"].to_numpy())
    np.testing.assert_array_equal(tail[["bmu_i", "bmu_j"]].to_numpy(dtype=int), expected[["bmu_i", "bmu_j"]].to_numpy())
    head = predicted.iloc[: len(new_rows)]
    kept = head["reason"].isna()
    assert kept.sum() > 0.8 * len(new_rows)
    assert head.loc[kept, "cluster"].between(0, 7).all() and head.loc[~kept, "cluster"].isna().all()


def test_predict_on_training_data_reproduces_the_run(tmp_path: Path) -> None:
    metrics = run(tiny_config(tmp_path))
    result = pd.read_csv(tmp_path / "result.csv")
    dropped = pd.read_csv(tmp_path / "dropped_rows.csv")
    predicted = CustomerSegmenter.load(tmp_path / "model.pt").predict(generate(700, seed=0).transactions)
    assert len(predicted) == metrics["rows_in"]
    kept = predicted[predicted["reason"].isna()]
    np.testing.assert_array_equal(kept["row_id"], result["row_id"])
    np.testing.assert_array_equal(kept["cluster"].to_numpy(dtype=int), result["cluster"])
    np.testing.assert_array_equal(kept["customerID"].astype(int), result["customerID"])
    removed = predicted[predicted["reason"].notna()]
    assert removed["row_id"].tolist() == dropped["row_id"].tolist()
    assert removed["reason"].tolist() == dropped["reason"].tolist()


def test_customer_level_predict_reproduces_fit(training_raw: pd.DataFrame) -> None:
    segmenter = CustomerSegmenter("customer", **FIT_ARGUMENTS)
    fitted_table = segmenter.fit_predict(training_raw)
    again = segmenter.predict(training_raw)
    pd.testing.assert_frame_equal(fitted_table, again)
    kept = again[again["reason"].isna()]
    per_customer = kept.groupby("customerID")["cluster"].nunique()
    assert (per_customer == 1).all()


def test_unseen_categories_do_not_crash(fitted: CustomerSegmenter, training_raw: pd.DataFrame) -> None:
    odd = training_raw.head(40).copy()
    odd["Gender"] = "other"
    odd["store_code"] = 9999
    odd["discountUsed"] = "BrandNewClub,Payback"
    odd["transactionDate"] = "2019-12-31"
    predicted = fitted.predict(odd)
    kept = predicted[predicted["reason"].isna()]
    assert len(kept) > 20
    assert kept["cluster"].between(0, fitted.neuron_clusters_.n_clusters - 1).all()


def test_segment_file_writes_segments_and_dropped_rows(
    saved_model: Path, fitted: CustomerSegmenter, tmp_path: Path
) -> None:
    raw = generate(300, seed=9).transactions
    data_path = tmp_path / "new.csv"
    raw.to_csv(data_path, index=False)
    summary = segment_file(saved_model, data_path, tmp_path / "scored")
    segments = pd.read_csv(tmp_path / "scored" / "scored_rows.csv")
    dropped = pd.read_csv(tmp_path / "scored" / "dropped_rows.csv")
    assert list(segments.columns) == ["row_id", "customerID", "bmu_i", "bmu_j", "cluster"]
    assert summary["rows_in"] == len(raw) == len(segments) + len(dropped)
    assert sum(summary["cluster_sizes"]) == len(segments) == summary["rows_segmented"]
    expected = fitted.predict(raw)
    expected = expected[expected["reason"].isna()]
    np.testing.assert_array_equal(segments["cluster"], expected["cluster"].to_numpy(dtype=int))
    assert dropped["reason"].notna().all()


def test_random_mode_trains_on_rows_shuffled_with_the_seed(
    training_raw: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {}
    original = SOM.train_random

    def spy(som, data, num_iteration, verbose=False):
        seen["data"] = data.cpu().numpy().copy() if isinstance(data, torch.Tensor) else np.array(data)
        return original(som, data, num_iteration, verbose)

    monkeypatch.setattr(SOM, "train_random", spy)
    segmenter = CustomerSegmenter("behavioural", **{**FIT_ARGUMENTS, "seed": 4}).fit(training_raw)
    X = segmenter.training_.X
    # the rows, shuffled with the seed, in the SOM's dtype (converted once for the whole fit)
    assert seen["data"].dtype == np.dtype(str(segmenter.som_.dtype).replace("torch.", ""))
    np.testing.assert_array_equal(seen["data"], X[np.random.default_rng(4).permutation(len(X))].astype(seen["data"].dtype))


@pytest.mark.parametrize("mode, init", [("batch", "sample"), ("sequential", "pca")])
def test_other_modes_and_inits_are_deterministic(training_raw: pd.DataFrame, mode: str, init: str) -> None:
    first = CustomerSegmenter("behavioural", **FIT_ARGUMENTS, mode=mode, init=init, epochs=4).fit(training_raw)
    second = CustomerSegmenter("behavioural", **FIT_ARGUMENTS, mode=mode, init=init, epochs=4).fit(training_raw)
    np.testing.assert_array_equal(first.som_.get_weights(), second.som_.get_weights())
    untrained_arguments = {**FIT_ARGUMENTS, "iters": 1, "init": "random_unit"}
    untrained = CustomerSegmenter("behavioural", **untrained_arguments).fit(training_raw)
    assert first.quantization_error_ < 0.9 * untrained.quantization_error_


def test_predict_before_fit_and_bad_parameters_are_clear_errors(training_raw: pd.DataFrame) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        CustomerSegmenter().predict(training_raw)
    with pytest.raises(ValueError, match=r"init='zeros'.*'random_unit', 'sample', 'pca'"):
        CustomerSegmenter(init="zeros").fit(training_raw)
    with pytest.raises(ValueError, match="exactly one of n_clusters and max_d"):
        CustomerSegmenter(n_clusters=None).fit(training_raw)
    with pytest.raises(ValueError, match="schema='generic' needs a column mapping"):
        CustomerSegmenter(schema="generic").fit(training_raw)
    with pytest.raises(ValueError, match="age_reference_date 'soon'"):
        CustomerSegmenter(age_reference_date="soon").fit(training_raw)


def test_load_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model file not found"):
        CustomerSegmenter.load(tmp_path / "absent.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a CustomerSegmenter model"):
        CustomerSegmenter.load(tmp_path / "other.pt")


def test_max_d_cut(training_raw: pd.DataFrame) -> None:
    by_count = CustomerSegmenter("behavioural", **FIT_ARGUMENTS).fit(training_raw)
    by_height = CustomerSegmenter("behavioural", **FIT_ARGUMENTS, n_clusters=None,
                                  max_d=by_count.neuron_clusters_.cut_height).fit(training_raw)
    np.testing.assert_array_equal(by_height.neuron_clusters_.labels, by_count.neuron_clusters_.labels)


def test_hit_means_are_the_means_of_each_neurons_units():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 4))
    bmu = rng.integers(0, 11, size=500)  # neuron 11 of the 3 × 4 map stays empty
    hits = np.bincount(bmu, minlength=12).reshape(3, 4)
    expected = np.zeros((12, 4))
    for unit in range(11):
        expected[unit] = X[bmu == unit].mean(axis=0)
    np.testing.assert_allclose(_hit_means(X, bmu, hits).reshape(12, 4), expected, rtol=0, atol=1e-12)
