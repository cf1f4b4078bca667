"""Map geometry: neuron coordinates, minimum-image displacements, and the neighbour structure.

Neuron (i, j) has flat index ``i * y + j`` (row-major order of the (x, y, D) weight tensor).

Coordinates follow MiniSom 2.3.6:

* rectangular: ``r(i, j) = (i, j)``;
* hexagonal: ``r(i, j) = (i - 0.5·[(y - 1 - j) is even], j·√3/2)``, i.e. every other j-row is shifted by −0.5,
  counted from the last row.

Periodic (toroidal) maps measure displacements with the minimum image: along an axis of period L,
``d ← d − L·round(d / L)``. The periods are ``(x, y)`` on rectangular maps and ``(x, y·√3/2)`` on hexagonal maps,
which is why a hexagonal torus needs an even ``y`` (the row shift pattern must repeat across the seam).
"""
from __future__ import annotations

import math

import numpy as np

TOPOLOGIES = ("rectangular", "hexagonal")
# √3/2, written as MiniSom writes it ((3/2)/√3) so coordinates match it bit for bit
HEX_ROW_HEIGHT = 1.5 / math.sqrt(3.0)
# Rectangular topographic adjacency threshold from MiniSom: grid distance > 1.42 is "not adjacent",
# so the 8 surrounding neurons (distance 1 or √2) are neighbours.
RECTANGULAR_ADJACENCY = 1.42


class Grid:
    """Geometry of an ``x × y`` map.

    Attributes:
        xx, yy: float64 arrays (x, y), the euclidean coordinates of every neuron (MiniSom's layout).
        index_displacement_x: float64 (x, x), ``[c, i] = i − c`` (minimum image when periodic).
        index_displacement_y: float64 (y, y), ``[c, j] = j − c`` (minimum image when periodic).
        neighbors: int64 (M, K), the true neighbours of each neuron (8 rectangular, 6 hexagonal), padded with −1.
    """

    def __init__(self, x: int, y: int, topology: str = "rectangular", periodic: bool = False) -> None:
        if topology not in TOPOLOGIES:
            raise ValueError(f"topology={topology!r} is not supported; choose one of {list(TOPOLOGIES)}")
        if periodic and topology == "hexagonal" and y % 2:
            raise ValueError(
                f"a periodic hexagonal map needs an even y so the row shifts repeat across the seam; got y={y}"
            )
        self.x, self.y, self.topology, self.periodic = int(x), int(y), topology, bool(periodic)
        self.n_neurons = self.x * self.y
        yy, xx = np.meshgrid(np.arange(self.y, dtype=float), np.arange(self.x, dtype=float), indexing="ij")
        # meshgrid in MiniSom's (y, x) layout, shifted and scaled there, then transposed to (x, y)
        if topology == "hexagonal":
            xx[::-2] -= 0.5
            yy *= HEX_ROW_HEIGHT
        self.xx: np.ndarray = np.ascontiguousarray(xx.T)
        self.yy: np.ndarray = np.ascontiguousarray(yy.T)
        row_height = HEX_ROW_HEIGHT if topology == "hexagonal" else 1.0
        self.period: tuple[float, float] | None = (float(self.x), self.y * row_height) if periodic else None
        self.index_displacement_x = self._axis_displacement(self.x)
        self.index_displacement_y = self._axis_displacement(self.y)
        self.neighbors = self._true_neighbors()

    def wrap(self, displacement: np.ndarray, axis: int) -> np.ndarray:
        """Minimum-image version of a coordinate displacement along ``axis`` (0 = x, 1 = y); identity if not periodic."""
        if self.period is None:
            return displacement
        period = self.period[axis]
        return displacement - period * np.round(displacement / period)

    def _axis_displacement(self, n: int) -> np.ndarray:
        """(n, n) grid-index displacement ``[c, i] = i − c``, wrapped with period n on periodic maps."""
        idx = np.arange(n, dtype=float)
        d = idx[None, :] - idx[:, None]
        if self.periodic:
            d = d - n * np.round(d / n)
        return d

    def coordinate_displacement(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean displacement ``r(b) − r(a)`` between flat neuron indices (minimum image when periodic)."""
        xf, yf = self.xx.ravel(), self.yy.ravel()
        return self.wrap(xf[b] - xf[a], 0), self.wrap(yf[b] - yf[a], 1)

    def map_distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distance on the map between flat indices: grid-index distance (rectangular), coordinate distance (hexagonal)."""
        a, b = np.asarray(a), np.asarray(b)
        if self.topology == "rectangular":
            di = self.index_displacement_x[a // self.y, b // self.y]
            dj = self.index_displacement_y[a % self.y, b % self.y]
            return np.hypot(di, dj)
        dx, dy = self.coordinate_displacement(a, b)
        return np.hypot(dx, dy)

    def are_adjacent(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether neurons a and b touch: rectangular grid distance ≤ 1.42 (diagonals count), hexagonal distance = 1."""
        distance = self.map_distance(a, b)
        if self.topology == "rectangular":
            return distance <= RECTANGULAR_ADJACENCY
        return np.isclose(distance, 1.0)

    def _true_neighbors(self) -> np.ndarray:
        """(M, K) flat indices of each neuron's true neighbours (8 rectangular, 6 hexagonal), −1 padded, no duplicates."""
        i, j = np.divmod(np.arange(self.n_neurons), self.y)
        offsets = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
        candidates = []
        for di, dj in offsets:
            ni, nj = i + di, j + dj
            if self.periodic:
                ni, nj = ni % self.x, nj % self.y
                valid = np.ones(self.n_neurons, dtype=bool)
            else:
                valid = (ni >= 0) & (ni < self.x) & (nj >= 0) & (nj < self.y)
            flat = np.where(valid, np.clip(ni, 0, self.x - 1) * self.y + np.clip(nj, 0, self.y - 1), -1)
            candidates.append(flat)
        cand = np.stack(candidates, axis=1)  # (M, 8)
        own = np.arange(self.n_neurons)[:, None]
        ok = (cand >= 0) & (cand != own)
        ok &= self.are_adjacent(np.broadcast_to(own, cand.shape), np.where(ok, cand, 0))
        neighbors = np.full((self.n_neurons, 8), -1, dtype=np.int64)
        for k in range(self.n_neurons):
            uniq = list(dict.fromkeys(cand[k][ok[k]].tolist()))
            neighbors[k, : len(uniq)] = uniq
        width = max(1, int((neighbors >= 0).sum(axis=1).max()))
        return neighbors[:, :width]
