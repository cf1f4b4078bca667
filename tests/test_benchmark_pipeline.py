"""The main-job benchmark harness (benchmarks/pipeline.py): a 2,000-row run end to end, the block-wise file
writer against the generator's own output, the cache, the per-run peak RSS and the targets."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.pipeline import (ID_BLOCK_OFFSET, cached_file_path, cached_synthetic_file, measure_run, old_ref_checkout,
                                 parse_impls,
                                 parse_rows, size_targets, write_synthetic_rows)
from pipeline.sources.synthetic import write_synthetic

REPO_ROOT = Path(__file__).resolve().parents[1]
PIPELINE_STAGES = {"load", "clean", "features", "train", "evaluate", "cluster", "report", "write"}


def test_harness_runs_main_job_and_reports_ratio_and_stages(tmp_path: Path) -> None:
    out = tmp_path / "results" / "pipeline.json"
    command = [sys.executable, "benchmarks/pipeline.py", "--rows", "2000", "--cache", str(tmp_path / "cache"),
               "--override", "plots.enabled=false", "--out", str(out)]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(out.read_text())
    assert {"command", "machine", "revision", "impls", "overrides"} <= set(report["meta"])
    assert report["meta"]["impls"]["new"]["path"] == str(REPO_ROOT)
    (file_info,), (run,) = report["files"], report["runs"]
    on_disk = pd.read_csv(file_info["path"])
    assert file_info["rows"] == len(on_disk) == run["rows"]
    assert file_info["customers"] == round(2000 / 1.15) == on_disk["customerID"].nunique()
    assert len(file_info["pyarrow_read_times_s"]) == 3
    assert file_info["pyarrow_read_s"] == min(file_info["pyarrow_read_times_s"])
    assert run["impl"] == "new" and run["returncode"] == 0 and run["stopped"] is None
    assert PIPELINE_STAGES <= set(run["timings_s"]) and "plots" not in run["timings_s"]
    assert run["ratio_to_pyarrow_read"] == pytest.approx(run["wall_s"] / file_info["pyarrow_read_s"], rel=1e-12)
    assert run["wall_s"] >= sum(run["timings_s"].values())
    assert run["peak_rss_gb"] == pytest.approx(run["peak_rss_bytes"] / 1e9)
    assert report["targets"] == []  # 2,000 rows is none of the issue's sizes
    header = next(line for line in finished.stdout.splitlines() if line.startswith("| rows | impl |"))
    assert {"wall s", "× pyarrow read", "peak RSS GB", "cluster s"} <= {cell.strip() for cell in header.split("|")}
    assert f"| {run['rows']:,} | new | {run['wall_s']:.1f} |" in finished.stdout
    assert out.with_suffix(".md").read_text() in finished.stdout


def test_blocks_are_the_generators_files_with_disjoint_ids(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    description = write_synthetic_rows(path, rows=1000, seed=3, block_customers=400)  # 870 customers: 400, 400, 70
    assert (description["customers"], description["blocks"]) == (870, 3)
    expected = []
    for block, size in enumerate((400, 400, 70)):
        block_path, _ = write_synthetic(tmp_path / f"block{block}", n_customers=size, seed=30_000 + block,
                                        rows_per_customer="sample")
        frame = pd.read_csv(block_path, dtype=str, keep_default_na=False)
        number = frame["customerID"].str.removeprefix("BBID_").astype("int64") + block * ID_BLOCK_OFFSET
        expected.append(frame.assign(customerID="BBID_" + number.astype(str)))
    written = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(written, pd.concat(expected, ignore_index=True))
    assert description["rows"] == len(written)
    assert written["customerID"].nunique() == 870  # no customer shared between blocks
    assert not list(tmp_path.glob(".blocks-*")) and not list(tmp_path.glob(".big.csv.*"))


def test_cached_file_is_never_regenerated(tmp_path: Path) -> None:
    path, first = cached_synthetic_file(tmp_path, 300, seed=1)
    assert path == cached_file_path(tmp_path, 300, 1) and "rows300" in path.name and "seed1" in path.name
    assert first["cached"] is False
    stamp = path.stat().st_mtime_ns
    again, second = cached_synthetic_file(tmp_path, 300, seed=1)
    assert again == path and second["cached"] is True and path.stat().st_mtime_ns == stamp
    assert {k: v for k, v in second.items() if k != "cached"} == {k: v for k, v in first.items() if k != "cached"}


def test_peak_rss_is_that_runs_own(tmp_path: Path) -> None:
    allocate = [sys.executable, "-c", "block = b'x' * (400 * 2**20)"]  # 400 MiB, every byte written
    big = measure_run(tmp_path, allocate, tmp_path / "big")
    small = measure_run(tmp_path, [sys.executable, "-c", "pass"], tmp_path / "small")
    assert big["returncode"] == 0 and big["timings_s"] == {}
    assert big["peak_rss_bytes"] >= 400 * 2**20
    assert small["peak_rss_bytes"] < 100 * 2**20  # not the previous run's peak, nor the harness's


def test_failed_run_reports_exit_status_log_and_finished_stages(tmp_path: Path) -> None:
    script = "print('stage load took 2.50 s'); print('stage clean took 11.25 s'); raise SystemExit('no memory')"
    result = measure_run(tmp_path, [sys.executable, "-c", script], tmp_path / "bad")
    assert result["returncode"] == 1 and "no memory" in result["error_tail"]
    assert result["timings_s"] == {"load": 2.5, "clean": 11.25} and result["timings_from_log"]


def test_run_past_its_limits_is_stopped(tmp_path: Path) -> None:
    hog = [sys.executable, "-c", "import time; block = b'x' * (300 * 2**20); time.sleep(60)"]
    over = measure_run(tmp_path, hog, tmp_path / "hog", rss_limit_bytes=100 * 2**20)
    assert over["stopped"] == "rss_limit" and over["returncode"] == -9 and over["peak_rss_bytes"] >= 100 * 2**20
    late = measure_run(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "late", timeout_s=0.5)
    assert late["stopped"] == "timeout" and late["returncode"] == -9


def test_targets_pass_and_miss_by_the_issues_limits() -> None:
    def run(rows: int, ratio: float, gb: float) -> dict:
        return {"impl": "new", "rows": rows, "returncode": 0, "ratio_to_pyarrow_read": ratio, "peak_rss_gb": gb}

    targets = size_targets([run(10_000, 50.0, 0.5), run(1_000_000, 9.5, 1.2), run(10_000_000, 11.0, 2.0)])
    assert [(t["rows"], t["status"]) for t in targets] == [(1_000_000, "PASS"), (10_000_000, "MISS"), (None, "MISS")]
    assert targets[2]["measured"] == f"{2.0 / 1.2:.2f} ×"
    failed = {**run(10_000_000, 0.0, 1.5), "returncode": -9, "ratio_to_pyarrow_read": None}
    targets = size_targets([run(1_000_000, 5.0, 1.2), failed])
    assert [t["status"] for t in targets] == ["PASS", "MISS", "MISS"]  # 1.5 / 1.2 ≤ 1.5, but 10^7 did not finish
    assert targets[2]["measured"] == "≥ 1.25 × (a run did not complete)"


def test_old_ref_is_checked_out_once_then_reused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "train.py").write_text("VERSION = 1\n")
    subprocess.run(git + ["add", "train.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    subprocess.run(git + ["tag", "v1"], check=True)
    (repo / "train.py").write_text("VERSION = 2\n")
    subprocess.run(git + ["commit", "-qam", "two"], check=True)
    folder = old_ref_checkout("v1", tmp_path / "cache", repo=repo)
    assert folder == tmp_path / "cache" / "old-v1" and (folder / "train.py").read_text() == "VERSION = 1\n"
    assert old_ref_checkout("v1", tmp_path / "cache", repo=repo) == folder  # a second "worktree add" would fail
    assert parse_impls(f"old={folder}") == {"old": folder}


def test_parse_errors_name_the_option() -> None:
    assert parse_rows("1e4,2000,1.15e6") == [10_000, 2_000, 1_150_000]
    with pytest.raises(ValueError, match="--rows: 'ten'"):
        parse_rows("1e4,ten")
    with pytest.raises(ValueError, match="--rows: '0'"):
        parse_rows("0")
    assert parse_impls(None) == {"new": REPO_ROOT}
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_impls("new")
    with pytest.raises(ValueError, match="holds no train.py"):
        parse_impls(f"new={REPO_ROOT / 'tests'}")
