"""How good are the segments? ``python benchmarks/segmentation_quality.py [--quick] [--out PATH]``.

Two parts, both at customer level (one unit per customer, the pipeline's default):

* **Planted recovery** on the built-in synthetic data (customer histories) at separation 0, 0.25, 0.5, 0.75 and 1,
  for several data seeds: the adjusted Rand index (ARI) between each customer's planted segment (noise customers
  left out) and

  - the default pipeline (``CustomerSegmenter()``: SOM, then the default neuron clustering), and the other
    clustering routes given by ``--routes``;
  - k-means (sklearn, ``n_init=10``) and a Gaussian mixture (diagonal covariances) on the same scaled features;
  - a supervised upper bound: gradient boosting (``HistGradientBoostingClassifier``), 5-fold cross-validated
    predictions of the planted segment from the same features.

* **Real data** (``../shared/data``, skipped when absent): Big Bazaar, UCI Online Retail and CDNOW. For the default
  pipeline and for k-means on the same features: the segment sizes, the largest and smallest share of customers,
  the silhouette of the customers in the scaled feature space (sklearn, a seeded sample of at most 5,000), and the
  segment names of ``segments.csv``.

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/segmentation_quality``) and prints the Markdown.
It is a benchmark, not a test: a full run takes several minutes on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import cross_val_predict
from tqdm.auto import tqdm

from pipeline.outputs.atomic import write_json_atomic, write_text_atomic
from pipeline.outputs.tables import describe_fitted_segments, unit_features
from pipeline.segmentation.scoring import NOISE_SEGMENT_ID, customer_key
from pipeline.segmentation.segmenter import CustomerSegmenter, read_raw_table
from pipeline.sources.synthetic import generate

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "segmentation_quality"
SEPARATIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
SILHOUETTE_SAMPLE = 5_000
# Clustering routes compared beside the default: name -> CustomerSegmenter arguments.
ROUTES: dict[str, dict[str, Any]] = {
    "default": {},
    "average": {"linkage_method": "average", "refine": "none"},
    "hit_weighted_ward": {"linkage_method": "hit_weighted_ward", "refine": "none"},
    "ward": {"linkage_method": "ward", "refine": "none"},
    "ward+kmeans": {"linkage_method": "ward", "refine": "kmeans"},
    "average+kmeans": {"linkage_method": "average", "refine": "kmeans"},
    "ward+connectivity": {"linkage_method": "ward", "refine": "none", "connectivity": True},
}
CDNOW_COLUMNS = {"id": "customer_id", "date": "date", "date_format": "%Y%m%d", "amount": "dollar_value",
                 "quantity": None, "unit_price": None, "invoice": None, "categoricals": [], "numerics": []}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one seed: a smoke run")
    parser.add_argument("--n-customers", type=int, default=10_000, help="synthetic customers per data set")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated data seeds")
    parser.add_argument("--separations", default=",".join(map(str, SEPARATIONS)))
    parser.add_argument("--routes", default="default", help=f"comma-separated subset of {','.join(ROUTES)}, or all")
    parser.add_argument("--no-real", action="store_true", help="skip the real data sets")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output path without suffix")
    return parser.parse_args(argv)


def customer_truth(segmenter: CustomerSegmenter, truth: pd.DataFrame) -> np.ndarray:
    """(n_units,) planted segment of each clustered customer of ``segmenter.training_`` (−1 for noise)."""
    segment_of = pd.Series(truth["segment_id"].to_numpy(), index=customer_key(truth["customerID"]).to_numpy())
    ids = segmenter.training_.units[segmenter.id_column]
    return customer_key(ids).map(segment_of).to_numpy(dtype=np.int64)


def reference_labels(X: np.ndarray, k: int, seed: int) -> dict[str, np.ndarray]:
    """k-means and a diagonal Gaussian mixture on the scaled features X (n × D)."""
    return {
        "kmeans": KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(X),
        "gmm": GaussianMixture(k, covariance_type="diag", n_init=2, random_state=seed).fit(X).predict(X),
    }


def supervised_bound(X: np.ndarray, segments: np.ndarray, seed: int) -> float:
    """ARI of 5-fold cross-validated gradient-boosting predictions of the planted segment from X."""
    model = HistGradientBoostingClassifier(random_state=seed)
    predicted = cross_val_predict(model, X, segments, cv=5)
    return float(adjusted_rand_score(segments, predicted))


def planted_recovery(
    n_customers: int, seeds: Iterable[int], separations: Iterable[float], routes: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """One row per (separation, seed, method): customer-level ARI against the planted segments."""
    records = []
    cases = [(separation, seed) for separation in separations for seed in seeds]
    for separation, seed in tqdm(cases, desc="planted recovery", disable=None):
        data = generate(n_customers, seed=seed, separation=separation, rows_per_customer="history")
        for route, arguments in routes.items():
            started = time.perf_counter()
            segmenter = CustomerSegmenter(seed=seed, **arguments).fit(data.transactions)
            seconds = time.perf_counter() - started
            segments = customer_truth(segmenter, data.truth)
            scored = segments != NOISE_SEGMENT_ID
            labels = segmenter.training_.unit_cluster
            records.append({"separation": separation, "seed": seed, "method": f"som:{route}",
                            "ari": adjusted_rand_score(segments[scored], labels[scored]), "seconds": seconds})
        X = segmenter.training_.X
        k = int(np.unique(segments[scored]).size)
        for name, labels in reference_labels(X, k, seed).items():
            records.append({"separation": separation, "seed": seed, "method": name,
                            "ari": adjusted_rand_score(segments[scored], labels[scored]), "seconds": float("nan")})
        records.append({"separation": separation, "seed": seed, "method": "supervised (5-fold)",
                        "ari": supervised_bound(X[scored], segments[scored], seed), "seconds": float("nan")})
    return pd.DataFrame.from_records(records)


def real_data_sets() -> dict[str, tuple[pd.DataFrame, dict[str, Any]]]:
    """The real data sets present under ``../shared/data``: name -> (raw table, CustomerSegmenter arguments)."""
    found: dict[str, tuple[pd.DataFrame, dict[str, Any]]] = {}
    bigbazaar = DATA_ROOT / "bigbazaar_skrohit" / "cproducts.csv"
    if bigbazaar.is_file():
        found["bigbazaar"] = (read_raw_table(bigbazaar, "bigbazaar"), {"schema": "bigbazaar"})
    online_retail = DATA_ROOT / "online_retail_uci" / "online_retail.csv.gz"
    if online_retail.is_file():
        found["online_retail"] = (read_raw_table(online_retail, "online_retail"), {"schema": "online_retail"})
    cdnow = DATA_ROOT / "cdnow" / "CDNOW_master.txt"
    if cdnow.is_file():
        table = pd.read_csv(cdnow, sep=r"\s+", dtype={"customer_id": str, "date": str})
        found["cdnow"] = (table, {"schema": "generic", "columns": CDNOW_COLUMNS})
    return found


def segment_summary(labels: np.ndarray, X: np.ndarray, seed: int) -> dict[str, Any]:
    """Sizes, largest and smallest share of customers, and the silhouette of ``labels`` in X."""
    sizes = np.bincount(labels)
    shares = sizes / sizes.sum()
    sample = min(len(X), SILHOUETTE_SAMPLE)
    silhouette = (float(silhouette_score(X, labels, sample_size=sample, random_state=seed))
                  if np.unique(labels).size > 1 else float("nan"))
    return {"sizes": sizes.tolist(), "largest_share": float(shares.max()), "smallest_share": float(shares.min()),
            "empty_segments": int((sizes == 0).sum()), "silhouette": silhouette}


def real_data_quality(seed: int = 0) -> list[dict[str, Any]]:
    """Per real data set: the default pipeline's segments and k-means on the same features."""
    records = []
    for name, (raw, arguments) in tqdm(real_data_sets().items(), desc="real data", disable=None):
        started = time.perf_counter()
        segmenter = CustomerSegmenter(seed=seed, **arguments).fit(raw)
        seconds = time.perf_counter() - started
        training, clusters = segmenter.training_, segmenter.neuron_clusters_
        X = training.X
        description = describe_fitted_segments(
            segmenter, unit_features(segmenter.preprocessor_, training.units, segmenter.id_column))
        pipeline_summary = segment_summary(training.unit_cluster, X, seed)
        pipeline_summary["names"] = description.table["name"].tolist()
        pipeline_summary["outlier_groups"] = int(np.count_nonzero(clusters.outlier))
        k = clusters.n_segments
        kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(X)
        records.append({"data": name, "customers": int(len(X)), "rows": int(training.cleaning.n_kept),
                        "seconds": seconds, "pipeline": pipeline_summary,
                        "kmeans": segment_summary(kmeans, X, seed)})
    return records


def render_markdown(recovery: pd.DataFrame, real: list[dict[str, Any]], meta: Mapping[str, Any]) -> str:
    """The report: mean ARI (min–max over seeds) per method and separation, then one block per real data set."""
    lines = [f"Machine: {meta['machine']}; command: `{meta['command']}`", ""]
    if not recovery.empty:
        grouped = recovery.groupby(["method", "separation"])["ari"]
        table = grouped.mean().unstack("separation")
        low, high = grouped.min().unstack("separation"), grouped.max().unstack("separation")
        separations = list(table.columns)
        lines += ["| method | " + " | ".join(f"sep {s:g}" for s in separations) + " |",
                  "|---|" + "---|" * len(separations)]
        for method in table.index:
            cells = [f"{table.loc[method, s]:.3f} ({low.loc[method, s]:.2f}–{high.loc[method, s]:.2f})"
                     for s in separations]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    for record in real:
        ours, theirs = record["pipeline"], record["kmeans"]
        lines += [f"**{record['data']}**: {record['customers']:,} customers, {record['rows']:,} rows, "
                  f"fit {record['seconds']:.1f} s", "",
                  "| | segments | largest | smallest | empty | silhouette |", "|---|---|---|---|---|---|"]
        for label, summary in (("pipeline", ours), ("k-means", theirs)):
            lines.append(f"| {label} | {len(summary['sizes'])} | {summary['largest_share']:.1%} | "
                         f"{summary['smallest_share']:.1%} | {summary['empty_segments']} | "
                         f"{summary['silhouette']:.3f} |")
        lines += ["", "Segment names: " + "; ".join(ours["names"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)
    seeds = [0] if args.quick else [int(seed) for seed in args.seeds.split(",")]
    separations = (0.0, 1.0) if args.quick else [float(s) for s in args.separations.split(",")]
    n_customers = 1_500 if args.quick else args.n_customers
    names = list(ROUTES) if args.routes == "all" else args.routes.split(",")
    unknown = sorted(set(names) - set(ROUTES))
    if unknown:
        raise SystemExit(f"unknown route(s) {unknown}; valid: {list(ROUTES)} or all")
    routes = {name: ROUTES[name] for name in names}
    meta = {"machine": f"{platform.node()} ({platform.processor() or platform.machine()}), "
                       f"Python {platform.python_version()}",
            "command": " ".join(["python benchmarks/segmentation_quality.py", *(argv or sys.argv[1:])]),
            "n_customers": n_customers, "seeds": seeds}
    recovery = planted_recovery(n_customers, seeds, separations, routes)
    real = [] if args.no_real or args.quick else real_data_quality()
    markdown = render_markdown(recovery, real, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"meta": meta, "recovery": recovery.to_dict("records"), "real": real},
                      args.out.with_suffix(".json"))
    write_text_atomic(markdown + "\n", args.out.with_suffix(".md"))
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
