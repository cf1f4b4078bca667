"""Grid geometry: periodic minimum-image distances, true neighbours, the hexagonal U-matrix."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from somtorch import SOM
from somtorch.grid import Grid


def flat(i: int, j: int, y: int) -> int:
    return i * y + j


def test_periodic_rectangular_edge_distances_hand_computed():
    g = Grid(5, 4, periodic=True)
    # (0, 0) and (4, 0) are neighbours across the x seam; (0, 0) and (0, 3) across the y seam; (0,0)-(4,3) diagonal
    assert g.map_distance(flat(0, 0, 4), flat(4, 0, 4)) == pytest.approx(1.0)
    assert g.map_distance(flat(0, 0, 4), flat(0, 3, 4)) == pytest.approx(1.0)
    assert g.map_distance(flat(0, 0, 4), flat(4, 3, 4)) == pytest.approx(math.sqrt(2))
    assert g.map_distance(flat(0, 0, 4), flat(2, 2, 4)) == pytest.approx(math.sqrt(8))  # 2 either way in x, 2 in y
    assert Grid(5, 4).map_distance(flat(0, 0, 4), flat(4, 0, 4)) == pytest.approx(4.0)  # not periodic: far apart


def test_periodic_hexagonal_edge_distances_hand_computed():
    g = Grid(4, 4, "hexagonal", periodic=True)
    h = math.sqrt(3) / 2
    # with y = 4 the rows j = 3 and j = 1 are shifted by −0.5 (counted from the last row)
    assert g.xx[0, 3] == -0.5 and g.xx[0, 0] == 0.0
    # (0, 3) sits at (−0.5, 3h); across the y seam (period 4h) it is at (−0.5, −h): distance 1 to (0, 0)
    assert g.map_distance(flat(0, 3, 4), flat(0, 0, 4)) == pytest.approx(1.0)
    # (3, 0) at (3, 0) is one step from (0, 0) across the x seam (period 4)
    assert g.map_distance(flat(3, 0, 4), flat(0, 0, 4)) == pytest.approx(1.0)
    # (3, 3) at (2.5, 3h) is (−1.5, −h) from (0, 0) after wrapping → distance √(2.25 + 0.75) = √3
    assert g.map_distance(flat(3, 3, 4), flat(0, 0, 4)) == pytest.approx(math.sqrt(3))
    assert g.coordinate_displacement(np.array(0), np.array(flat(0, 3, 4)))[1] == pytest.approx(-h)


def test_periodic_hexagonal_needs_even_y():
    with pytest.raises(ValueError, match="even y"):
        Grid(4, 5, "hexagonal", periodic=True)


@pytest.mark.parametrize("periodic", [False, True])
def test_true_neighbour_counts(periodic):
    rect = Grid(5, 6, periodic=periodic)
    hexa = Grid(5, 6, "hexagonal", periodic=periodic)
    rect_counts = (rect.neighbors >= 0).sum(1).reshape(5, 6)
    hex_counts = (hexa.neighbors >= 0).sum(1).reshape(5, 6)
    if periodic:
        assert (rect_counts == 8).all() and (hex_counts == 6).all()
    else:
        assert rect_counts[2, 2] == 8 and rect_counts[0, 0] == 3 and rect_counts[0, 2] == 5
        assert (hex_counts[1:-1, 1:-1] == 6).all()
    for k, row in enumerate(hexa.neighbors):  # every listed neighbour is at coordinate distance exactly 1
        members = row[row >= 0]
        np.testing.assert_allclose(hexa.map_distance(np.full(len(members), k), members), 1.0)


@pytest.mark.parametrize("y", [6, 7])
def test_hexagonal_u_matrix_uniform_for_coordinate_weights(y):
    """With weights equal to the hexagonal coordinates every neuron is 1 away from each true neighbour, so every
    interior value of the U-matrix (6 neighbours each) is the same, for even and odd y."""
    som = SOM(7, y, 2, topology="hexagonal", device="cpu", dtype=torch.float64)
    xx, yy = som.get_euclidean_coordinates()
    som.set_weights(np.stack([xx, yy], axis=-1))
    um = som.distance_map(scaling="sum")
    np.testing.assert_allclose(um[1:-1, 1:-1], 1.0)
    np.testing.assert_allclose(som.distance_map(scaling="mean"), 1.0)


def test_rectangular_u_matrix_hand_computed():
    """3 × 3 map, 1-D weights [[1,0,1],[0,1,0],[1,0,1]]: mean distances 2/3, 3/5, 4/8 (8-neighbourhood), ÷ max."""
    som = SOM(3, 3, 1, device="cpu", dtype=torch.float64)
    som.set_weights(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=float)[..., None])
    expected = np.array([[2 / 3, 3 / 5, 2 / 3], [3 / 5, 4 / 8, 3 / 5], [2 / 3, 3 / 5, 2 / 3]])
    np.testing.assert_allclose(som.distance_map(scaling="mean"), expected / expected.max())
    expected_sum = np.array([[2, 3, 2], [3, 4, 3], [2, 3, 2]], dtype=float)
    np.testing.assert_allclose(som.distance_map(), expected_sum / 4)


def test_periodic_topographic_error_counts_seam_neighbours():
    """Best and second-best units on opposite edges are adjacent on a torus but not on a flat map."""
    weights = np.full((4, 4, 1), 100.0)
    weights[0, 0], weights[3, 0] = 0.0, 0.5
    data = np.array([[0.1]])
    for periodic, expected in ((True, 0.0), (False, 1.0)):
        som = SOM(4, 4, 1, periodic=periodic, device="cpu", dtype=torch.float64)
        som.set_weights(weights)
        assert som.topographic_error(data) == expected
