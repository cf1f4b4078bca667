"""The README's commands keep working: they are read from README.md itself, so an edit there is tested here.

- the quick-start `python train.py` and the segment.py example run for real (subprocess, tiny overrides appended);
- every other `python train.py ...` command composes (hydra.compose, sweeps reduced to their first value);
- the test command is exactly what .ci/run runs; the Python example runs; the pictures exist and are small.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import open_dict

from pipeline.app.config_schema import check_known_keys, register_configs

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHARED_DATA = REPO.parent / "shared" / "data"  # ../shared/data beside the repo root
OPTUNA_INSTALLED = importlib.util.find_spec("hydra_plugins") is not None and (
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
)
# hydra/launcher options that come from a plugin (requirements-cluster.txt): composed only where it is installed
LAUNCHER_PLUGINS = {"slurm": "hydra_plugins.hydra_submitit_launcher", "local_jobs": "hydra_plugins.hydra_submitit_launcher",
                    "ray_cluster": "hydra_plugins.hydra_ray_launcher"}
TINY = ("experiment=quick", "plots.enabled=false")  # appended to README commands that really run
MAX_PICTURE_BYTES = 150_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sections() -> dict[str, str]:
    """README text by '## ' heading."""
    parts = re.split(r"^## (.+)$", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def commands(text: str) -> list[str]:
    """Every command line of the ```bash blocks of ``text`` (comment lines skipped)."""
    return [line.strip() for block in code_blocks(text, "bash") for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def train_commands() -> list[str]:
    """The README commands that run train.py: directly, or through a launcher (torchrun, srun)."""
    return [command for command in commands(README.read_text(encoding="utf-8")) if "train.py" in shlex.split(command)]


def train_arguments(command: str) -> list[str]:
    """The arguments given to train.py in ``command`` (after a launcher's own options)."""
    arguments = shlex.split(command)
    return arguments[arguments.index("train.py") + 1:]


def run_command(arguments: list[str]) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, *arguments[1:]], cwd=REPO, capture_output=True, text=True, timeout=300, env=environment
    )


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """Sweep overrides (``som.x=8,10``) reduced to their first value, so one job's config can be composed."""
    reduced = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            reduced.append(f"{override.get_key_element()}={next(override.sweep_string_iterator())}")
        else:
            reduced.append(override.input_line)
    return reduced


def test_quick_start_is_install_then_train_then_the_ci_test_command():
    quick_start = commands(sections()["Quick start"])
    assert quick_start == [
        "pip install torch==2.13.0 && pip install -r requirements.txt && pip install -e . && python train.py",
        "python -m pytest -q",
    ]
    ci_script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "torch==2.13.0" in ci_script and "-r requirements.txt" in ci_script
    assert ci_script.strip().splitlines()[-1] == quick_start[1]
    assert (REPO / "requirements.txt").is_file() and (REPO / "pyproject.toml").is_file()


def test_quick_start_training_and_the_scoring_example_run(tmp_path):
    train_line = commands(sections()["Quick start"])[0].split(" && ")[-1]
    run_dir = tmp_path / "run"
    completed = run_command([*shlex.split(train_line), *TINY, f"hydra.run.dir={run_dir}"])
    assert completed.returncode == 0, completed.stderr[-3000:]
    for name in ("result.csv", "dropped_rows.csv", "cluster_profiles.csv", "metrics.json", "model.pt", "train.log"):
        assert (run_dir / name).is_file(), name

    train_demo, segment_demo = commands(sections()["Segmenting new data with a trained model"])
    assert train_demo == "python train.py hydra.run.dir=outputs/demo"
    segment_arguments = [argument.replace("outputs/demo", str(run_dir)) for argument in shlex.split(segment_demo)]
    data_path = REPO / segment_arguments[3]
    if not data_path.is_file():
        pytest.skip(f"{segment_arguments[3]} is absent")
    completed = run_command(segment_arguments)
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout)
    assert summary["rows_in"] == summary["rows_segmented"] + summary["rows_dropped"]
    assert (run_dir / "scored" / "scored_rows.csv").is_file() and (run_dir / "scored" / "dropped_rows.csv").is_file()


@pytest.mark.parametrize("command", train_commands())
def test_every_train_command_composes(command):
    arguments = train_arguments(command)
    if "--cfg" in arguments:
        arguments = arguments[: arguments.index("--cfg")]
    overrides = first_of_each_sweep([argument for argument in arguments if argument not in ("-m", "...")])
    if any(override.startswith("hparams_search=") for override in overrides) and not OPTUNA_INSTALLED:
        pytest.skip("hydra-optuna-sweeper not installed")
    launcher = next((override.split("=", 1)[1] for override in overrides if override.startswith("hydra/launcher=")), None)
    plugin = LAUNCHER_PLUGINS.get(launcher)
    if plugin and not (importlib.util.find_spec("hydra_plugins") and importlib.util.find_spec(plugin)):
        pytest.skip(f"{plugin} not installed")
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        del cfg["hydra"]
    check_known_keys(cfg)
    data_path = cfg.data.path
    example = not isinstance(data_path, str) or glob.has_magic(data_path) or Path(data_path).is_absolute()
    if data_path and not example and SHARED_DATA.is_dir():  # globs and absolute paths stand for the user's files
        assert (REPO / data_path).is_file(), f"{command}: {data_path} does not exist"


def test_every_readme_command_is_tested_or_names_an_existing_file():
    for command in commands(README.read_text(encoding="utf-8")):
        program = shlex.split(command)[:2]
        launched = program[0] in ("torchrun", "srun") and command in train_commands()  # composed by the test above
        assert launched or program in (["python", "train.py"], ["python", "segment.py"], ["python", "-m"],
                                       ["pip", "install"]), command
        if program == ["pip", "install"]:
            requirement_files = re.findall(r"-r (\S+)", command)
            assert all((REPO / name).is_file() for name in requirement_files), command
    sweep_requirements = (REPO / "requirements-sweep.txt").read_text(encoding="utf-8")
    assert "hydra-optuna-sweeper" in sweep_requirements


def test_the_library_example_runs(tmp_path, monkeypatch):
    (example,) = code_blocks(sections()["The library in ten lines"], "python")
    assert len(example.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    som = namespace["som"]
    assert namespace["cells"].shape == (5000, 2)
    assert namespace["u_matrix"].shape == (10, 10) and namespace["u_matrix"].max() == pytest.approx(1.0)
    assert (tmp_path / "som.pt").is_file()
    restored = type(som).load(tmp_path / "som.pt")
    assert (restored.get_weights() == som.get_weights()).all()


def test_readme_pictures_are_committed_small_pngs():
    pictures = re.findall(r"\]\((docs/[\w.]+\.png)\)", README.read_text(encoding="utf-8"))
    assert len(pictures) >= 2
    for picture in pictures:
        content = (REPO / picture).read_bytes()
        assert content[:8] == PNG_SIGNATURE and len(content) < MAX_PICTURE_BYTES, picture


def test_coming_from_minisom_section_is_the_docs_page():
    page = (REPO / "docs" / "coming_from_minisom.md").read_text(encoding="utf-8").strip()
    assert page.startswith("## Coming from MiniSom\n")
    section = "## Coming from MiniSom" + sections()["Coming from MiniSom"]
    assert section.strip() == page, "copy docs/coming_from_minisom.md into the README's section again"
