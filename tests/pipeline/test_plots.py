"""Plots: valid PNGs written atomically, cell geometry against matplotlib's own shapes, colours as promised.

Dendrogram checks compare the drawn links, leaf labels and leaf markers with a reference built from scipy's own
``dendrogram(..., no_plot=True)`` layout and ``to_tree`` membership; map checks read the matplotlib objects.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib import colormaps
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.patches import Rectangle, RegularPolygon
from minisom import MiniSom
from scipy.cluster.hierarchy import dendrogram, fcluster, linkage, to_tree
from sklearn.cluster import KMeans

import pipeline.outputs.plots as plots
from pipeline.segmentation.clustering import cluster_neurons
from pipeline.outputs.plots import (
    CUT_LABEL_GID,
    CUT_LINE_GID,
    HALO_GID,
    LEAF_STRIP_GID,
    MIXED_COLOR,
    cell_polygons,
    cluster_palette,
    component_planes_figure,
    dendrogram_figure,
    dendrogram_leaves,
    distinct_labels,
    k_selection_figure,
    plot_cluster_map,
    plot_component_planes,
    plot_dendrogram,
    plot_k_selection,
    plot_truncated_dendrogram,
    plot_u_matrix,
    truncated_dendrogram_figure,
    u_matrix_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 80
TOPOLOGIES = ["rectangular", "hexagonal"]


class SmallMap:
    """A 7 × 5 MiniSom stand-in for the SOM: weights, coordinates, U-matrix, BMUs and neuron clusters."""

    def __init__(self, topology: str) -> None:
        rng = np.random.default_rng(0)
        centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, 2.0]])
        self.data = centres[rng.integers(0, 3, 300)] + rng.normal(scale=0.4, size=(300, 3))
        som = MiniSom(7, 5, 3, sigma=1.5, learning_rate=0.5, topology=topology, random_seed=1)
        som.train_random(self.data, 600)
        self.topology = topology
        self.weights = som.get_weights()
        self.coords = som.get_euclidean_coordinates()
        self.distance_map = som.distance_map()
        self.bmu_ij = np.array([som.winner(row) for row in self.data])
        self.hits = np.zeros((7, 5), dtype=int)
        np.add.at(self.hits, (self.bmu_ij[:, 0], self.bmu_ij[:, 1]), 1)
        self.clusters = cluster_neurons(self.weights, n_clusters=3, hits=self.hits)


@pytest.fixture(scope="module", params=TOPOLOGIES)
def small_map(request: pytest.FixtureRequest) -> SmallMap:
    return SmallMap(request.param)


def read_png(path: Path) -> np.ndarray:
    """Check the PNG signature and return the decoded RGB(A) image as floats in [0, 1]."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] > 150 and image.shape[1] > 150
    assert image[..., :3].std() > 0.05, "the picture is (nearly) blank"
    return image


def assert_only_files(folder: Path, *names: str) -> None:
    """The folder holds exactly these files: no temporary leftovers of the atomic write."""
    assert sorted(entry.name for entry in folder.iterdir()) == sorted(names)


def pixels_near(image: np.ndarray, hex_colour: str, tolerance: float = 0.02) -> int:
    """Number of pixels within ``tolerance`` of a colour on every RGB channel."""
    rgb = np.array([int(hex_colour[k : k + 2], 16) / 255 for k in (1, 3, 5)])
    return int((np.abs(image[..., :3] - rgb) <= tolerance).all(axis=-1).sum())


def test_u_matrix_png(small_map: SmallMap, tmp_path: Path) -> None:
    written = plot_u_matrix(small_map.distance_map, small_map.coords, small_map.topology, tmp_path / "u.png", dpi=DPI)
    assert written == tmp_path / "u.png"
    read_png(written)
    assert_only_files(tmp_path, "u.png")


def test_u_matrix_with_bmus_and_labels_png(small_map: SmallMap, tmp_path: Path) -> None:
    row_clusters = small_map.clusters.labels[small_map.bmu_ij[:, 0], small_map.bmu_ij[:, 1]]
    plot_u_matrix(
        small_map.distance_map, small_map.coords, small_map.topology, tmp_path / "plain.png",
        bmu_ij=small_map.bmu_ij, dpi=DPI,
    )
    plot_u_matrix(
        small_map.distance_map, small_map.coords, small_map.topology, tmp_path / "labelled.png",
        bmu_ij=small_map.bmu_ij, marker_labels=row_clusters, dpi=DPI,
    )
    labelled = read_png(tmp_path / "labelled.png")
    read_png(tmp_path / "plain.png")
    for colour in cluster_palette(small_map.clusters.n_clusters):
        assert pixels_near(labelled, colour) > 0, colour
    assert_only_files(tmp_path, "plain.png", "labelled.png")


def test_full_dendrogram_png(small_map: SmallMap, tmp_path: Path) -> None:
    plot_dendrogram(small_map.clusters.linkage, tmp_path / "full.png", dpi=DPI)
    plot_dendrogram(
        small_map.clusters.linkage, tmp_path / "coloured.png", cut_height=small_map.clusters.cut_height,
        leaf_segments=small_map.clusters.leaf_labels, dpi=DPI,
    )
    read_png(tmp_path / "full.png")
    coloured = read_png(tmp_path / "coloured.png")
    for colour in cluster_palette(small_map.clusters.n_clusters):
        assert pixels_near(coloured, colour, tolerance=0.1) > 0, colour  # thin anti-aliased lines
    assert_only_files(tmp_path, "full.png", "coloured.png")


def test_full_dendrogram_of_many_leaves_png(tmp_path: Path) -> None:
    weights = np.random.default_rng(2).normal(size=(400, 3))
    plot_dendrogram(linkage(weights, "average"), tmp_path / "many.png", dpi=40)
    read_png(tmp_path / "many.png")


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
def test_truncated_dendrogram_png(small_map: SmallMap, tmp_path: Path, scale: float) -> None:
    tree = small_map.clusters.linkage.copy()
    tree[:, 2] *= scale
    plot_truncated_dendrogram(tree, tmp_path / "fancy.png", cut_height=small_map.clusters.cut_height * scale, dpi=DPI)
    read_png(tmp_path / "fancy.png")
    assert_only_files(tmp_path, "fancy.png")


def test_truncated_dendrogram_with_explicit_annotation_threshold_and_few_leaves(tmp_path: Path) -> None:
    tree = linkage(np.array([[0.0], [1.0], [3.0], [7.0]]), "average")
    plot_truncated_dendrogram(tree, tmp_path / "small.png", cut_height=1.5, p=12, annotate_above=0.5, dpi=DPI)
    read_png(tmp_path / "small.png")


def test_cluster_map_png_shows_every_cluster_colour(small_map: SmallMap, tmp_path: Path) -> None:
    labels = small_map.clusters.labels
    plot_cluster_map(labels, small_map.coords, small_map.topology, tmp_path / "clusters.png", dpi=DPI)
    plot_cluster_map(
        labels, small_map.coords, small_map.topology, tmp_path / "with_hits.png", hits=small_map.hits, dpi=DPI
    )
    image = read_png(tmp_path / "clusters.png")
    read_png(tmp_path / "with_hits.png")
    palette = cluster_palette(small_map.clusters.n_clusters)
    cell_pixels = np.array([pixels_near(image, colour) for colour in palette])
    assert (cell_pixels > 0).all()
    neurons_per_cluster = np.bincount(labels.ravel())
    # colour area follows neuron counts (the legend swatches add a few equal-sized patches)
    assert np.argmax(cell_pixels) == np.argmax(neurons_per_cluster)
    assert_only_files(tmp_path, "clusters.png", "with_hits.png")


def test_component_planes_png(small_map: SmallMap, tmp_path: Path) -> None:
    plot_component_planes(
        small_map.weights, ["a", "b", "c"], small_map.coords, small_map.topology, tmp_path / "planes.png", dpi=DPI
    )
    read_png(tmp_path / "planes.png")
    assert_only_files(tmp_path, "planes.png")


def test_big_hexagonal_map_plots(tmp_path: Path) -> None:
    som = MiniSom(40, 40, 2, topology="hexagonal", random_seed=0)
    coords = som.get_euclidean_coordinates()
    weights = np.stack([np.sin(coords[0] / 6.0), np.cos(coords[1] / 5.0)], axis=-1)
    labels = (weights[:, :, 0] > 0).astype(int) + 2 * (weights[:, :, 1] > 0)
    plot_component_planes(weights, ["sin", "cos"], coords, "hexagonal", tmp_path / "planes.png", dpi=60)
    plot_cluster_map(labels, coords, "hexagonal", tmp_path / "clusters.png", dpi=60)
    read_png(tmp_path / "planes.png")
    read_png(tmp_path / "clusters.png")


def test_square_cells_match_matplotlib_rectangles() -> None:
    som = MiniSom(3, 2, 1, topology="rectangular")
    cells = cell_polygons(som.get_euclidean_coordinates(), "rectangular")
    assert cells.shape == (6, 4, 2)
    for flat_index, cell in enumerate(cells):
        i, j = divmod(flat_index, 2)
        reference = Rectangle((i - 0.5, j - 0.5), 1.0, 1.0).get_verts()[:4]
        assert sorted(map(tuple, np.round(cell, 9))) == sorted(map(tuple, np.round(reference, 9)))


def test_hexagon_cells_match_matplotlib_regular_polygons_and_tile() -> None:
    som = MiniSom(4, 3, 1, topology="hexagonal")
    xx, yy = som.get_euclidean_coordinates()
    cells = cell_polygons((xx, yy), "hexagonal")
    assert cells.shape == (12, 6, 2)
    for cell, centre in zip(cells, zip(xx.ravel(), yy.ravel())):
        polygon = RegularPolygon(centre, numVertices=6, radius=1 / np.sqrt(3))
        reference = polygon.get_patch_transform().transform(polygon.get_path().vertices[:6])
        assert sorted(map(tuple, np.round(cell, 9))) == sorted(map(tuple, np.round(reference, 9)))
    # neighbouring hexagons (centres 1 apart) share exactly one edge: two vertices
    vertex_sets = [set(map(tuple, np.round(cell, 9))) for cell in cells]
    centres = np.stack([xx.ravel(), yy.ravel()], axis=1)
    for a in range(12):
        for b in range(a + 1, 12):
            shared = len(vertex_sets[a] & vertex_sets[b])
            is_neighbour = np.isclose(np.linalg.norm(centres[a] - centres[b]), 1.0)
            assert shared == (2 if is_neighbour else 0), (a, b)


class SegmentedPrototypes:
    """Prototypes of the non-empty neurons of a 10 × 10 map, their linkage, and segments the way a refined cut
    leaves them: five blobs, two prototypes moved to another segment (so a segment need not be one subtree), and
    one far, compact blob of six that truncation shows as a single leaf."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        centres = [(0.0, 0.0), (3.0, 0.0), (0.0, 3.0), (3.0, 3.0), (12.0, 12.0)]
        sizes = [25, 20, 16, 12, 6]
        self.points = np.concatenate(
            [rng.normal(centre, 0.35 if size > 6 else 0.05, size=(size, 2)) for centre, size in zip(centres, sizes)]
        )
        self.linkage = linkage(self.points, "average")
        self.cut_height = float((self.linkage[-5, 2] + self.linkage[-4, 2]) / 2)
        cut_segments = fcluster(self.linkage, self.cut_height, criterion="distance") - 1
        init = np.stack([self.points[cut_segments == s].mean(axis=0) for s in range(5)])
        self.segments = KMeans(5, init=init, n_init=1).fit(self.points).labels_
        self.segments[[0, 30]] = self.segments[[30, 0]]  # two prototypes swap segments, as a refinement may do
        self.far_segment = int(self.segments[-1])
        self.neurons = np.sort(rng.choice(100, size=len(self.points), replace=False))
        self.grid_labels = np.zeros((10, 10), dtype=int)
        self.grid_labels.ravel()[self.neurons] = self.segments
        self.names = [f"({i},{j})" for i, j in zip(*np.unravel_index(self.neurons, (10, 10)))]
        self.segment_names = ["big spenders", "weekend", "apparel", "loyal", "far away"]


@pytest.fixture(scope="module")
def prototypes() -> SegmentedPrototypes:
    return SegmentedPrototypes()


def expected_dendrogram(tree: np.ndarray, segments: np.ndarray, names: list[str], p: int | None) -> dict:
    """Leaf texts and colours, leaf strips and link colours, from scipy's leaf order (``no_plot``) and tree
    (``to_tree``): leaf k sits at x = 10k + 5, a merge midway between its children, leaves at height 0."""
    layout = dendrogram(tree, no_plot=True, **({} if p is None else {"truncate_mode": "lastp", "p": p}))
    root, nodes = to_tree(tree, rd=True)
    palette = cluster_palette(int(segments.max()) + 1)
    leaf_x = {leaf: 10.0 * k + 5.0 for k, leaf in enumerate(layout["leaves"])}

    def colour(observations: list[int]) -> str:
        found = set(segments[observations].tolist())
        return palette[found.pop()] if len(found) == 1 else MIXED_COLOR

    links = {}

    def place(node) -> tuple[float, float]:
        """x and drawn height of a displayed node; records the link of every displayed merge."""
        if node.id in leaf_x:
            return leaf_x[node.id], 0.0
        (left_x, left_h), (right_x, right_h) = place(node.get_left()), place(node.get_right())
        key = (tuple(np.round([left_x, left_x, right_x, right_x], 6)),
               tuple(np.round([left_h, node.dist, node.dist, right_h], 9)))
        links[key] = colour(node.pre_order())
        return (left_x + right_x) / 2, node.dist

    place(root)
    members = [nodes[leaf].pre_order() for leaf in layout["leaves"]]
    texts = []
    for leaf, observations in zip(layout["leaves"], members):
        found = set(segments[observations].tolist())
        code = f"S{next(iter(found))}" if len(found) == 1 else "mixed"
        texts.append(f"{code} {names[leaf]}" if leaf < len(segments) else f"{code} ({len(observations)})")
    strip = []  # under leaf k (x = 10k + 5, 8 units wide): one piece per segment, in proportion, in segment order
    for k, observations in enumerate(members):
        shares = np.bincount(segments[observations], minlength=len(palette)) / len(observations)
        left = 10 * k + 1.0
        for segment in np.flatnonzero(shares):
            strip.append((round(left, 6), round(left + 8 * shares[segment], 6), palette[segment]))
            left += 8 * shares[segment]
    return {"texts": texts, "label_colours": [colour(obs) for obs in members], "strip": sorted(strip), "links": links}


def drawn_dendrogram(fig) -> dict:
    """The same items read back from the figure's matplotlib objects."""
    ax = fig.axes[0]
    links = {}
    for collection in ax.collections:
        if isinstance(collection, LineCollection):
            colour = to_hex(collection.get_colors()[0])
            for segment in collection.get_segments():
                links[tuple(np.round(segment[:, 0], 6)), tuple(np.round(segment[:, 1], 9))] = colour
    strip = next(c for c in ax.collections if c.get_gid() == LEAF_STRIP_GID)
    pieces = [(path.vertices[:4, 0].min(), path.vertices[:4, 0].max()) for path in strip.get_paths()]
    tick_labels = ax.get_xticklabels()
    return {
        "texts": [label.get_text() for label in tick_labels],
        "label_colours": [to_hex(label.get_color()) for label in tick_labels],
        "strip": sorted((round(left, 6), round(right, 6), to_hex(colour))
                        for (left, right), colour in zip(pieces, strip.get_facecolors())),
        "links": links,
    }


@pytest.mark.parametrize("p", [8, 14])
def test_truncated_dendrogram_colours_and_labels_every_leaf_by_segment(prototypes: SegmentedPrototypes, p: int):
    fig = truncated_dendrogram_figure(
        prototypes.linkage, cut_height=prototypes.cut_height, p=p, leaf_segments=prototypes.segments,
        leaf_names=prototypes.names, segment_names=prototypes.segment_names,
    )
    expected = expected_dendrogram(prototypes.linkage, prototypes.segments, prototypes.names, p)
    drawn = drawn_dendrogram(fig)
    for item in ("links", "texts", "label_colours", "strip"):
        assert drawn[item] == expected[item], item
    assert any(text.startswith("mixed (") for text in drawn["texts"]), "the refined segments leave a mixed leaf"
    # the far segment is one contracted leaf: no link of its own, yet its colour and code are on the leaf
    far_colour = cluster_palette(5)[prototypes.far_segment]
    assert f"S{prototypes.far_segment} (6)" in drawn["texts"]
    assert far_colour not in drawn["links"].values() and far_colour in drawn["label_colours"]
    assert {colour for _, _, colour in drawn["strip"]} == set(cluster_palette(5)), "every segment shows its colour"
    legend_texts = [text.get_text() for text in fig.legends[0].get_texts()]
    counts = np.bincount(prototypes.segments)
    names = prototypes.segment_names
    assert legend_texts[:5] == [f"S{s}: {name} ({counts[s]} neurons)" for s, name in enumerate(names)]


def test_full_dendrogram_colours_and_labels_every_leaf_by_segment(prototypes: SegmentedPrototypes, tmp_path: Path):
    fig = dendrogram_figure(
        prototypes.linkage, cut_height=prototypes.cut_height, leaf_segments=prototypes.segments,
        leaf_names=prototypes.names,
    )
    expected = expected_dendrogram(prototypes.linkage, prototypes.segments, prototypes.names, None)
    drawn = drawn_dendrogram(fig)
    for item in ("links", "texts", "label_colours", "strip"):
        assert drawn[item] == expected[item], item
    plot_dendrogram(prototypes.linkage, tmp_path / "full.png", leaf_segments=prototypes.segments, dpi=40)
    read_png(tmp_path / "full.png")


def test_dendrogram_leaves_names_the_neurons_of_the_linkage(prototypes: SegmentedPrototypes):
    segments, names = dendrogram_leaves(prototypes.grid_labels, prototypes.neurons)
    np.testing.assert_array_equal(segments, prototypes.segments)
    assert names == prototypes.names


@pytest.mark.parametrize("figure_of", [dendrogram_figure, truncated_dendrogram_figure])
def test_cut_line_is_drawn_and_labelled_with_its_segment_count(prototypes: SegmentedPrototypes, figure_of):
    tree = prototypes.linkage
    for cut in (prototypes.cut_height, float(tree[-2, 2] + tree[-1, 2]) / 2):
        ax = figure_of(tree, cut_height=cut, leaf_segments=prototypes.segments).axes[0]
        expected_count = 1 + int((tree[:, 2] > cut).sum())  # average linkage is monotone
        label = next(text for text in ax.texts if text.get_gid() == CUT_LABEL_GID)
        unit = "segment" if expected_count == 1 else "segments"
        assert label.get_text() == f"cut: {expected_count} {unit}"
        assert label.xy[1] == pytest.approx(cut)
        line = next(line for line in ax.lines if line.get_gid() == CUT_LINE_GID)
        np.testing.assert_allclose(line.get_ydata(), [cut, cut])


def label_in_cut_band(fig, ax, label, height: float) -> bool:
    """Whether the label's box comes within 2% of the axes height of the horizontal line at ``height``."""
    renderer = fig.canvas.get_renderer()
    box = label.get_window_extent(renderer)
    line_y = ax.transData.transform((0.0, height))[1]
    band = 0.02 * ax.get_window_extent(renderer).height
    return box.y0 - band <= line_y <= box.y1 + band


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
def test_merge_height_labels_never_sit_on_the_cut_line(prototypes: SegmentedPrototypes, scale: float):
    tree = prototypes.linkage.copy()
    tree[:, 2] *= scale
    top = tree[-1, 2]
    # annotated merges: cut just under each, where its label would sit, or just over it
    for merge_height, offset in itertools.product(tree[-4:-1, 2], (-0.01, 0.005)):
        cut = float(merge_height + offset * top)
        fig = truncated_dendrogram_figure(tree, cut_height=cut, p=10, leaf_segments=prototypes.segments)
        ax = fig.axes[0]
        fig.canvas.draw()
        merge_labels = [text for text in ax.texts if text.get_gid() != CUT_LABEL_GID]
        assert len(merge_labels) >= 2, "the top merges are annotated"
        assert not [label.get_text() for label in merge_labels if label_in_cut_band(fig, ax, label, cut)]
        if offset < 0:
            own = [label for label in merge_labels if label.get_text() == f"{merge_height:.3g}"]
            assert own, "the merge just above the cut keeps its label, moved above its dot"
            dot_y = ax.transData.transform((0.0, merge_height))[1]
            assert own[0].get_window_extent(fig.canvas.get_renderer()).y0 > dot_y


def contrast_ratio(colour_a, colour_b) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21)."""
    def luminance(colour) -> float:
        rgb = np.array(to_rgb(colour))
        linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(linear @ [0.2126, 0.7152, 0.0722])
    high, low = sorted([luminance(colour_a), luminance(colour_b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("dpi", [50, 100, 200])
def test_u_matrix_markers_read_on_dark_cells_at_every_dpi(
    small_map: SmallMap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dpi: int
) -> None:
    figures = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path, dpi: figures.append(fig) or save(fig, path, dpi))
    row_segments = small_map.clusters.labels[small_map.bmu_ij[:, 0], small_map.bmu_ij[:, 1]]
    names = ["young families", "weekend apparel", "rare"]
    written = plot_u_matrix(
        small_map.distance_map, small_map.coords, small_map.topology, tmp_path / "u.png", bmu_ij=small_map.bmu_ij,
        marker_labels=row_segments, segment_names=names, dpi=dpi,
    )
    image = read_png(written)
    ax = figures[0].axes[0]
    width_inches = figures[0].get_size_inches()[0]
    assert 0.6 * width_inches * dpi < image.shape[1] <= width_inches * dpi + 2, "the PNG has the requested dpi"
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    halos, markers = scatters[0::2], scatters[1::2]
    assert [c.get_gid() for c in halos] == [HALO_GID] * 3 and all(c.get_gid() != HALO_GID for c in markers)
    darkest_cell = colormaps["bone_r"](1.0)
    for segment, (halo, marker) in enumerate(zip(halos, markers)):
        np.testing.assert_array_equal(halo.get_offsets(), marker.get_offsets())
        np.testing.assert_array_equal(halo.get_sizes(), marker.get_sizes())
        assert to_hex(marker.get_edgecolor()[0]) == cluster_palette(3)[segment]
        assert contrast_ratio(halo.get_edgecolor()[0], darkest_cell) >= 7.0
        assert halo.get_linewidth()[0] >= marker.get_linewidth()[0] + 1.0
        smallest_marker_pixels = np.sqrt(marker.get_sizes().min()) * dpi / 72  # sizes are points², fixed
        assert smallest_marker_pixels >= 4.0 and marker.get_linewidth()[0] * dpi / 72 >= 0.4
        # area grows with the rows of that segment at the neuron (neurons in flat order, as drawn)
        flat = small_map.bmu_ij[:, 0] * 5 + small_map.bmu_ij[:, 1]
        rows = pd.Series(flat[row_segments == segment]).value_counts().sort_index().to_numpy()
        sizes = marker.get_sizes()
        assert all(sizes[a] >= sizes[b] for a in range(rows.size) for b in range(rows.size) if rows[a] > rows[b])
    counts = np.bincount(row_segments, minlength=3)
    assert [text.get_text() for text in ax.figure.legends[0].get_texts()] == [
        f"S{s}: {name} ({counts[s]} rows)" for s, name in enumerate(names)
    ]
    assert ax.figure.legends[0].get_title().get_text() == "segment"


def test_u_matrix_marker_colours_follow_segment_ids_even_with_a_segment_missing(small_map: SmallMap) -> None:
    row_segments = np.where(np.arange(len(small_map.bmu_ij)) % 2 == 0, 0, 3)  # segments 1 and 2 hold no rows
    ax = u_matrix_figure(small_map.distance_map, small_map.coords, small_map.topology, bmu_ij=small_map.bmu_ij,
                         marker_labels=row_segments).axes[0]
    markers = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_gid() != HALO_GID]
    assert [to_hex(c.get_edgecolor()[0]) for c in markers] == [cluster_palette(4)[0], cluster_palette(4)[3]]
    counts = np.bincount(row_segments)
    assert [t.get_text() for t in ax.figure.legends[0].get_texts()] == [f"S0 ({counts[0]} rows)", f"S3 ({counts[3]} rows)"]
    named = u_matrix_figure(small_map.distance_map, small_map.coords, small_map.topology, bmu_ij=small_map.bmu_ij,
                            marker_labels=np.where(row_segments == 0, "north", "south")).axes[0]
    assert [t.get_text() for t in named.figure.legends[0].get_texts()] == [
        f"north ({counts[0]} rows)", f"south ({counts[3]} rows)"
    ]


def test_u_matrix_figure_does_not_depend_on_the_dpi(small_map: SmallMap) -> None:
    sizes = []
    for dpi in (50, 200):
        fig = u_matrix_figure(small_map.distance_map, small_map.coords, small_map.topology, bmu_ij=small_map.bmu_ij)
        fig.set_dpi(dpi)
        fig.canvas.draw()
        sizes.append([(c.get_sizes().tolist(), c.get_linewidth().tolist()) for c in fig.axes[0].collections[1:]])
    assert sizes[0] == sizes[1]


def test_component_planes_have_grid_ticks_titles_and_a_colorbar_each(small_map: SmallMap) -> None:
    names = ["apparel share of spend in percent of the total", "b", "log monetary value"]
    fig = component_planes_figure(small_map.weights, names, small_map.coords, small_map.topology)
    xx, yy = small_map.coords
    planes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().replace("\n", " ") for ax in planes] == names
    for ax in planes:
        assert all(len(line) <= plots.PLANE_TITLE_WIDTH for line in ax.get_title().split("\n"))
        x_labels = [int(label.get_text()) for label in ax.get_xticklabels()]
        y_labels = [int(label.get_text()) for label in ax.get_yticklabels()]
        assert len(x_labels) >= 3 and len(y_labels) >= 3 and x_labels[0] == y_labels[0] == 0
        for position, i in zip(ax.get_xticks(), x_labels):
            assert np.isclose(xx[i], position).any(), "tick i sits on a neuron of column i"
        np.testing.assert_allclose(ax.get_yticks(), yy[0, y_labels])
        cells = ax.collections[0]
        assert cells.colorbar is not None and cells.colorbar.ax in fig.axes
        assert ax.get_xlabel() == "i" and ax.get_ylabel() == "j"


def test_maps_tick_every_grid_index_up_to_ten() -> None:
    som = MiniSom(25, 4, 1, topology="hexagonal")
    coords = som.get_euclidean_coordinates()
    (x_positions, i_indices), (y_positions, j_indices) = plots.grid_ticks(coords)
    np.testing.assert_array_equal(i_indices, np.arange(0, 25, 3))
    np.testing.assert_array_equal(j_indices, np.arange(4))
    np.testing.assert_allclose(y_positions, coords[1][0, :])
    np.testing.assert_allclose(x_positions, i_indices)  # the unshifted hexagon rows sit at x = i


def test_k_selection_plot_marks_and_labels_the_chosen_k(tmp_path: Path) -> None:
    table = pd.DataFrame({"k": [4, 2, 3, 6, 5], "silhouette": [0.41, 0.2, 0.33, np.nan, 0.38]})
    table["chosen"] = table["k"] == 4
    fig = k_selection_figure(table, criterion="silhouette", chosen_k=4)
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(line.get_ydata(), [0.2, 0.33, 0.41, 0.38, np.nan])
    star = next(c for c in ax.collections if c.get_gid() == plots.CHOSEN_K_GID)
    np.testing.assert_allclose(star.get_offsets(), [[4, 0.41]])
    label = next(text for text in ax.texts if text.get_gid() == plots.CHOSEN_K_GID)
    assert label.get_text() == "chosen k = 4\nsilhouette = 0.41"
    np.testing.assert_array_equal(ax.get_xticks(), [2, 3, 4, 5, 6])
    assert ax.get_ylabel() == "silhouette"
    unscored = k_selection_figure(table, criterion="silhouette", chosen_k=6).axes[0]
    assert [t.get_text() for t in unscored.texts if t.get_gid() == plots.CHOSEN_K_GID] == ["chosen k = 6 (not scored)"]
    written = plot_k_selection(table, tmp_path / "k.png", criterion="silhouette", chosen_k=4, dpi=DPI)
    read_png(written)
    assert_only_files(tmp_path, "k.png")


def test_cluster_palette_is_distinct() -> None:
    for count in (1, 9, 10, 18, 19, 40):
        palette = cluster_palette(count)
        assert len(palette) == len(set(palette)) == count


BAD_CALLS = {
    "unknown topology": (
        lambda m, p: plot_u_matrix(m.distance_map, m.coords, "square", p), ValueError, "rectangular, hexagonal"
    ),
    "coords of another shape": (
        lambda m, p: plot_u_matrix(m.distance_map.T, m.coords, m.topology, p), ValueError, r"shape \(5, 7\)"
    ),
    "BMU outside the map": (
        lambda m, p: plot_u_matrix(m.distance_map, m.coords, m.topology, p, bmu_ij=np.array([[7, 0]])),
        ValueError, r"\(7, 0\) is outside",
    ),
    "labels without BMUs": (
        lambda m, p: plot_u_matrix(m.distance_map, m.coords, m.topology, p, marker_labels=np.zeros(3)),
        ValueError, "needs bmu_ij",
    ),
    "too many marker labels": (
        lambda m, p: plot_u_matrix(
            m.distance_map, m.coords, m.topology, p, bmu_ij=m.bmu_ij, marker_labels=np.arange(300)
        ),
        ValueError, "300 distinct",
    ),
    "feature names mismatch": (
        lambda m, p: plot_component_planes(m.weights, ["a", "b"], m.coords, m.topology, p),
        ValueError, "2 names .* 3 features",
    ),
    "float cluster labels": (
        lambda m, p: plot_cluster_map(m.clusters.labels.astype(float), m.coords, m.topology, p), TypeError, "integer"
    ),
    "leaf segments of another size": (
        lambda m, p: plot_dendrogram(m.clusters.linkage, p, leaf_segments=np.zeros(3, dtype=int)),
        ValueError, r"one integer segment per linkage observation \(\d+\)",
    ),
    "leaf names of another size": (
        lambda m, p: plot_truncated_dendrogram(m.clusters.linkage, p, cut_height=1.0, leaf_names=["(0,0)"]),
        ValueError, r"every linkage observation \(\d+\), got 1",
    ),
    "too few segment names": (
        lambda m, p: plot_dendrogram(
            m.clusters.linkage, p, leaf_segments=m.clusters.leaf_labels, segment_names=["only one"]
        ),
        ValueError, "1 names but leaf_segments holds segment 2",
    ),
    "segment names for non-segment marker labels": (
        lambda m, p: plot_u_matrix(
            m.distance_map, m.coords, m.topology, p, bmu_ij=m.bmu_ij,
            marker_labels=np.full(len(m.bmu_ij), 5), segment_names=["a", "b"],
        ),
        ValueError, r"segment ids 0..1",
    ),
    "k-selection without the criterion column": (
        lambda m, p: plot_k_selection(pd.DataFrame({"k": [2, 3], "bic": [1.0, 2.0]}), p, criterion="silhouette",
                                      chosen_k=2),
        ValueError, "no column 'silhouette'; its columns: k, bic",
    ),
    "chosen k not tried": (
        lambda m, p: plot_k_selection(pd.DataFrame({"k": [2, 3], "bic": [1.0, 2.0]}), p, criterion="bic",
                                      chosen_k=7),
        ValueError, "chosen_k=7 is not among the k of the table: 2, 3",
    ),
    "no leaves": (
        lambda m, p: plot_truncated_dendrogram(m.clusters.linkage, p, cut_height=1.0, p=0),
        ValueError, "positive integer",
    ),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_bad_input_raises_and_writes_nothing(small_map: SmallMap, tmp_path: Path, case: str) -> None:
    call, error, message = BAD_CALLS[case]
    with pytest.raises(error, match=message):
        call(small_map, tmp_path / "bad.png")
    assert_only_files(tmp_path)


@pytest.mark.parametrize("labels", [
    np.array([3, 0, 3, 7, 0, 7, 7]),
    np.array([-5, 2, -5, 0], dtype=np.int8),
    np.array([10**12, -(10**12), 0, 10**12]),  # a span too wide for bincount: np.unique's own path
    np.array(["south", "north", "south"]),
    np.array([0.5, -1.0, 0.5]),
])
def test_distinct_labels_equal_numpys_unique(labels: np.ndarray) -> None:
    values, codes = distinct_labels(labels)
    expected_values, expected_codes = np.unique(labels, return_inverse=True)
    np.testing.assert_array_equal(values, expected_values)
    assert values.dtype == expected_values.dtype
    np.testing.assert_array_equal(codes, expected_codes.reshape(-1))
    np.testing.assert_array_equal(values[codes], labels)


def drawn_markers(fig) -> list[tuple[list, list]]:
    """(offsets, sizes) of each label's markers on a U-matrix figure, halos left out."""
    return [(c.get_offsets().tolist(), c.get_sizes().tolist()) for c in fig.axes[0].collections
            if isinstance(c, PathCollection) and c.get_gid() != HALO_GID]


def test_u_matrix_markers_count_rows_per_neuron_and_segment(small_map: SmallMap) -> None:
    rng = np.random.default_rng(5)
    bmu_ij = small_map.bmu_ij[rng.integers(0, len(small_map.bmu_ij), 20_000)]
    segments = rng.integers(0, 3, len(bmu_ij))
    fig = u_matrix_figure(small_map.distance_map, small_map.coords, small_map.topology, bmu_ij=bmu_ij,
                          marker_labels=segments)
    pairs = pd.DataFrame({"neuron": bmu_ij[:, 0] * 5 + bmu_ij[:, 1], "segment": segments})
    rows = pairs.groupby(["segment", "neuron"]).size()
    style = plots._MarkerStyle.for_map(small_map.coords)
    for segment, (offsets, sizes) in enumerate(drawn_markers(fig)):
        expected = np.maximum(style.max_area * rows[segment].to_numpy() / rows.max(), style.min_area)
        np.testing.assert_allclose(sizes, expected, rtol=1e-12)
        assert len(offsets) == rows[segment].size


def test_u_matrix_markers_do_not_depend_on_the_number_of_rows(small_map: SmallMap) -> None:
    """Every row repeated 200 times (and shuffled) draws the same markers: one per (neuron, segment) pair."""
    segments = small_map.clusters.labels[small_map.bmu_ij[:, 0], small_map.bmu_ij[:, 1]]
    order = np.random.default_rng(2).permutation(200 * len(segments)) % len(segments)
    once, repeated = (
        u_matrix_figure(small_map.distance_map, small_map.coords, small_map.topology, bmu_ij=bmu_ij,
                        marker_labels=labels)
        for bmu_ij, labels in ((small_map.bmu_ij, segments), (small_map.bmu_ij[order], segments[order]))
    )
    assert len(drawn_markers(once)) == len(drawn_markers(repeated)) == small_map.clusters.n_clusters
    for (offsets, sizes), (repeated_offsets, repeated_sizes) in zip(drawn_markers(once), drawn_markers(repeated)):
        assert offsets == repeated_offsets
        np.testing.assert_allclose(repeated_sizes, sizes, rtol=1e-12)  # 200·r / 200·max rounds as r / max


def legend_texts(fig) -> list[str]:
    return [text.get_text() for legend in fig.legends for text in legend.get_texts()]


def test_u_matrix_from_counts_draws_what_the_rows_draw(small_map: SmallMap) -> None:
    """(x, y) hits and (x, y, S) rows per segment, counted by hand, give the markers and legend of the rows."""
    segments = np.random.default_rng(7).choice([0, 2, 3], size=len(small_map.bmu_ij))  # segment 1 holds no rows
    names = ["north", "east", "south", "west"]
    counts = np.zeros((7, 5, 4), dtype=np.int64)
    for (i, j), segment in zip(small_map.bmu_ij, segments):
        counts[i, j, segment] += 1
    args = (small_map.distance_map, small_map.coords, small_map.topology)
    by_rows = u_matrix_figure(*args, bmu_ij=small_map.bmu_ij, marker_labels=segments, segment_names=names)
    by_counts = u_matrix_figure(*args, bmu_counts=counts, segment_names=names)
    assert drawn_markers(by_counts) == drawn_markers(by_rows)
    assert legend_texts(by_counts) == legend_texts(by_rows) and len(legend_texts(by_rows)) == 3
    assert by_counts.axes[0].get_title() == by_rows.axes[0].get_title()
    hits_by_rows = u_matrix_figure(*args, bmu_ij=small_map.bmu_ij)
    hits_by_counts = u_matrix_figure(*args, bmu_counts=counts.sum(axis=2))
    assert drawn_markers(hits_by_counts) == drawn_markers(hits_by_rows)


def test_u_matrix_counts_are_checked(small_map: SmallMap) -> None:
    args = (small_map.distance_map, small_map.coords, small_map.topology)
    hits = small_map.hits
    with pytest.raises(ValueError, match="either bmu_counts"):
        u_matrix_figure(*args, bmu_counts=hits, bmu_ij=small_map.bmu_ij)
    with pytest.raises(ValueError, match=r"shape \(7, 5\) or \(7, 5\) \+ \(S,\), got shape \(5, 7\)"):
        u_matrix_figure(*args, bmu_counts=hits.T)
    with pytest.raises(TypeError, match="integer row counts"):
        u_matrix_figure(*args, bmu_counts=hits.astype(float))
    with pytest.raises(ValueError, match="non-negative with at least one row"):
        u_matrix_figure(*args, bmu_counts=-hits)
    with pytest.raises(ValueError, match="segment_names needs marker_labels"):
        u_matrix_figure(*args, bmu_counts=hits, segment_names=["a"])
    with pytest.raises(ValueError, match="rows in segment 1 but segment_names has 1 names"):
        u_matrix_figure(*args, bmu_counts=np.stack([hits, hits], axis=2), segment_names=["a"])
