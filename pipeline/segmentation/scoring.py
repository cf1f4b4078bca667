"""How well a segmentation recovers the planted segments of synthetic data, and a k-means baseline.

Rows are joined to the generator's truth by customer id. The cleaned Big Bazaar id is a number (20482) while the
truth keeps the raw text (``BBID_20482``), so both sides are reduced to one key first (``customer_key``).
Scores (sklearn): the adjusted Rand index (ARI) and normalised mutual information (NMI), at transaction level
(each row against its customer's segment) and at customer level (each customer's majority cluster against its
segment); the purity of each cluster (the share of its rows from its most common segment); the confusion matrix.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

logger = logging.getLogger(__name__)

ID_PREFIX = "BBID_"
NOISE_SEGMENT_ID = -1


@dataclass(frozen=True)
class RecoveryScores:
    """Agreement between clusters and true segments.

    Attributes:
        ari_rows, nmi_rows: ARI and NMI over scored rows (row cluster vs its customer's segment).
        ari_customers, nmi_customers: ARI and NMI over customers (majority cluster vs segment).
        purity: per cluster, the share of its scored rows that come from its most common segment.
        overall_purity: Σ_clusters max_segment count / scored rows.
        confusion: rows counted by true segment (index) × cluster (columns).
        n_rows, n_customers: how many rows and customers were scored.
    """

    ari_rows: float
    nmi_rows: float
    ari_customers: float
    nmi_customers: float
    purity: pd.Series
    overall_purity: float
    confusion: pd.DataFrame
    n_rows: int
    n_customers: int

    def as_dict(self) -> dict[str, Any]:
        """Plain values for metrics.json (the confusion matrix as {segment: {cluster: rows}})."""
        return {
            "ari_rows": self.ari_rows,
            "nmi_rows": self.nmi_rows,
            "ari_customers": self.ari_customers,
            "nmi_customers": self.nmi_customers,
            "overall_purity": self.overall_purity,
            "purity": {str(cluster): float(value) for cluster, value in self.purity.items()},
            "confusion": {
                str(segment): {str(cluster): int(count) for cluster, count in row.items()}
                for segment, row in self.confusion.iterrows()
            },
            "n_rows": self.n_rows,
            "n_customers": self.n_customers,
        }


def customer_key(ids: pd.Series) -> pd.Series:
    """Customer ids as comparable text keys: ``BBID_00123``, ``123`` and ``123.0`` all become ``'123'``.

    Ids that are not (prefixed) whole numbers are kept as their stripped text.
    """
    text = ids.astype("string").str.strip().str.removeprefix(ID_PREFIX)
    numbers = pd.to_numeric(text, errors="coerce")
    whole = numbers.notna() & (numbers % 1 == 0)
    keys = text.astype(object)
    keys[whole] = numbers[whole].astype(np.int64).astype(str)
    return pd.Series(keys, index=ids.index, name="customer_key", dtype=object)


def majority_cluster(customer_ids: pd.Series, clusters: pd.Series) -> pd.Series:
    """Each customer's most frequent cluster (ties go to the smallest cluster number), indexed by customer."""
    pairs = pd.DataFrame({"customer": customer_ids.to_numpy(), "cluster": clusters.to_numpy()})
    counts = pairs.groupby(["customer", "cluster"], sort=True).size().rename("count").reset_index()
    ranked = counts.sort_values(["customer", "count", "cluster"], ascending=[True, False, True], kind="stable")
    return ranked.drop_duplicates("customer").set_index("customer")["cluster"]


def score_against_truth(
    assignments: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    id_column: str = "customerID",
    cluster_column: str = "cluster",
    include_noise: bool = False,
) -> RecoveryScores:
    """Score the clusters of ``assignments`` (one row per clustered row) against ``truth`` (one row per customer,
    ``customerID`` and ``segment_id``).

    Noise customers (segment −1, drawn from the background) are left out unless ``include_noise``: they belong to
    no segment, so no clustering can recover them. Every assigned customer must be in the truth.
    """
    for frame, columns, name in ((assignments, (id_column, cluster_column), "assignments"),
                                 (truth, ("customerID", "segment_id"), "truth")):
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise ValueError(f"{name} is missing column(s) {missing}; columns present: {list(frame.columns)}")
    segment_of = pd.Series(truth["segment_id"].to_numpy(), index=customer_key(truth["customerID"]).to_numpy())
    if segment_of.index.duplicated().any():
        repeated = segment_of.index[segment_of.index.duplicated()][:3].tolist()
        raise ValueError(f"truth lists customers more than once, e.g. {repeated}")
    keys = customer_key(assignments[id_column])
    segments = keys.map(segment_of)
    unknown = segments.isna()
    if unknown.any():
        raise ValueError(
            f"{int(unknown.sum())} assigned rows have customers missing from the truth, "
            f"e.g. {assignments.loc[unknown, id_column].unique()[:3].tolist()}"
        )
    scored = pd.DataFrame({
        "customer": keys, "segment": segments.astype(np.int64), "cluster": assignments[cluster_column].to_numpy(),
    })
    if not include_noise:
        scored = scored[scored["segment"] != NOISE_SEGMENT_ID]
    if scored.empty:
        raise ValueError("no rows left to score (all assigned customers are noise)")

    customers = majority_cluster(scored["customer"], scored["cluster"]).to_frame("cluster")
    customers["segment"] = scored.drop_duplicates("customer").set_index("customer")["segment"].reindex(customers.index)
    confusion = pd.crosstab(scored["segment"], scored["cluster"])
    purity = (confusion.max(axis=0) / confusion.sum(axis=0)).rename("purity")
    scores = RecoveryScores(
        ari_rows=float(adjusted_rand_score(scored["segment"], scored["cluster"])),
        nmi_rows=float(normalized_mutual_info_score(scored["segment"], scored["cluster"])),
        ari_customers=float(adjusted_rand_score(customers["segment"], customers["cluster"])),
        nmi_customers=float(normalized_mutual_info_score(customers["segment"], customers["cluster"])),
        purity=purity,
        overall_purity=float(confusion.max(axis=0).sum() / len(scored)),
        confusion=confusion,
        n_rows=int(len(scored)),
        n_customers=int(len(customers)),
    )
    logger.info(
        "recovery: ARI rows %.3f, customers %.3f; NMI rows %.3f, customers %.3f; purity %.3f",
        scores.ari_rows, scores.ari_customers, scores.nmi_rows, scores.nmi_customers, scores.overall_purity,
    )
    return scores


def kmeans_baseline(X: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """k-means labels (n,) of the scaled features X (n × D): sklearn ``KMeans(n_clusters, n_init=10,
    random_state=seed)``, the baseline a SOM + hierarchical clustering should match."""
    if n_clusters > len(X):
        raise ValueError(f"n_clusters={n_clusters} is more than the {len(X)} rows to cluster")
    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(X).astype(np.int64)
