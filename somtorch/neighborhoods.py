"""Neighbourhood functions h(c, k; s) of the winner c at radius s, written once for NumPy arrays and torch tensors.

With r the euclidean coordinates and (i, j) the grid indices (minimum image on periodic maps):

* ``gaussian``:     exp(−(r_x − r_cx)²/(2s²)) · exp(−(r_y − r_cy)²/(2s²))  = exp(−‖r − r_c‖²/(2s²))
* ``mexican_hat``:  (1 − ‖r − r_c‖²/s²) · exp(−‖r − r_c‖²/(2s²))
* ``bubble``:       [|i − c_i| < s] · [|j − c_j| < s]
* ``triangle``:     (s − |i − c_i|)₊ · (s − |j − c_j|)₊   (unnormalised, as in MiniSom)

gaussian, bubble and triangle are products of one factor per axis. bubble and triangle use grid indices, so they
factor on any map; gaussian uses coordinates, so it factors only on rectangular maps (where coordinates are grid
indices). A factorable neighbourhood is applied as h_x ⊗ h_y and never needs an M × M matrix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from . import threads

Array = Any  # np.ndarray or torch.Tensor: the formulas below use only operators shared by both


def _to_float(condition: Array, like: Array) -> Array:
    """Boolean mask as 0/1 in the dtype of ``like`` (a float32 mask would round η·h in float64 runs)."""
    if isinstance(condition, torch.Tensor):
        return condition.to(like.dtype)
    return condition.astype(like.dtype)


def _exp(values: Array) -> Array:
    return values.exp() if isinstance(values, torch.Tensor) else np.exp(values)


def _square(displacement: Array) -> Array:
    return displacement * displacement


def _square_negated(displacement: Array) -> Array:
    return -(displacement * displacement)


def _absolute(displacement: Array) -> Array:
    return abs(displacement)


def _absolute_negated(displacement: Array) -> Array:
    return -abs(displacement)


def _gaussian_from_negated_square(neg_sq: Array, sigma: Array) -> Array:
    """exp(−d²/(2s²)) given −d²."""
    d = 2 * sigma * sigma
    return _exp(neg_sq / d)


def _bubble_from_abs(abs_d: Array, sigma: Array) -> Array:
    """[|d| < s] given |d|."""
    return _to_float(abs_d < sigma, abs_d)


def _triangle_from_negated_abs(neg_abs: Array, sigma: Array) -> Array:
    """(s − |d|)₊ given −|d|."""
    return (neg_abs + sigma).clip(min=0)


def _mexican_hat_from_square(p: Array, sigma: Array) -> Array:
    """(1 − p/s²)·exp(−p/(2s²)) given p = ‖r − r_c‖²."""
    d = 2 * sigma * sigma
    return _exp(-p / d) * (1 - 2 / d * p)


@dataclass(frozen=True)
class Neighborhood:
    """A named neighbourhood h, split into a σ-free ``prepare`` of the displacement and a σ-dependent ``shape``.

    Factorable neighbourhoods have h = shape(prepare(dx), s)·shape(prepare(dy), s). The radial one (mexican hat) has
    h = shape(prepare(dx) + prepare(dy), s). Training loops prepare their displacement tables once and pay only
    ``shape`` per step; the arithmetic stays MiniSom's, operation for operation.
    """

    name: str
    uses_grid_index: bool  # displacement in grid indices (bubble, triangle) instead of coordinates
    factorable: bool
    prepare: Callable[[Array], Array]
    shape: Callable[[Array, Array], Array]

    def is_separable(self, topology: str) -> bool:
        """Whether h = h_x ⊗ h_y exactly on this topology (a gaussian on a hexagonal map is not)."""
        return self.factorable and (self.uses_grid_index or topology == "rectangular")

    def factor(self, displacement: Array, sigma: Array) -> Array:
        """The per-axis factor of a factorable neighbourhood."""
        return self.shape(self.prepare(displacement), sigma)

    def dense(self, dx: Array, dy: Array, sigma: Array) -> Array:
        """h for displacements of any matching shape (grid-index or coordinate displacements, see ``uses_grid_index``)."""
        if self.factorable:
            return self.factor(dx, sigma) * self.factor(dy, sigma)
        return self.shape(self.prepare(dx) + self.prepare(dy), sigma)


NEIGHBORHOODS: dict[str, Neighborhood] = {
    "gaussian": Neighborhood("gaussian", False, True, _square_negated, _gaussian_from_negated_square),
    "mexican_hat": Neighborhood("mexican_hat", False, False, _square, _mexican_hat_from_square),
    "bubble": Neighborhood("bubble", True, True, _absolute, _bubble_from_abs),
    "triangle": Neighborhood("triangle", True, True, _absolute_negated, _triangle_from_negated_abs),
}


def resolve_neighborhood(name: str) -> Neighborhood:
    """Look up a neighbourhood by name; unknown names raise ValueError listing the valid ones."""
    if name not in NEIGHBORHOODS:
        raise ValueError(f"neighborhood_function={name!r} is not supported; choose one of {sorted(NEIGHBORHOODS)}")
    return NEIGHBORHOODS[name]


def _round(values: Array) -> Array:
    return values.round() if isinstance(values, torch.Tensor) else np.round(values)


@dataclass(frozen=True)
class GridTables:
    """Grid lookup tables as NumPy arrays or as tensors on one device (see :meth:`from_grid`).

    ``index_displacement_x/y``: (x, x) / (y, y) wrapped grid-index displacements ``[c, i] = i − c``;
    ``coord_x/coord_y``: (M,) euclidean coordinates; ``index_i/index_j``: (M,) grid indices;
    ``period``: (Lx, Ly) on periodic maps, else None.
    """

    x: int
    y: int
    period: Optional[tuple[float, float]]
    index_displacement_x: Array
    index_displacement_y: Array
    coord_x: Array
    coord_y: Array
    index_i: Array
    index_j: Array

    @classmethod
    def from_grid(cls, grid: Any, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> "GridTables":
        """Tables of ``grid`` as float64 NumPy arrays (device None) or as ``dtype`` tensors on ``device``."""
        ii, jj = np.divmod(np.arange(grid.n_neurons), grid.y)
        arrays = dict(
            index_displacement_x=grid.index_displacement_x, index_displacement_y=grid.index_displacement_y,
            coord_x=grid.xx.ravel().copy(), coord_y=grid.yy.ravel().copy(),
        )
        if device is not None:
            arrays = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in arrays.items()}
            ii = torch.as_tensor(ii, device=device)
            jj = torch.as_tensor(jj, device=device)
        return cls(grid.x, grid.y, grid.period, index_i=ii, index_j=jj, **arrays)

    def axis_displacements(self, winners: Array) -> tuple[Array, Array]:
        """Grid-index displacements of every row/column from the winners: shapes winners.shape + (x,) and + (y,)."""
        return self.index_displacement_x[winners // self.y], self.index_displacement_y[winners % self.y]

    def displacement_to_all(self, winners: Array, uses_grid_index: bool) -> tuple[Array, Array]:
        """Displacement of every neuron from each winner: two arrays of shape winners.shape + (M,)."""
        if uses_grid_index:
            dx, dy = self.axis_displacements(winners)
            return dx[..., self.index_i], dy[..., self.index_j]
        dx = self.coord_x - self.coord_x[winners][..., None]
        dy = self.coord_y - self.coord_y[winners][..., None]
        if self.period is not None:
            dx = dx - self.period[0] * _round(dx / self.period[0])
            dy = dy - self.period[1] * _round(dy / self.period[1])
        return dx, dy


class MapNeighborhood:
    """A neighbourhood bound to a grid's tables: h for winners, and its application to per-neuron sums."""

    def __init__(self, neighborhood: Neighborhood, tables: GridTables, topology: str) -> None:
        self.neighborhood = neighborhood
        self.tables = tables
        self.separable = neighborhood.is_separable(topology)
        self._prepared_x = neighborhood.prepare(tables.index_displacement_x)  # [x, x]
        self._prepared_y = neighborhood.prepare(tables.index_displacement_y)  # [y, y]

    def axis_factors(self, winners: Array, sigma: Array) -> tuple[Array, Array]:
        """Separable case: h_x (winners.shape + (x,)) and h_y (+ (y,)) with h = h_x ⊗ h_y."""
        shape, y = self.neighborhood.shape, self.tables.y
        return shape(self._prepared_x[winners // y], sigma), shape(self._prepared_y[winners % y], sigma)

    def dense(self, winners: Array, sigma: Array) -> Array:
        """h(c, k; s) for each winner c and every neuron k: winners.shape + (M,)."""
        dx, dy = self.tables.displacement_to_all(winners, self.neighborhood.uses_grid_index)
        return self.neighborhood.dense(dx, dy, sigma)

    def smooth(self, sums: torch.Tensor, counts: torch.Tensor, sigma: float, block_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Σ_c h(c, k; s)·sums_c and Σ_c h(c, k; s)·counts_c for every neuron k.

        sums: (M, D) per-BMU sums of samples, counts: (M,) per-BMU hit counts. Returns (M, D) and (M,).
        Separable neighbourhoods use two small axis products (h is symmetric, h(c, k) = h(k, c)), so no M × M
        matrix exists; the others evaluate h in blocks of ``block_rows`` target neurons.
        """
        t = self.tables
        if self.separable:
            hx = self.neighborhood.factor(t.index_displacement_x, sigma)  # [x, x]
            hy = self.neighborhood.factor(t.index_displacement_y, sigma)  # [y, y]
            both = torch.cat([sums, counts[:, None]], dim=1).reshape(t.x, t.y, -1)  # [x, y, D+1]
            smoothed = torch.einsum("ka,abf->kbf", hx, both)
            smoothed = torch.einsum("lb,kbf->klf", hy, smoothed).reshape(t.x * t.y, -1)
            return smoothed[:, :-1], smoothed[:, -1]
        m = sums.shape[0]
        both = torch.cat([sums, counts[:, None]], dim=1)  # [M, D+1]
        out = torch.empty_like(both)
        all_neurons = torch.arange(m, device=sums.device)
        workers = threads.workers_for(m * m * both.shape[1], sums.device)
        if workers > 1:
            block_rows = min(block_rows, -(-m // workers))

        def smooth_block(start: int, _: None) -> torch.Tensor:
            return self.dense(all_neurons[start : start + block_rows], sigma) @ both  # [b, M] @ [M, D+1]

        with threads.single_threaded_on_cpu(sums.device):  # blocks on CPU workers (see somtorch.threads)
            starts = range(0, m, block_rows)
            for start, block in zip(starts, threads.ordered_map(smooth_block, starts, workers, lambda: None)):
                out[start : start + block.shape[0]] = block
        return out[:, :-1], out[:, -1]
