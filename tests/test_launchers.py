"""The sweep launcher presets of ``configs/hydra/launcher``: Slurm and local jobs (submitit), and Ray.

References are independent of the presets' values: each plugin's own config class (a preset must compose to the
plugin's config with the preset's keys, then the command line's, on top), the sbatch script that submitit writes
for the Slurm preset (caught by a stand-in ``sbatch``: there is no Slurm here), and the same two-job sweep run in
one process by Hydra's basic launcher.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
LAUNCHERS = REPO / "configs" / "hydra" / "launcher"
SUBMITIT_PLUGIN = "hydra_plugins.hydra_submitit_launcher"
RAY_PLUGIN = "hydra_plugins.hydra_ray_launcher"
RAY_LAUNCHER_TARGET = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
# preset file -> the plugin config it extends (the names the plugins register in the hydra/launcher group)
PLUGIN_CONFIG_OF_PRESET = {"slurm.yaml": "submitit_slurm", "local_jobs.yaml": "submitit_local", "ray_cluster.yaml": "ray"}
# Task options of ray.remote (Ray 2.x), so that a misspelt resource in the Ray preset is caught without Ray.
RAY_REMOTE_TASK_OPTIONS = {
    "num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "max_calls", "max_retries",
    "retry_exceptions", "runtime_env", "scheduling_strategy", "num_returns", "name",
}
QUICK_SWEEP = ("experiment=quick", "plots.enabled=false", "som.x=3,4")  # two runs of a few seconds each


def plugin_installed(name: str) -> bool:
    return importlib.util.find_spec("hydra_plugins") is not None and importlib.util.find_spec(name) is not None


needs_submitit = pytest.mark.skipif(
    not plugin_installed(SUBMITIT_PLUGIN), reason="hydra-submitit-launcher not installed (requirements-cluster.txt)"
)
needs_ray_plugin = pytest.mark.skipif(
    not plugin_installed(RAY_PLUGIN), reason="hydra-ray-launcher not installed (pip install -e '.[ray]')"
)


def run_train(*arguments: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python train.py <arguments>`` from the repo root; output captured."""
    environment = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "train.py", *arguments], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=environment)


def read_preset(name: str) -> dict:
    return yaml.safe_load((LAUNCHERS / name).read_text())


def preset_keys(name: str) -> dict:
    """The keys a preset sets on top of its plugin's config (its defaults list left out)."""
    return {key: value for key, value in read_preset(name).items() if key != "defaults"}


def composed_launcher(*overrides: str) -> dict:
    """``hydra.launcher`` as ``train.py --cfg hydra -p hydra.launcher --resolve`` prints it."""
    completed = run_train(*overrides, "--cfg", "hydra", "-p", "hydra.launcher", "--resolve", timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return yaml.safe_load(completed.stdout)


@pytest.mark.parametrize("preset", sorted(PLUGIN_CONFIG_OF_PRESET))
def test_each_preset_extends_its_plugin_config(preset):
    assert read_preset(preset)["defaults"] == [PLUGIN_CONFIG_OF_PRESET[preset], "_self_"]


def test_the_ray_preset_names_the_plugins_launcher_and_ray_options():
    # Runs without the plugin: catches a typo in the target or in a ray.init / ray.remote key.
    preset = preset_keys("ray_cluster.yaml")
    assert preset["_target_"] == RAY_LAUNCHER_TARGET
    assert set(preset) == {"_target_", "ray"}
    assert set(preset["ray"]) == {"init", "remote"}, "the plugin's RayConf has these two fields only"
    assert preset["ray"]["init"]["address"] == "auto", "joins a running cluster instead of starting one unseen"
    assert set(preset["ray"]["remote"]) <= RAY_REMOTE_TASK_OPTIONS


@needs_submitit
@pytest.mark.parametrize(("preset", "config_class", "overrides"), [
    ("slurm", "SlurmQueueConf", {"partition": "cpu_short", "timeout_min": 240}),
    ("local_jobs", "LocalQueueConf", {"timeout_min": 240}),
])
def test_a_submitit_preset_composes_to_the_plugin_config_with_its_values_on_top(preset, config_class, overrides,
                                                                                tmp_path):
    from hydra_plugins.hydra_submitit_launcher import config as plugin_config

    sweep_dir = tmp_path / "shared" / "sweeps"
    launcher = composed_launcher(f"hydra/launcher={preset}", f"hydra.sweep.dir={sweep_dir}",
                                 *(f"hydra.launcher.{key}={value}" for key, value in overrides.items()))
    expected = OmegaConf.to_container(OmegaConf.merge(
        OmegaConf.structured(getattr(plugin_config, config_class)), preset_keys(f"{preset}.yaml"), overrides))
    assert launcher["submitit_folder"] == f"{sweep_dir}/.submitit/%j", "submitit's files live in the sweep folder"
    assert launcher["name"] == "train"  # ${hydra.job.name}
    for interpolated in ("submitit_folder", "name"):
        del launcher[interpolated], expected[interpolated]
    assert launcher == expected


@needs_submitit
def test_a_slurm_sweep_submits_one_job_array_with_the_presets_resources(tmp_path):
    # Stand-ins: submitit only checks that srun is on PATH, and sbatch keeps a copy of the script, then refuses it.
    bin_dir, script_copy, sweep_dir = tmp_path / "bin", tmp_path / "submitted.sh", tmp_path / "sweep"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sbatch").write_text(
        '#!/bin/sh\ncp "$1" "$SUBMITTED_SCRIPT"\necho "stand-in sbatch: not submitted" >&2\nexit 1\n'
    )
    for stand_in in bin_dir.iterdir():
        stand_in.chmod(0o755)
    completed = run_train(
        "-m", "hydra/launcher=slurm", "hydra.launcher.partition=cpu_short", "hydra.launcher.array_parallelism=1",
        *QUICK_SWEEP, f"hydra.sweep.dir={sweep_dir}",
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SUBMITTED_SCRIPT": str(script_copy)},
    )
    assert completed.returncode != 0 and "stand-in sbatch: not submitted" in completed.stderr
    directives = [line.removeprefix("#SBATCH ") for line in script_copy.read_text().splitlines()
                  if line.startswith("#SBATCH ")]
    preset = preset_keys("slurm.yaml")
    expected = {
        "--array=0-1%1",  # both jobs in one array, one at a time (array_parallelism=1)
        "--partition=cpu_short",
        f"--cpus-per-task={preset['cpus_per_task']}",
        f"--mem={preset['mem_gb']}GB",
        f"--time={preset['timeout_min']}",
        f"--ntasks-per-node={preset['tasks_per_node']}",
        f"--nodes={preset['nodes']}",
        f"--output={sweep_dir}/.submitit/%A_%a/%A_%a_0_log.out",
    }
    assert expected <= set(directives), sorted(directives)


@needs_submitit
@pytest.mark.slow
def test_a_local_jobs_sweep_runs_each_job_in_its_own_process_and_writes_the_summary(tmp_path):
    jobs_dir, inline_dir = tmp_path / "local_jobs", tmp_path / "basic"
    completed = run_train("-m", "hydra/launcher=local_jobs", *QUICK_SWEEP, f"hydra.sweep.dir={jobs_dir}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = pd.read_csv(jobs_dir / "sweep_summary.csv")
    assert summary["job"].tolist() == [0, 1] and summary["som.x"].tolist() == [3, 4]
    assert summary["status"].tolist() == ["ok", "ok"]
    job_ids = []
    for _, row in summary.iterrows():
        job_dir = jobs_dir / str(row["job"])
        metrics = json.loads((job_dir / "metrics.json").read_text())
        assert row["objective"] == pytest.approx(metrics["objective"])
        assert json.loads(row["cluster_sizes"]) == metrics["cluster_sizes"]["rows"]
        # submitit's job id (its process id here) names the folder of that job's own logs
        job_id = str(yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["id"])
        assert (jobs_dir / ".submitit" / job_id / f"{job_id}_0_log.out").is_file()
        job_ids.append(job_id)
    assert len(set(job_ids)) == 2, "one process per job"
    # The same sweep in this process (Hydra's basic launcher) gives the same results.
    completed = run_train("-m", *QUICK_SWEEP, f"hydra.sweep.dir={inline_dir}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    inline = pd.read_csv(inline_dir / "sweep_summary.csv")
    columns = ["job", "som.x", "quantization_error", "topographic_error", "objective", "best", "cluster_sizes"]
    pd.testing.assert_frame_equal(summary[columns], inline[columns])


@needs_ray_plugin
def test_the_ray_preset_composes_to_the_plugin_config_with_its_values_on_top():
    from hydra_plugins.hydra_ray_launcher._config import RayLauncherConf

    launcher = composed_launcher("hydra/launcher=ray_cluster", "hydra.launcher.ray.init.address=local")
    expected = OmegaConf.merge(OmegaConf.structured(RayLauncherConf), preset_keys("ray_cluster.yaml"),
                               {"ray": {"init": {"address": "local"}}})
    assert launcher == OmegaConf.to_container(expected, resolve=True)


def test_the_cluster_requirements_and_the_extras_pin_the_same_launchers():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    lines = [line.strip() for line in (REPO / "requirements-cluster.txt").read_text().splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == extras["slurm"]
    ray_install = next(line for line in lines if "pip install hydra-ray-launcher" in line)
    assert ray_install.split("pip install ", 1)[1].split("  ")[0].replace('"', "").split() == extras["ray"]


@needs_submitit
@pytest.mark.slow
def test_a_sweep_aborted_by_a_killed_job_still_writes_its_summary(tmp_path):
    # timeout_min=0: submitit kills every job at once and raises in the launching process
    completed = run_train("-m", "hydra/launcher=local_jobs", "hydra.launcher.timeout_min=0", *QUICK_SWEEP,
                          f"hydra.sweep.dir={tmp_path}")
    assert completed.returncode != 0
    assert "the sweep was aborted" in completed.stderr
    summary = pd.read_csv(tmp_path / "sweep_summary.csv")  # the jobs were killed before they wrote a folder
    assert "ok" not in set(summary["status"])
