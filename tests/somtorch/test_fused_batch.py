"""The fused Triton BMU search of batch epochs (somtorch._fused_batch) against independent references.

References are NumPy computations written here (scores ‖w‖² − 2x·w and exact distances Σ (x − w)² in float64,
``argmin`` = first minimum, ``np.add.at`` sums) and the chunked search of :mod:`somtorch.bmu`, the rule the fused
path must reproduce exactly. Maps get bit-identical duplicated units (exact ties, also across the kernel's 32-unit
tiles) and samples a hair closer to a higher-indexed unit than to a lower one (near-ties that float32 scores
cannot resolve).

On a CPU the kernel runs under Triton's interpreter, which reads ``TRITON_INTERPRET=1`` when a kernel is defined,
i.e. when Triton and this package's kernel module are imported. So ``test_cpu_cases_under_triton_interpreter``
runs this file's CPU cases in a fresh interpreter process with the variable set; in this process they skip. On a
GPU the same cases run on CUDA (marked ``cuda``). Without Triton every case that needs it skips with the reason.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from somtorch import SOM
from somtorch import batch
from somtorch import bmu as bmu_search
from somtorch.distances import ActivationDistance

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
try:
    importlib.import_module("triton")  # only whether it imports
    HAS_TRITON = True
except ImportError:
    HAS_TRITON = False
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install -r requirements-triton.txt)")
KERNEL_DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(
        not INTERPRETING, reason="CPU kernel cases run under Triton's interpreter, in the subprocess of "
                                 "test_cpu_cases_under_triton_interpreter")),
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")]),
]
# (dtype, float32 product precision of the kernel): exact float32, three TF32 products, float64
PRECISIONS = [pytest.param(torch.float32, "ieee", id="float32"), pytest.param(torch.float32, "tf32x3", id="float32-tf32x3"),
              pytest.param(torch.float64, "ieee", id="float64")]
EUCLIDEAN = ActivationDistance("euclidean")
BUDGET = 2**26
# (rows, units, features): tile remainders (32-row and 32-unit tiles, 16-wide feature slices), one row, one unit,
# and more features than one 64-wide slice.
SHAPES = [(333, 97, 13), (1, 7, 5), (200, 1, 9), (70, 40, 70)]
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=KERNEL_DEVICES)
def kernel_device(request: pytest.FixtureRequest) -> str:
    return request.param


def random_case(n_rows: int, n_units: int, dim: int, dtype: torch.dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kind = np.float32 if dtype == torch.float32 else np.float64
    return rng.normal(size=(n_rows, dim)).astype(kind), rng.normal(size=(n_units, dim)).astype(kind)


def tied_case(dtype: torch.dtype, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """100 units of 6 features around 30 (‖w‖² ≈ 5,400, so float32 scores err by about 10⁻³); units 3 and 30 have
    bit-identical copies at 40, 77 and 99 (other tiles); unit 50 is unit 10 moved by δ (|δ| ≈ 2·10⁻³). Samples on
    the copied units, at w₁₀ + (1/2 + 1/16)·δ (nearer unit 50 by ~10⁻⁷ in squared distance, far below float32's
    score error: a near-tie only the exact distance decides), and random ones."""
    rng = np.random.default_rng(seed)
    kind = np.float32 if dtype == torch.float32 else np.float64
    weights = (30 + rng.normal(size=(100, 6))).astype(kind)
    weights[[40, 99]] = weights[3]
    weights[77] = weights[30]
    weights[50] = weights[10] + (1e-3 * rng.normal(size=6)).astype(kind)
    offset = weights[50].astype(np.float64) - weights[10]
    near = weights[10] + (0.5 + 1 / 16) * offset
    samples = np.concatenate([np.repeat(weights[[3, 30]], 15, axis=0), np.repeat(near[None], 15, axis=0),
                              30 + rng.normal(size=(60, 6))]).astype(kind)
    return samples[rng.permutation(len(samples))], weights


def exact_bmus(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """argmin over units of Σ (x − w)² in float64, first minimum: (N,)."""
    diff = samples[:, None, :].astype(np.float64) - weights[None].astype(np.float64)
    return np.einsum("nmd,nmd->nm", diff, diff).argmin(axis=1)


def on(device: str, *arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(a).to(device) for a in arrays]


@needs_triton
@pytest.mark.parametrize("dtype, products", PRECISIONS)
def test_kernel_best_unit_and_gap_match_float64_scores(kernel_device, dtype, products):
    from somtorch import _fused_batch

    samples, weights = random_case(333, 97, 13, dtype)
    X, W = on(kernel_device, samples, weights)
    best, gap = _fused_batch.two_best_gap(X, W, (W * W).sum(1), products)
    scores = (weights.astype(np.float64) ** 2).sum(1)[None, :] - 2 * samples.astype(np.float64) @ weights.T.astype(np.float64)
    ordered = np.sort(scores, axis=1)
    expected_gap = ordered[:, 1] - ordered[:, 0]
    tolerance = bmu_search.near_tie_tolerance(torch.from_numpy((samples.astype(np.float64) ** 2).sum(1)).to(dtype),
                                              torch.tensor((weights.astype(np.float64) ** 2).sum(1).max(), dtype=dtype), 13)
    tolerance = tolerance.double().numpy() * (_fused_batch.TF32X3_TOLERANCE_FACTOR if products == "tf32x3" else 1)
    np.testing.assert_allclose(gap.cpu().numpy(), expected_gap, rtol=0, atol=tolerance.max())
    clear = expected_gap > tolerance
    assert clear.mean() > 0.8  # the comparison below covers most rows
    np.testing.assert_array_equal(best.cpu().numpy()[clear], scores.argmin(axis=1)[clear])


@needs_triton
@pytest.mark.parametrize("dtype, products", PRECISIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fused_bmus_equal_the_chunked_search(kernel_device, dtype, products, shape, monkeypatch):
    from somtorch import _fused_batch

    monkeypatch.setattr(_fused_batch, "FP32_PRODUCTS", products)
    samples, weights = random_case(*shape, dtype, seed=sum(shape))
    X, W = on(kernel_device, samples, weights)
    fused = _fused_batch.best_matching_units(X, W, EUCLIDEAN, (W * W).sum(1), BUDGET)
    np.testing.assert_array_equal(fused.cpu().numpy(), bmu_search.best_matching_units(X, W, EUCLIDEAN).cpu().numpy())
    np.testing.assert_array_equal(fused.cpu().numpy(), exact_bmus(samples, weights))


@needs_triton
@pytest.mark.parametrize("dtype, products", PRECISIONS)
def test_exact_ties_go_to_the_lowest_index_and_near_ties_to_the_exact_nearest(kernel_device, dtype, products, monkeypatch):
    from somtorch import _fused_batch

    monkeypatch.setattr(_fused_batch, "FP32_PRODUCTS", products)
    samples, weights = tied_case(dtype)
    expected = exact_bmus(samples, weights)
    assert {3, 30, 50} <= set(expected) and not {40, 77, 99} & set(expected)  # the planted cases are in the data
    X, W = on(kernel_device, samples, weights)
    w_sq = (W * W).sum(1)
    if dtype == torch.float32:  # the near-tie rows are within the tolerance: the exact re-check decides them
        _, gap = _fused_batch.two_best_gap(X, W, w_sq, products)
        within = (gap <= _fused_batch.near_tie_tolerance(X, w_sq, products)).cpu().numpy()
        assert within[expected == 50].all()
    fused = _fused_batch.best_matching_units(X, W, EUCLIDEAN, w_sq, BUDGET)
    np.testing.assert_array_equal(fused.cpu().numpy(), expected)
    np.testing.assert_array_equal(fused.cpu().numpy(), bmu_search.best_matching_units(X, W, EUCLIDEAN).cpu().numpy())


@needs_triton
def test_rows_within_the_tolerance_are_decided_again_and_only_they(monkeypatch):
    """A stand-in for the kernel returns unit 0 for every row: rows it reports as near-ties (gap 0) get the exact
    search's answer, rows it reports as clear (a gap far above the tolerance) keep its pick."""
    from somtorch import _fused_batch

    samples, weights = random_case(40, 9, 4, torch.float64, seed=2)
    X, W = torch.from_numpy(samples), torch.from_numpy(weights)
    gap = torch.where(torch.arange(40) % 2 == 0, 0.0, 1e6).double()
    monkeypatch.setattr(_fused_batch, "two_best_gap", lambda *args: (torch.zeros(40, dtype=torch.long), gap.clone()))
    bmus = _fused_batch.best_matching_units(X, W, EUCLIDEAN, (W * W).sum(1), BUDGET).numpy()
    expected = exact_bmus(samples, weights)
    assert (expected[1::2] != 0).any()  # the kept wrong picks are visible
    np.testing.assert_array_equal(bmus[0::2], expected[0::2])
    np.testing.assert_array_equal(bmus[1::2], 0)


@needs_triton
@pytest.mark.parametrize("dtype, products", PRECISIONS)
def test_fused_partial_stats_equal_the_chunked_ones_and_numpy(kernel_device, dtype, products, monkeypatch):
    from somtorch import _fused_batch

    monkeypatch.setattr(_fused_batch, "FP32_PRODUCTS", products)
    samples, weights = tied_case(dtype)
    more, _ = random_case(250, 1, 6, dtype, seed=5)
    data = np.concatenate([samples, more])
    X, W = on(kernel_device, data, weights)
    chunks = [X[:37], X[37:200], X[200:]]
    monkeypatch.setattr(batch, "FUSED_BMU_SEARCH", "always")
    assert batch.fused_search_applies(W, EUCLIDEAN)
    fused = batch.partial_stats(chunks, W, EUCLIDEAN, chunk_bytes=200 * 6 * 8)  # blocks of 200 rows
    monkeypatch.setattr(batch, "FUSED_BMU_SEARCH", "never")
    chunked = batch.partial_stats(chunks, W, EUCLIDEAN)
    expected_units = exact_bmus(data, weights)
    expected_sums = np.zeros((100, 6))
    np.add.at(expected_sums, expected_units, data.astype(np.float64))
    np.testing.assert_array_equal(fused.counts.cpu().numpy(), np.bincount(expected_units, minlength=100))
    np.testing.assert_array_equal(fused.counts.cpu().numpy(), chunked.counts.cpu().numpy())
    assert fused.sums.dtype == torch.float64
    np.testing.assert_allclose(fused.sums.cpu().numpy(), chunked.sums.cpu().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused.sums.cpu().numpy(), expected_sums, rtol=1e-12, atol=1e-12)


@needs_triton
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the CUDA cases compile and run the kernel")
@pytest.mark.skipif(INTERPRETING, reason="the interpreter's kernels cannot be compiled")
@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
@pytest.mark.parametrize("one_slice", [True, False])
def test_kernel_compiles_for_hopper_without_a_gpu(dtype, one_slice):
    """Triton's compiler, run ahead of time for sm_90 (the H200), catches what the interpreter does not check:
    types, layouts, shared memory. Each tile config of the kernel for ``dtype`` compiles to a cubin."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from somtorch import _fused_batch

    pointers = {name: f"*{dtype}" for name in ("x_ptr", "w_ptr", "w_sq_ptr", "gap_ptr")}
    signature = {**pointers, "bmu_ptr": "*i64", "n_rows": "i32", "n_neurons": "i32", "dim": "i32",
                 **{name: "constexpr" for name in ("PRECISION", "ONE_SLICE", "BLOCK_N", "BLOCK_M", "BLOCK_K")}}
    configs = _fused_batch._CONFIGS[torch.float32 if dtype == "fp32" else torch.float64]
    largest = max(configs, key=lambda c: c.kwargs["BLOCK_N"] * c.kwargs["BLOCK_M"])  # the most registers and shared memory
    for precision in ("ieee", "tf32x3") if dtype == "fp32" else ("ieee",):  # tf32x3 lowers to tf32 products
        constants = {"PRECISION": precision, "ONE_SLICE": one_slice, "BLOCK_K": 64, **largest.kwargs}
        compiled = triton.compile(ASTSource(_fused_batch._two_best_kernel, signature, constants), target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": largest.num_warps, "num_stages": largest.num_stages})
        assert compiled.asm["cubin"], precision


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@needs_triton
def test_cuda_batch_map_runs_fused_and_equals_the_cpu_map():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(5000, 12))
    maps = {}
    for device in ("cpu", "cuda"):
        som = SOM(9, 11, 12, sigma=2.0, random_seed=4, device=device, dtype=torch.float64)
        if device == "cuda":
            assert batch.fused_search_applies(som.weights.reshape(-1, 12), EUCLIDEAN)
        maps[device] = som.train_batch(data, 4).get_weights()
    np.testing.assert_allclose(maps["cuda"], maps["cpu"], rtol=0, atol=1e-8)


@needs_triton
def test_product_precision_follows_dtype_switch_and_tf32_flag(monkeypatch):
    from somtorch import _fused_batch

    assert _fused_batch.product_precision(torch.zeros(2, 2, dtype=torch.float64)) == "ieee"
    monkeypatch.setattr(_fused_batch, "FP32_PRODUCTS", "tf32x3")
    assert _fused_batch.product_precision(torch.zeros(2, 2)) == "tf32x3"
    assert _fused_batch.product_precision(torch.zeros(2, 2, dtype=torch.float64)) == "ieee"
    if torch.cuda.is_available():
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
        assert _fused_batch.product_precision(torch.zeros(2, 2, device="cuda")) == "tf32"
    monkeypatch.setattr(_fused_batch, "FP32_PRODUCTS", "bf16")
    with pytest.raises(ValueError, match=r"FP32_PRODUCTS='bf16'.*'ieee', 'tf32x3'"):
        _fused_batch.product_precision(torch.zeros(2, 2))


def test_fused_search_applies_only_where_asked_and_possible(monkeypatch):
    W = torch.zeros(4, 3)
    monkeypatch.setattr(batch, "FUSED_BMU_SEARCH", "never")
    assert not batch.fused_search_applies(W, EUCLIDEAN)
    monkeypatch.setattr(batch, "FUSED_BMU_SEARCH", "auto")
    assert not batch.fused_search_applies(W, EUCLIDEAN)  # CPU weights
    monkeypatch.setattr(batch, "FUSED_BMU_SEARCH", "always")
    assert batch.fused_search_applies(W, EUCLIDEAN) == HAS_TRITON
    assert not batch.fused_search_applies(W, ActivationDistance("cosine"))
    assert not batch.fused_search_applies(W.half(), EUCLIDEAN)
    monkeypatch.setitem(sys.modules, "somtorch._fused_batch", None)  # as if Triton were missing: the import fails
    monkeypatch.delattr(sys.modules["somtorch"], "_fused_batch", raising=False)
    assert not batch.fused_search_applies(W, EUCLIDEAN)
    monkeypatch.setattr(batch, "FUSED_BMU_SEARCH", "sometimes")
    with pytest.raises(ValueError, match=r"FUSED_BMU_SEARCH='sometimes'.*'auto', 'never', 'always'"):
        batch.fused_search_applies(W, EUCLIDEAN)


@needs_triton
@pytest.mark.skipif(INTERPRETING, reason="this is the subprocess that runs the CPU cases")
def test_cpu_cases_under_triton_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    finished = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not cuda", "-k",
                               "not test_cpu_cases_under_triton_interpreter and not compiles", __file__],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-2000:]
    summary = finished.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, finished.stdout[-2000:]
