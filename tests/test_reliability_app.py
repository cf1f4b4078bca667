"""Issue 11 on the app side: unwritable outputs (class 4), too little data (6), stale staging folders (7a) and
failing fast (8), through ``pipeline.app.run.run``, ``segment.main`` and a few ``train.py`` subprocesses.

"Before any data is read" is checked by making the loader fail loudly if it is reached."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

import segment
import train
from pipeline.app import run as run_module
from pipeline.outputs.atomic import STALE_UNNAMED_STAGING_S, ensure_writable_dir, make_staging_dir, remove_stale_staging
from pipeline.app.run import run
from pipeline.segmentation.segmenter import CustomerSegmenter
from pipeline.sources.synthetic import generate
from tests.pipeline.test_run import assert_no_results, tiny_config

REPO = Path(__file__).resolve().parents[1]
QUICK = ("experiment=quick",)
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run_script(*arguments: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, *arguments], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=environment)


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if run() gets as far as reading data."""
    def load_transactions(*_: object, **__: object) -> None:
        raise AssertionError("data was loaded before the error was found")
    monkeypatch.setattr(run_module, "load_transactions", load_transactions)


def blocked_folders(tmp_path: Path) -> dict[str, Path]:
    """Output folders that cannot be created or written: a file in the way, a folder below a file."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder\n")
    return {"file in the way": a_file, "below a file": a_file / "out", "deep below a file": a_file / "x" / "y"}


# ----------------------------------------------------------------------------------- class 4: unwritable outputs
@pytest.mark.parametrize("case", ["file in the way", "below a file", "deep below a file"])
def test_run_finds_an_unwritable_output_folder_before_reading_data(case: str, tmp_path: Path, no_loading: None) -> None:
    output_dir = blocked_folders(tmp_path)[case]
    with pytest.raises(OSError, match=rf"output folder {output_dir} is not writable: Not a directory|File exists"):
        run(tiny_config(output_dir))


@pytest.mark.skipif(AS_ROOT, reason="root writes into read-only folders")
def test_run_finds_a_read_only_output_folder_before_reading_data(tmp_path: Path, no_loading: None) -> None:
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        with pytest.raises(OSError, match=rf"output folder {read_only / 'run'} is not writable: Permission denied"):
            run(tiny_config(read_only / "run"))
    finally:
        read_only.chmod(0o755)


def test_probe_leaves_a_writable_folder_empty(tmp_path: Path) -> None:
    assert ensure_writable_dir(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert list((tmp_path / "new" / "deep").iterdir()) == []


@pytest.mark.parametrize("case", ["file in the way", "below a file"])
def test_segment_cli_checks_its_output_folder_before_reading_the_model(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output_dir = blocked_folders(tmp_path)[case]
    absent = tmp_path / "absent.pt"  # reading it first would report "model file not found"
    assert segment.main([str(absent), str(tmp_path / "data.csv"), "--output-dir", str(output_dir)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"segment.py: error: OSError: output folder {output_dir} ")


def test_failure_record_into_an_unwritable_folder_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output_dir = blocked_folders(tmp_path)["below a file"]
    with caplog.at_level(logging.WARNING, logger="train"):
        train._write_failure_record(ValueError("the original error"), 1.5, output_dir)
    assert any("could not write" in record.getMessage() and "failure.json" in record.getMessage()
               for record in caplog.records)


def test_failure_record_is_written_where_it_can_be(tmp_path: Path) -> None:
    train._write_failure_record(ValueError("bad value"), 2.0, tmp_path)
    record = json.loads((tmp_path / "failure.json").read_text())
    assert (record["error_type"], record["error"], record["runtime_s"]) == ("ValueError", "bad value", 2.0)


@pytest.mark.parametrize("arguments, folder", [
    (["hydra.run.dir={blocked}/run"], "{blocked}/run"),
    (["-m", "hydra.sweep.dir={blocked}/sweep/${{now:%H}}"], "{blocked}/sweep/"),
    (["--multirun", "hydra.sweep.dir={blocked}"], "{blocked}"),
])
def test_train_names_a_run_folder_it_cannot_create(arguments: list[str], folder: str, tmp_path: Path) -> None:
    blocked = blocked_folders(tmp_path)["file in the way"]
    message = train.unwritable_run_folder_message([argument.format(blocked=blocked) for argument in arguments])
    assert message is not None and message.startswith(f"cannot create the run folder {folder.format(blocked=blocked)}:")
    assert f"{blocked} is not a folder" in message


def test_train_accepts_a_creatable_run_folder(tmp_path: Path) -> None:
    assert train.unwritable_run_folder_message([f"hydra.run.dir={tmp_path}/a/b/${{now:%H}}"]) is None
    assert train.unwritable_run_folder_message(["-m", f"hydra.sweep.dir={tmp_path}"]) is None


def test_train_cli_with_an_uncreatable_run_folder_exits_1_in_one_line(tmp_path: Path) -> None:
    blocked = blocked_folders(tmp_path)["file in the way"]
    completed = run_script("train.py", *QUICK, f"hydra.run.dir={blocked}/run")
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        f"train.py: error: cannot create the run folder {blocked}/run: {blocked} is not a folder"
    ]


def test_train_cli_with_an_unwritable_output_dir_reports_it_not_the_failure_record(tmp_path: Path) -> None:
    blocked = blocked_folders(tmp_path)["below a file"]
    completed = run_script("train.py", *QUICK, f"hydra.run.dir={tmp_path / 'run'}", f"paths.output_dir={blocked}")
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert lines == [f"train.py: error: OSError: output folder {blocked} is not writable: Not a directory"]
    assert "Traceback" not in completed.stdout + completed.stderr
    assert not (tmp_path / "run" / "result.csv").exists()


# -------------------------------------------------------------------------------- class 3 through train.py
def test_train_cli_reports_an_unreadable_data_file_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "transactions.csv.gz"
    data.write_text("customerID,DOB\n1,2\n")  # text, not gzip
    run_dir = tmp_path / "run"
    completed = run_script("train.py", "data=bigbazaar", f"data.path={data}", "plots.enabled=false",
                           f"hydra.run.dir={run_dir}")
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"train.py: error: ValueError: cannot read {data}: not a valid gzip")
    assert not (run_dir / "result.csv").exists() and (run_dir / "failure.json").is_file()


# -------------------------------------------------------------------------------- class 6: too little data
def first_customers(count: int, seed: int = 0) -> pd.DataFrame:
    """The rows of ``count`` customers of a synthetic table without dirt."""
    raw = generate(40, seed=seed, dirt="none").transactions  # clean rows: every customer stays a unit
    keep = raw["customerID"].drop_duplicates().iloc[:count]
    return raw[raw["customerID"].isin(keep)].reset_index(drop=True)


@pytest.mark.parametrize("customers, n_clusters", [(3, 8), (5, 6), (1, 2)])
def test_fewer_customers_than_clusters_stops_before_training(
    customers: int, n_clusters: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(*_: object) -> None:
        raise AssertionError("the SOM was trained")
    monkeypatch.setattr(CustomerSegmenter, "_train_som", no_training)
    raw = first_customers(customers)
    segmenter = CustomerSegmenter("customer", x=4, y=4, n_clusters=n_clusters, age_range=None, device="cpu")
    with pytest.raises(ValueError, match=rf"only (\d+) customer units for n_clusters={n_clusters}") as caught:
        segmenter.fit(raw)
    units = int(str(caught.value).split()[1])
    assert units == raw["customerID"].nunique() and units < n_clusters


def test_fewer_units_than_the_smallest_k_of_auto_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = first_customers(1)
    segmenter = CustomerSegmenter("customer", x=3, y=3, n_clusters="auto", k_range=(2, 5), age_range=None,
                                  device="cpu")
    with pytest.raises(ValueError, match=r"only 1 customer units for k_range starting at 2"):
        segmenter.fit(raw)


def test_run_with_fewer_customers_than_clusters_publishes_nothing(tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    with pytest.raises(ValueError, match=r"only \d+ customer units for n_clusters=8"):
        run(tiny_config(output_dir, data__n_customers=4, features__name="customer"))
    assert_no_results(output_dir)


def test_fewer_units_than_neurons_is_one_log_warning_and_no_python_warning(caplog: pytest.LogCaptureFixture) -> None:
    raw = first_customers(12, seed=1)
    segmenter = CustomerSegmenter("customer", x=5, y=5, iters=200, n_clusters=3, age_range=None, device="cpu")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        segmenter.fit(raw)
    neuron_warnings = [record for record in caplog.records if "units to train a 5×5 map of 25 neurons" in
                       record.getMessage()]
    assert len(neuron_warnings) == 1
    assert f"only {raw['customerID'].nunique()} customer units" in neuron_warnings[0].getMessage()
    assert not [warning for warning in caught if "neurons" in str(warning.message)]


# --------------------------------------------------------------------------- class 7a: stale staging folders
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_staging_folders_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f".staging-{dead_pid()}-abc123"
    live = tmp_path / f".staging-{os.getpid()}-def456"
    old_unnamed = tmp_path / ".staging-k2j4h5"
    fresh_unnamed = tmp_path / ".staging-q9w8e7"
    for folder in (dead, live, old_unnamed, fresh_unnamed):
        folder.mkdir()
        (folder / "result.csv").write_text("row_id\n0\n")
    long_ago = time.time() - STALE_UNNAMED_STAGING_S - 60
    os.utime(old_unnamed, (long_ago, long_ago))
    (tmp_path / "result.csv").write_text("published\n")
    assert remove_stale_staging(tmp_path) == sorted([dead, old_unnamed])
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([live.name, fresh_unnamed.name, "result.csv"])


def test_the_staging_folder_of_a_killed_process_is_removed_by_the_next_run(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from pipeline.outputs.atomic import make_staging_dir\n"
        "staging = make_staging_dir(sys.argv[1])\n"
        "(staging / 'result.csv').write_text('half written')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    leftovers = list(tmp_path.glob(".staging-*"))
    assert len(leftovers) == 1 and (leftovers[0] / "result.csv").is_file()
    run(tiny_config(tmp_path, som__iters=300))
    assert list(tmp_path.glob(".staging-*")) == [] and (tmp_path / "result.csv").is_file()


def test_a_staging_folder_names_its_process(tmp_path: Path) -> None:
    staging = make_staging_dir(tmp_path)
    assert staging.parent == tmp_path and staging.name.startswith(f".staging-{os.getpid()}-")
    assert remove_stale_staging(tmp_path) == [] and staging.is_dir()


# ---------------------------------------------------------------------------------------- class 8: fail fast
@pytest.mark.parametrize("section, key, value, message", [
    ("som", "mode", "online", r"mode='online' is not supported"),
    ("clustering", "method", "centroidal", r"linkage_method='centroidal' is not supported"),
    ("features", "name", "rfm", r"feature_set='rfm' is not supported"),
    ("objective", "name", "elbow", r"objective.name='elbow' is not supported"),
    ("device", "dtype", "float16", r"dtype='float16' is not supported"),
    ("device", "type", "tpu", r"device='tpu' is not"),
])
def test_bad_options_are_answered_before_any_data_is_read(
    section: str, key: str, value: str, message: str, tmp_path: Path, no_loading: None
) -> None:
    output_dir = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        run(tiny_config(output_dir, **{f"{section}__{key}": value}))
    assert not output_dir.exists()


@NO_CUDA
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_answered_before_any_data_is_read(device: str, tmp_path: Path, no_loading: None) -> None:
    with pytest.raises(RuntimeError, match=rf"device='{device}' was requested but CUDA is not available"):
        run(tiny_config(tmp_path / "out", device__type=device))
    assert not (tmp_path / "out").exists()


@NO_CUDA
def test_segment_with_cuda_without_cuda_says_so_not_broken_file(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        CustomerSegmenter.load(model, device="cuda")


@NO_CUDA
def test_train_cli_answers_cuda_and_misspelt_keys_before_reading_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    common = ("data=bigbazaar", f"data.path={broken}")
    cuda = run_script("train.py", *common, "device=cuda", f"hydra.run.dir={tmp_path / 'cuda'}")
    misspelt = run_script("train.py", *common, "+som.sigmaa=2", f"hydra.run.dir={tmp_path / 'key'}")
    assert cuda.returncode == misspelt.returncode == 1
    cuda_lines, key_lines = cuda.stderr.strip().splitlines(), misspelt.stderr.strip().splitlines()
    assert len(cuda_lines) == 1 and "CUDA is not available" in cuda_lines[0] and str(broken) not in cuda_lines[0]
    assert len(key_lines) == 1 and "unknown configuration key 'som.sigmaa'" in key_lines[0]
    assert not (tmp_path / "cuda" / "result.csv").exists() and not (tmp_path / "key" / "result.csv").exists()
