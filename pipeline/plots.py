"""Pictures of a trained SOM and its neuron clusters, written as PNG files.

Every map picture draws one cell per neuron at its Euclidean coordinates (xx[i, j], yy[i, j]) as given by the
SOM (MiniSom's layout): a unit square on rectangular maps, a pointy-top hexagon of circumradius 1/√3 on hexagonal
maps, so neighbouring hexagons touch. The horizontal axis is i, the vertical axis j. Cells are drawn as one
vectorised collection, so a 100 × 100 map costs about as much as a small one.

Figures are built on matplotlib's headless Agg canvas without pyplot, so nothing is shown and no global figure
state is kept; each PNG is written atomically.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import BoundaryNorm, Colormap, ListedColormap, Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy.cluster.hierarchy import dendrogram
from tqdm import tqdm

from pipeline.atomic import write_atomic

logger = logging.getLogger(__name__)

TOPOLOGIES: tuple[str, ...] = ("rectangular", "hexagonal")
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
MAX_MARKER_LABELS = 50
MAX_LEGEND_ENTRIES = 20
FULL_DENDROGRAM_MAX_LEAF_LABELS = 120
ABOVE_CUT_COLOR = "#4d4d4d"
MAP_LONGEST_SIDE_INCHES = 7.0

Coords = tuple[np.ndarray, np.ndarray]


def plot_u_matrix(
    distance_map: np.ndarray,
    coords: Coords,
    topology: str,
    path: str | os.PathLike,
    *,
    bmu_ij: np.ndarray | None = None,
    marker_labels: np.ndarray | None = None,
    cmap: str = "bone_r",
    dpi: int = 100,
) -> Path:
    """Draw the U-matrix (x, y) as coloured cells with a colorbar, optionally with BMU markers.

    Markers are one per hit neuron (or per (neuron, label) pair when ``marker_labels`` is given), with marker area
    proportional to the number of rows mapped there, so the picture costs the same for any number of rows. When
    a neuron holds rows of several labels, their markers are spread on a small circle around the cell centre.

    Args:
        distance_map: (x, y) U-matrix, e.g. ``SOM.distance_map()``.
        coords: (xx, yy), each (x, y), the neurons' Euclidean coordinates.
        topology: "rectangular" or "hexagonal".
        path: PNG file to write.
        bmu_ij: optional (N, 2) integer BMU grid indices (i, j) of the rows.
        marker_labels: optional (N,) label per row (e.g. its cluster): distinct marker and colour per label,
            at most ``MAX_MARKER_LABELS`` distinct values. Needs ``bmu_ij``.
        cmap: matplotlib colormap name for the distances.
        dpi: resolution of the PNG.

    Returns:
        The path written.
    """
    distance_map = _validate_grid_values(distance_map, "distance_map")
    coords = _validate_coords(coords, distance_map.shape)
    _validate_topology(topology)
    if marker_labels is not None and bmu_ij is None:
        raise ValueError("marker_labels needs bmu_ij (the BMU of each labelled row)")

    fig, ax = _map_figure(coords, topology)
    cells = _draw_cells(ax, distance_map, coords, topology, cmap=cmap, norm=Normalize())
    fig.colorbar(cells, ax=ax, label="distance to neighbours (U-matrix)")
    ax.set_title("U-matrix" + ("" if bmu_ij is None else " with BMUs (marker area ∝ rows)"))
    if bmu_ij is not None:
        bmu_flat = _validate_bmu_ij(bmu_ij, distance_map.shape)
        max_area = _max_marker_area(coords)
        if marker_labels is None:
            _draw_hit_markers(ax, bmu_flat, coords, max_area)
        else:
            row_labels = _validate_marker_labels(marker_labels, bmu_flat.size)
            _draw_labelled_markers(ax, bmu_flat, row_labels, coords, max_area)
    return _save(fig, path, dpi)


def plot_dendrogram(
    linkage: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "SOM Weights Hierarchical Clustering Dendrogram",
    cut_height: float | None = None,
    neuron_labels: np.ndarray | None = None,
    dpi: int = 100,
) -> Path:
    """Draw the full dendrogram of a neuron linkage (leaf labels only when there are few enough to read).

    Args:
        linkage: scipy linkage matrix Z, (M − 1) × 4.
        path: PNG file to write.
        title: figure title.
        cut_height: optional height of a horizontal cut line; links below it are coloured by scipy's
            ``color_threshold`` rule unless ``neuron_labels`` is given.
        neuron_labels: optional (M,) or (x, y) cluster of every neuron; links inside one cluster take that
            cluster's colour (the same colours as ``plot_cluster_map``), links joining clusters are grey.
        dpi: resolution of the PNG.

    Returns:
        The path written.
    """
    linkage = _validate_linkage(linkage)
    leaf_count = linkage.shape[0] + 1
    fig = _new_figure((25, 10))
    ax = fig.add_subplot()
    with_leaf_labels = leaf_count <= FULL_DENDROGRAM_MAX_LEAF_LABELS
    dendrogram(
        linkage,
        ax=ax,
        no_labels=not with_leaf_labels,
        leaf_rotation=90,
        leaf_font_size=8,
        **_link_colouring(linkage, cut_height, neuron_labels),
    )
    if cut_height is not None:
        ax.axhline(cut_height, color="black", linewidth=1)
    ax.set_title(title)
    ax.set_xlabel("neuron (flat index i·y + j)" if with_leaf_labels else f"{leaf_count} neurons")
    ax.set_ylabel("distance")
    return _save(fig, path, dpi)


def plot_truncated_dendrogram(
    linkage: np.ndarray,
    path: str | os.PathLike,
    *,
    cut_height: float,
    p: int = 12,
    annotate_above: float | None = None,
    neuron_labels: np.ndarray | None = None,
    dpi: int = 100,
) -> Path:
    """Draw the last ``p`` merges of the dendrogram, annotated, with a horizontal cut line.

    Leaves show a neuron index or, in brackets, the number of neurons contracted into them; dots on the
    leaf stems mark the heights of the contracted merges. Each merge higher than ``annotate_above`` gets a dot
    and its height (``%.3g``).

    Args:
        linkage: scipy linkage matrix Z, (M − 1) × 4.
        path: PNG file to write.
        cut_height: height of the cut line (``NeuronClusters.cut_height``).
        p: number of leaves to keep (``truncate_mode="lastp"``).
        annotate_above: merges higher than this are annotated; default 10% of the top merge height, so the
            visible top merges are annotated whatever the scale of the weights.
        neuron_labels: optional (M,) or (x, y) cluster of every neuron, to colour links as ``plot_cluster_map``
            colours clusters; otherwise links below ``cut_height`` are coloured by scipy's rule.
        dpi: resolution of the PNG.

    Returns:
        The path written.
    """
    linkage = _validate_linkage(linkage)
    cut_height = _validate_height(cut_height, "cut_height")
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
        raise ValueError(f"p must be a positive integer number of leaves, got {p!r}")
    if annotate_above is None:
        threshold = 0.1 * float(linkage[-1, 2])
    else:
        threshold = _validate_height(annotate_above, "annotate_above")

    fig = _new_figure((14, 7))
    ax = fig.add_subplot()
    tree = dendrogram(
        linkage,
        ax=ax,
        truncate_mode="lastp",
        p=int(p),
        show_contracted=True,
        leaf_rotation=90,
        leaf_font_size=12,
        **_link_colouring(linkage, cut_height, neuron_labels),
    )
    for link_x, link_heights, color in zip(tree["icoord"], tree["dcoord"], tree["color_list"]):
        merge_x = 0.5 * (link_x[1] + link_x[2])
        merge_height = link_heights[1]
        if merge_height > threshold:
            ax.plot(merge_x, merge_height, "o", color=color)
            ax.annotate(
                f"{merge_height:.3g}", (merge_x, merge_height), xytext=(0, -5),
                textcoords="offset points", va="top", ha="center",
            )
    ax.axhline(cut_height, color="black", linewidth=1)
    ax.set_title("Hierarchical Clustering Dendrogram (truncated)")
    ax.set_xlabel("neuron index or (number of neurons)")
    ax.set_ylabel("distance")
    return _save(fig, path, dpi)


def plot_cluster_map(
    labels: np.ndarray,
    coords: Coords,
    topology: str,
    path: str | os.PathLike,
    *,
    hits: np.ndarray | None = None,
    dpi: int = 100,
) -> Path:
    """Draw each neuron in its cluster's colour, with a legend of cluster sizes.

    Args:
        labels: (x, y) int cluster of every neuron, 0..k−1.
        coords: (xx, yy), each (x, y), the neurons' Euclidean coordinates.
        topology: "rectangular" or "hexagonal".
        path: PNG file to write.
        hits: optional (x, y) rows per neuron; the legend then gives rows per cluster, and neurons without
            rows are marked with a small ×.
        dpi: resolution of the PNG.

    Returns:
        The path written.
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
        entry_texts = [f"{c}: {n} neurons" for c, n in enumerate(neurons_per_cluster)]
    else:
        rows_per_cluster = np.bincount(labels.ravel(), weights=hits.ravel(), minlength=cluster_count)
        entry_texts = [
            f"{c}: {rows:g} rows, {neurons} neurons"
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
    return _save(fig, path, dpi)


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
    """Draw one map per feature, coloured by that feature's weight, in a grid of panels each with a colorbar.

    Args:
        weights: (x, y, D) neuron weights, already in the features' original units.
        feature_names: D names, one per panel title.
        coords: (xx, yy), each (x, y), the neurons' Euclidean coordinates.
        topology: "rectangular" or "hexagonal".
        path: PNG file to write.
        cmap: matplotlib colormap name.
        dpi: resolution of the PNG.

    Returns:
        The path written.
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
    fig = _new_figure((column_count * (panel_width + 1.2), row_count * (panel_height + 0.7)))
    axes = fig.subplots(row_count, column_count, squeeze=False).ravel()
    for feature, ax in tqdm(
        enumerate(axes[:feature_count]), total=feature_count, desc="component planes", disable=None
    ):
        _set_map_axes(ax, coords, topology, with_ticks=False)
        cells = _draw_cells(ax, weights[:, :, feature], coords, topology, cmap=cmap, norm=Normalize())
        fig.colorbar(cells, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(str(feature_names[feature]), fontsize="medium")
    for unused_ax in axes[feature_count:]:
        unused_ax.set_axis_off()
    return _save(fig, path, dpi)


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


def _draw_hit_markers(ax: Axes, bmu_flat: np.ndarray, coords: Coords, max_area: float) -> None:
    """One unfilled green square per hit neuron, area proportional to its number of rows."""
    hit_counts = np.bincount(bmu_flat, minlength=coords[0].size)
    hit_neurons = np.flatnonzero(hit_counts)
    ax.scatter(
        coords[0].ravel()[hit_neurons], coords[1].ravel()[hit_neurons],
        s=_marker_areas(hit_counts[hit_neurons], max_area),
        marker="s", facecolors="none", edgecolors="tab:green", linewidths=1.0,
    )


def _draw_labelled_markers(
    ax: Axes, bmu_flat: np.ndarray, marker_labels: np.ndarray, coords: Coords, max_area: float
) -> None:
    """One marker per (neuron, label) pair, marker and colour by label, area proportional to its rows."""
    label_values, label_codes = np.unique(marker_labels, return_inverse=True)
    label_count = label_values.size
    pair_keys, pair_rows = np.unique(bmu_flat.astype(np.int64) * label_count + label_codes, return_counts=True)
    pair_neuron, pair_label = np.divmod(pair_keys, label_count)
    labels_at_neuron = np.bincount(pair_neuron, minlength=coords[0].size)[pair_neuron]
    rank_at_neuron = np.arange(pair_keys.size) - np.searchsorted(pair_neuron, pair_neuron, side="left")
    angle = 2.0 * np.pi * rank_at_neuron / labels_at_neuron
    spread = np.where(labels_at_neuron > 1, 0.25, 0.0)
    marker_x = coords[0].ravel()[pair_neuron] + spread * np.cos(angle)
    marker_y = coords[1].ravel()[pair_neuron] + spread * np.sin(angle)
    areas = _marker_areas(pair_rows, max_area)
    palette = cluster_palette(label_count)
    for code, value in enumerate(label_values):
        chosen = pair_label == code
        ax.scatter(
            marker_x[chosen], marker_y[chosen], s=areas[chosen], marker=MARKERS[code % len(MARKERS)],
            facecolors="none", edgecolors=palette[code], linewidths=1.2,
            label=f"{value} ({int(pair_rows[chosen].sum())} rows)",
        )
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(
        handles=_capped_legend_handles(handles), loc="upper center", bbox_to_anchor=(0.5, -0.08),
        ncol=min(label_count, 5), fontsize="small", markerscale=0.6,
    )


def _marker_areas(row_counts: np.ndarray, max_area: float) -> np.ndarray:
    """Marker areas (points²) proportional to row counts, the largest count getting ``max_area``."""
    return np.maximum(max_area * row_counts / row_counts.max(), 2.0)


def _max_marker_area(coords: Coords) -> float:
    """Area (points²) of a square marker 70% as wide as one cell of a map drawn by ``_map_figure``."""
    width, _ = _map_size_inches(coords, longest_side=MAP_LONGEST_SIDE_INCHES)
    cell_width_points = 72.0 * width / (float(np.ptp(coords[0])) + 1.0)
    return (0.7 * cell_width_points) ** 2


def _capped_legend_handles(handles: list) -> list:
    """Keep at most MAX_LEGEND_ENTRIES legend handles, adding a final entry counting the rest."""
    if len(handles) <= MAX_LEGEND_ENTRIES:
        return list(handles)
    hidden = len(handles) - MAX_LEGEND_ENTRIES + 1
    more = Patch(facecolor="none", edgecolor="none", label=f"… {hidden} more")
    return list(handles[: MAX_LEGEND_ENTRIES - 1]) + [more]


def _link_colouring(linkage: np.ndarray, cut_height: float | None, neuron_labels: np.ndarray | None) -> dict:
    """Dendrogram keyword arguments colouring links by cluster (``link_color_func``) or by the cut height."""
    if neuron_labels is None:
        return {} if cut_height is None else {"color_threshold": cut_height, "above_threshold_color": ABOVE_CUT_COLOR}
    leaf_count = linkage.shape[0] + 1
    leaf_clusters = np.asarray(neuron_labels).ravel()
    if leaf_clusters.size != leaf_count or not np.issubdtype(leaf_clusters.dtype, np.integer):
        raise ValueError(
            f"neuron_labels must hold one integer cluster per neuron ({leaf_count}), "
            f"got {leaf_clusters.size} values of dtype {leaf_clusters.dtype}"
        )
    palette = cluster_palette(int(leaf_clusters.max()) + 1)
    node_cluster = np.concatenate([leaf_clusters.astype(np.int64), np.full(leaf_count - 1, -1, dtype=np.int64)])
    for merge, (left, right) in enumerate(linkage[:, :2].astype(np.int64)):
        if node_cluster[left] == node_cluster[right]:
            node_cluster[leaf_count + merge] = node_cluster[left]
    return {"link_color_func": lambda node: palette[node_cluster[node]] if node_cluster[node] >= 0 else ABOVE_CUT_COLOR}


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
    _set_map_axes(ax, coords, topology, with_ticks=True)
    return fig, ax


def _set_map_axes(ax: Axes, coords: Coords, topology: str, *, with_ticks: bool) -> None:
    """Equal aspect, limits framing every cell, axis labels i and j."""
    pad = 0.5 if topology == "rectangular" else 0.6
    ax.set_xlim(coords[0].min() - pad, coords[0].max() + pad)
    ax.set_ylim(coords[1].min() - pad, coords[1].max() + pad)
    ax.set_aspect("equal")
    if with_ticks:
        ax.set_xlabel("i")
        ax.set_ylabel("j")
    else:
        ax.set_xticks([])
        ax.set_yticks([])


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
    outside = (bmu_ij[:, 0] < 0) | (bmu_ij[:, 0] >= x) | (bmu_ij[:, 1] < 0) | (bmu_ij[:, 1] >= y)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(f"bmu_ij[{row}] = {tuple(int(v) for v in bmu_ij[row])} is outside the {x} × {y} map")
    return bmu_ij[:, 0].astype(np.int64) * y + bmu_ij[:, 1]


def _validate_marker_labels(marker_labels: np.ndarray, row_count: int) -> np.ndarray:
    """Check one label per row and few enough distinct labels to tell apart."""
    marker_labels = np.asarray(marker_labels)
    if marker_labels.shape != (row_count,):
        raise ValueError(
            f"marker_labels must have one label per BMU row ({row_count},), got shape {marker_labels.shape}"
        )
    distinct = np.unique(marker_labels).size
    if distinct > MAX_MARKER_LABELS:
        raise ValueError(f"marker_labels has {distinct} distinct values; at most {MAX_MARKER_LABELS} can be told apart")
    return marker_labels


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
