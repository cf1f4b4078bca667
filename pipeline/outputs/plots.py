"""Pictures of a trained SOM and its neuron clusters, written as PNG files.

Every map picture draws one cell per neuron at its Euclidean coordinates (xx[i, j], yy[i, j]) as given by the
SOM (MiniSom's layout): a unit square on rectangular maps, a pointy-top hexagon of circumradius 1/√3 on hexagonal
maps, so neighbouring hexagons touch. The horizontal axis is i, the vertical axis j. Cells are drawn as one
vectorised collection, so a 100 × 100 map costs about as much as a small one.

Segments have one colour everywhere (``cluster_palette``: the cluster map, the U-matrix markers, the dendrogram
links and leaves) and one short code, "S3" (``segment_code``). Dendrograms take the segment of each linkage
observation, so a linkage over some neurons only (the non-empty ones) draws the same way as one over all.

Each ``plot_*`` function writes the figure of its ``*_figure`` twin; the figures do not depend on the dpi (marker
sizes and line widths are in points, set from the figure size). Figures are built on matplotlib's headless Agg
canvas without pyplot, so nothing is shown and no global figure state is kept; each PNG is written atomically.
"""
from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import BoundaryNorm, Colormap, ListedColormap, Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy.cluster.hierarchy import dendrogram, fcluster
from tqdm import tqdm

from pipeline.outputs.atomic import write_atomic

logger = logging.getLogger(__name__)

TOPOLOGIES: tuple[str, ...] = ("rectangular", "hexagonal")
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
MAX_MARKER_LABELS = 50
COUNTED_LABEL_SPAN = 1 << 20  # integer labels within this span are counted by bincount (``distinct_labels``)
MAX_LEGEND_ENTRIES = 20
FULL_DENDROGRAM_MAX_LEAF_LABELS = 120
MIXED_COLOR = "#4d4d4d"  # dendrogram links over several segments, or above the cut
MERGE_LABEL_OFFSET_POINTS = 5.0
CUT_BAND_SHARE = 0.02  # of the axes height: least gap between a merge-height label and the cut line
CUT_LINE_GID, CUT_LABEL_GID, LEAF_STRIP_GID = "cut-line", "cut-label", "leaf-strip"
LEAF_STRIP_HEIGHT = 0.025  # axes fraction: the strip under the leaves showing their segments
LEAF_STRIP_WIDTH = 8.0  # of the 10 data units scipy gives each leaf
MAP_LONGEST_SIDE_INCHES = 7.0
MIN_MARKER_WIDTH, MAX_MARKER_WIDTH = 0.25, 0.7  # BMU marker widths, as fractions of a cell's width
HALO_COLOR = "#ffffff"  # under every BMU marker, so markers read on dark U-matrix cells
HIT_MARKER_COLOR = "#2ca02c"
HALO_GID = "marker-halo"
MAX_GRID_TICKS = 10  # per map axis; component planes keep fewer
PLANE_MAX_GRID_TICKS = 6
CHOSEN_K_COLOR = "#d62728"
CHOSEN_K_GID = "chosen-k"
PLANE_TITLE_WIDTH = 28  # characters per line of a component plane's title

Coords = tuple[np.ndarray, np.ndarray]


def plot_u_matrix(
    distance_map: np.ndarray,
    coords: Coords,
    topology: str,
    path: str | os.PathLike,
    *,
    bmu_ij: np.ndarray | None = None,
    marker_labels: np.ndarray | None = None,
    segment_names: Sequence[str] | None = None,
    cmap: str = "bone_r",
    dpi: int = 100,
    bmu_counts: np.ndarray | None = None,
) -> Path:
    """Write ``u_matrix_figure`` (same arguments) as a PNG at ``path``; return the path."""
    figure = u_matrix_figure(
        distance_map, coords, topology, bmu_ij=bmu_ij, marker_labels=marker_labels, segment_names=segment_names,
        cmap=cmap, bmu_counts=bmu_counts,
    )
    return _save(figure, path, dpi)


def u_matrix_figure(
    distance_map: np.ndarray,
    coords: Coords,
    topology: str,
    *,
    bmu_ij: np.ndarray | None = None,
    marker_labels: np.ndarray | None = None,
    segment_names: Sequence[str] | None = None,
    cmap: str = "bone_r",
    bmu_counts: np.ndarray | None = None,
) -> Figure:
    """The U-matrix (x, y) as coloured cells with a colorbar, optionally with BMU markers.

    Markers are one per hit neuron (or per (neuron, label) pair when ``marker_labels`` is given), with marker area
    proportional to the number of rows mapped there, so the picture costs the same for any number of rows. When
    a neuron holds rows of several labels, their markers are spread on a small circle around the cell centre.
    Every marker has a white halo under its coloured outline, so it reads on dark (border) cells as on light
    ones. Marker areas and line widths are in points, set by the cell size in the figure (inches), so the
    picture looks the same at every dpi: areas from (``MIN_MARKER_WIDTH`` · cell)² to (``MAX_MARKER_WIDTH`` ·
    cell)².

    Args:
        distance_map: (x, y) U-matrix, e.g. ``SOM.distance_map()``.
        coords: (xx, yy), each (x, y), the neurons' Euclidean coordinates.
        topology: "rectangular" or "hexagonal".
        bmu_ij: optional (N, 2) integer BMU grid indices (i, j) of the rows.
        marker_labels: optional (N,) label per row: distinct marker and colour per label, at most
            ``MAX_MARKER_LABELS`` distinct values, listed in a legend. Needs ``bmu_ij``. Non-negative integers are
            segment ids: segment s gets ``cluster_palette`` colour s and the code "S<s>", as in the other plots.
        segment_names: optional name per segment, for the legend, when ``marker_labels`` are segment ids
            0..n_segments − 1 (or with a 3-D ``bmu_counts``).
        cmap: matplotlib colormap name for the distances.
        bmu_counts: instead of ``bmu_ij`` (and ``marker_labels``), the rows already counted: (x, y) rows per
            neuron, or (x, y, S) rows per neuron and segment id 0..S − 1. It draws the markers that rows with
            these counts draw, at a cost independent of the number of rows; counts of chunks merge by addition.
    """
    distance_map = _validate_grid_values(distance_map, "distance_map")
    coords = _validate_coords(coords, distance_map.shape)
    _validate_topology(topology)
    if bmu_counts is not None and (bmu_ij is not None or marker_labels is not None):
        raise ValueError("give either bmu_counts (rows counted per neuron) or bmu_ij and marker_labels (per row)")
    if marker_labels is not None and bmu_ij is None:
        raise ValueError("marker_labels needs bmu_ij (the BMU of each labelled row)")
    labelled_counts = bmu_counts is not None and np.ndim(bmu_counts) == 3
    if segment_names is not None and marker_labels is None and not labelled_counts:
        raise ValueError("segment_names needs marker_labels (the segment of each row) or (x, y, S) bmu_counts")

    fig, ax = _map_figure(coords, topology)
    cells = _draw_cells(ax, distance_map, coords, topology, cmap=cmap, norm=Normalize())
    fig.colorbar(cells, ax=ax, label="distance to neighbours (U-matrix)")
    with_markers = bmu_ij is not None or bmu_counts is not None
    ax.set_title("U-matrix" + (" with BMUs (marker area ∝ rows)" if with_markers else ""))
    if not with_markers:
        return fig
    style = _MarkerStyle.for_map(coords)
    neuron_count = distance_map.size
    if bmu_counts is not None:
        counts = _validate_bmu_counts(bmu_counts, distance_map.shape, segment_names)
        if counts.ndim == 2:
            _draw_hit_markers(ax, counts.ravel(), coords, style)
        else:
            per_segment = counts.reshape(neuron_count, -1)  # [M, S]
            label_values = np.flatnonzero(per_segment.sum(axis=0))
            rows_per_key = per_segment[:, label_values].ravel()  # key neuron·L + code, as bincount below gives
            _draw_labelled_markers(ax, rows_per_key, label_values, coords, style, segment_names)
        return fig
    bmu_flat = _validate_bmu_ij(bmu_ij, distance_map.shape)
    if marker_labels is None:
        _draw_hit_markers(ax, np.bincount(bmu_flat, minlength=neuron_count), coords, style)
    else:
        label_values, label_codes = _validate_marker_labels(marker_labels, bmu_flat.size, segment_names)
        # rows of every (neuron, label) pair: one bincount over the M·L keys neuron·L + code, O(N)
        rows_per_key = np.bincount(bmu_flat * label_values.size + label_codes,
                                   minlength=neuron_count * label_values.size)
        _draw_labelled_markers(ax, rows_per_key, label_values, coords, style, segment_names)
    return fig


def plot_dendrogram(
    linkage: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "SOM Weights Hierarchical Clustering Dendrogram",
    cut_height: float | None = None,
    leaf_segments: np.ndarray | None = None,
    leaf_names: Sequence[str] | None = None,
    segment_names: Sequence[str] | None = None,
    dpi: int = 100,
) -> Path:
    """Write ``dendrogram_figure`` (same arguments) as a PNG at ``path``; return the path."""
    figure = dendrogram_figure(
        linkage, title=title, cut_height=cut_height, leaf_segments=leaf_segments, leaf_names=leaf_names,
        segment_names=segment_names,
    )
    return _save(figure, path, dpi)


def dendrogram_figure(
    linkage: np.ndarray,
    *,
    title: str = "SOM Weights Hierarchical Clustering Dendrogram",
    cut_height: float | None = None,
    leaf_segments: np.ndarray | None = None,
    leaf_names: Sequence[str] | None = None,
    segment_names: Sequence[str] | None = None,
) -> Figure:
    """The full dendrogram of a linkage over n_obs observations (neurons), leaf labels only when at most
    ``FULL_DENDROGRAM_MAX_LEAF_LABELS`` leaves.

    With ``leaf_segments`` every link whose leaves all belong to one segment takes that segment's colour (the
    colours of ``plot_cluster_map``), links over several segments are grey (``MIXED_COLOR``); each leaf is
    labelled "S<segment> <name>" in its segment's colour over a strip of that colour, and a legend lists the
    segments. Without it, links below ``cut_height`` are coloured by scipy's ``color_threshold`` rule.

    Args:
        linkage: scipy linkage matrix Z, (n_obs − 1) × 4.
        title: figure title.
        cut_height: optional height of the cut, drawn as a line labelled "cut: k segments" (k: the number of
            subtrees below it, ``fcluster(Z, cut_height, "distance")``).
        leaf_segments: optional (n_obs,) int segment (0..n_segments − 1) of each linkage observation.
        leaf_names: optional (n_obs,) text naming each observation, e.g. "(3,4)" (``dendrogram_leaves``);
            default the observation index.
        segment_names: optional text per segment for the legend; its length sets n_segments (default
            max(leaf_segments) + 1).
    """
    linkage = _validate_linkage(linkage)
    if cut_height is not None:
        cut_height = _validate_height(cut_height, "cut_height")
    leaves = _LeafSegments.build(linkage, leaf_segments, leaf_names, segment_names)
    leaf_count = linkage.shape[0] + 1
    fig = _new_figure((25, 10))
    ax = fig.add_subplot()
    with_leaf_labels = leaf_count <= FULL_DENDROGRAM_MAX_LEAF_LABELS
    tree = dendrogram(
        linkage,
        ax=ax,
        no_labels=not with_leaf_labels,
        leaf_label_func=leaves.leaf_text,
        leaf_rotation=90,
        leaf_font_size=8,
        **leaves.link_colouring(cut_height),
    )
    leaves.mark_leaves(ax, tree["leaves"], with_labels=with_leaf_labels)
    if cut_height is not None:
        _draw_cut(ax, linkage, cut_height)
    ax.set_title(title)
    ax.set_xlabel("linkage observation (neuron)" if with_leaf_labels else f"{leaf_count} neurons")
    ax.set_ylabel("distance")
    leaves.add_legend(fig)
    return fig


def plot_truncated_dendrogram(
    linkage: np.ndarray,
    path: str | os.PathLike,
    *,
    cut_height: float,
    p: int = 12,
    annotate_above: float | None = None,
    leaf_segments: np.ndarray | None = None,
    leaf_names: Sequence[str] | None = None,
    segment_names: Sequence[str] | None = None,
    dpi: int = 100,
) -> Path:
    """Write ``truncated_dendrogram_figure`` (same arguments) as a PNG at ``path``; return the path."""
    figure = truncated_dendrogram_figure(
        linkage, cut_height=cut_height, p=p, annotate_above=annotate_above, leaf_segments=leaf_segments,
        leaf_names=leaf_names, segment_names=segment_names,
    )
    return _save(figure, path, dpi)


def truncated_dendrogram_figure(
    linkage: np.ndarray,
    *,
    cut_height: float,
    p: int = 12,
    annotate_above: float | None = None,
    leaf_segments: np.ndarray | None = None,
    leaf_names: Sequence[str] | None = None,
    segment_names: Sequence[str] | None = None,
) -> Figure:
    """The last ``p`` merges of the dendrogram (``truncate_mode="lastp"``), annotated, with the labelled cut line.

    A leaf is one observation or a contracted subtree of n observations; dots on its stem mark the contracted
    merges. With ``leaf_segments`` a leaf is labelled by what it holds: "S3 (12)" for 12 observations all of
    segment 3, "mixed (12)" for several segments, "S3 <name>" for one observation. The label takes the
    segment's colour (grey when mixed), and a strip under the leaf is split between the segments it holds in
    proportion, so every segment shows its colour, even one that is a single leaf or lies inside mixed leaves.
    Links are coloured as in ``dendrogram_figure``. Each merge higher than ``annotate_above`` gets a dot and its height
    (``%.3g``); a height label within ``CUT_BAND_SHARE`` of the axis height of the cut line moves above its dot, or
    is dropped if it still would be.

    Args:
        linkage: scipy linkage matrix Z, (n_obs − 1) × 4.
        cut_height: height of the cut line (``NeuronClusters.cut_height``).
        p: number of leaves to keep.
        annotate_above: merges higher than this are annotated; default 10% of the top merge height, so the
            visible top merges are annotated whatever the scale of the weights.
        leaf_segments, leaf_names, segment_names: as in ``dendrogram_figure``.
    """
    linkage = _validate_linkage(linkage)
    cut_height = _validate_height(cut_height, "cut_height")
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
        raise ValueError(f"p must be a positive integer number of leaves, got {p!r}")
    if annotate_above is None:
        threshold = 0.1 * float(linkage[-1, 2])
    else:
        threshold = _validate_height(annotate_above, "annotate_above")
    leaves = _LeafSegments.build(linkage, leaf_segments, leaf_names, segment_names)

    fig = _new_figure((14, 7))
    ax = fig.add_subplot()
    tree = dendrogram(
        linkage,
        ax=ax,
        truncate_mode="lastp",
        p=int(p),
        show_contracted=True,
        leaf_label_func=leaves.leaf_text,
        leaf_rotation=90,
        leaf_font_size=12,
        **leaves.link_colouring(cut_height),
    )
    leaves.mark_leaves(ax, tree["leaves"], with_labels=True)
    height_labels = []
    for link_x, link_heights, color in zip(tree["icoord"], tree["dcoord"], tree["color_list"]):
        merge_x = 0.5 * (link_x[1] + link_x[2])
        merge_height = link_heights[1]
        if merge_height > threshold:
            ax.plot(merge_x, merge_height, "o", color=color)
            height_labels.append(ax.annotate(
                f"{merge_height:.3g}", (merge_x, merge_height), xytext=(0, -MERGE_LABEL_OFFSET_POINTS),
                textcoords="offset points", va="top", ha="center",
            ))
    _draw_cut(ax, linkage, cut_height)
    ax.set_title("Hierarchical Clustering Dendrogram (truncated)")
    ax.set_xlabel("leaf: segment and (number of neurons) or neuron" if leaves.segments is not None
                  else "neuron index or (number of neurons)")
    ax.set_ylabel("distance")
    leaves.add_legend(fig)
    _keep_labels_off_line(fig, ax, height_labels, cut_height)
    return fig


def dendrogram_leaves(labels: np.ndarray, linkage_neurons: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``leaf_segments`` and ``leaf_names`` for a linkage over some neurons of an (x, y) map.

    Args:
        labels: (x, y) int segment of every neuron.
        linkage_neurons: (n_obs,) flat index i·y + j of the neuron behind each linkage observation.

    Returns:
        (n_obs,) segment of each observation, and its name "(i,j)".
    """
    labels = _validate_labels(labels)
    linkage_neurons = np.asarray(linkage_neurons)
    if linkage_neurons.ndim != 1 or not np.issubdtype(linkage_neurons.dtype, np.integer):
        raise ValueError(f"linkage_neurons must be a 1-D integer array, got shape {linkage_neurons.shape} "
                         f"of dtype {linkage_neurons.dtype}")
    if linkage_neurons.size and (linkage_neurons.min() < 0 or linkage_neurons.max() >= labels.size):
        raise ValueError(f"linkage_neurons must be flat indices in 0..{labels.size - 1} of the {labels.shape} map")
    rows, columns = np.divmod(linkage_neurons, labels.shape[1])
    return labels.ravel()[linkage_neurons], [f"({i},{j})" for i, j in zip(rows, columns)]


def plot_cluster_map(
    labels: np.ndarray,
    coords: Coords,
    topology: str,
    path: str | os.PathLike,
    *,
    hits: np.ndarray | None = None,
    dpi: int = 100,
) -> Path:
    """Write ``cluster_map_figure`` (same arguments) as a PNG at ``path``; return the path."""
    return _save(cluster_map_figure(labels, coords, topology, hits=hits), path, dpi)


def cluster_map_figure(labels: np.ndarray, coords: Coords, topology: str, *, hits: np.ndarray | None = None) -> Figure:
    """Each neuron in its cluster's colour, with a legend of cluster sizes.

    Args:
        labels: (x, y) int cluster of every neuron, 0..k−1.
        coords: (xx, yy), each (x, y), the neurons' Euclidean coordinates.
        topology: "rectangular" or "hexagonal".
        hits: optional (x, y) rows per neuron; the legend then gives rows per cluster, and neurons without
            rows are marked with a small ×.
    """
    labels = _validate_labels(labels)
    coords = _validate_coords(coords, labels.shape)
    _validate_topology(topology)
    if hits is not None:
        hits = _validate_grid_values(hits, "hits")
        if hits.shape != labels.shape:
            raise ValueError(f"hits must have the map's shape {labels.shape}, got shape {hits.shape}")
        if (hits < 0).any():
            raise ValueError("hits must be non-negative")

    cluster_count = int(labels.max()) + 1
    palette = cluster_palette(cluster_count)
    fig, ax = _map_figure(coords, topology)
    _draw_cells(
        ax, labels, coords, topology,
        cmap=ListedColormap(palette), norm=BoundaryNorm(np.arange(cluster_count + 1) - 0.5, cluster_count),
    )
    neurons_per_cluster = np.bincount(labels.ravel(), minlength=cluster_count)
    if hits is None:
        entry_texts = [f"{segment_code(c)}: {_count_text(n, 'neuron')}" for c, n in enumerate(neurons_per_cluster)]
    else:
        rows_per_cluster = np.bincount(labels.ravel(), weights=hits.ravel(), minlength=cluster_count)
        entry_texts = [
            f"{segment_code(c)}: {_count_text(rows, 'row')}, {_count_text(neurons, 'neuron')}"
            for c, (rows, neurons) in enumerate(zip(rows_per_cluster, neurons_per_cluster))
        ]
    handles = [Patch(facecolor=color, label=text) for color, text in zip(palette, entry_texts)]
    handles = _capped_legend_handles(handles)
    if hits is not None:
        empty = hits.ravel() == 0
        if empty.any():
            ax.scatter(
                coords[0].ravel()[empty], coords[1].ravel()[empty], marker="x", s=12, color="black", linewidths=0.8
            )
            empty_label = f"no rows ({int(empty.sum())} neurons)"
            handles.append(Line2D([], [], marker="x", linestyle="none", color="black", label=empty_label))
    ax.legend(handles=handles, title="cluster", loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    ax.set_title(f"{cluster_count} neuron clusters")
    return fig


def plot_component_planes(
    weights: np.ndarray,
    feature_names: list[str],
    coords: Coords,
    topology: str,
    path: str | os.PathLike,
    *,
    cmap: str = "viridis",
    dpi: int = 100,
) -> Path:
    """Write ``component_planes_figure`` (same arguments) as a PNG at ``path``; return the path."""
    return _save(component_planes_figure(weights, feature_names, coords, topology, cmap=cmap), path, dpi)


def component_planes_figure(
    weights: np.ndarray,
    feature_names: list[str],
    coords: Coords,
    topology: str,
    *,
    cmap: str = "viridis",
) -> Figure:
    """One map per feature, coloured by that feature's weight, in a grid of panels; each panel has grid ticks
    (i, j indices), its feature name as title (wrapped at ``PLANE_TITLE_WIDTH`` characters) and its own colorbar.

    Args:
        weights: (x, y, D) neuron weights, already in the features' original units.
        feature_names: D names, one per panel title.
        coords: (xx, yy), each (x, y), the neurons' Euclidean coordinates.
        topology: "rectangular" or "hexagonal".
        cmap: matplotlib colormap name.
    """
    weights = np.asarray(weights)
    if weights.ndim != 3:
        raise ValueError(f"weights must have shape (x, y, D), got shape {weights.shape}")
    feature_count = weights.shape[2]
    if len(feature_names) != feature_count:
        raise ValueError(f"feature_names has {len(feature_names)} names but weights have {feature_count} features")
    coords = _validate_coords(coords, weights.shape[:2])
    _validate_topology(topology)
    if not np.issubdtype(weights.dtype, np.number) or np.issubdtype(weights.dtype, np.complexfloating):
        raise TypeError(f"weights must hold real numbers, got dtype {weights.dtype}")
    if not np.isfinite(weights).all():
        raise ValueError("weights contain NaN or infinity")

    column_count = int(np.ceil(np.sqrt(feature_count)))
    row_count = int(np.ceil(feature_count / column_count))
    panel_width, panel_height = _map_size_inches(coords, longest_side=3.2)
    fig = _new_figure((column_count * (panel_width + 1.4), row_count * (panel_height + 1.2)))
    axes = fig.subplots(row_count, column_count, squeeze=False).ravel()
    for feature, ax in tqdm(
        enumerate(axes[:feature_count]), total=feature_count, desc="component planes", disable=None
    ):
        _set_map_axes(ax, coords, topology, max_ticks=PLANE_MAX_GRID_TICKS)
        ax.tick_params(labelsize="small")
        cells = _draw_cells(ax, weights[:, :, feature], coords, topology, cmap=cmap, norm=Normalize())
        colorbar = fig.colorbar(cells, ax=ax, fraction=0.046, pad=0.04)
        colorbar.ax.tick_params(labelsize="small")
        ax.set_title(textwrap.fill(str(feature_names[feature]), PLANE_TITLE_WIDTH), fontsize="medium")
    for unused_ax in axes[feature_count:]:
        unused_ax.set_axis_off()
    return fig


def plot_k_selection(
    table: pd.DataFrame, path: str | os.PathLike, *, criterion: str, chosen_k: int, dpi: int = 100
) -> Path:
    """Write ``k_selection_figure`` (same arguments) as a PNG at ``path``; return the path."""
    return _save(k_selection_figure(table, criterion=criterion, chosen_k=chosen_k), path, dpi)


def k_selection_figure(table: pd.DataFrame, *, criterion: str, chosen_k: int) -> Figure:
    """The criterion used to choose the number of segments, per k tried, with the chosen k marked and labelled.

    Args:
        table: one row per k tried (``k_selection.csv``): an integer column ``k`` and the ``criterion`` column;
            NaN criterion values (k that could not be scored) are left out of the line.
        criterion: name of the criterion column, e.g. "silhouette".
        chosen_k: the k the pipeline used; must be one of ``table["k"]``.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    for column in ("k", criterion):
        if column not in table.columns:
            raise ValueError(f"table has no column {column!r}; its columns: {', '.join(map(str, table.columns))}")
    if len(table) == 0:
        raise ValueError("table must hold at least one k")
    ordered = table.sort_values("k")
    ks = ordered["k"].to_numpy()
    values = pd.to_numeric(ordered[criterion], errors="coerce").to_numpy(dtype=np.float64)
    if not np.issubdtype(ks.dtype, np.integer):
        raise TypeError(f"table['k'] must hold integers, got dtype {ks.dtype}")
    if chosen_k not in set(ks.tolist()):
        raise ValueError(f"chosen_k={chosen_k!r} is not among the k of the table: {', '.join(map(str, ks))}")
    chosen_value = values[ks == chosen_k][0]

    fig = _new_figure((7.0, 4.2))
    ax = fig.add_subplot()
    ax.plot(ks, values, marker="o", color="tab:blue", label=criterion)  # a NaN breaks the line there
    ax.axvline(chosen_k, color=CHOSEN_K_COLOR, linestyle="--", linewidth=1)
    ax.margins(y=0.2)  # room for the label of the chosen k below its point
    on_right = chosen_k > np.median(ks)
    label_style = dict(textcoords="offset points", va="top", ha="right" if on_right else "left",
                       color=CHOSEN_K_COLOR, gid=CHOSEN_K_GID)
    label_shift = (-10 if on_right else 10, -8)
    if np.isfinite(chosen_value):
        ax.scatter([chosen_k], [chosen_value], s=160, marker="*", color=CHOSEN_K_COLOR, edgecolors="black",
                   zorder=3, label=f"chosen k = {chosen_k}", gid=CHOSEN_K_GID)
        ax.annotate(f"chosen k = {chosen_k}\n{criterion} = {chosen_value:.3g}", (chosen_k, chosen_value),
                    xytext=label_shift, **label_style)
    else:
        ax.annotate(f"chosen k = {chosen_k} (not scored)", (chosen_k, 1.0), xycoords=ax.get_xaxis_transform(),
                    xytext=label_shift, **label_style)
    ax.set_xticks(ks)
    ax.set_xlabel("number of segments k")
    ax.set_ylabel(criterion)
    ax.set_title(f"Choosing the number of segments: {criterion} per k")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


def cluster_palette(cluster_count: int) -> list[str]:
    """Distinct colours (hex strings) for ``cluster_count`` clusters.

    tab10 or tab20 without their greys (grey marks links above the cut in dendrograms), else evenly spaced turbo
    hues.
    """
    tab10 = [to_hex(colour) for colour in colormaps["tab10"].colors]
    tab20 = [to_hex(colour) for colour in colormaps["tab20"].colors]
    tab10_colours = tab10[:7] + tab10[8:]
    tab20_colours = tab20[:14] + tab20[16:]
    if cluster_count <= len(tab10_colours):
        return tab10_colours[:cluster_count]
    if cluster_count <= len(tab20_colours):
        return tab20_colours[:cluster_count]
    return [to_hex(colour) for colour in colormaps["turbo"](np.linspace(0.05, 0.95, cluster_count))]


def cell_polygons(coords: Coords, topology: str) -> np.ndarray:
    """Vertices of every neuron's cell, (M, V, 2), neurons in flat order i*y + j.

    Rectangular: unit squares (V = 4) centred on (xx, yy). Hexagonal: pointy-top hexagons (V = 6) of circumradius
    1/√3 centred on (xx, yy), the tiling of MiniSom's layout (row spacing √3/2, alternate rows shifted by 1/2).
    """
    _validate_topology(topology)
    if topology == "rectangular":
        angles = np.deg2rad([45.0, 135.0, 225.0, 315.0])
        radius = np.sqrt(0.5)
    else:
        angles = np.deg2rad(90.0 + 60.0 * np.arange(6))
        radius = 1.0 / np.sqrt(3.0)
    corner_offsets = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # [V, 2]
    centres = np.stack([coords[0].ravel(), coords[1].ravel()], axis=1)  # [M, 2]
    return centres[:, None, :] + corner_offsets[None, :, :]  # [M, V, 2]


def _draw_cells(
    ax: Axes, values: np.ndarray, coords: Coords, topology: str, *, cmap: str | Colormap, norm: Normalize
) -> PolyCollection:
    """Add one polygon per neuron to ``ax``, coloured by ``values`` (x, y) through ``cmap`` and ``norm``."""
    cells = PolyCollection(
        cell_polygons(coords, topology), array=np.asarray(values, dtype=np.float64).ravel(),
        cmap=cmap, norm=norm, edgecolors="face", linewidths=0.3,
    )
    ax.add_collection(cells)
    return cells


@dataclass(frozen=True)
class _MarkerStyle:
    """Sizes (points², points) of BMU markers on a map drawn by ``_map_figure``."""

    min_area: float
    max_area: float
    line_width: float
    halo_width: float

    @classmethod
    def for_map(cls, coords: Coords) -> _MarkerStyle:
        """Marker sizes from the cell width in points, c = 72 · (map width in inches) / (cells across)."""
        width, _ = _map_size_inches(coords, longest_side=MAP_LONGEST_SIDE_INCHES)
        cell_points = 72.0 * width / (float(np.ptp(coords[0])) + 1.0)
        line_width = float(np.clip(0.03 * cell_points, 0.6, 1.6))
        return cls(
            min_area=(MIN_MARKER_WIDTH * cell_points) ** 2, max_area=(MAX_MARKER_WIDTH * cell_points) ** 2,
            line_width=line_width, halo_width=2.0 * line_width + 1.0,
        )

    def areas(self, row_counts: np.ndarray) -> np.ndarray:
        """Areas proportional to row counts, the largest count getting ``max_area``, none below ``min_area``."""
        return np.maximum(self.max_area * row_counts / row_counts.max(), self.min_area)


def _draw_markers(ax: Axes, x: np.ndarray, y: np.ndarray, areas: np.ndarray, marker: str, color: str,
                  style: _MarkerStyle) -> None:
    """Unfilled markers in ``color`` over a wider white halo of the same shape."""
    ax.scatter(x, y, s=areas, marker=marker, facecolors="none", edgecolors=HALO_COLOR, linewidths=style.halo_width,
               gid=HALO_GID)
    ax.scatter(x, y, s=areas, marker=marker, facecolors="none", edgecolors=color, linewidths=style.line_width)


def _draw_hit_markers(ax: Axes, hit_counts: np.ndarray, coords: Coords, style: _MarkerStyle) -> None:
    """One unfilled green square per hit neuron, area proportional to its number of rows (``hit_counts``, (M,))."""
    hit_neurons = np.flatnonzero(hit_counts)
    _draw_markers(ax, coords[0].ravel()[hit_neurons], coords[1].ravel()[hit_neurons],
                  style.areas(hit_counts[hit_neurons]), "s", HIT_MARKER_COLOR, style)


def _draw_labelled_markers(
    ax: Axes, rows_per_key: np.ndarray, label_values: np.ndarray, coords: Coords, style: _MarkerStyle,
    segment_names: Sequence[str] | None,
) -> None:
    """One marker per (neuron, label) pair holding rows, marker and colour by label, area proportional to its rows.

    ``label_values`` (L,) are the distinct labels in order; ``rows_per_key`` (M·L,) the rows of each pair at key
    neuron·L + label index.
    """
    label_count = label_values.size
    pair_keys = np.flatnonzero(rows_per_key)
    pair_rows = rows_per_key[pair_keys]
    pair_neuron, pair_label = np.divmod(pair_keys, label_count)
    labels_at_neuron = np.bincount(pair_neuron, minlength=coords[0].size)[pair_neuron]
    rank_at_neuron = np.arange(pair_keys.size) - np.searchsorted(pair_neuron, pair_neuron, side="left")
    angle = 2.0 * np.pi * rank_at_neuron / labels_at_neuron
    spread = np.where(labels_at_neuron > 1, 0.25, 0.0)
    marker_x = coords[0].ravel()[pair_neuron] + spread * np.cos(angle)
    marker_y = coords[1].ravel()[pair_neuron] + spread * np.sin(angle)
    areas = style.areas(pair_rows)
    if np.issubdtype(label_values.dtype, np.integer) and label_values.min() >= 0:
        # segment ids: the colours and codes of the dendrograms and the cluster map
        palette = cluster_palette(int(label_values.max()) + 1 if segment_names is None else len(segment_names))
        colors = {value: palette[value] for value in label_values}
        names = {value: "" if segment_names is None else f": {segment_names[value]}" for value in label_values}
        texts = {value: f"{segment_code(value)}{names[value]}" for value in label_values}
    else:
        palette = cluster_palette(label_count)
        colors = {value: palette[code] for code, value in enumerate(label_values)}
        texts = {value: str(value) for value in label_values}
    handles = []
    for code, value in enumerate(label_values):
        chosen = pair_label == code
        marker = MARKERS[code % len(MARKERS)]
        _draw_markers(ax, marker_x[chosen], marker_y[chosen], areas[chosen], marker, colors[value], style)
        rows = _count_text(int(pair_rows[chosen].sum()), "row")
        handles.append(Line2D([], [], marker=marker, markersize=9, markerfacecolor="none", markeredgewidth=1.5,
                              color=colors[value], linestyle="none", label=f"{texts[value]} ({rows})"))
    # A figure legend placed "outside": constrained layout reserves its room, so long segment names never squeeze
    # the map away (an axes legend anchored below it collapsed the axes at low dpi).
    ax.figure.legend(
        handles=_capped_legend_handles(handles), title="segment", loc="outside lower center",
        ncol=min(label_count, 2), fontsize="small",
    )


def _capped_legend_handles(handles: list) -> list:
    """Keep at most MAX_LEGEND_ENTRIES legend handles, adding a final entry counting the rest."""
    if len(handles) <= MAX_LEGEND_ENTRIES:
        return list(handles)
    hidden = len(handles) - MAX_LEGEND_ENTRIES + 1
    more = Patch(facecolor="none", edgecolor="none", label=f"… {hidden} more")
    return list(handles[: MAX_LEGEND_ENTRIES - 1]) + [more]


@dataclass(frozen=True)
class _LeafSegments:
    """What a dendrogram shows of the segments: the segment make-up of every tree node, leaf texts and colours.

    Nodes are numbered as in scipy: observations 0..n_obs − 1, then merge m is node n_obs + m. A node's segment
    is the segment shared by all observations below it, or −1 (mixed) when they differ.
    """

    linkage: np.ndarray
    names: list[str]
    segments: np.ndarray | None = None
    node_counts: np.ndarray | None = None  # [2·n_obs − 1, n_segments] observations of each segment under a node
    node_segment: np.ndarray | None = None  # [2·n_obs − 1]
    segment_names: list[str] | None = None
    palette: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        linkage: np.ndarray,
        leaf_segments: np.ndarray | None,
        leaf_names: Sequence[str] | None,
        segment_names: Sequence[str] | None,
    ) -> _LeafSegments:
        """Validate the per-observation arguments of the dendrogram functions and derive every node's segment."""
        leaf_count = linkage.shape[0] + 1
        if leaf_names is None:
            names = [str(leaf) for leaf in range(leaf_count)]
        else:
            names = [str(name) for name in leaf_names]
            if len(names) != leaf_count:
                raise ValueError(f"leaf_names must name every linkage observation ({leaf_count}), got {len(names)}")
        if leaf_segments is None:
            if segment_names is not None:
                raise ValueError("segment_names needs leaf_segments (the segment of each linkage observation)")
            return cls(linkage=linkage, names=names)
        segments = np.asarray(leaf_segments)
        if segments.shape != (leaf_count,) or not np.issubdtype(segments.dtype, np.integer):
            raise ValueError(
                f"leaf_segments must hold one integer segment per linkage observation ({leaf_count}), "
                f"got shape {segments.shape} of dtype {segments.dtype}"
            )
        if segments.min() < 0:
            raise ValueError(f"leaf_segments must be non-negative segment ids, got {int(segments.min())}")
        segment_count = int(segments.max()) + 1
        if segment_names is not None:
            segment_names = [str(name) for name in segment_names]
            if len(segment_names) < segment_count:
                raise ValueError(
                    f"segment_names has {len(segment_names)} names but leaf_segments holds segment {segment_count - 1}"
                )
            segment_count = len(segment_names)
        node_counts = np.zeros((2 * leaf_count - 1, segment_count), dtype=np.int64)
        node_counts[np.arange(leaf_count), segments] = 1
        for merge, (left, right) in enumerate(linkage[:, :2].astype(np.int64)):
            node_counts[leaf_count + merge] = node_counts[left] + node_counts[right]
        is_pure = np.count_nonzero(node_counts, axis=1) == 1
        node_segment = np.where(is_pure, node_counts.argmax(axis=1), -1)
        return cls(
            linkage=linkage, names=names, segments=segments, node_counts=node_counts, node_segment=node_segment,
            segment_names=segment_names, palette=tuple(cluster_palette(segment_count)),
        )

    def node_color(self, node: int) -> str:
        """The colour of a node's segment, ``MIXED_COLOR`` when it spans several."""
        segment = self.node_segment[node]
        return self.palette[segment] if segment >= 0 else MIXED_COLOR

    def leaf_text(self, node: int) -> str:
        """Label of a dendrogram leaf: an observation's name, or a contracted subtree's (size), each after the
        segment code ("S3", or "mixed") when segments are known."""
        leaf_count = self.linkage.shape[0] + 1
        if node < leaf_count:
            content = self.names[node]
        else:
            content = f"({int(self.linkage[node - leaf_count, 3])})"
        if self.segments is None:
            return content
        segment = self.node_segment[node]
        return f"{segment_code(segment) if segment >= 0 else 'mixed'} {content}"

    def link_colouring(self, cut_height: float | None) -> dict:
        """Dendrogram keyword arguments: links coloured by segment, or else by scipy's rule below the cut."""
        if self.segments is not None:
            return {"link_color_func": self.node_color}
        return {} if cut_height is None else {"color_threshold": cut_height, "above_threshold_color": MIXED_COLOR}

    def mark_leaves(self, ax: Axes, leaf_nodes: list[int], with_labels: bool) -> None:
        """Under each leaf a strip split by the segments it holds, in proportion (one colour for a pure leaf),
        and its tick label in its segment's colour (grey when mixed)."""
        if self.segments is None:
            return
        counts = self.node_counts[leaf_nodes]  # [leaves, n_segments]
        shares = counts / counts.sum(axis=1, keepdims=True)
        ends = np.cumsum(shares, axis=1)
        leaf_x = 5.0 + 10.0 * np.arange(len(leaf_nodes))  # scipy puts leaf k at x = 10k + 5
        leaf_index, segment = np.nonzero(counts)
        left = leaf_x[leaf_index] + LEAF_STRIP_WIDTH * (ends[leaf_index, segment] - shares[leaf_index, segment] - 0.5)
        right = leaf_x[leaf_index] + LEAF_STRIP_WIDTH * (ends[leaf_index, segment] - 0.5)
        bottom, top = np.zeros_like(left), np.full_like(left, LEAF_STRIP_HEIGHT)
        corners = np.stack([np.stack(pair, axis=1) for pair in
                            ((left, bottom), (right, bottom), (right, top), (left, top))], axis=1)  # [pieces, 4, 2]
        ax.add_collection(PolyCollection(
            corners, facecolors=[self.palette[s] for s in segment], edgecolors="none",
            transform=ax.get_xaxis_transform(), zorder=3, gid=LEAF_STRIP_GID,
        ), autolim=False)
        if with_labels:
            for tick_label, node in zip(ax.get_xticklabels(), leaf_nodes):
                tick_label.set_color(self.node_color(node))

    def add_legend(self, fig: Figure) -> None:
        """A legend of the segments: code, name and number of observations, plus the grey of mixed links."""
        if self.segments is None:
            return
        counts = np.bincount(self.segments, minlength=len(self.palette))
        handles = []
        for segment, (color, count) in enumerate(zip(self.palette, counts)):
            name = "" if self.segment_names is None else f": {self.segment_names[segment]}"
            label = f"{segment_code(segment)}{name} ({_count_text(count, 'neuron')})"
            handles.append(Patch(facecolor=color, label=label))
        handles = _capped_legend_handles(handles)
        handles.append(Patch(facecolor=MIXED_COLOR, label="mixed: several segments"))
        fig.legend(handles=handles, title="segment", loc="outside right upper", fontsize="small")


def _count_text(count: int, noun: str) -> str:
    """"1 neuron", "12 neurons"."""
    return f"{count:g} {noun}{'' if count == 1 else 's'}"


def segment_code(segment: int) -> str:
    """Short name of a segment in plots: "S3"."""
    return f"S{int(segment)}"


def _draw_cut(ax: Axes, linkage: np.ndarray, cut_height: float) -> None:
    """A dashed line at the cut height, labelled with the number of subtrees below it, beside the axes."""
    cluster_count = int(fcluster(linkage, cut_height, criterion="distance").max())
    ax.axhline(cut_height, color="black", linewidth=1, linestyle="--", gid=CUT_LINE_GID)
    ax.annotate(
        f"cut: {_count_text(cluster_count, 'segment')}", xy=(1.0, cut_height),
        xycoords=ax.get_yaxis_transform(), xytext=(4, 0), textcoords="offset points", ha="left", va="center",
        annotation_clip=False, gid=CUT_LABEL_GID,
    )


def _keep_labels_off_line(fig: Figure, ax: Axes, labels: list, height: float) -> None:
    """Move each annotation that comes within ``CUT_BAND_SHARE`` of the axes height of the horizontal line at
    ``height`` above its point; drop it if it still would. Extents are measured on the laid-out figure, and
    everything in it scales with the dpi, so the rule holds at any dpi."""
    if not labels:
        return
    fig.canvas.draw()  # lays the figure out, so text extents and the data transform are final
    renderer = fig.canvas.get_renderer()
    line_y = ax.transData.transform((0.0, height))[1]
    clearance = CUT_BAND_SHARE * ax.get_window_extent(renderer).height

    def touches(label) -> bool:
        box = label.get_window_extent(renderer)
        return box.y0 - clearance <= line_y <= box.y1 + clearance

    for label in labels:
        if touches(label):
            label.xyann = (0.0, MERGE_LABEL_OFFSET_POINTS)
            label.set_verticalalignment("bottom")
            if touches(label):
                label.remove()


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free figure on the Agg canvas."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _map_size_inches(coords: Coords, *, longest_side: float) -> tuple[float, float]:
    """Width and height (inches) of a map drawing whose longer side is ``longest_side``."""
    x_span = float(np.ptp(coords[0])) + 1.0
    y_span = float(np.ptp(coords[1])) + 1.0
    scale = longest_side / max(x_span, y_span)
    return max(x_span * scale, longest_side / 3), max(y_span * scale, longest_side / 3)


def _map_figure(coords: Coords, topology: str) -> tuple[Figure, Axes]:
    """A figure with one map-shaped axes, room for a colorbar or legend beside it."""
    width, height = _map_size_inches(coords, longest_side=MAP_LONGEST_SIDE_INCHES)
    fig = _new_figure((width + 3.0, height + 1.5))
    ax = fig.add_subplot()
    _set_map_axes(ax, coords, topology)
    return fig, ax


def _set_map_axes(ax: Axes, coords: Coords, topology: str, *, max_ticks: int = MAX_GRID_TICKS) -> None:
    """Equal aspect, limits framing every cell, ticks at grid indices i (horizontal) and j (vertical)."""
    pad = 0.5 if topology == "rectangular" else 0.6
    ax.set_xlim(coords[0].min() - pad, coords[0].max() + pad)
    ax.set_ylim(coords[1].min() - pad, coords[1].max() + pad)
    ax.set_aspect("equal")
    (x_positions, x_indices), (y_positions, y_indices) = grid_ticks(coords, max_ticks=max_ticks)
    ax.set_xticks(x_positions, [str(i) for i in x_indices])
    ax.set_yticks(y_positions, [str(j) for j in y_indices])
    ax.set_xlabel("i")
    ax.set_ylabel("j")


def grid_ticks(coords: Coords, *, max_ticks: int = MAX_GRID_TICKS) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Tick positions and grid indices of a map: ((x positions, i), (y positions, j)).

    Index i sits at max_j xx[i, j] (the unshifted rows of a hexagonal map) and j at yy[0, j]; every
    ⌈n / max_ticks⌉-th index is kept, starting at 0.
    """
    xx, yy = coords
    x, y = xx.shape
    i_indices = np.arange(0, x, int(np.ceil(x / max_ticks)))
    j_indices = np.arange(0, y, int(np.ceil(y / max_ticks)))
    return (xx.max(axis=1)[i_indices], i_indices), (yy[0, j_indices], j_indices)


def _save(fig: Figure, path: str | os.PathLike, dpi: int) -> Path:
    """Write ``fig`` as a PNG atomically and return the path."""
    written = write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    logger.info("wrote %s", written)
    return written


def _validate_topology(topology: str) -> None:
    """Check the topology name."""
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}; valid topologies: {', '.join(TOPOLOGIES)}")


def _validate_grid_values(values: np.ndarray, name: str) -> np.ndarray:
    """Check a real-valued (x, y) array."""
    values = np.asarray(values)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty (x, y) array, got shape {values.shape}")
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {values.dtype}")
    return values


def _validate_coords(coords: Coords, grid_shape: tuple[int, ...]) -> Coords:
    """Check (xx, yy), each of the map's shape (x, y), finite."""
    if not isinstance(coords, (tuple, list)) or len(coords) != 2:
        raise TypeError("coords must be a pair (xx, yy) of (x, y) arrays, e.g. SOM.get_euclidean_coordinates()")
    xx, yy = (np.asarray(axis_coords, dtype=np.float64) for axis_coords in coords)
    if xx.shape != tuple(grid_shape) or yy.shape != tuple(grid_shape):
        raise ValueError(f"coords must both have the map's shape {tuple(grid_shape)}, got {xx.shape} and {yy.shape}")
    if not (np.isfinite(xx).all() and np.isfinite(yy).all()):
        raise ValueError("coords contain NaN or infinity")
    return xx, yy


def _validate_labels(labels: np.ndarray) -> np.ndarray:
    """Check an (x, y) array of non-negative integer cluster ids."""
    labels = _validate_grid_values(labels, "labels")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must hold integer cluster ids, got dtype {labels.dtype}")
    if labels.min() < 0:
        raise ValueError(f"labels must be non-negative cluster ids, got {int(labels.min())}")
    return labels


def _validate_bmu_ij(bmu_ij: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """Check (N, 2) integer grid indices inside the map; return flat indices i*y + j, (N,)."""
    bmu_ij = np.asarray(bmu_ij)
    if bmu_ij.ndim != 2 or bmu_ij.shape[1] != 2 or bmu_ij.shape[0] == 0:
        raise ValueError(f"bmu_ij must be a non-empty (N, 2) array of (i, j) indices, got shape {bmu_ij.shape}")
    if not np.issubdtype(bmu_ij.dtype, np.integer):
        raise TypeError(f"bmu_ij must hold integer grid indices, got dtype {bmu_ij.dtype}")
    x, y = grid_shape
    if bmu_ij.min() < 0 or bmu_ij[:, 0].max() >= x or bmu_ij[:, 1].max() >= y:  # reductions: no (N,) masks
        outside = (bmu_ij[:, 0] < 0) | (bmu_ij[:, 0] >= x) | (bmu_ij[:, 1] < 0) | (bmu_ij[:, 1] >= y)
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(f"bmu_ij[{row}] = {tuple(int(v) for v in bmu_ij[row])} is outside the {x} × {y} map")
    return bmu_ij[:, 0].astype(np.int64) * y + bmu_ij[:, 1]


def _validate_bmu_counts(
    bmu_counts: np.ndarray, grid_shape: tuple[int, int], segment_names: Sequence[str] | None
) -> np.ndarray:
    """Check (x, y) or (x, y, S) non-negative integer row counts holding at least one row, few enough segments to
    tell apart, and a name for every segment with rows when names are given."""
    counts = np.asarray(bmu_counts)
    if counts.shape[:2] != tuple(grid_shape) or counts.ndim not in (2, 3):
        raise ValueError(f"bmu_counts must have shape {tuple(grid_shape)} or {tuple(grid_shape)} + (S,), "
                         f"got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer):
        raise TypeError(f"bmu_counts must hold integer row counts, got dtype {counts.dtype}")
    if counts.min() < 0 or counts.sum() == 0:
        raise ValueError("bmu_counts must be non-negative with at least one row")
    if counts.ndim == 3:
        segments_with_rows = np.flatnonzero(counts.reshape(-1, counts.shape[2]).sum(axis=0))
        if segments_with_rows.size > MAX_MARKER_LABELS:
            raise ValueError(f"bmu_counts has rows in {segments_with_rows.size} segments; at most "
                             f"{MAX_MARKER_LABELS} can be told apart")
        if segment_names is not None and segments_with_rows[-1] >= len(segment_names):
            raise ValueError(f"bmu_counts has rows in segment {segments_with_rows[-1]} but segment_names has "
                             f"{len(segment_names)} names")
    return counts.astype(np.int64, copy=False)


def _validate_marker_labels(
    marker_labels: np.ndarray, row_count: int, segment_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Check one label per row, few enough distinct labels to tell apart, and segment ids when names are given.

    Returns the distinct labels (L,) in order and each row's code 0..L−1 (N,), as ``distinct_labels``.
    """
    marker_labels = np.asarray(marker_labels)
    if marker_labels.shape != (row_count,):
        raise ValueError(
            f"marker_labels must have one label per BMU row ({row_count},), got shape {marker_labels.shape}"
        )
    label_values, label_codes = distinct_labels(marker_labels)
    if label_values.size > MAX_MARKER_LABELS:
        raise ValueError(
            f"marker_labels has {label_values.size} distinct values; at most {MAX_MARKER_LABELS} can be told apart"
        )
    if segment_names is not None:
        is_id = np.issubdtype(label_values.dtype, np.integer) and label_values[0] >= 0
        if not is_id or label_values[-1] >= len(segment_names):
            raise ValueError(
                f"with segment_names, marker_labels must be segment ids 0..{len(segment_names) - 1}, "
                f"got values {label_values[0]!r}..{label_values[-1]!r} of dtype {label_values.dtype}"
            )
    return label_values, label_codes


def distinct_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values of a 1-D array (L,) and each element's index into them (N,): the result of
    ``np.unique(labels, return_inverse=True)``.

    Integer labels spanning at most ``COUNTED_LABEL_SPAN`` values (segment ids) are found with one bincount and
    a table look-up, O(N) instead of np.unique's O(N log N) sort, which dominated a U-matrix of 10^7 units.
    """
    labels = np.asarray(labels)
    if labels.size and np.issubdtype(labels.dtype, np.integer):
        low, high = int(labels.min()), int(labels.max())
        if high - low < COUNTED_LABEL_SPAN:
            offsets = (labels - low).astype(np.intp)
            present = np.bincount(offsets, minlength=high - low + 1) > 0
            code_of_offset = np.cumsum(present) - 1
            return (np.flatnonzero(present) + low).astype(labels.dtype), code_of_offset[offsets]
    values, codes = np.unique(labels, return_inverse=True)
    return values, codes.reshape(-1)


def _validate_linkage(linkage: np.ndarray) -> np.ndarray:
    """Check a scipy linkage matrix of at least one merge."""
    linkage = np.asarray(linkage, dtype=np.float64)
    if linkage.ndim != 2 or linkage.shape[1] != 4 or linkage.shape[0] < 1:
        raise ValueError(f"linkage must be a scipy linkage matrix of shape (M - 1, 4), got shape {linkage.shape}")
    return linkage


def _validate_height(height: float, name: str) -> float:
    """Check a finite number."""
    is_number = isinstance(height, (int, float, np.integer, np.floating)) and not isinstance(height, bool)
    if not is_number or not np.isfinite(height):
        raise ValueError(f"{name} must be a finite number, got {height!r}")
    return float(height)
