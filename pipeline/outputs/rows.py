"""Row-level outputs without a row-level table in memory: result.csv in chunks, and cluster sizes from row arrays.

A ``Segmentation`` keeps, per kept input row, only its ``row_id``, its id value and its unit. result.csv repeats
each unit's features (original units) on every row of the unit, so it is assembled and written slice by slice:
memory is one slice of ``RESULT_CHUNK_ROWS`` rows plus the unit table, whatever the number of rows.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from pipeline.segmentation.segmenter import Segmentation
from pipeline.sources.loading import ROW_ID

RESULT_CHUNK_ROWS = 500_000
# Features decoded through a log (expm1 of log1p) keep 10 significant digits, as the former "%.10g" writer gave
# them: the round trip leaves last-digit noise (228.00000000000003) that would otherwise be written out.
SIGNIFICANT_DIGITS = 10
SEGMENT_COLUMNS = ("bmu_i", "bmu_j", "cluster")


def result_chunks(
    segmentation: Segmentation, features: pd.DataFrame, id_column: str, *, chunk_rows: int = RESULT_CHUNK_ROWS
) -> Iterator[pl.DataFrame]:
    """result.csv in slices of ``chunk_rows`` kept rows, in input order: the id column, ``row_id``, the row's unit's
    features (``features``: one row per unit, original units), ``bmu_i``, ``bmu_j``, ``cluster``.

    At least one (possibly empty) slice is produced, so a writer always learns the columns.
    """
    unit_features = pl.from_pandas(features.reset_index(drop=True))
    for start in range(0, max(len(segmentation.row_ids), 1), chunk_rows):
        rows = slice(start, start + chunk_rows)
        placed = pl.from_pandas(segmentation.row_segments(id_column, rows))
        yield pl.concat([placed.select(id_column, ROW_ID), unit_features[segmentation.unit_of_row[rows]],
                         placed.select(SEGMENT_COLUMNS)], how="horizontal")


def round_columns(features: pd.DataFrame, columns: list[str], digits: int = SIGNIFICANT_DIGITS) -> pd.DataFrame:
    """``features`` with ``columns`` (float) rounded to ``digits`` significant digits (``round_floats``)."""
    if not columns:
        return features
    rounded = round_floats(pl.from_pandas(features[columns]), digits)
    return features.assign(**{column: rounded.get_column(column).to_numpy() for column in columns})


def round_floats(table: pl.DataFrame, digits: int = SIGNIFICANT_DIGITS) -> pl.DataFrame:
    """``table`` with every float column rounded to ``digits`` significant digits, as float("%.<digits>g" % v):
    NaN, inf, 0 and null are kept.

    The mantissa m = round(v·10^k), k = digits − 1 − floor(log10|v|), is an integer of ``digits`` digits; the value
    is read back from the text "<m>e<−k>" (a correctly rounded parse), so no power of ten is ever rounded.
    """
    columns = [name for name, dtype in table.schema.items() if dtype.is_float()]
    return table.with_columns(_significant(pl.col(name).cast(pl.Float64), digits).alias(name) for name in columns)


def _significant(value: pl.Expr, digits: int) -> pl.Expr:
    exponent = (digits - 1 - value.abs().log10().floor()).cast(pl.Int64, strict=False)
    mantissa = (value * pl.lit(10.0).pow(exponent)).round().cast(pl.Int64, strict=False)
    text = mantissa.cast(pl.String) + pl.lit("e") + (-exponent).cast(pl.String)
    ordinary = value.is_finite() & (value != 0)
    # subnormals (10^k overflows): kept as they are
    return pl.when(ordinary).then(text.cast(pl.Float64, strict=False).fill_null(value)).otherwise(value)


@dataclass(frozen=True)
class ClusterSizes:
    """Per cluster 0..k−1: kept input ``rows``, distinct ``customers`` among them (a customer whose rows fall in
    several clusters counts in each), ``units``; and ``n_customers``, the distinct customers of all kept rows."""

    rows: np.ndarray
    customers: np.ndarray
    units: np.ndarray
    n_customers: int


def cluster_sizes(segmentation: Segmentation, n_clusters: int, *, customer_level: bool) -> ClusterSizes:
    """The ``ClusterSizes`` of a segmentation, from its row arrays (no row table).

    At customer level every customer is one unit, so customers per cluster = units per cluster; at transaction
    level the distinct (cluster, id) pairs of the rows are counted.
    """
    units = np.bincount(segmentation.unit_cluster, minlength=n_clusters)
    rows = np.bincount(segmentation.row_cluster, minlength=n_clusters)
    if customer_level:
        return ClusterSizes(rows=rows, customers=units, units=units, n_customers=len(segmentation.unit_cluster))
    pairs = pl.DataFrame({"cluster": segmentation.row_cluster, "id": segmentation.row_customer_ids}).unique()
    per_cluster = pairs.group_by("cluster").len()
    customers = np.zeros(n_clusters, dtype=np.int64)
    customers[per_cluster.get_column("cluster").to_numpy()] = per_cluster.get_column("len").to_numpy()
    n_customers = pl.Series(segmentation.row_customer_ids).n_unique() if len(segmentation.row_customer_ids) else 0
    return ClusterSizes(rows=rows, customers=customers, units=units, n_customers=int(n_customers))
