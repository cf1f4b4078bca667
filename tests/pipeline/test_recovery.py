"""Recovery of the planted synthetic segments at customer level: the default pipeline (SOM, hit-weighted ward
cut of the neurons' customer means refined by hit-weighted k-means), the seed's route (SOM + average linkage of the
prototypes), and k-means on the same features.

Data: the built-in generator's customer histories (``rows_per_customer="history"``), small enough for CI. The
thresholds are measured means minus a margin (see MEASURED); each figure is the mean over three data/model seeds,
because one SOM run is chaotic and the mean is what the thresholds describe.
"""
from __future__ import annotations

import warnings

import pandas as pd
import pytest

from pipeline.segmentation.scoring import kmeans_baseline, score_against_truth
from pipeline.segmentation.segmenter import CustomerSegmenter
from pipeline.sources.synthetic import generate

SEEDS = (0, 1, 2)
N_CUSTOMERS = 1_500
N_CLUSTERS = 8
ROUTES = {"default": {}, "som+average": {"linkage_method": "average", "refine": "none", "cluster_points": "prototypes"}}
METHODS = (*ROUTES, "kmeans")

# Mean customer-level ARI over SEEDS at separation 1 (1,500 customers, customer histories, the default 20 × 20
# map: PCA start, σ 3, 30,000 random-order updates; 8 segments), measured on the 2-core CPU box; per-seed range
# in brackets.
#   default      0.838 (0.770-0.872)   hit-weighted ward cut of the neurons' customer means, refined by k-means
#                                      with 50 starts
#   som+average  0.753 (0.719-0.789)   the seed's unweighted average linkage of the same map's prototypes
#   kmeans       0.862 (0.856-0.868)   k-means (n_init=10) on the 1,500 customers themselves
# At separation 0 every figure is within ±0.003 of 0. At this size the map's 400 neurons hold about 4
# customers each, their means are noisy, and the SOM route trails k-means by 0.02; on the default 10,000
# customers it matches k-means (BENCHMARKS.md, benchmarks/segmentation_quality.py). These figures rose with the
# festive-season share (before it: 0.803, 0.736, 0.855) and, earlier, with the generator's further-apart segments
# and the logged recency and tenure (0.709, 0.648, 0.762 on a 15 × 15 map).
MEASURED = {"default": 0.838, "som+average": 0.753, "kmeans": 0.862}
MARGIN = 0.05


def recovery_scores(separation: float, seeds: tuple[int, ...] = SEEDS) -> pd.DataFrame:
    """Customer-level ARI per seed and method."""
    records = []
    for seed in seeds:
        data = generate(N_CUSTOMERS, seed=seed, separation=separation, rows_per_customer="history")
        for route, arguments in ROUTES.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                segmenter = CustomerSegmenter(seed=seed, device="cpu", n_clusters=N_CLUSTERS,
                                              **arguments).fit(data.transactions)
            training = segmenter.training_
            rows = training.row_segments(segmenter.id_column)
            labels = {route: training.unit_cluster}
            if route == "default":
                labels["kmeans"] = kmeans_baseline(training.X, N_CLUSTERS, seed)
            for method, unit_labels in labels.items():
                scores = score_against_truth(rows.assign(cluster=unit_labels[training.unit_of_row]), data.truth,
                                             id_column=segmenter.id_column)
                records.append({"seed": seed, "method": method, "customers": scores.ari_customers})
    return pd.DataFrame.from_records(records)


@pytest.fixture(scope="module")
def separated() -> pd.Series:
    return recovery_scores(separation=1.0).groupby("method")["customers"].mean()


@pytest.mark.parametrize("method", METHODS)
def test_recovery_at_full_separation_matches_the_measurement(separated: pd.Series, method: str) -> None:
    assert separated[method] >= MEASURED[method] - MARGIN, separated


def test_hit_weighting_beats_the_seeds_linkage_and_stays_near_kmeans(separated: pd.Series) -> None:
    """Measured: default − kmeans = −0.024, default − som+average = +0.085 (means over SEEDS). The k-means gap
    bound is 0.06: 1,500 customers on 400 neurons leave about 4 per neuron, so whole-neuron segments follow the
    boundaries less closely here than on the default 10,000 customers, and one SOM run is chaotic."""
    assert separated["default"] >= separated["kmeans"] - 0.06, separated
    assert separated["default"] > separated["som+average"] + 0.02, separated


def test_nothing_is_recovered_without_separation(separated: pd.Series) -> None:
    unseparated = recovery_scores(separation=0.0, seeds=(0,)).set_index("method")["customers"]
    assert unseparated.abs().max() < 0.02, unseparated
    assert (separated > unseparated + 0.3).all(), (separated, unseparated)
