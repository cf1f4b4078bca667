"""Plots: valid PNGs written atomically, cell geometry against matplotlib's own shapes, colours as promised."""
from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.patches import Rectangle, RegularPolygon
from minisom import MiniSom
from scipy.cluster.hierarchy import dendrogram, fcluster, linkage

from pipeline.clustering import cluster_neurons
from pipeline.plots import (
    _link_colouring,
    cell_polygons,
    cluster_palette,
    plot_cluster_map,
    plot_component_planes,
    plot_dendrogram,
    plot_truncated_dendrogram,
    plot_u_matrix,
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
        neuron_labels=small_map.clusters.labels, dpi=DPI,
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


def test_link_colours_follow_neuron_clusters() -> None:
    weights = np.random.default_rng(4).normal(size=(5, 4, 2))
    tree = linkage(weights.reshape(20, 2), "average")
    reference_labels = fcluster(tree, 4, criterion="maxclust") - 1
    palette = cluster_palette(4)
    links = dendrogram(tree, no_plot=True, **_link_colouring(tree, None, reference_labels))
    leaf_cluster_by_x = {5.0 + 10.0 * position: reference_labels[leaf] for position, leaf in enumerate(links["leaves"])}
    for link_x, colour in zip(links["icoord"], links["color_list"]):
        spanned = {cluster for x, cluster in leaf_cluster_by_x.items() if link_x[0] <= x <= link_x[3]}
        expected = palette[spanned.pop()] if len(spanned) == 1 else "#4d4d4d"
        assert colour == expected


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
    "neuron labels of another size": (
        lambda m, p: plot_dendrogram(m.clusters.linkage, p, neuron_labels=np.zeros(3, dtype=int)),
        ValueError, r"one integer cluster per neuron \(35\)",
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
