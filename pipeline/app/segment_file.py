"""Segment a new transactions file with a saved model: ``segment_file`` (the ``segment.py`` command)."""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import polars as pl

from pipeline.outputs.atomic import ensure_writable_dir
from pipeline.outputs.writers import ChunkedTableWriter
from pipeline.segmentation.segmenter import CustomerSegmenter

logger = logging.getLogger(__name__)

SCORED_CHUNK_ROWS = 500_000


def segment_file(
    model_path: str | os.PathLike, data_path: str | os.PathLike, output_dir: str | os.PathLike, *, fmt: str = "csv"
) -> dict[str, Any]:
    """Segment a transactions file with a saved model; write ``scored_rows`` and ``dropped_rows`` (``fmt``: csv or
    parquet).

    ``scored_rows``: one row per kept input row, ``row_id, <id>, bmu_i, bmu_j, cluster``; ``dropped_rows``:
    ``row_id, <id>, reason`` and the raw values of every removed row. Big Bazaar customer models read the file in
    chunks. Both files are written atomically, only after the whole file was segmented; ``output_dir`` is probed
    for writing before anything is read (OSError). Returns counts, cluster sizes and the paths written.
    """
    out = ensure_writable_dir(output_dir)
    segmenter = CustomerSegmenter.load(model_path)
    with ChunkedTableWriter(out / "dropped_rows", fmt=fmt) as dropped_rows:
        segmentation = segmenter.segment(data_path, dropped_sink=dropped_rows.write)
        if segmentation.cleaning.dropped is not None:  # cleaned in memory: no chunks were streamed
            dropped_rows.write(segmentation.cleaning.dropped)
        n_scored = len(segmentation.row_ids)
        with ChunkedTableWriter(out / "scored_rows", fmt=fmt) as scored_rows:
            for start in range(0, max(n_scored, 1), SCORED_CHUNK_ROWS):
                rows = slice(start, start + SCORED_CHUNK_ROWS)
                scored_rows.write(pl.from_pandas(segmentation.row_segments(segmenter.id_column, rows)))
    cleaning = segmentation.cleaning
    if n_scored + cleaning.n_dropped != cleaning.n_input:
        raise RuntimeError(f"row accounting broken: {cleaning.n_input} rows in != {n_scored} segmented "
                           f"+ {cleaning.n_dropped} dropped")
    sizes = np.bincount(segmentation.row_cluster, minlength=segmenter.neuron_clusters_.n_clusters)
    logger.info("segmented %d of %d rows of %s into %s", n_scored, cleaning.n_input, data_path, out)
    return {
        "rows_in": cleaning.n_input,
        "rows_segmented": n_scored,
        "rows_dropped": cleaning.n_dropped,
        "cluster_sizes": [int(size) for size in sizes],
        "scored_rows": str(scored_rows.path),
        "dropped_rows": str(dropped_rows.path),
    }
