"""A drop-in for MiniSom 2.3.6: change ``from minisom import MiniSom`` to ``from somtorch.compat import MiniSom``.

:class:`MiniSom` keeps MiniSom's constructor, defaults, methods, return types, warnings, exception types and the
private attributes its users touch (``_weights``, ``_activation_map``, ``_xx``, ``_random_generator``, ...). For the
same seed and data it returns MiniSom's numbers, quirks included:

* ``chebyshev`` is max(x − w), without the abs;
* the hexagonal U-matrix uses MiniSom's fixed neighbour offsets by column parity (wrong for even y);
* ``train_batch`` is sequential online training; ``train_batch_offline`` blends the batch-map result with η:
  W_k ← (1 − η)·W_k + η·Σ_n h(c_n, k)·x_n / Σ_n h(c_n, k) where the denominator is > 0;
* ``distortion_measure`` = Σ_i Σ_k h(c_i, k; σ)·‖x_i − w_k‖ (not squared, whatever MiniSom's docstring says);
* ``quantization``/``quantization_error``/``topographic_error`` always use the euclidean distance.

On the CPU in float64 the numbers are MiniSom's to the last bit, because each method uses MiniSom's formula in
MiniSom's order where the result depends on it (:mod:`somtorch._minisom_search`): ``winner`` and the queries built
on it (``win_map``, ``activation_response``, ``labels_map``, ``distortion_measure``) decide near-ties with
``winner``'s ‖x − w‖; ``quantization``, ``quantization_error`` and ``topographic_error`` use MiniSom's expanded
distance over one product of all rows; ``distance_map`` uses ``fast_norm``; ``train_batch_offline`` adds the
samples in order. Two bounds remain, both on large inputs where MiniSom's own temporaries reach gigabytes:

* ``quantization``/``quantization_error``/``topographic_error`` beyond 2²⁴ sample-unit pairs (N·M) take the exact
  distance, ties to the lowest index; they differ from MiniSom only for samples whose two best units are within the
  rounding of MiniSom's expanded formula (:func:`somtorch.bmu.near_tie_tolerance`);
* ``train_batch_offline`` beyond 2²⁴ terms (N·M·D) sums per winner first: the weights agree to summation rounding
  (4.4e-13 at N = 10⁴, 2.8e-11 at N = 10⁶ max abs, ``benchmarks/results/compat_cpu.md``).

What changes is speed: the batched queries and ``train_batch_offline`` run vectorised over samples, in
memory-bounded chunks past those sizes (:mod:`somtorch.bmu`), small calls use neither thread pools nor progress
bars, and online training runs the core's fast kernels (:mod:`somtorch.online`). Keyword-only extras ``device=`` and
``dtype=`` select the CPU (default, float64, exact parity) or CUDA (float32 allowed: equal up to float32 rounding,
same BMU rule). On the CPU ``_weights`` is the live NumPy array; assigning it stores a copy. On CUDA it returns a
host copy and must be assigned wholesale to change the map.
"""
from __future__ import annotations

import logging
import math
import warnings
from collections import Counter, defaultdict
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from . import _minisom_search as minisom_search
from . import bmu as bmu_search
from . import decay
from ._inputs import DeviceSpec, resolve_device, resolve_dtype
from .distances import COSINE_EPS, ActivationDistance
from .grid import HEX_ROW_HEIGHT, RECTANGULAR_ADJACENCY, TOPOLOGIES, Grid
from .initialization import pca_plane
from .neighborhoods import GridTables, MapNeighborhood, resolve_neighborhood
from .online import train_online_numpy, train_online_torch

logger = logging.getLogger(__name__)

MiniSomDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]  # f(x (D,), w (x, y, D)) -> (x, y)

# MiniSom's U-matrix neighbour offsets (di, dj), by whether the neuron's column j is even.
_RECTANGULAR_OFFSETS = ((0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1))
_HEXAGONAL_OFFSETS = {
    True: ((0, 1), (1, 0), (0, -1), (-1, -1), (-1, 0), (-1, 1)),
    False: ((1, 1), (1, 0), (1, -1), (0, -1), (-1, 0), (0, 1)),
}
_UMATRIX_SLOTS = 8
_LEARNING_RATE_DECAY_NAMES = ("inverse_decay_to_zero", "linear_decay_to_zero", "asymptotic_decay")
_SIGMA_DECAY_NAMES = ("inverse_decay_to_one", "linear_decay_to_one", "asymptotic_decay")
_NEIGHBORHOOD_NAMES = ("gaussian", "mexican_hat", "bubble", "triangle")
_DISTANCE_NAMES = ("euclidean", "cosine", "manhattan", "chebyshev")
# Rows per block of the vectorised MiniSom formulas that hold a (rows, M, D) difference array (32 MiB in float64).
_BLOCK_ELEMENTS = 1 << 22
# Up to this many N·M·D terms train_batch_offline adds the samples' contributions one after the other, as MiniSom
# does (so its weights are MiniSom's to the bit); beyond, it sums per winner first (N·D + M²·D work instead of
# N·M·D), which agrees to summation rounding (see the module docstring).
_SEQUENTIAL_BATCH_TERMS = 1 << 24


def fast_norm(x: np.ndarray) -> Any:
    """‖x‖₂ of a 1-D array, as sqrt(x·xᵀ)."""
    return np.sqrt(np.dot(x, np.transpose(x)))


def _build_iteration_indexes(data_len: int, num_iterations: int, verbose: bool = False,
                             random_generator: Optional[np.random.RandomState] = None,
                             use_epochs: bool = False) -> Union[np.ndarray, Iterator[int]]:
    """Sample index of every training step, drawn from ``random_generator`` exactly as MiniSom draws them.

    use_epochs: one permutation of range(data_len) (shuffled once if a generator is given), repeated
    ``num_iterations`` times: (data_len·num_iterations,). Otherwise ``arange(num_iterations) % data_len``, shuffled
    if a generator is given: (num_iterations,). With ``verbose`` the indexes come through a progress bar.
    """
    if use_epochs:
        one_epoch = np.arange(data_len)
        if random_generator is not None:
            random_generator.shuffle(one_epoch)
        indexes = np.tile(one_epoch, num_iterations)
    else:
        indexes = np.arange(num_iterations) % data_len
        if random_generator is not None:
            random_generator.shuffle(indexes)
    if verbose:
        return iter(tqdm(indexes, desc="train", unit="step", disable=None))
    return indexes


class _FacadeDistance:
    """MiniSom's activation distance behind the interface the core kernels use (``is_euclidean``, ``scores``,
    ``single_numpy``).

    euclidean, cosine and manhattan are the core's (same formulas as MiniSom); chebyshev is MiniSom's signed
    max(x − w); a callable has MiniSom's signature f(x (D,), w (x, y, D)) → (x, y) and is called once per sample.
    """

    def __init__(self, name: Optional[str], function: Optional[MiniSomDistance], map_shape: tuple[int, int]) -> None:
        self.name, self.function, self.map_shape = name, function, map_shape
        self._core = ActivationDistance(name) if name in ("euclidean", "cosine", "manhattan") else None

    @property
    def is_euclidean(self) -> bool:
        return self.name == "euclidean"

    def scores(self, X: torch.Tensor, W: torch.Tensor, w_sq: Optional[torch.Tensor]) -> torch.Tensor:
        """(B, M) values whose row-wise argmin is the BMU, for X (B, D) and W (M, D)."""
        if self._core is not None:
            return self._core.scores(X, W, w_sq)
        if self.name == "chebyshev":
            return _signed_chebyshev(X, W)
        weights = W.detach().cpu().numpy().reshape(*self.map_shape, -1)
        rows = [np.asarray(self.function(x, weights), dtype=np.float64).reshape(-1) for x in X.detach().cpu().numpy()]
        return torch.as_tensor(np.stack(rows), dtype=W.dtype, device=W.device)

    def exact_pairs(self, X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """Σ (x − w)² for matching rows of X and W (P, D) → (P,): the euclidean near-tie re-check (CUDA path)."""
        return self._core.exact_pairs(X, W)

    def minisom_values(self, samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """MiniSom's activation distance of every sample (B, D) to every unit of ``weights`` (x, y, D): (B, x·y).

        The element operations and reductions are those of MiniSom's per-sample function, so the values are
        MiniSom's to the bit (for a callable, it is called once per sample)."""
        if self.function is not None:
            return np.stack([np.asarray(self.function(x, weights), dtype=np.float64).reshape(-1) for x in samples])
        x = samples[:, None, None, :]  # [B, 1, 1, D]
        if self.name == "euclidean":
            values = np.linalg.norm(np.subtract(x, weights), axis=-1)
        elif self.name == "manhattan":
            values = np.linalg.norm(np.subtract(x, weights), ord=1, axis=-1)
        elif self.name == "chebyshev":
            values = np.max(np.subtract(x, weights), axis=-1)
        else:
            sample_norms = np.array([np.linalg.norm(row) for row in samples])[:, None, None]  # 1-D norms use dot
            denominator = np.multiply(np.linalg.norm(weights, axis=2)[None], sample_norms)
            values = 1 - (weights[None] * x).sum(axis=3) / (denominator + COSINE_EPS)
        return values.reshape(len(samples), -1)

    def single_numpy(self, x: np.ndarray, W: np.ndarray) -> np.ndarray:
        """Distance of one sample x (D,) to every neuron of W (M, D): (M,)."""
        if self._core is not None:
            return self._core.single_numpy(x, W)
        if self.name == "chebyshev":
            return np.max(x - W, axis=-1)
        return np.asarray(self.function(x, W.reshape(*self.map_shape, -1))).reshape(-1)


def _signed_chebyshev(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """max_d (x_d − w_d) for X (B, D) and W (M, D) → (B, M), one feature at a time (no (B, M, D) temporary)."""
    out = X[:, :1] - W[:, 0][None, :]
    for d in range(1, X.shape[1]):
        torch.maximum(out, X[:, d : d + 1] - W[:, d][None, :], out=out)
    return out


class MiniSom:
    """MiniSom 2.3.6's Self-Organizing Map, computed with somtorch. Arguments and defaults are MiniSom's.

    Args:
        x, y: map size; neuron (i, j) has flat index i·y + j.
        input_len: D, the number of features.
        sigma, learning_rate: initial σ and η.
        decay_function: η schedule ``inverse_decay_to_zero`` | ``linear_decay_to_zero`` | ``asymptotic_decay`` or a
            callable f(η, t, T).
        neighborhood_function: ``gaussian`` | ``mexican_hat`` | ``bubble`` | ``triangle``.
        topology: ``rectangular`` | ``hexagonal``.
        activation_distance: ``euclidean`` | ``cosine`` | ``manhattan`` | ``chebyshev`` or a callable
            f(x (D,), w (x, y, D)) → (x, y).
        random_seed: seed of the ``numpy.random.RandomState`` behind the initial weights and the sample order.
        sigma_decay_function: σ schedule ``inverse_decay_to_one`` | ``linear_decay_to_one`` | ``asymptotic_decay``.
        device: keyword-only, ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        dtype: keyword-only, torch.float64 (default; exact parity) or torch.float32.
    """

    Y_HEX_CONV_FACTOR = HEX_ROW_HEIGHT

    def __init__(self, x: int, y: int, input_len: int, sigma: float = 1, learning_rate: float = 0.5,
                 decay_function: Union[str, decay.DecayFunction] = "asymptotic_decay",
                 neighborhood_function: str = "gaussian", topology: str = "rectangular",
                 activation_distance: Union[str, MiniSomDistance] = "euclidean", random_seed: Optional[int] = None,
                 sigma_decay_function: str = "asymptotic_decay", *, device: DeviceSpec = "cpu",
                 dtype: Union[str, torch.dtype] = torch.float64) -> None:
        for name, value in (("x", x), ("y", y), ("input_len", input_len)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if sigma > math.sqrt(x * x + y * y):
            warnings.warn("Warning: sigma might be too high for the dimension of the map.", stacklevel=2)
        self._device, self._dtype = resolve_device(device), resolve_dtype(dtype)
        self._random_generator = np.random.RandomState(random_seed)
        self._learning_rate, self._sigma, self._input_len = learning_rate, sigma, input_len
        initial = self._random_generator.rand(x, y, input_len) * 2 - 1
        initial /= np.linalg.norm(initial, axis=-1, keepdims=True)
        self._activation_map = np.zeros((x, y))
        self._neigx, self._neigy = np.arange(x), np.arange(y)
        if topology not in TOPOLOGIES:
            raise ValueError(f"{topology} not supported only hexagonal and rectangular available")
        self.topology = topology
        self._grid = Grid(int(x), int(y), topology)
        # MiniSom keeps its coordinate meshgrids in (y, x) layout
        self._xx, self._yy = np.ascontiguousarray(self._grid.xx.T), np.ascontiguousarray(self._grid.yy.T)
        if topology == "hexagonal" and neighborhood_function == "triangle":
            warnings.warn("triangle neighborhood function does not take in account hexagonal topology", stacklevel=2)
        self._learning_rate_decay_function = self._pick_method(decay_function, _LEARNING_RATE_DECAY_NAMES, "decay_function")
        self._sigma_decay_function = self._pick_method(sigma_decay_function, _SIGMA_DECAY_NAMES, "sigma_decay_function",
                                                       allow_callable=False)
        self.neighborhood = self._pick_method(neighborhood_function, _NEIGHBORHOOD_NAMES, "neighborhood_function",
                                              allow_callable=False)
        if neighborhood_function in ("triangle", "bubble") and (divmod(sigma, 1)[1] != 0 or sigma < 1):
            # MiniSom's text, missing space included, so warning filters written for MiniSom keep matching
            warnings.warn("sigma should be an integer >=1 when triangle or bubbleare used as neighborhood function", stacklevel=2)
        self._activation_distance = self._pick_method(activation_distance, _DISTANCE_NAMES, "activation_distance",
                                                      suffix="_distance")
        self._neighborhood_cache: dict[tuple[str, bool], MapNeighborhood] = {}
        self._weights = initial.astype(_numpy_dtype(self._dtype), copy=False)

    def _pick_method(self, spec: Any, names: Sequence[str], argument: str, allow_callable: bool = True,
                     suffix: str = "") -> Callable:
        """The bound method ``_<name><suffix>`` for a name in ``names``, or ``spec`` itself when callables are allowed."""
        if isinstance(spec, str) and spec in names:
            return getattr(self, f"_{spec}{suffix}")
        if allow_callable and callable(spec) and not isinstance(spec, str):
            return spec
        raise ValueError(f"{spec!r} not supported for {argument}. Available: {', '.join(names)}"
                         + (" or a callable" if allow_callable else ""))

    # ------------------------------------------------------------------ weights and state
    @property
    def _weights(self) -> np.ndarray:
        """The weights (x, y, D). CPU: the live array (item assignment changes the map). CUDA: a host copy."""
        store = self._weight_store
        return store.detach().cpu().numpy() if isinstance(store, torch.Tensor) else store

    @_weights.setter
    def _weights(self, values: Any) -> None:
        """Assignment copies ``values``: training never writes into the caller's array."""
        if self._device.type == "cpu":
            self._weight_store = np.array(values)
        else:
            self._weight_store = torch.as_tensor(np.asarray(values), dtype=self._dtype, device=self._device).contiguous()

    @property
    def _decay_function(self) -> Callable:
        """Older MiniSom name of ``_learning_rate_decay_function``."""
        return self._learning_rate_decay_function

    @_decay_function.setter
    def _decay_function(self, function: Callable) -> None:
        self._learning_rate_decay_function = function

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def _n_neurons(self) -> int:
        return self._grid.n_neurons

    def _checked_store(self) -> Union[np.ndarray, torch.Tensor]:
        store = self._weight_store
        if tuple(store.shape[:2]) != (self._grid.x, self._grid.y):
            raise ValueError(f"_weights has shape {tuple(store.shape)}; this map needs ({self._grid.x}, {self._grid.y}, D)")
        return store

    def _weight_matrix(self) -> torch.Tensor:
        """The weights as an (M, D) tensor in the compute dtype on the device (zero-copy on the CPU when possible)."""
        store = self._checked_store()
        if isinstance(store, torch.Tensor):
            return store.reshape(self._n_neurons, -1)
        return torch.from_numpy(np.ascontiguousarray(store, dtype=_numpy_dtype(self._dtype))).reshape(self._n_neurons, -1)

    def _weight_array(self) -> np.ndarray:
        """CPU: the weights as a C-contiguous (M, D) array in the compute dtype (no copy when the store is one)."""
        store = self._checked_store()
        return np.ascontiguousarray(store, dtype=_numpy_dtype(self._dtype)).reshape(self._n_neurons, -1)

    def _live_weights(self) -> Union[np.ndarray, torch.Tensor]:
        """The (x, y, D) store ready for in-place updates: replaced once by a contiguous compute-dtype copy if needed."""
        store = self._checked_store()
        dims = (self._grid.x, self._grid.y, -1)
        if isinstance(store, torch.Tensor):
            if store.ndim != 3 or not store.is_contiguous():
                self._weight_store = store.reshape(dims).contiguous()
        elif (store.ndim != 3 or store.dtype != _numpy_dtype(self._dtype) or not store.flags.c_contiguous
              or not store.flags.writeable):
            self._weight_store = np.array(store, dtype=_numpy_dtype(self._dtype), order="C").reshape(dims)
        return self._weight_store

    def _live_matrix(self) -> torch.Tensor:
        """(M, D) tensor view of :meth:`_live_weights` (writes change the map)."""
        store = self._live_weights()
        tensor = store if isinstance(store, torch.Tensor) else torch.from_numpy(store)
        return tensor.view(self._n_neurons, -1)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_neighborhood_cache"] = {}
        if isinstance(self._weight_store, torch.Tensor):
            state["_weight_store"] = self._weight_store.cpu()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if isinstance(self._weight_store, torch.Tensor):
            self._weight_store = self._weight_store.to(self._device)

    def _map_neighborhood(self, name: str, on_device: bool) -> MapNeighborhood:
        """The core neighbourhood ``name`` on NumPy tables (online CPU kernel) or on device tensors."""
        key = (name, on_device)
        if key not in self._neighborhood_cache:
            tables = (GridTables.from_grid(self._grid, self._device, self._dtype) if on_device
                      else GridTables.from_grid(self._grid))
            self._neighborhood_cache[key] = MapNeighborhood(resolve_neighborhood(name), tables, self.topology)
        return self._neighborhood_cache[key]

    def _neighborhood_name(self) -> Optional[str]:
        """Name of ``self.neighborhood`` if it is one of this map's own named functions, else None (custom)."""
        if getattr(self.neighborhood, "__self__", None) is not self:
            return None
        return _NEIGHBORHOOD_METHODS.get(getattr(self.neighborhood, "__func__", None))

    def _facade_distance(self) -> _FacadeDistance:
        """``self._activation_distance`` for the batched and online kernels."""
        function = self._activation_distance
        name = None
        if getattr(function, "__self__", None) is self:
            name = _DISTANCE_METHODS.get(getattr(function, "__func__", None))
        return _FacadeDistance(name, None if name else function, (self._grid.x, self._grid.y))

    def _as_samples(self, data: Any) -> np.ndarray:
        """``data`` as a C-contiguous (N, input_len) array in the compute dtype (after MiniSom's width check)."""
        self._check_input_len(data)
        samples = np.ascontiguousarray(np.asarray(data, dtype=_numpy_dtype(self._dtype)))
        if samples.ndim != 2 or samples.shape[1] != self._input_len:
            raise ValueError(f"data must be a matrix (n_samples, {self._input_len}); got shape {samples.shape}")
        return samples

    def _on_device(self, samples: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(samples, device=self._device)

    def _keep_last_activation(self, last_sample: np.ndarray) -> None:
        """MiniSom leaves the activation of the last sample it visited in ``_activation_map``; so does the facade."""
        self._activate(last_sample)

    # ------------------------------------------------------------------ MiniSom's single-sample API
    def get_weights(self) -> np.ndarray:
        """The weights (x, y, D): the live array on the CPU, a host copy on CUDA."""
        return self._weights

    def get_euclidean_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates (xx, yy) of every neuron, each (x, y): hexagonal rows are shifted and scaled by √3/2."""
        return self._xx.T, self._yy.T

    def convert_map_to_euclidean(self, xy: Any) -> tuple[Any, Any]:
        """Euclidean coordinates of map position(s) ``xy`` = (i, j)."""
        return self._xx.T[xy], self._yy.T[xy]

    def _activate(self, x: Any) -> None:
        self._activation_map = self._activation_distance(x, self._weights)

    def activate(self, x: Any) -> np.ndarray:
        """Activation distance of sample x to every neuron, (x, y); also stored in ``_activation_map``."""
        self._activate(x)
        return self._activation_map

    def winner(self, x: Any) -> tuple[Any, ...]:
        """(i, j) of the neuron with the smallest activation distance to x (``numpy.unravel_index`` of the argmin)."""
        self._activate(x)
        return np.unravel_index(self._activation_map.argmin(), self._activation_map.shape)

    def update(self, x: Any, win: tuple[int, int], t: int, max_iteration: int) -> None:
        """W ← W + η·h(win, ·; s)·(x − W), η = lr_decay(learning_rate, t, T), s = sigma_decay(sigma, t, T), T = max_iteration."""
        eta = self._learning_rate_decay_function(self._learning_rate, t, max_iteration)
        sig = self._sigma_decay_function(self._sigma, t, max_iteration)
        g = self.neighborhood(win, sig) * eta  # [x, y]
        store = self._live_weights()
        if isinstance(store, torch.Tensor):
            g_t = torch.as_tensor(g, dtype=self._dtype, device=self._device)
            store += g_t[..., None] * (torch.as_tensor(np.asarray(x), dtype=self._dtype, device=self._device) - store)
        else:
            store += g[..., None] * (x - store)

    # decay schedules f(p, t, T)
    def _inverse_decay_to_zero(self, learning_rate: float, t: Any, max_iter: float) -> Any:
        """η·C/(C + t), C = T/100."""
        return decay.inverse_decay_to_zero(learning_rate, t, max_iter)

    def _linear_decay_to_zero(self, learning_rate: float, t: Any, max_iter: float) -> Any:
        """η·(1 − t/T)."""
        return decay.linear_decay_to_zero(learning_rate, t, max_iter)

    def _inverse_decay_to_one(self, sigma: float, t: Any, max_iter: float) -> Any:
        """σ/(1 + t·(σ − 1)/T)."""
        return decay.inverse_decay_to_one(sigma, t, max_iter)

    def _linear_decay_to_one(self, sigma: float, t: Any, max_iter: float) -> Any:
        """σ + t·(1 − σ)/T."""
        return decay.linear_decay_to_one(sigma, t, max_iter)

    def _asymptotic_decay(self, dynamic_parameter: float, t: Any, max_iter: float) -> Any:
        """p/(1 + t/(T/2))."""
        return decay.asymptotic_decay(dynamic_parameter, t, max_iter)

    # neighbourhoods h(c, ·; σ) over the map, (x, y)
    def _neighborhood_at(self, name: str, c: Sequence[int], sigma: float) -> np.ndarray:
        flat = int(c[0]) * self._grid.y + int(c[1])
        return self._map_neighborhood(name, on_device=False).dense(flat, sigma).reshape(self._grid.x, self._grid.y)

    def _gaussian(self, c: Sequence[int], sigma: float) -> np.ndarray:
        """exp(−‖r − r_c‖²/(2σ²)) on euclidean coordinates."""
        return self._neighborhood_at("gaussian", c, sigma)

    def _mexican_hat(self, c: Sequence[int], sigma: float) -> np.ndarray:
        """(1 − ‖r − r_c‖²/σ²)·exp(−‖r − r_c‖²/(2σ²))."""
        return self._neighborhood_at("mexican_hat", c, sigma)

    def _bubble(self, c: Sequence[int], sigma: float) -> np.ndarray:
        """[|i − c_i| < σ]·[|j − c_j| < σ] on grid indices."""
        return self._neighborhood_at("bubble", c, sigma)

    def _triangle(self, c: Sequence[int], sigma: float) -> np.ndarray:
        """(σ − |i − c_i|)₊·(σ − |j − c_j|)₊ on grid indices (unnormalised)."""
        return self._neighborhood_at("triangle", c, sigma)

    # activation distances of one sample x to weights w (x, y, D) → (x, y)
    def _euclidean_distance(self, x: Any, w: np.ndarray) -> np.ndarray:
        """‖x − w‖₂."""
        return np.linalg.norm(np.subtract(x, w), axis=-1)

    def _cosine_distance(self, x: Any, w: np.ndarray) -> np.ndarray:
        """1 − x·w/(‖w‖·‖x‖ + 1e-8); ‖x‖ is the norm of the whole array x."""
        return 1 - (w * x).sum(axis=2) / (np.linalg.norm(w, axis=2) * np.linalg.norm(x) + COSINE_EPS)

    def _manhattan_distance(self, x: Any, w: np.ndarray) -> np.ndarray:
        """Σ|x − w|."""
        return np.linalg.norm(np.subtract(x, w), ord=1, axis=-1)

    def _chebyshev_distance(self, x: Any, w: np.ndarray) -> np.ndarray:
        """max(x − w), without the abs (MiniSom's definition)."""
        return np.max(np.subtract(x, w), axis=-1)

    def _check_iteration_number(self, num_iteration: int) -> None:
        if num_iteration < 1:
            raise ValueError(f"num_iteration must be >= 1; got {num_iteration!r}")

    def _check_input_len(self, data: Any) -> None:
        """ValueError unless the first row of ``data`` has ``input_len`` features."""
        data_len = len(data[0])
        if self._input_len != data_len:
            raise ValueError(f"Received {data_len} features, expected {self._input_len}.")

    def _distance_from_weights(self, data: Any) -> np.ndarray:
        """(N, M) euclidean distances sqrt(max(0, −2x·w + ‖x‖² + ‖w‖²)) as MiniSom writes them.

        Builds the full matrix, as in MiniSom; the facade's batched queries use chunked searches instead.
        """
        samples = np.array(data)
        weights = self._weights.reshape(-1, self._weights.shape[2])
        samples_sq = np.power(samples, 2).sum(axis=1, keepdims=True)
        weights_sq = np.power(weights, 2).sum(axis=1, keepdims=True)
        return np.sqrt(np.maximum(0, -2 * np.dot(samples, weights.T) + samples_sq + weights_sq.T))

    # ------------------------------------------------------------------ initialisation
    def random_weights_init(self, data: Any) -> None:
        """Set each neuron, in row-major (i, j) order, to the sample ``RandomState.randint(N)`` draws."""
        samples = self._as_samples(data)
        picks = self._random_generator.randint(len(samples), size=self._n_neurons)
        store = self._live_weights()
        chosen = samples[picks].reshape(self._grid.x, self._grid.y, -1)  # [x, y, D]
        store[...] = torch.as_tensor(chosen).to(store) if isinstance(store, torch.Tensor) else chosen

    def pca_weights_init(self, data: Any) -> None:
        """W[i, j] = mean + c1_i·pc1 + c2_j·pc2 with c = linspace(−1, 1) along each axis and pc1, pc2 the eigenvectors
        of the two largest eigenvalues of ``numpy.cov(data)``."""
        if self._input_len == 1:
            raise ValueError("The data needs at least 2 features for pca initialization")
        self._check_input_len(data)
        if self._grid.x == 1 or self._grid.y == 1:
            warnings.warn("PCA initialization inappropriate:One of the dimensions of the map is 1.", stacklevel=2)
        samples = np.asarray(data, dtype=np.float64)
        spanned = pca_plane(np.mean(samples, axis=0), np.cov(samples, rowvar=False), self._grid.x, self._grid.y)
        store = self._live_weights()
        store[...] = torch.as_tensor(spanned).to(store) if isinstance(store, torch.Tensor) else spanned

    # ------------------------------------------------------------------ online training
    def _check_fixed_points(self, fixed_points: Mapping[int, Sequence[int]], data: Any) -> None:
        """TypeError for non-integer sample indexes, ValueError for indexes or map positions out of range."""
        for index, position in fixed_points.items():
            if not isinstance(index, int):
                raise TypeError(f"fixed points indexes must be integers; got {index!r}")
            if index >= len(data) or index < 0:
                raise ValueError(f"fixed point index {index} is outside the data: it must be in [0, {len(data)})")
            if position[0] >= self._grid.x or position[1] >= self._grid.y:
                raise ValueError(f"coordinates {tuple(position)} of fixed point {index} are outside the "
                                 f"{self._grid.x} × {self._grid.y} map")
            if position[0] < 0 or position[1] < 0:
                raise ValueError(f"coordinates {tuple(position)} of fixed point {index} cannot be negative")

    def train(self, data: Any, num_iteration: int, random_order: bool = False, verbose: bool = False,
              use_epochs: bool = False, fixed_points: Optional[Mapping[int, Sequence[int]]] = None) -> None:
        """Online training: at step t with sample x = data[order_t] and winner c (the BMU, or ``fixed_points[order_t]``),
        W ← W + η(t)·h(c, ·; σ(t))·(x − W).

        The order is ``_build_iteration_indexes`` (shuffled by ``_random_generator`` if ``random_order``). Without
        epochs: num_iteration steps, decay at t = step, T = num_iteration. With ``use_epochs``: num_iteration passes
        over the data, decay at t = step // N, T = num_iteration.
        """
        self._check_iteration_number(num_iteration)
        samples = self._as_samples(data)
        generator = self._random_generator if random_order else None
        order = _build_iteration_indexes(len(samples), num_iteration, False, generator, use_epochs)
        forced = None
        if fixed_points:
            self._check_fixed_points(fixed_points, data)
            by_sample = np.full(len(samples), -1, dtype=np.int64)
            for index, position in fixed_points.items():
                by_sample[index] = int(position[0]) * self._grid.y + int(position[1])
            forced = by_sample[order]
        decay_steps = np.arange(len(order)) // len(samples) if use_epochs else np.arange(len(order))
        progress = tqdm(total=len(order), desc="train", unit="step", disable=None) if verbose else None
        self._train_online(samples, order, decay_steps, num_iteration, forced, progress)
        if progress is not None:
            progress.close()
        if verbose:
            print("\n quantization error:", self.quantization_error(data))  # MiniSom's verbose report

    def train_random(self, data: Any, num_iteration: int, verbose: bool = False) -> None:
        """``num_iteration`` online steps with samples in random order (see :meth:`train`)."""
        self.train(data, num_iteration, random_order=True, verbose=verbose)

    def train_batch(self, data: Any, num_iteration: int, verbose: bool = False) -> None:
        """``num_iteration`` online steps with samples in data order, cycling (MiniSom's name; not the batch map)."""
        self.train(data, num_iteration, random_order=False, verbose=verbose)

    def _train_online(self, samples: np.ndarray, order: np.ndarray, decay_steps: np.ndarray, total: int,
                      forced: Optional[np.ndarray], progress: Optional[tqdm]) -> None:
        """Run the steps with the core kernels, or step by step through ``winner``/``update`` for a custom
        neighbourhood function (and for a callable distance on CUDA)."""
        name, distance = self._neighborhood_name(), self._facade_distance()
        if name is None or (distance.function is not None and self._device.type != "cpu"):
            logger.debug("online training step by step (custom neighbourhood or callable distance on %s)", self._device)
            self._train_stepwise(samples, order, decay_steps, total, forced, progress)
            return
        eta = decay.decay_schedule(self._learning_rate_decay_function, self._learning_rate, decay_steps, total)
        sigma = decay.decay_schedule(self._sigma_decay_function, self._sigma, decay_steps, total)
        if self._device.type == "cpu":
            weights, data = self._live_weights().reshape(self._n_neurons, -1), samples
            neighborhood, kernel = self._map_neighborhood(name, on_device=False), train_online_numpy
            schedule = (order, eta, sigma, forced)
        else:
            as_device = lambda values, dtype: torch.as_tensor(values, dtype=dtype, device=self._device)  # noqa: E731
            weights, data = self._live_matrix(), self._on_device(samples)
            neighborhood, kernel = self._map_neighborhood(name, on_device=True), train_online_torch
            schedule = (as_device(order, torch.long), as_device(eta, self._dtype), as_device(sigma, self._dtype),
                        None if forced is None else as_device(forced, torch.long))

        def run(steps: slice, bar: Optional[tqdm]) -> None:
            order_part, eta_part, sigma_part, forced_part = (None if v is None else v[steps] for v in schedule)
            kernel(weights, data, order_part, eta_part, sigma_part, neighborhood, distance, forced_part, bar)

        run(slice(0, -1), progress)
        self._activate(samples[order[-1]])  # MiniSom's last winner() call sees the weights before the last update
        run(slice(-1, None), None)
        if progress is not None:
            progress.update(1)

    def _train_stepwise(self, samples: np.ndarray, order: np.ndarray, decay_steps: np.ndarray, total: int,
                        forced: Optional[np.ndarray], progress: Optional[tqdm]) -> None:
        """MiniSom's own loop: ``winner`` then ``update`` per step, with whatever ``neighborhood`` and distance are set."""
        for t, index in enumerate(order):
            win = self.winner(samples[index])
            if forced is not None and forced[t] >= 0:
                win = divmod(int(forced[t]), self._grid.y)
            self.update(samples[index], win, int(decay_steps[t]), total)
            if progress is not None:
                progress.update(1)

    # ------------------------------------------------------------------ batch training
    def train_batch_offline(self, data: Any, num_iteration: int, verbose: bool = False) -> None:
        """Kohonen's batch map blended with η, as in MiniSom. At iteration t of T = num_iteration, with
        η = lr_decay(learning_rate, t, T), s = sigma_decay(sigma, t, T) and c_n the BMU of x_n:
        W_k ← (1 − η)·W_k + η·Σ_n h(c_n, k; s)·x_n / Σ_n h(c_n, k; s) wherever the denominator is > 0."""
        self._check_iteration_number(num_iteration)
        samples = self._as_samples(data)
        X = self._on_device(samples)
        distance = self._facade_distance()
        iterations = range(num_iteration)  # a progress bar costs more than a small iteration: only when verbose
        if verbose:
            iterations = tqdm(iterations, desc="train batch offline", unit="iteration", disable=None)
        on_cpu = self._device.type == "cpu"
        for iteration in iterations:
            eta = self._learning_rate_decay_function(self._learning_rate, iteration, num_iteration)
            sigma = self._sigma_decay_function(self._sigma, iteration, num_iteration)
            # [M, D]: on the CPU the live NumPy array, updated with NumPy as in MiniSom
            W = self._live_weights().reshape(self._n_neurons, -1) if on_cpu else self._live_matrix()
            if on_cpu and samples.size * self._n_neurons <= _SEQUENTIAL_BATCH_TERMS:
                numerator, denominator = self._sequential_sums(samples, sigma)
            elif on_cpu:
                sums = self._smooth(*self._sums_by_winner(X, torch.from_numpy(W), distance), sigma)
                numerator, denominator = (part.numpy() for part in sums)
            else:
                numerator, denominator = self._smooth(*self._sums_by_winner(X, W, distance), sigma)
            hit = denominator > 0
            averages = numerator[hit] / denominator[hit][:, None]
            if iteration == num_iteration - 1:
                self._keep_last_activation(samples[-1])  # MiniSom's last winner() call precedes the last update
            W[hit] = (1 - eta) * W[hit] + eta * averages
        if verbose:
            print(f"Quantization Error: {self.quantization_error(data):.4f}")  # MiniSom's verbose report

    def _sequential_sums(self, samples: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """Σ_n h(c_n, k; σ)·x_n (M, D) and Σ_n h(c_n, k; σ) (M,), adding sample after sample as MiniSom's loop does.

        ``numpy.add.reduce`` over the sample axis accumulates in that order; each block of samples continues from
        the previous total, which leads its block."""
        winners = self._activation_bmus(samples)
        numerator, denominator = np.zeros((1, self._n_neurons, samples.shape[1])), np.zeros((1, self._n_neurons))
        rows = max(1, _BLOCK_ELEMENTS // numerator.size)
        for part in bmu_search.iter_chunks(len(samples), rows):
            h = self._neighborhood_rows_numpy(winners[part], sigma)  # [B, M]
            terms = h[:, :, None] * samples[part, None, :]  # [B, M, D], MiniSom's g[:, :, newaxis] * sample
            numerator = np.add.reduce(np.concatenate([numerator, terms]), axis=0, keepdims=True)
            denominator = np.add.reduce(np.concatenate([denominator, h]), axis=0, keepdims=True)
        return numerator[0], denominator[0]

    def _neighborhood_rows_numpy(self, winners: np.ndarray, sigma: float) -> np.ndarray:
        """h(c, k; σ) (float64, MiniSom's arithmetic) for each winner c (flat) and every neuron k: (len(winners), M)."""
        name = self._neighborhood_name()
        if name is not None:
            return self._map_neighborhood(name, on_device=False).dense(winners, sigma)
        return np.stack([np.asarray(self.neighborhood(divmod(int(c), self._grid.y), sigma), dtype=np.float64).reshape(-1)
                         for c in winners])

    def _sums_by_winner(self, X: torch.Tensor, W: torch.Tensor, distance: _FacadeDistance) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-neuron sums of the samples each neuron wins (M, D) and its hit counts (M,); winners as ``winner``."""
        sums, counts = torch.zeros_like(W), torch.zeros(W.shape[0], dtype=W.dtype, device=W.device)
        if self._device.type == "cpu":
            winners = torch.from_numpy(self._activation_bmus(X.numpy()))
            sums.index_add_(0, winners, X)
            counts += torch.from_numpy(np.bincount(winners.numpy(), minlength=W.shape[0])).to(counts.dtype)
        else:
            bmu_search.accumulate_by_bmu(X, W, distance, bmu_search.DEFAULT_CHUNK_BYTES, sums, counts)
        return sums, counts

    def _smooth(self, sums: torch.Tensor, counts: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Σ_c h(c, k; σ)·sums_c (M, D) and Σ_c h(c, k; σ)·counts_c (M,) from per-BMU sums (M, D) and hits (M,)."""
        name = self._neighborhood_name()
        if name is not None:
            block = bmu_search.chunk_rows(self._n_neurons, sums.element_size(), bmu_search.DEFAULT_CHUNK_BYTES, self._device)
            return self._map_neighborhood(name, on_device=True).smooth(sums, counts, float(sigma), block)
        hit = torch.nonzero(counts).squeeze(1)
        h = self._neighborhood_rows(hit, sigma)  # [hits, M]
        return h.T @ sums[hit], h.T @ counts[hit]

    def _neighborhood_rows(self, winners: torch.Tensor, sigma: float) -> torch.Tensor:
        """h(c, k; σ) for each winner c (flat) and every neuron k: (len(winners), M) on the device."""
        name = self._neighborhood_name()
        if name is not None:
            return self._map_neighborhood(name, on_device=True).dense(winners, sigma)
        unique, inverse = torch.unique(winners, return_inverse=True)
        rows = [np.asarray(self.neighborhood(divmod(c, self._grid.y), sigma), dtype=np.float64).reshape(-1)
                for c in unique.tolist()]  # [unique winners][M]
        return torch.as_tensor(np.stack(rows), dtype=self._dtype, device=self._device)[inverse]

    # ------------------------------------------------------------------ batched queries
    def _activation_bmus(self, samples: np.ndarray) -> np.ndarray:
        """Flat index of the unit ``winner`` picks for every sample: int64 (N,).

        CPU: MiniSom's own values (euclidean: candidates from the product, near-ties settled by ‖x − w‖; other
        distances: MiniSom's formula vectorised over blocks of samples), so the pick is MiniSom's. CUDA: the core
        search with the same rule in the compute dtype."""
        distance = self._facade_distance()
        if self._device.type != "cpu":
            return bmu_search.best_matching_units(self._on_device(samples), self._weight_matrix(), distance).cpu().numpy()
        weights = self._weight_array()  # [M, D]
        if distance.is_euclidean:
            return minisom_search.winner_nearest(samples, weights)
        grid_weights = weights.reshape(self._grid.x, self._grid.y, -1)
        rows = max(1, _BLOCK_ELEMENTS // weights.size)
        return np.concatenate([distance.minisom_values(samples[part], grid_weights).argmin(axis=1)
                               for part in bmu_search.iter_chunks(len(samples), rows)])

    def _positions(self, samples: np.ndarray) -> list[tuple[Any, Any]]:
        """(i, j) of every sample's winner, as the tuples of NumPy integers ``winner`` returns."""
        rows, cols = np.unravel_index(self._activation_bmus(samples), (self._grid.x, self._grid.y))
        return list(zip(rows, cols))

    def _expanded_in_reach(self, samples: np.ndarray) -> bool:
        """Whether MiniSom's expanded-formula queries can be reproduced bit for bit (CPU, one whole product)."""
        return self._device.type == "cpu" and len(samples) * self._n_neurons <= minisom_search.WHOLE_PRODUCT_ELEMENTS

    def _quantization_units(self, data: Any, samples: np.ndarray) -> np.ndarray:
        """Flat index of every sample's unit under MiniSom's expanded distance (``_distance_from_weights``): (N,).
        Beyond one whole product (see :mod:`somtorch._minisom_search`): the exact distance, ties to the lowest index."""
        if not self._expanded_in_reach(samples):
            euclidean = ActivationDistance("euclidean")
            return bmu_search.best_matching_units(self._on_device(samples), self._weight_matrix(), euclidean).cpu().numpy()
        samples_sq = minisom_search.squared_norms(np.asarray(data))  # MiniSom squares the data in its own dtype
        return minisom_search.expanded_nearest(samples, self._weight_array(), samples_sq)

    def quantization(self, data: Any) -> np.ndarray:
        """The weights of each sample's BMU under sqrt(max(0, −2x·w + ‖x‖² + ‖w‖²)), MiniSom's formula: (N, D)."""
        samples = self._as_samples(data)
        found = self._quantization_units(data, samples)
        return self._weights.reshape(self._n_neurons, -1)[found]

    def quantization_error(self, data: Any) -> np.float64:
        """mean_n ‖x_n − quantization(x_n)‖₂, in MiniSom's order (``norm(data − q, axis=1).mean()``)."""
        samples = self._as_samples(data)
        found = self._quantization_units(data, samples)
        codebook = (self._weight_array() if self._device.type == "cpu" else self._weight_matrix().cpu().numpy())[found]  # [N, D]
        diff = samples - codebook  # [N, D]
        # linalg.norm(axis=1) and mean() spelled out: the same reductions without their Python wrappers
        return np.float64(np.add.reduce(np.sqrt(np.add.reduce(diff * diff, axis=1))) / len(diff))

    def distortion_measure(self, data: Any) -> np.float64:
        """Σ_i Σ_k h(c_i, k; σ)·‖x_i − w_k‖₂ with σ the initial sigma and c_i the BMU under the activation distance
        (MiniSom's definition: the distance is not squared)."""
        samples = self._as_samples(data)
        winners = self._activation_bmus(samples)
        self._keep_last_activation(samples[-1])
        if self._device.type != "cpu":
            return self._distortion_on_device(samples, winners)
        weights = self._weight_array()  # [M, D]
        per_sample = np.empty(len(samples))
        rows = max(1, _BLOCK_ELEMENTS // weights.size)
        for part in bmu_search.iter_chunks(len(samples), rows):
            diff = samples[part, None, :] - weights[None]  # [B, M, D]
            gaps = np.sqrt(np.add.reduce(diff * diff, axis=-1))  # MiniSom's norm(d − w, axis=2)
            h = self._neighborhood_rows_numpy(winners[part], self._sigma)  # [B, M]
            per_sample[part] = np.multiply(h, gaps).sum(axis=1)
        return np.float64(np.cumsum(per_sample)[-1])  # MiniSom adds the samples' terms one after the other

    def _distortion_on_device(self, samples: np.ndarray, winners: np.ndarray) -> np.float64:
        """distortion_measure on CUDA, chunk by chunk in the compute dtype."""
        X, W = self._on_device(samples), self._weight_matrix()
        winners_t = torch.as_tensor(winners, device=self._device)
        rows = bmu_search.chunk_rows(self._n_neurons, W.element_size(), bmu_search.DEFAULT_CHUNK_BYTES // 2, self._device)
        total = 0.0
        for part in bmu_search.iter_chunks(len(samples), rows):
            gaps = torch.cdist(X[part], W, compute_mode="donot_use_mm_for_euclid_dist")  # [rows, M], exact differences
            total += float((self._neighborhood_rows(winners_t[part], self._sigma) * gaps).sum())
        return np.float64(total)

    def topographic_error(self, data: Any) -> np.float64:
        """Share of samples whose two best euclidean units are not adjacent: rectangular grid distance > 1.42;
        hexagonal: 1 − mean(isclose(1, coordinate distance)). NaN with a warning on a 1 × 1 map."""
        samples = self._as_samples(data)
        if np.prod(self._activation_map.shape) == 1:
            warnings.warn("The topographic error is not defined for a 1-by-1 map.", stacklevel=2)
            return np.float64(np.nan)
        if self._expanded_in_reach(samples):
            samples_sq = minisom_search.squared_norms(np.asarray(data))
            best = minisom_search.expanded_two_nearest(samples, self._weight_array(), samples_sq)  # [N, 2]
        else:
            best = bmu_search.two_best_units(self._on_device(samples), self._weight_matrix()).cpu().numpy()
        if self.topology == "hexagonal":
            xx, yy = self._grid.xx.ravel(), self._grid.yy.ravel()
            dx, dy = xx[best[:, 0]] - xx[best[:, 1]], yy[best[:, 0]] - yy[best[:, 1]]
            return np.float64(1 - np.mean(np.isclose(1, np.sqrt(dx * dx + dy * dy))))
        (i1, j1), (i2, j2) = np.divmod(best[:, 0], self._grid.y), np.divmod(best[:, 1], self._grid.y)
        distance = np.sqrt(np.square(i2 - i1, dtype=np.float64) + np.square(j2 - j1, dtype=np.float64))
        return np.float64((distance > RECTANGULAR_ADJACENCY).mean())

    def distance_map(self, scaling: str = "sum") -> np.ndarray:
        """U-matrix (x, y): per neuron the sum (or mean) of euclidean distances to the neighbours at MiniSom's
        offsets (8 on rectangular maps; on hexagonal maps 6 chosen by the parity of j), divided by its maximum."""
        if scaling not in ("sum", "mean"):
            raise ValueError(f'scaling should be either "sum" or "mean" ("{scaling}" not valid)')
        weights = np.asarray(self._weights, dtype=np.float64)
        if weights.ndim == 2:
            weights = weights[..., None]
        nx, ny = weights.shape[:2]
        ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        gaps = np.full((nx, ny, _UMATRIX_SLOTS), np.nan)  # [x, y, neighbour slot]
        for even in (True, False):
            offsets = _HEXAGONAL_OFFSETS[even] if self.topology == "hexagonal" else _RECTANGULAR_OFFSETS
            column = (jj % 2 == 0) == even
            for slot, (di, dj) in enumerate(offsets):
                ni, nj = ii + di, jj + dj
                inside = column & (ni >= 0) & (ni < nx) & (nj >= 0) & (nj < ny)
                diff = weights[ii[inside], jj[inside]] - weights[ni[inside], nj[inside]]  # [n, D]
                gaps[ii[inside], jj[inside], slot] = [fast_norm(d) for d in diff]  # MiniSom's BLAS dot, per pair
        um = np.nanmean(gaps, axis=2) if scaling == "mean" else np.nansum(gaps, axis=2)
        return um / um.max()

    def activation_response(self, data: Any) -> np.ndarray:
        """How many samples each neuron wins (activation distance): float (x, y)."""
        samples = self._as_samples(data)
        counts = np.bincount(self._activation_bmus(samples), minlength=self._n_neurons)
        self._keep_last_activation(samples[-1])
        return counts.reshape(self._grid.x, self._grid.y).astype(np.float64)

    def win_map(self, data: Any, return_indices: bool = False) -> defaultdict:
        """{(i, j): [the rows of ``data`` (or their indices) that neuron (i, j) wins]}, in data order."""
        samples = self._as_samples(data)
        winmap: defaultdict = defaultdict(list)
        for index, (position, row) in enumerate(zip(self._positions(samples), data)):
            winmap[position].append(index if return_indices else row)
        self._keep_last_activation(samples[-1])
        return winmap

    def labels_map(self, data: Any, labels: Sequence[Any]) -> defaultdict:
        """{(i, j): Counter of the labels of the samples that neuron (i, j) wins}."""
        self._check_input_len(data)
        if len(data) != len(labels):
            raise ValueError(f"data and labels must have the same length; got {len(data)} rows and {len(labels)} labels.")
        samples = self._as_samples(data)
        winmap: defaultdict = defaultdict(list)
        for position, label in zip(self._positions(samples), labels):
            winmap[position].append(label)
        for position in winmap:
            winmap[position] = Counter(winmap[position])
        self._keep_last_activation(samples[-1])
        return winmap


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == torch.float64 else np.dtype(np.float32)


# MiniSom's own functions, to tell them apart from a user's replacement of ``neighborhood``/``_activation_distance``
_NEIGHBORHOOD_METHODS = {getattr(MiniSom, f"_{name}"): name for name in _NEIGHBORHOOD_NAMES}
_DISTANCE_METHODS = {getattr(MiniSom, f"_{name}_distance"): name for name in _DISTANCE_NAMES}
