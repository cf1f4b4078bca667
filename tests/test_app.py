"""The Hydra app end to end: subprocess runs of train.py and segment.py on tiny configs, and the sweep summary.

Runs write into tmp_path through ``hydra.run.dir`` / ``hydra.sweep.dir``. References are independent of the code
under test: the contract's formulas (objective = QE + TE), the seed author's own cleaned file, a second pass over
the same synthetic rows, and hand-made job folders for the summary.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from pipeline.app.hydra_callbacks import SweepSummaryCallback
from pipeline.app.sweep_summary import (
    BEST_GID,
    build_summary,
    parse_overrides,
    summary_figure,
    swept_parameters,
    write_sweep_summary,
)
from pipeline.sources.synthetic import write_synthetic

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # ../shared/data beside the repo root
SEED_FILE = SHARED_DATA / "bigbazaar_skrohit" / "cproducts.csv"
SEED_CLEANED = SHARED_DATA / "bigbazaar_skrohit" / "cleaned_cproducts.csv"
OPTUNA_INSTALLED = importlib.util.find_spec("hydra_plugins") is not None and (
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
)
QUICK = ("experiment=quick",)  # 300 synthetic customers, 6 x 6 map, 500 updates, 4 clusters
RUN_OUTPUTS = (
    "result.csv", "dropped_rows.csv", "cluster_profiles.csv", "segments.csv", "k_selection.csv", "customers.csv",
    "metrics.json", "model.pt", "report.html", "train.log", ".hydra/config.yaml", ".hydra/overrides.yaml",
    "plots/u_matrix.png", "plots/dendrogram.png", "plots/dendrogram_truncated.png", "plots/cluster_map.png",
    "plots/component_planes.png", "plots/k_selection.png",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_script(script: str, *arguments: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python <script> <arguments>`` from the repo root, as a user would type it; output captured."""
    environment = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, script, *arguments], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env=environment,
    )


def read_metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    """One default-shaped run (plots on) of the quick experiment; returns its run folder."""
    run_dir = tmp_path_factory.mktemp("quick") / "run"
    completed = run_script("train.py", *QUICK, f"hydra.run.dir={run_dir}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    (run_dir / "stdout.txt").write_text(completed.stdout)
    return run_dir


def test_a_single_run_writes_every_output_into_its_run_folder(quick_run):
    missing = [name for name in RUN_OUTPUTS if not (quick_run / name).is_file()]
    assert not missing
    for png in (quick_run / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == PNG_SIGNATURE
    metrics = read_metrics(quick_run)
    assert metrics["objective"] == pytest.approx(metrics["quantization_error"] + 1.0 * metrics["topographic_error"])
    result = pd.read_csv(quick_run / "result.csv")
    dropped = pd.read_csv(quick_run / "dropped_rows.csv")
    assert len(result) + len(dropped) == metrics["rows_in"]
    assert sorted(result["cluster"].unique()) == list(range(4))
    assert ((result["bmu_i"] >= 0) & (result["bmu_i"] < 6) & (result["bmu_j"] >= 0) & (result["bmu_j"] < 6)).all()
    assert "objective qe_te" in (quick_run / "train.log").read_text()
    assert not list(quick_run.glob("failure.json"))


def test_a_single_run_ends_by_printing_the_segment_names(quick_run):
    segments = pd.read_csv(quick_run / "segments.csv")
    printed = (quick_run / "stdout.txt").read_text()
    tail = printed[printed.index(" segments of "):]
    for name in segments["name"]:
        assert name in tail
    assert str(quick_run / "report.html") in tail


def test_scoring_cli_segments_new_rows_like_the_training_run(quick_run, tmp_path):
    # The quick run trained on generate(300, seed=0); the same rows written to CSV and scored again must land
    # on the same neurons and clusters (same cleaning, encoding and scaling).
    transactions, _ = write_synthetic(tmp_path / "data", n_customers=300, seed=0, rows_per_customer="history")
    completed = run_script("segment.py", str(quick_run / "model.pt"), str(transactions), "--output-dir", str(tmp_path / "scored"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout)
    segments = pd.read_csv(tmp_path / "scored" / "scored_rows.csv")
    dropped = pd.read_csv(tmp_path / "scored" / "dropped_rows.csv")
    n_input = len(pd.read_csv(transactions))
    assert len(segments) + len(dropped) == n_input == summary["rows_in"]
    trained = pd.read_csv(quick_run / "result.csv")
    joined = segments.merge(trained[["row_id", "bmu_i", "bmu_j", "cluster"]], on="row_id", suffixes=("", "_trained"))
    assert len(joined) == len(segments) == len(trained)
    for column in ("bmu_i", "bmu_j", "cluster"):
        assert (joined[column] == joined[f"{column}_trained"]).all(), column
    assert summary["cluster_sizes"] == np.bincount(segments["cluster"], minlength=4).tolist()


def test_scoring_cli_reports_a_missing_model_in_one_line(tmp_path, capsys):
    import segment

    assert segment.main([str(tmp_path / "nope.pt"), str(tmp_path / "new.csv")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"segment.py: error: FileNotFoundError: model file not found: {tmp_path / 'nope.pt'}"
    ]


def test_a_2x2_sweep_runs_every_job_and_lists_a_failure(tmp_path):
    # 4 x 6 = 24 neurons cannot hold 30 clusters: exactly one job fails, the other three still run.
    sweep_dir = tmp_path / "sweep"
    completed = run_script(
        "train.py", "-m", *QUICK, "plots.enabled=false", "som.x=4,6", "clustering.n_clusters=3,30",
        "clustering.min_segment_share=0",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert completed.returncode == 1, "a failed job makes the sweep exit with status 1"
    assert completed.stderr.strip().splitlines()[-1].startswith("train.py: error: 1 of 4 sweep jobs failed")
    assert sorted(path.name for path in sweep_dir.iterdir() if path.is_dir()) == ["0", "1", "2", "3"]
    summary = pd.read_csv(sweep_dir / "sweep_summary.csv")
    assert summary["job"].tolist() == [0, 1, 2, 3]
    assert summary["som.x"].tolist() == [4, 4, 6, 6]
    assert summary["clustering.n_clusters"].tolist() == [3, 30, 3, 30]
    failed = summary[summary["status"] == "failed"]
    assert failed["job"].tolist() == [1]
    assert "n_clusters=30" in failed["error"].iloc[0]
    assert (sweep_dir / "1" / "failure.json").is_file() and not (sweep_dir / "1" / "metrics.json").exists()
    for _, row in summary[summary["status"] == "ok"].iterrows():
        metrics = read_metrics(sweep_dir / str(row["job"]))
        assert row["quantization_error"] == pytest.approx(metrics["quantization_error"])
        assert row["topographic_error"] == pytest.approx(metrics["topographic_error"])
        assert json.loads(row["cluster_sizes"]) == metrics["cluster_sizes"]["rows"]
        assert len(json.loads(row["cluster_sizes"])) == row["clustering.n_clusters"]
        assert row["runtime_s"] > 0
    ok = summary[summary["status"] == "ok"]
    assert summary.loc[summary["best"], "job"].tolist() == [ok.loc[ok["objective"].idxmin(), "job"]]
    assert (sweep_dir / "sweep_summary.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_exits_with_one_clear_line(tmp_path):
    completed = run_script("train.py", *QUICK, "device=cuda", f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("train.py: error: RuntimeError:") and "CUDA is not available" in lines[0]
    assert "Traceback" not in completed.stdout + completed.stderr
    assert json.loads((tmp_path / "run" / "failure.json").read_text())["error_type"] == "RuntimeError"


@pytest.mark.skipif(not SEED_FILE.is_file(), reason="../shared/data (the seed's Big Bazaar file) is absent")
def test_seed_reproduction_on_the_real_file_matches_the_authors_cleaned_rows(tmp_path):
    run_dir = tmp_path / "run"
    completed = run_script(
        "train.py", "experiment=seed_reproduction", "som.iters=500", "plots.enabled=false", f"hydra.run.dir={run_dir}"
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    metrics = read_metrics(run_dir)
    # SEED_PIPELINE.md: 11,972 input rows; 11,132 left after the author's cleaning (NaN Age rows dropped).
    assert (metrics["rows_in"], metrics["rows_clustered"]) == (11_972, 11_132)
    assert metrics["features"][:3] == ["customerID", "Gender", "PinCode"] and len(metrics["features"]) == 13
    result = pd.read_csv(run_dir / "result.csv").sort_values("row_id").reset_index(drop=True)
    authors = pd.read_csv(SEED_CLEANED).dropna(subset=["Age"]).reset_index(drop=True)
    for column in ("customerID", "Age", "Week", "Month", "promo_code", "product_code", "sale_price_after_promo"):
        np.testing.assert_allclose(result[column].to_numpy(float), authors[column].to_numpy(float), err_msg=column)
    assert sum(metrics["cluster_sizes"]["rows"]) == 11_132 and len(metrics["cluster_sizes"]["rows"]) == 8


@pytest.mark.slow
def test_a_sweep_with_the_joblib_launcher(tmp_path):
    sweep_dir = tmp_path / "sweep"
    completed = run_script(
        "train.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *QUICK, "plots.enabled=false",
        "som.sigma=0.5,1", f"hydra.sweep.dir={sweep_dir}",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = pd.read_csv(sweep_dir / "sweep_summary.csv")
    assert summary["status"].tolist() == ["ok", "ok"]
    assert summary["som.sigma"].tolist() == [0.5, 1.0]
    for _, row in summary.iterrows():
        assert row["objective"] == pytest.approx(read_metrics(sweep_dir / str(row["job"]))["objective"])


@pytest.mark.slow
@pytest.mark.skipif(not OPTUNA_INSTALLED, reason="hydra-optuna-sweeper not installed (pip install -r requirements-sweep.txt)")
def test_optuna_search_reports_the_best_trial(tmp_path):
    sweep_dir = tmp_path / "sweep"
    completed = run_script(
        "train.py", "hparams_search=som_optuna", *QUICK, "plots.enabled=false", "hydra.sweeper.n_trials=3",
        "som.iters=300", f"hydra.sweep.dir={sweep_dir}",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"som.sigma", "som.learning_rate", "som.x"}, "som.iters was fixed"
    summary = pd.read_csv(sweep_dir / "sweep_summary.csv")
    assert len(summary) == 3 and (summary["status"] == "ok").all()
    assert best["best_value"] == pytest.approx(summary["objective"].min())
    for _, row in summary.iterrows():
        som = read_metrics(sweep_dir / str(row["job"]))["config"]["som"]
        assert som["y"] == som["x"] == row["som.x"], "square maps: som.y follows som.x"


def test_optuna_request_without_the_plugin_gives_the_install_line(monkeypatch):
    import train

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    assert train.missing_plugin_message(["hparams_search=som_optuna", "som.x=8"]) == train.OPTUNA_INSTALL_HINT
    assert "pip install -r requirements-sweep.txt" in train.OPTUNA_INSTALL_HINT
    assert train.missing_plugin_message(["hydra/sweeper=optuna"]) == train.OPTUNA_INSTALL_HINT
    assert train.missing_plugin_message(["som.x=8", "hparams_search=null"]) is None


def test_a_launcher_without_its_plugin_gives_the_install_line(monkeypatch):
    import train

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    assert "pip install -r requirements-cluster.txt" in train.missing_plugin_message(["-m", "hydra/launcher=slurm"])
    assert ".[ray]" in train.missing_plugin_message(["-m", "hydra/launcher=ray_cluster"])
    assert train.missing_plugin_message(["-m", "hydra/launcher=joblib"]) is None  # in requirements.txt


# ---------------------------------------------------------------- the sweep summary, on hand-made job folders
def make_job(folder: Path, number: int, overrides: list[str], *, metrics: dict | None = None,
             failure: dict | None = None) -> Path:
    """A job folder as Hydra and train.py leave it: .hydra/{overrides,hydra}.yaml plus metrics or failure JSON."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": number}}}))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if failure is not None:
        (folder / "failure.json").write_text(json.dumps(failure))
    return folder


def job_metrics(qe: float, te: float, sizes: list[int]) -> dict:
    return {"quantization_error": qe, "topographic_error": te, "objective": qe + te, "n_clusters": len(sizes),
            "cluster_sizes": {"rows": sizes}, "timings_s": {"train": 1.5, "plots": 0.25}}


def test_summary_has_one_row_per_job_with_its_status(tmp_path):
    # Folder names deliberately disagree with job numbers: the number comes from .hydra/hydra.yaml.
    make_job(tmp_path / "b", 0, ["som.sigma=0.5", "som.x=8"], metrics=job_metrics(1.0, 0.25, [3, 2]))
    make_job(tmp_path / "a", 1, ["som.sigma=1", "som.x=8"],
             failure={"error_type": "ValueError", "error": "bad sigma", "runtime_s": 0.5})
    make_job(tmp_path / "c", 2, ["som.sigma=2", "som.x=8"])  # killed: neither metrics nor failure
    summary = build_summary(tmp_path)
    assert summary["job"].tolist() == [0, 1, 2]
    assert summary["status"].tolist() == ["ok", "failed", "failed"]
    assert summary["error"].iloc[1] == "ValueError: bad sigma"
    assert "no metrics.json" in summary["error"].iloc[2]
    assert summary["objective"].iloc[0] == 1.25 and math.isnan(summary["objective"].iloc[1])
    assert summary["cluster_sizes"].iloc[0] == "[3, 2]"
    assert summary["runtime_s"].tolist()[:2] == [1.75, 0.5]
    assert summary["overrides"].iloc[0] == "som.sigma=0.5 som.x=8"
    assert swept_parameters(summary) == ["som.sigma"]


def test_callback_writes_the_summary_and_exits_1_on_failures(tmp_path):
    make_job(tmp_path / "0", 0, ["som.x=8"], metrics=job_metrics(1.0, 0.0, [5]))
    make_job(tmp_path / "1", 1, ["som.x=10"], failure={"error_type": "RuntimeError", "error": "boom"})
    config = {"hydra": {"sweep": {"dir": str(tmp_path)}}}
    with pytest.raises(SystemExit, match="1 of 2 sweep jobs failed"):
        SweepSummaryCallback().on_multirun_end(OmegaConf.create(config))
    assert len(pd.read_csv(tmp_path / "sweep_summary.csv")) == 2
    (tmp_path / "sweep_summary.csv").unlink()
    SweepSummaryCallback(fail_on_error=False).on_multirun_end(OmegaConf.create(config))
    assert (tmp_path / "sweep_summary.csv").is_file() and (tmp_path / "sweep_summary.png").is_file()


def test_summary_of_an_empty_sweep_has_the_header_only(tmp_path):
    written = write_sweep_summary(tmp_path)
    assert (written.n_jobs, written.n_failed) == (0, 0)
    assert pd.read_csv(written.csv_path).columns[:3].tolist() == ["job", "overrides", "status"]


def test_parse_overrides_handles_appends_and_deletions():
    assert parse_overrides(["+extra=1", "~gone", "som.x=8", "data.path=a=b.csv"]) == {
        "extra": "1", "som.x": "8", "data.path": "a=b.csv"
    }


def make_sigma_sweep(folder: Path, objectives: dict[float, float], *, x_values=(8, 10)) -> None:
    """Jobs over som.sigma × som.x whose objective is ``objectives[sigma]`` + 0.01 × the distance (in steps) of
    som.x from the middle of ``x_values`` (ties go to the first job)."""
    number = 0
    middle = (len(x_values) - 1) / 2
    for sigma, objective in objectives.items():
        for step, x in enumerate(x_values):
            qe = objective + 0.01 * abs(step - middle)
            make_job(folder / str(number), number, [f"som.sigma={sigma:g}", f"som.x={x}"],
                     metrics=job_metrics(qe, 0.0, [3, 2]))
            number += 1


def test_summary_marks_the_best_job_in_the_csv_and_the_plot(tmp_path):
    make_job(tmp_path / "0", 0, ["som.sigma=0.5"], metrics=job_metrics(0.75, 0.25, [3, 2]))
    make_job(tmp_path / "1", 1, ["som.sigma=1"], metrics=job_metrics(0.5, 0.125, [3, 2]))
    make_job(tmp_path / "2", 2, ["som.sigma=2"], failure={"error_type": "ValueError", "error": "bad"})
    make_job(tmp_path / "3", 3, ["som.sigma=3"], metrics=job_metrics(0.625, 0.0, [3, 2]))  # ties job 1: later loses
    written = write_sweep_summary(tmp_path)
    summary = pd.read_csv(written.csv_path)
    assert summary["best"].tolist() == [False, True, False, False]
    assert written.best_job == 1
    fig = summary_figure(build_summary(tmp_path))
    stars = [c for ax in fig.axes for c in ax.collections if c.get_gid() == BEST_GID]
    assert len(stars) == 3, "one star per metric panel"
    metrics = {"quantization error": 0.5, "topographic error": 0.125, "objective": 0.625}
    for star in stars:
        ax = star.axes
        np.testing.assert_allclose(star.get_offsets(), [[1.0, metrics[ax.get_ylabel()]]])
    assert "best: job 1 (objective 0.625" in fig.get_suptitle()


def test_summary_of_failed_jobs_only_has_no_best(tmp_path):
    make_job(tmp_path / "0", 0, ["som.x=8"], failure={"error_type": "RuntimeError", "error": "boom"})
    written = write_sweep_summary(tmp_path)
    assert written.best_job is None and not pd.read_csv(written.csv_path)["best"].any()


def test_best_value_at_the_edge_of_the_values_tried_is_warned_about(tmp_path, caplog):
    # som.sigma: best at the largest of three values tried; som.x: two values only, so no edge to judge.
    make_sigma_sweep(tmp_path, {0.5: 1.0, 1.0: 0.8, 2.0: 0.5})
    with caplog.at_level("WARNING", logger="pipeline.app.sweep_summary"):
        written = write_sweep_summary(tmp_path)
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "som.sigma=2, at the upper edge of the searched range [0.5, 2] (tried)" in warnings[0]
    assert list(written.edge_notes) == ["som.sigma"]
    fig = summary_figure(build_summary(tmp_path), notes=written.edge_notes)
    assert fig.axes[0].get_title() == "som.sigma: best at the edge of the range"
    assert "som.sigma=2" in fig.get_supxlabel()


def test_best_value_inside_the_range_is_not_warned_about(tmp_path, caplog):
    make_sigma_sweep(tmp_path, {0.5: 1.0, 1.0: 0.4, 2.0: 0.5}, x_values=(6, 8, 10))
    with caplog.at_level("WARNING", logger="pipeline.app.sweep_summary"):
        written = write_sweep_summary(tmp_path)
    assert written.edge_notes == {} and not [r for r in caplog.records if r.levelname == "WARNING"]
    assert written.best_job == 4  # sigma 1, som.x 8


def test_edge_is_judged_against_the_declared_search_range(tmp_path, caplog):
    # The basic sweeper declared som.sigma=0.5,1,2,4 (the sigma=4 jobs never ran): best sigma 2 is inside it,
    # while som.x=range(6,12,2) puts the best som.x=6 at the lower edge.
    make_sigma_sweep(tmp_path, {0.5: 1.0, 1.0: 0.8, 2.0: 0.5}, x_values=(6, 8))
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["som.sigma=0.5,1,2,4", "som.x=range(6,12,2)", "seed=3"]},
                   "sweeper": {"params": None}}}
    ))
    with caplog.at_level("WARNING", logger="pipeline.app.sweep_summary"):
        written = write_sweep_summary(tmp_path)
    assert list(written.edge_notes) == ["som.x"]
    assert "som.x=6, at the lower edge of the searched range [6, 10] (declared)" in caplog.text


def test_edge_of_an_optuna_interval_is_read_from_the_jobs_hydra_settings(tmp_path, caplog):
    # Optuna declares its space in hydra.sweeper.params of every job; 2 is within 5% of the interval's end.
    make_sigma_sweep(tmp_path, {0.5: 1.0, 1.0: 0.8, 2.0: 0.5})
    for job in range(6):
        settings = {"hydra": {"job": {"num": job}, "overrides": {"task": []},
                              "sweeper": {"params": {"som.sigma": "interval(0.1, 2.05)", "som.x": "choice(8, 10)"}}}}
        (tmp_path / str(job) / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(settings))
    with caplog.at_level("WARNING", logger="pipeline.app.sweep_summary"):
        written = write_sweep_summary(tmp_path)
    assert list(written.edge_notes) == ["som.sigma"]
    assert "upper edge of the searched range [0.1, 2.05] (declared)" in caplog.text
