"""Issue 9, item 5: ``train.py`` answers --help, --cfg job and configuration errors without the heavy stack, and
reports a missing input file or an uncreatable run folder before the pipeline is imported.

Each case runs ``python -X importtime train.py ...`` in a subprocess and reads, from the import log on stderr,
which modules the process imported. No test measures seconds: which modules load is what decides the start time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import train

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# The packages (and the pipeline module) that take seconds to import; none may load before a run starts.
HEAVY_MODULES = ("torch", "matplotlib", "sklearn", "scipy", "pandas", "polars", "pipeline.app.run")
IMPORT_LOG_PREFIX = "import time:"
HELP_EXAMPLES = (
    "python train.py ",
    "python train.py data=bigbazaar data.path=",
    "python train.py -m som.sigma=1,3 som.x=10,15",
)


def run_train(*arguments: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime train.py *arguments``; return the process (stderr without the import log)
    and the names of every module it imported."""
    environment = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    completed = subprocess.run([sys.executable, "-X", "importtime", "train.py", *arguments], cwd=REPO,
                               capture_output=True, text=True, timeout=120, env=environment)
    log = [line for line in completed.stderr.splitlines() if line.startswith(IMPORT_LOG_PREFIX)]
    # "import time: <self us> | <cumulative us> | <indented module name>"; the first line is the column header
    imported = {line.rsplit("|", 1)[1].strip() for line in log[1:]}
    completed.stderr = "\n".join(line for line in completed.stderr.splitlines()
                                 if not line.startswith(IMPORT_LOG_PREFIX))
    assert "hydra" in imported and "pipeline.app.config_schema" in imported, "the import log was not parsed"
    return completed, imported


def heavy_imports(imported: set[str]) -> list[str]:
    """The modules of ``HEAVY_MODULES`` (or their submodules) among ``imported``."""
    return sorted(name for name in imported if any(name == heavy or name.startswith(f"{heavy}.")
                                                   for heavy in HEAVY_MODULES))


def config_groups() -> dict[str, list[str]]:
    """The app's config groups and their options, read from the ``configs/`` folders (Hydra's own excluded)."""
    return {folder.name: sorted(path.stem for path in folder.glob("*.yaml"))
            for folder in sorted(CONFIGS.iterdir()) if folder.is_dir() and folder.name != "hydra"}


def test_help_describes_the_app_its_groups_and_examples_without_heavy_imports() -> None:
    completed, imported = run_train("--help")
    assert completed.returncode == 0, completed.stderr
    text = completed.stdout
    assert "Self-Organizing Map" in text and "README.md" in text
    for example in HELP_EXAMPLES:
        assert example in text
    groups = config_groups()
    assert {"data", "som", "device", "clustering", "features"} <= groups.keys()
    for group, options in groups.items():
        assert f"{group}: {', '.join(options)}" in text.splitlines()
    som_defaults = yaml.safe_load((CONFIGS / "som" / "default.yaml").read_text())
    assert f"  sigma: {som_defaults['sigma']}" in text.splitlines()  # $CONFIG: the composed configuration
    assert heavy_imports(imported) == []


def test_cfg_job_prints_the_composed_config_without_heavy_imports() -> None:
    completed, imported = run_train("--cfg", "job", "som.x=7", "data=bigbazaar")
    assert completed.returncode == 0, completed.stderr
    printed = yaml.safe_load(completed.stdout)
    som_defaults = yaml.safe_load((CONFIGS / "som" / "default.yaml").read_text())
    data_option = yaml.safe_load((CONFIGS / "data" / "bigbazaar.yaml").read_text())
    assert printed["som"]["x"] == 7 and printed["som"]["y"] == som_defaults["y"]
    assert printed["data"]["source"] == data_option["source"] == "file"
    assert heavy_imports(imported) == []


def test_a_misspelt_key_is_named_without_heavy_imports() -> None:
    completed, imported = run_train("som.sigmaa=2")
    assert completed.returncode == 1
    assert "som.sigmaa" in completed.stderr and "Traceback" not in completed.stderr
    assert heavy_imports(imported) == []


def test_an_added_unknown_key_is_one_line_without_heavy_imports(tmp_path: Path) -> None:
    completed, imported = run_train("+som.sigmaa=2", f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train.py: error: ")
    assert "unknown configuration key 'som.sigmaa'" in lines[0]
    assert heavy_imports(imported) == []


def test_a_missing_input_file_is_reported_before_the_pipeline_is_imported(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    run_dir = tmp_path / "run"
    completed, imported = run_train("data=bigbazaar", f"data.path={missing}", f"hydra.run.dir={run_dir}")
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        f"train.py: error: FileNotFoundError: input table not found: {missing}"
    ]
    assert heavy_imports(imported) == []
    assert json.loads((run_dir / "failure.json").read_text())["error_type"] == "FileNotFoundError"
    assert not (run_dir / "result.csv").exists()


def test_an_existing_input_file_passes_the_early_check(tmp_path: Path) -> None:
    present = tmp_path / "present.csv"
    present.write_text("customerID\n1\n")
    config = {"data": {"source": "file", "path": str(present)}}
    train.check_input_exists(config)  # the loader, not this check, judges the file's content
    train.check_input_exists({"data": {"source": "synthetic", "path": None}})
    with pytest.raises(FileNotFoundError, match=f"input table not found: {tmp_path / 'absent.csv'}"):
        train.check_input_exists({"data": {"source": "file", "path": str(tmp_path / "absent.csv")}})


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_run_folder_in_proc_is_refused_even_as_root_without_heavy_imports() -> None:
    # root passes os.access(W_OK) on /proc, yet nothing can be created there
    completed, imported = run_train("hydra.run.dir=/proc/somtorch-run")
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "train.py: error: cannot create the run folder /proc/somtorch-run: /proc is not writable: ")
    assert heavy_imports(imported) == []


def test_the_run_folder_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    assert train.unwritable_run_folder_message([f"hydra.run.dir={tmp_path}/new/run"]) is None
    assert list(tmp_path.iterdir()) == []
