"""The output tables of a run: result rows, customers, cluster profiles, metrics, and prototypes in original units.

Every feature value reported here is in original units: scaled rows and SOM prototypes go back through the
fitted preprocessor (z·scale + mean, then each encoder's decoding), so categorical codes read as their labels.
"""
from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy
import sklearn
import torch

import somtorch
from pipeline.features.encoding import NumericEncoder, TokenSetEncoder
from pipeline.features.feature_sets import N_ROWS, REVENUE
from pipeline.features.preprocessor import FeaturePreprocessor
from pipeline.outputs.rows import ClusterSizes
from pipeline.segmentation.segmenter import CustomerSegmenter, Segmentation
from pipeline.segmentation.segments import SegmentDescription, describe_segments

logger = logging.getLogger(__name__)

CATEGORICAL_ENCODER_KINDS = ("onehot", "label", "majority")


def unit_features(preprocessor: FeaturePreprocessor, units: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """The features of every unit in original units, (n_units, n_sources), decoded from the unscaled model columns
    of ``units`` (``FeaturePreprocessor.transform``), so the scaler's cap never touches them.

    A feature named like the id column (the seed set's customerID) is left out: it equals the id column.
    """
    decoded = preprocessor.decode(units[preprocessor.feature_names])
    return decoded.drop(columns=[id_column], errors="ignore")


def customer_table(segmentation: Segmentation, features: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """One row per customer (customer-level units): the id, ``n_rows``, features, ``bmu_i``, ``bmu_j``, ``cluster``."""
    units = segmentation.units
    bmu_i, bmu_j = np.divmod(segmentation.unit_bmu, segmentation.map_width)
    return pd.concat([
        units[[id_column, N_ROWS]].reset_index(drop=True),
        features.reset_index(drop=True),
        pd.DataFrame({"bmu_i": bmu_i, "bmu_j": bmu_j, "cluster": segmentation.unit_cluster}),
    ], axis=1)


def cluster_profiles(
    unit_table: pd.DataFrame,
    sizes: ClusterSizes,
    neuron_labels: np.ndarray,
    preprocessor: FeaturePreprocessor,
) -> pd.DataFrame:
    """Per cluster (0..k−1, every cluster, also those without rows): sizes and the features of its units.

    Columns: ``cluster``, ``rows`` (kept input rows), ``customers`` (distinct ids among them; a customer whose
    transactions fall in several clusters counts in each), ``units`` (rows of ``unit_table``: transactions or
    customers), ``n_neurons``; then, per feature in original units: ``<f>_mean`` and ``<f>_median`` for a number,
    ``<f>=<label>_share`` (share of the cluster's units with that label) for a one-hot or label-coded category,
    ``<f>:<token>_share`` (share of units holding the token) for a token set. Each unit counts once.
    """
    n_clusters = int(neuron_labels.max()) + 1
    cluster_ids = pd.RangeIndex(n_clusters, name="cluster")
    sizes = pd.DataFrame({
        "rows": sizes.rows[:n_clusters],
        "customers": sizes.customers[:n_clusters],
        "units": sizes.units[:n_clusters],
        "n_neurons": np.bincount(neuron_labels.ravel(), minlength=n_clusters),
    }, index=cluster_ids).astype(np.int64)
    encoders = {encoder.source: encoder for encoder in preprocessor.encoders_}
    clusters = unit_table["cluster"]
    blocks = [sizes]
    for column in [name for name in unit_table.columns if name in encoders]:
        encoder = encoders[column]
        if isinstance(encoder, TokenSetEncoder):
            held = pd.DataFrame(encoder.encode(unit_table[column]),
                                columns=[f"{column}:{token}_share" for token in encoder.tokens])
            blocks.append(held.groupby(clusters.to_numpy()).mean().reindex(cluster_ids))
        elif encoder.kind in CATEGORICAL_ENCODER_KINDS:
            shares = pd.crosstab(clusters, unit_table[column].astype(str), normalize="index")
            shares.columns = [f"{column}={label}_share" for label in shares.columns]
            blocks.append(shares.reindex(cluster_ids))
        else:
            grouped = unit_table[column].groupby(clusters)
            blocks.append(pd.DataFrame({f"{column}_mean": grouped.mean(), f"{column}_median": grouped.median()})
                          .reindex(cluster_ids))
    return pd.concat(blocks, axis=1).reset_index()


def describe_fitted_segments(segmenter: CustomerSegmenter, features: pd.DataFrame) -> SegmentDescription:
    """segments.csv of a fitted model: per segment its size and shares (units, rows, revenue), its distinguishing
    traits against all units in original units, and its name (``pipeline.segmentation.segments.describe_segments``).

    ``features`` is ``unit_features`` of the training units; revenue is each unit's spend on positive lines
    (``monetary_total``), so returns and free items do not count as spend.
    """
    training, clusters = segmenter.training_, segmenter.neuron_clusters_
    return describe_segments(
        features, training.unit_cluster, n_segments=clusters.n_clusters, outlier=clusters.outlier,
        rows=training.units[N_ROWS].to_numpy(), revenue=training.units[REVENUE].to_numpy(np.float64),
        feature_columns=list(features.columns),
    )


def prototype_planes(preprocessor: FeaturePreprocessor, weights: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """SOM prototypes (x, y, D, scaled) → (x, y, K) plottable values in original units, and their K names.

    Each model column is unscaled (v = z·scale + mean); a signed-log column is mapped back to its amount
    (sign(v)·(exp|v| − 1)) and named after its source; one-hot, token, label-code and cyclic columns keep their
    unscaled values (shares, codes, sin/cos), which stay continuous where a decoded label would not.
    """
    x, y, width = weights.shape
    unscaled = preprocessor.standardizer_.inverse_transform(weights.reshape(x * y, width).astype(np.float64))
    planes, names, start = [], [], 0
    for encoder in preprocessor.encoders_:
        stop = start + len(encoder.output_names)
        block = unscaled[:, start:stop]
        if isinstance(encoder, NumericEncoder):
            planes.append(_numeric_values(encoder, block))
            names.append(encoder.source)
        else:
            planes.append(block)
            names.extend(encoder.output_names)
        start = stop
    return np.hstack(planes).reshape(x, y, -1), names


def _numeric_values(encoder: NumericEncoder, block: np.ndarray) -> np.ndarray:
    """A numeric encoder's block in original units without rounding to integers (n, 1)."""
    values = block[:, 0]
    if encoder.transform == "slog1p":
        values = np.sign(values) * np.expm1(np.abs(values))
    return values[:, None]


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose numbers a run depends on."""
    return {
        "python": platform.python_version(),
        "somtorch": somtorch.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "sklearn": sklearn.__version__,
        "scipy": scipy.__version__,
    }


def run_metrics(
    segmenter: CustomerSegmenter,
    sizes: ClusterSizes,
    *,
    timings: Mapping[str, float],
    config: Mapping[str, Any],
    objective_name: str,
    objective: float,
) -> dict[str, Any]:
    """The metrics.json dictionary: row counts, fit quality, cluster sizes, timings, device, versions, config.

    ``objective`` is the value a sweeper minimises (see ``pipeline.app.run.objective_value``).
    """
    training = segmenter.training_
    clusters = segmenter.neuron_clusters_
    hits = np.bincount(training.unit_bmu, minlength=segmenter.som_.n_neurons)
    return {
        "rows_in": int(training.cleaning.n_input),
        "rows_dropped": int(training.cleaning.n_dropped),
        "rows_clustered": int(sizes.rows.sum()),
        "customers": int(sizes.n_customers),
        "units": int(sizes.units.sum()),
        "unit_level": segmenter.preprocessor_.level,
        "dropped_reasons": dict(training.cleaning.reason_counts),
        "feature_set": segmenter.feature_set,
        "features": list(segmenter.preprocessor_.feature_names),
        "quantization_error": float(segmenter.quantization_error_),
        "topographic_error": float(segmenter.topographic_error_),
        "cophenetic_correlation": float(clusters.cophenetic_correlation),
        "n_clusters": int(clusters.n_clusters),
        "n_segments": clusters.n_segments,
        "n_outlier_groups": int(np.count_nonzero(clusters.outlier)),
        "clustering_method": str(clusters.method),
        "cut_height": float(clusters.cut_height),
        "cluster_sizes": {
            "rows": [int(n) for n in sizes.rows],
            "customers": [int(n) for n in sizes.customers],
            "units": [int(n) for n in sizes.units],
            "neurons": [int(n) for n in np.bincount(clusters.labels.ravel(), minlength=clusters.n_clusters)],
        },
        "map_shape": [int(segmenter.som_.x), int(segmenter.som_.y)],
        "empty_neurons": int((hits == 0).sum()),
        "timings_s": {stage: round(float(seconds), 4) for stage, seconds in timings.items()},
        "device": str(segmenter.som_.device),
        "dtype": str(segmenter.som_.dtype).replace("torch.", ""),
        "seed": segmenter.seed,
        "cleaning": dict(segmenter.cleaning_),
        "versions": library_versions(),
        "config": dict(config),
        "objective_name": objective_name,
        "objective": float(objective),
    }
