"""One segmentation run: load → clean → features → SOM → neuron clusters → output files.

Hydra's ``train.py`` calls ``run(cfg)``; tests call it with a plain dict.

The configuration keys are those of ``configs/`` (seed, paths.output_dir, data, features, som, device, clustering,
plots, objective). The model is fitted by ``pipeline.segmentation.segmenter.CustomerSegmenter``, the same code that segments new
files later. Every output is first written (atomically) into a hidden staging folder inside ``output_dir`` and
moved into place only when all of them exist, so a run that fails, at any stage, leaves no result files.
"""
from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import silhouette_score

from pipeline.engines.base import make_engine
from pipeline.outputs.atomic import (
    ensure_writable_dir,
    make_staging_dir,
    remove_stale_staging,
    write_json_atomic,
)
from pipeline.outputs.plots import (
    dendrogram_leaves,
    plot_cluster_map,
    plot_component_planes,
    plot_dendrogram,
    plot_k_selection,
    plot_truncated_dendrogram,
    plot_u_matrix,
)
from pipeline.outputs.tables import (
    cluster_profiles,
    customer_table,
    describe_fitted_segments,
    prototype_planes,
    run_metrics,
    unit_features,
)
from pipeline.outputs.report_html import write_report_html
from pipeline.outputs.rows import ClusterSizes, cluster_sizes, result_chunks, round_columns
from pipeline.outputs.writers import PART_NAME, ChunkedTableWriter, write_table
from pipeline.segmentation.scoring import score_against_truth
from pipeline.segmentation.segments import SegmentDescription
from pipeline.segmentation.segmenter import CustomerSegmenter, check_choice, timed_stage, to_plain
from pipeline.sources.chunks import DEFAULT_CHUNK_ROWS
from pipeline.sources.transactions import TransactionSource
from pipeline.sources.synthetic import generate

logger = logging.getLogger(__name__)

DATA_SOURCES = ("synthetic", "file")
OUTPUT_FORMATS = ("csv", "parquet")
OBJECTIVES = ("qe_te", "silhouette")
SILHOUETTE_SAMPLE = 5_000
K_CRITERION = "silhouette"  # the k_selection.csv column that picks k (pipeline.segmentation.clustering)
# Plots embedded in report.html: plot name -> title.
REPORT_IMAGES = {
    "u_matrix": "U-matrix with segments",
    "k_selection": "Choosing the number of segments",
    "dendrogram_truncated": "Truncated dendrogram",
    "component_planes": "Component planes",
}


def run(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Train a segmentation as configured by ``cfg`` and write every output into ``cfg.paths.output_dir``.

    Outputs: result.csv, dropped_rows.csv, cluster_profiles.csv, segments.csv, k_selection.csv (when the
    clustering reports one), metrics.json, model.pt, report.html, customers.csv (customer level only) and
    plots/*.png (unless ``plots.enabled`` is false). Returns the metrics dict written to
    metrics.json; its ``objective`` is the number to minimise. Bad input raises (FileNotFoundError, ValueError,
    TypeError) before any output is published. Before any data is read, the options are checked (model
    parameters, objective, device availability) and the output folder is probed for writing (OSError); stale
    staging folders of killed runs are removed from it.
    """
    config = to_plain(cfg)
    output_dir = Path(_section(config, "paths")["output_dir"])
    seed = config.get("seed", 0)
    data, plots = _section(config, "data"), config.get("plots", {})
    output_format = config.get("outputs", {}).get("format", "csv")
    objective_config = config.get("objective", {})
    objective_name = objective_config.get("name", "qe_te")
    segmenter = CustomerSegmenter.from_sections(
        seed=seed, data=data, features=config.get("features"), som=config.get("som"), device=config.get("device"),
        clustering=config.get("clustering"),
    )
    segmenter.validate_params()
    check_choice("objective.name", objective_name, OBJECTIVES)
    check_choice("outputs.format", output_format, OUTPUT_FORMATS)
    engine = make_engine(config.get("engine"), device=segmenter.device)
    segmenter.check_engine(engine)
    if engine.row_parts and output_format != "parquet":
        raise ValueError(f"engine={engine.name!r} writes result and dropped_rows as Parquet datasets (one part file per "
                         f"partition): set outputs.format=parquet, not {output_format!r}")
    if not engine.is_writer:  # a torch.distributed rank other than 0: it takes part in the fit, rank 0 writes
        segmenter.fit(load_transactions(data, seed)[0], engine=engine)
        return {"objective": objective_value(segmenter, objective_name, objective_config.get("te_weight", 1.0))}
    ensure_writable_dir(output_dir)
    remove_stale_staging(output_dir)
    timings: dict[str, float] = {}
    with timed_stage("load", timings, logger):
        source, truth = load_transactions(data, seed)
    staging = make_staging_dir(output_dir)
    try:
        if engine.row_parts:  # the workers write the dropped rows' part files
            engine.dropped_dir = staging / "dropped_rows"
            segmenter.fit(source, engine=engine)
        else:
            with ChunkedTableWriter(staging / "dropped_rows", fmt=output_format) as dropped_rows:
                segmenter.fit(source, dropped_sink=dropped_rows.write, engine=engine)
                if segmenter.training_.cleaning.dropped is not None:  # cleaned in memory: no chunks were streamed
                    dropped_rows.write(segmenter.training_.cleaning.dropped)
        timings.update(segmenter.timings_)

        with timed_stage("report", timings, logger):
            outputs = _output_tables(segmenter)
            objective = objective_value(segmenter, objective_name, objective_config.get("te_weight", 1.0))
            metrics = run_metrics(segmenter, outputs.sizes, timings=timings, config=config,
                                  objective_name=objective_name, objective=objective)
            metrics["segments"] = outputs.description.to_metrics()
            metrics["engine"] = engine.name
            if truth is not None:
                assignments = segmenter.training_.row_segments(segmenter.id_column)
                metrics["recovery"] = score_against_truth(assignments, truth, id_column=segmenter.id_column).as_dict()

        with timed_stage("write", timings, logger):
            write_result(segmenter, outputs.features, staging, output_format, parts=engine.row_parts)
            for name, table in outputs.tables.items():
                write_table(table, staging / name, fmt="csv")
            segmenter.save(staging / "model.pt")
        plot_paths: dict[str, Path] = {}
        if plots.get("enabled", True):
            with timed_stage("plots", timings, logger):
                plot_paths = write_plots(segmenter, staging / "plots", clustering=config.get("clustering", {}),
                                         dpi=plots.get("dpi", 100),
                                         segment_names=outputs.description.table["name"].tolist())
        metrics["timings_s"] = {stage: round(seconds, 4) for stage, seconds in timings.items()}
        write_json_atomic(metrics, staging / "metrics.json")
        write_report_html(staging / "report.html", overview=report_overview(metrics, data),
                          segments=outputs.description,
                          images={REPORT_IMAGES[name]: path for name, path in plot_paths.items()
                                  if name in REPORT_IMAGES})
        _publish(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        getattr(engine, "close", lambda: None)()
    logger.info("run finished: %d rows in %d clusters, objective %s = %.5g; outputs in %s",
                metrics["rows_clustered"], metrics["n_clusters"], objective_name, objective, output_dir)
    for segment in metrics["segments"]:
        logger.info("segment %d: %s (%.1f%% of customers)", segment["segment"], segment["name"],
                    100 * segment["customer_share"])
    return metrics


def write_result(segmenter: CustomerSegmenter, features: pd.DataFrame, folder: Path, output_format: str, *,
                 parts: bool) -> None:
    """result.csv / result.parquet, written slice by slice; with ``parts`` a Parquet dataset ``result/`` of one part
    file per slice (``part-00000.parquet``, ...)."""
    chunks = result_chunks(segmenter.training_, features, segmenter.id_column)
    if parts:
        for index, chunk in enumerate(chunks):
            write_table(chunk, folder / "result" / PART_NAME.format(index), fmt="parquet")
        return
    with ChunkedTableWriter(folder / "result", fmt=output_format) as result:
        for chunk in chunks:
            result.write(chunk)


def load_transactions(data: Mapping[str, Any], seed: int) -> tuple[TransactionSource, pd.DataFrame | None]:
    """The raw transactions of the ``data`` section and, for synthetic data, the truth (else None).

    ``source: synthetic`` draws ``pipeline.sources.synthetic.generate`` (Big Bazaar schema) with ``n_customers``,
    ``seed`` (default: the run's seed), ``separation``, ``noise_frac``, ``dirt`` and ``rows_per_customer``;
    ``source: file`` names ``path`` (CSV, CSV.gz or Parquet) for ``schema``, checked here and read later, in chunks
    where the schema and feature set allow (``CustomerSegmenter.fit``). ``chunk_rows`` sets the chunk size.
    """
    source = data.get("source", "synthetic")
    schema = data.get("schema", "bigbazaar")
    chunk_rows = data.get("chunk_rows") or DEFAULT_CHUNK_ROWS
    check_choice("data.source", source, DATA_SOURCES)
    if source == "file":
        if not data.get("path"):
            raise ValueError("data.source='file' needs data.path (a .csv, .csv.gz or .parquet file, a glob, a Parquet "
                             "dataset folder or a list of files)")
        file_source = TransactionSource.of(data["path"], chunk_rows=chunk_rows)
        file_source.check()
        return file_source, None
    if schema != "bigbazaar":
        raise ValueError(f"synthetic data has the Big Bazaar schema; got data.schema={schema!r} (use 'bigbazaar')")
    synthetic_seed = data.get("seed")
    generated = generate(
        data.get("n_customers", 10_000),
        seed=seed if synthetic_seed is None else synthetic_seed,
        rows_per_customer=data.get("rows_per_customer", "sample"),
        separation=data.get("separation", 1.0),
        noise_frac=data.get("noise_frac", 0.05),
        dirt=data.get("dirt", "real"),
    )
    return TransactionSource(table=generated.transactions, chunk_rows=chunk_rows), generated.truth


def objective_value(segmenter: CustomerSegmenter, name: str, te_weight: float = 1.0) -> float:
    """The number a sweep minimises.

    ``qe_te``: QE + te_weight·TE of the trained map. ``silhouette``: minus the silhouette of the units' clusters
    in the scaled feature space (sklearn, on at most 5,000 units drawn with the run's seed); NaN, with a warning,
    when the units fall in fewer than two clusters.
    """
    check_choice("objective.name", name, OBJECTIVES)
    if name == "qe_te":
        return float(segmenter.quantization_error_ + te_weight * segmenter.topographic_error_)
    training = segmenter.training_
    if np.unique(training.unit_cluster).size < 2:
        message = "silhouette objective undefined: all units fall in one cluster; objective is NaN"
        logger.warning(message)
        warnings.warn(message, UserWarning, stacklevel=2)
        return float("nan")
    sample_size = min(len(training.X), SILHOUETTE_SAMPLE)
    silhouette = silhouette_score(
        training.X, training.unit_cluster, sample_size=sample_size, random_state=segmenter.seed
    )
    return -float(silhouette)


def write_plots(
    segmenter: CustomerSegmenter, plot_dir: Path, *, clustering: Mapping[str, Any], dpi: int = 100,
    segment_names: list[str] | None = None,
) -> dict[str, Path]:
    """The PNGs of a fitted model, by name: U-matrix with BMU markers per segment, full and truncated dendrograms
    coloured by segment, the segment map with hits, component planes in original units, and (when the clustering
    produced one) the k-selection criterion per k."""
    som, clusters, training = segmenter.som_, segmenter.neuron_clusters_, segmenter.training_
    coords = som.get_euclidean_coordinates()
    hits = np.bincount(training.unit_bmu, minlength=som.n_neurons).reshape(som.x, som.y)
    # units per (neuron, segment): a neuron's units all carry its segment, so the markers cost the same at any size
    segment_hits = hits[:, :, None] * (clusters.labels[:, :, None] == np.arange(int(clusters.labels.max()) + 1))
    planes, plane_names = prototype_planes(segmenter.preprocessor_, som.get_weights())
    leaf_segments, leaf_names = dendrogram_leaves(clusters.labels, clusters.linkage_neurons)
    tree = {"cut_height": clusters.cut_height, "leaf_segments": leaf_segments, "leaf_names": leaf_names,
            "segment_names": segment_names}
    paths = {
        "u_matrix": plot_u_matrix(som.distance_map(), coords, som.topology, plot_dir / "u_matrix.png",
                                  bmu_counts=segment_hits, segment_names=segment_names,
                                  dpi=dpi),
        "dendrogram": plot_dendrogram(clusters.linkage, plot_dir / "dendrogram.png", dpi=dpi, **tree),
        "dendrogram_truncated": plot_truncated_dendrogram(
            clusters.linkage, plot_dir / "dendrogram_truncated.png", p=clustering.get("truncate_p", 12),
            annotate_above=clustering.get("annotate_above"), dpi=dpi, **tree,
        ),
        "cluster_map": plot_cluster_map(clusters.labels, coords, som.topology, plot_dir / "cluster_map.png",
                                        hits=hits, dpi=dpi),
        "component_planes": plot_component_planes(planes, plane_names, coords, som.topology,
                                                  plot_dir / "component_planes.png", dpi=dpi),
    }
    if clusters.k_selection is not None:
        chosen = clusters.k_selection.loc[clusters.k_selection["chosen"], "k"]
        paths["k_selection"] = plot_k_selection(
            clusters.k_selection, plot_dir / "k_selection.png", criterion=K_CRITERION,
            chosen_k=int(chosen.iloc[0]) if len(chosen) else clusters.n_segments, dpi=dpi,
        )
    return paths


def report_overview(metrics: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The overview table of report.html: rows in, dropped by reason, clustered, customers, QE, TE, segments."""
    return {
        "data": data.get("path") or f"synthetic ({data.get('n_customers', '?')} customers)",
        "rows in": metrics["rows_in"],
        "rows dropped": metrics["rows_dropped"],
        "dropped by reason": metrics["dropped_reasons"],
        "rows clustered": metrics["rows_clustered"],
        "customers": metrics["customers"],
        "unit of segmentation": metrics["unit_level"],
        "segments": metrics["n_segments"],
        "outlier groups": metrics["n_outlier_groups"],
        "clustering": metrics["clustering_method"],
        "map": " × ".join(str(side) for side in metrics["map_shape"]),
        "quantization error": round(metrics["quantization_error"], 4),
        "topographic error": round(metrics["topographic_error"], 4),
        "seed": metrics["seed"],
    }


@dataclass(frozen=True)
class _Outputs:
    """The unit-sized outputs of a fitted model: ``tables`` by file name (cluster_profiles.csv, segments.csv,
    k_selection.csv when there is one, customers.csv at customer level), each unit's ``features`` in original
    units (result.csv repeats them on every row), the cluster ``sizes`` and the segment ``description``."""

    tables: dict[str, pd.DataFrame]
    features: pd.DataFrame
    sizes: ClusterSizes
    description: SegmentDescription


def _output_tables(segmenter: CustomerSegmenter) -> _Outputs:
    training, id_column, clusters = segmenter.training_, segmenter.id_column, segmenter.neuron_clusters_
    preprocessor = segmenter.preprocessor_
    logged = [encoder.source for encoder in preprocessor.encoders_ if getattr(encoder, "transform", None) == "slog1p"]
    features = round_columns(unit_features(preprocessor, training.units, id_column), logged)
    customer_level = segmenter.preprocessor_.level == "customer"
    sizes = cluster_sizes(training, clusters.n_clusters, customer_level=customer_level)
    units = customer_table(training, features, id_column)
    description = describe_fitted_segments(segmenter, features)
    tables = {
        "cluster_profiles.csv": cluster_profiles(units, sizes, clusters.labels, segmenter.preprocessor_),
        "segments.csv": description.table,
    }
    if clusters.k_selection is not None:
        tables["k_selection.csv"] = clusters.k_selection
    if customer_level:
        tables["customers.csv"] = units
    return _Outputs(tables=tables, features=features, sizes=sizes, description=description)


def _publish(staging: Path, output_dir: Path) -> None:
    """Move every file of ``staging`` to the same relative path under ``output_dir`` (each an atomic rename)."""
    for staged in sorted(path for path in staging.rglob("*") if path.is_file()):
        target = output_dir / staged.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = config.get(name)
    if not isinstance(section, Mapping):
        raise ValueError(f"configuration needs a {name!r} section (a mapping), got {section!r}")
    return section
