"""The benchmark harness: a quick run end to end, and the parts its numbers rest on (data, scorer, memory, schedule)."""
from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.busy import competitor, slowdown
from benchmarks.memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from benchmarks.peers import PEERS, ExponentialDecay, Inputs, batch_sigma, get_quantizer, pca_plane, train_somtorch
from benchmarks.report import busy_targets
from benchmarks.workloads import VARIANT_SWITCHES, Entry
from benchmarks.scoring import score_map
from benchmarks.workloads import make_blobs

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_writes_report_with_expected_keys(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    command = [sys.executable, "benchmarks/run.py", "--quick", "--workload", "W1", "--device", "cpu",
               "--libraries", "somtorch,minisom", "--out", str(out)]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert {"command", "machine", "versions", "repeats"} <= set(report["meta"])
    w1 = report["workloads"]["W1"]
    assert {"spec", "floor", "runs", "skipped", "time_to_quality", "load_average"} <= set(w1)
    assert {"torch_addmm", "numpy_blas"} <= set(w1["floor"]["variants"])
    runs = {(r["label"], r["entry"]["mode"]): r for r in w1["runs"]}
    assert {("somtorch", "online"), ("somtorch", "batch"), ("minisom", "online")} <= set(runs)
    for run in runs.values():
        assert run["median_s"] > 0 and run["times_s"] and 0 <= run["te"] <= 1 and run["qe"] > 0
        assert {"peak_extra_mb", "peak_rss_mb", "somtorch_ratio"} <= set(run)
    # Same algorithm, seed and sample order: the harness configures somtorch and MiniSom identically.
    assert runs[("somtorch", "online")]["qe"] == pytest.approx(runs[("minisom", "online")]["qe"], rel=1e-5)
    ttq = w1["time_to_quality"]
    best = min(r["qe"] for r in runs.values())
    assert ttq["target_qe"] == pytest.approx(1.05 * best)
    assert set(ttq["results"]) >= {"somtorch (online)", "minisom (online)"}
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["W1 online: somtorch.train_random ≤ 0.5 × MiniSom"]["status"] in ("PASS", "MISS")
    assert "## Targets" in out.with_suffix(".md").read_text()


def test_scorer_matches_minisom_metrics() -> None:
    minisom = pytest.importorskip("minisom")
    data = make_blobs(1500, 5, seed=3).astype(np.float64)
    som = minisom.MiniSom(7, 5, 5, sigma=1.5, random_seed=2)
    som.train_random(data, 1500)
    score = score_map(data, som.get_weights())
    assert score.quantization_error == pytest.approx(som.quantization_error(data), rel=1e-6)
    assert score.topographic_error == pytest.approx(som.topographic_error(data), abs=1 / len(data))


def test_make_blobs_is_standardised_and_deterministic() -> None:
    data = make_blobs(3000, 6, seed=11)
    assert data.dtype == np.float32 and data.flags.c_contiguous
    np.testing.assert_allclose(data.mean(axis=0, dtype=np.float64), 0, atol=1e-6)
    np.testing.assert_allclose(data.std(axis=0, dtype=np.float64), 1, atol=1e-5)
    np.testing.assert_array_equal(data, make_blobs(3000, 6, seed=11))
    assert not np.array_equal(data, make_blobs(3000, 6, seed=12))


def test_exponential_decay_follows_xpysom_formula() -> None:
    decay = ExponentialDecay(final=0.5)
    t = np.arange(11.0)
    expected = 3.75 * np.exp(-t * np.log(3.75 / 0.5) / 10)  # XPySom: val0·exp(−t·(−ln(valN/val0))/T)
    np.testing.assert_allclose(decay(3.75, t, 10), expected, rtol=1e-12)
    assert batch_sigma(30, 20) == (5.0, 0.5)


def test_batch_configuration_reproduces_xpysom() -> None:
    xpysom = pytest.importorskip("xpysom")
    from somtorch import SOM

    data = make_blobs(2000, 4, seed=5)
    sigma0, sigma_final = batch_sigma(6, 6)
    ours = SOM(6, 6, 4, sigma=sigma0, sigma_decay_function=ExponentialDecay(sigma_final), random_seed=9, device="cpu")
    ours.train_batch(data, 3)
    theirs = xpysom.XPySom(6, 6, 4, random_seed=9, xp=np)
    theirs.train(data, 3)
    np.testing.assert_allclose(ours.get_weights(), theirs.get_weights(), atol=1e-4)


def test_peak_rss_reset_then_rise() -> None:
    if not reset_peak_rss():
        pytest.skip("this kernel does not allow resetting the peak RSS")
    before = current_rss_bytes()
    assert peak_rss_bytes() < before + 16 * 2**20
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert peak_rss_bytes() >= before + 48 * 2**20
    del block


def test_pca_memory_benchmark_reports_each_size() -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "pca_memory.py"
    completed = subprocess.run([sys.executable, str(script), "--rows", "3000,5000", "--features", "8"],
                               capture_output=True, text=True, check=True, timeout=120)
    lines = completed.stdout.strip().splitlines()
    assert [line.split("×")[0].strip() for line in lines] == ["3,000", "5,000"]
    assert all("peak above it" in line and line.endswith("target ≤ data + 64 MiB: PASS") for line in lines)


@pytest.mark.slow
def test_scaleout_benchmark_reports_every_engine_with_equal_weights(tmp_path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "scaleout.py"
    completed = subprocess.run([sys.executable, str(script), "--rows", "20000", "--features", "8", "--side", "5",
                                "--epochs", "1", "--budget-mb", "1", "--no-write"],
                               capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(tmp_path)})
    assert completed.returncode == 0, completed.stderr[-3000:]
    runs = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert [(run["engine"].split()[0], run["workers"]) for run in runs] == [
        ("torch.distributed", 1), ("torch.distributed", 2), ("Dask", 1), ("Dask", 2)]
    assert all(run["weights_vs_1_rank"] < 1e-6 for run in runs)  # float32 weights, float64 sums
    assert all(run["epoch_s"] > 0 and run["rows_per_s"] > 0 for run in runs)


def _numpy_batch_map(data: np.ndarray, weights: np.ndarray, epochs: int) -> np.ndarray:
    """Reference batch map in float64: exact-distance BMUs, Gaussian h = exp(−d²/(2σ_t²)), σ_t = 3 / (1 + 2t/T)."""
    x, y, dim = weights.shape
    rows, cols = np.divmod(np.arange(x * y), y)
    X, W = data.astype(np.float64), weights.astype(np.float64).reshape(-1, dim)
    for t in range(epochs):
        sigma = 3.0 / (1 + 2 * t / epochs)
        bmu = ((X[:, None, :] - W[None]) ** 2).sum(-1).argmin(1)
        h = np.exp(-((rows[bmu][:, None] - rows[None]) ** 2 + (cols[bmu][:, None] - cols[None]) ** 2) / (2 * sigma**2))
        W = h.T @ X / h.sum(0)[:, None]
    return W.reshape(x, y, dim)


def test_pca3_schedule_is_the_same_batch_map_in_somtorch_and_xpysom() -> None:
    pytest.importorskip("xpysom")
    minisom = pytest.importorskip("minisom")
    # Anisotropic Gaussian data: no exact BMU ties, so float32 rounding cannot send the maps apart (blob data can:
    # after one σ = 3 epoch whole regions of units equal one blob's mean and ties are broken by rounding).
    data = (np.random.default_rng(3).standard_normal((1500, 4)) * [3.0, 2.0, 1.0, 0.5]).astype(np.float32)
    shape = (7, 6, 4)
    inputs = Inputs(data, initial_weights=pca_plane(data, shape, "cpu"))
    reference = minisom.MiniSom(*shape)
    reference.pca_weights_init(data)  # the start is MiniSom's PCA plane (somtorch's parity promise)
    np.testing.assert_allclose(inputs.initial_weights, reference.get_weights(), atol=1e-6)
    expected = _numpy_batch_map(data, inputs.initial_weights, 5)
    pca3 = Entry("somtorch", "batch", 5, "epochs", schedule="pca3")
    ours = train_somtorch(inputs, shape, pca3, 5, "cpu")
    theirs = PEERS["xpysom"].train(inputs, shape, Entry("xpysom", "batch", 5, "epochs", schedule="pca3"), 5, "cpu")
    np.testing.assert_allclose(ours, expected, atol=1e-4)
    np.testing.assert_allclose(theirs, expected, atol=1e-4)
    default = train_somtorch(inputs, shape, Entry("somtorch", "batch", 5, "epochs"), 5, "cpu")
    assert np.abs(default - expected).max() > 1e-2  # the schedule really changed what was trained
    with pytest.raises(ValueError, match="initial_weights"):
        train_somtorch(Inputs(data), shape, pca3, 5, "cpu")


def test_quantizers_agree_with_a_numpy_reference() -> None:
    pytest.importorskip("minisom")
    data = make_blobs(3000, 6, seed=8)
    weights = np.random.default_rng(1).standard_normal((4, 5, 6)).astype(np.float32)
    flat = weights.reshape(-1, 6).astype(np.float64)
    expected = np.sqrt(((data.astype(np.float64)[:, None, :] - flat[None]) ** 2).sum(-1)).min(1).mean()
    for name in ("somtorch", "minisom"):
        assert get_quantizer(name)(Inputs(data), weights, "cpu") == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="xpysom"):
        get_quantizer("xpysom")


def test_competitor_spins_until_the_block_ends() -> None:
    with competitor() as process:
        assert process.poll() is None
    assert process.returncode is not None and process.returncode != 0  # killed, not finished


def test_slowdown_ratios_from_hand_values() -> None:
    assert slowdown([1.0, 2.0, 3.0], [2.0, 4.0, 10.0]) == {"busy_median_s": 4.0, "slowdown": 2.0, "worst_slowdown": 5.0}
    with pytest.raises(ValueError, match="busy"):
        slowdown([1.0], [])


def test_busy_targets_compare_with_the_best_peer_doing_the_same_job() -> None:
    def run(library: str, mode: str, slow: float, worst: float) -> dict:
        return {"label": library, "entry": {"library": library, "mode": mode}, "median_s": 1.0,
                "busy": {"slowdown": slow, "worst_slowdown": worst, "times_s": [slow]}}

    w1 = {"runs": [run("somtorch", "online", 1.5, 3.5), run("minisom", "online", 1.4, 1.6), run("torchsom", "online", 2.0, 2.0),
                   run("somtorch", "batch", 1.45, 1.5), run("xpysom", "batch", 2.5, 3.0)]}
    targets = {t["name"]: t for t in busy_targets({"W1": w1})}
    online, batch = targets["W1 online busy: somtorch slowdown ≤ best peer's"], targets["W1 batch busy: somtorch slowdown ≤ best peer's"]
    assert (online["measured"], online["limit"], online["status"]) == (1.5, 1.4, "MISS")  # MiniSom, not TorchSOM
    assert (batch["measured"], batch["limit"], batch["status"]) == (1.45, 2.5, "PASS")  # not MiniSom's online 1.4
    worst = targets["W1 busy: no somtorch run over 3 × its quiet time"]
    assert (worst["measured"], worst["status"]) == (3.5, "MISS")
    assert targets["W2 busy: no somtorch run over 3 × its quiet time"]["status"] == "n/a"
    assert not any(name.startswith("W2 ") and "best peer" in name for name in targets)


@pytest.mark.slow
def test_quick_busy_run_of_the_second_schedule_and_qe(tmp_path: Path) -> None:
    pytest.importorskip("xpysom")
    out = tmp_path / "busy"
    command = [sys.executable, "benchmarks/run.py", "--quick", "--busy", "--no-ttq", "--workload", "W2pca,QE", "--device", "cpu",
               "--libraries", "somtorch,xpysom,minisom", "--out", str(out)]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["meta"]["busy"] is True
    for name, labels in (("W2pca", {"somtorch", "xpysom"}), ("QE", {"somtorch", "minisom"})):
        runs = {r["label"]: r for r in report["workloads"][name]["runs"]}
        assert set(runs) == labels
        for result in runs.values():
            busy = result["busy"]
            assert busy["slowdown"] == pytest.approx(busy["busy_median_s"] / result["median_s"]) and len(busy["load_1min"]) == 1
        first, second = (runs[label]["qe"] for label in sorted(labels, reverse=True))
        assert first == pytest.approx(second, rel=1e-3)  # same start and schedule / same weights
    statuses = {t["name"]: t["status"] for t in report["targets"]}
    assert statuses["W2 PCA/σ=3/asymptotic schedule: QE ≤ XPySom's QE"] in ("PASS", "MISS")
    assert statuses["QE on 10⁶ rows: somtorch = MiniSom on the same weights"] == "PASS"
    assert statuses["QE qe busy: somtorch slowdown ≤ best peer's"] in ("PASS", "MISS")
    assert statuses["W2pca batch: epoch ≤ 1.2 × bare distance floor"] in ("PASS", "MISS")
    assert "Busy machine" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("variant", sorted(VARIANT_SWITCHES))
def test_variant_switches_name_a_somtorch_switch_and_its_environment_variable(variant: str) -> None:
    switch = VARIANT_SWITCHES[variant]
    try:
        module = importlib.import_module(switch.module)
    except ImportError as error:  # somtorch._fused_batch needs Triton
        pytest.skip(f"{switch.module} does not import here: {error}")
    assert hasattr(module, switch.attribute)
    assert f'os.environ.get("{switch.environment}"' in inspect.getsource(module)
