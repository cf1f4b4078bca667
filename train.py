"""Train a SOM customer segmentation: a thin Hydra entry point around ``pipeline.app.run.run``.

    python train.py                                        # built-in synthetic data, 20 x 20 map
    python train.py data=bigbazaar data.path=../shared/data/bigbazaar_skrohit/cproducts.csv
    python train.py -m som.sigma=0.5,1 som.x=8,10          # sweep; summary in the sweep folder
    python train.py hparams_search=som_optuna              # Optuna search (pip install -r requirements-sweep.txt)
    python train.py engine=dask som=batch data=bigbazaar data.path='parts/*.csv'   # on a Dask cluster
    torchrun --standalone --nproc-per-node=2 train.py engine=torch som=batch ...  # on 2 torch.distributed ranks

Every output (result.csv, metrics.json, model.pt, plots/, train.log) lands in the Hydra run folder,
``outputs/<date>/<time>/`` (``multirun/<date>/<time>/<job>/`` in a sweep). ``main`` returns the objective
(``metrics["objective"]``, to minimise) so sweepers can use it.
"""
from __future__ import annotations

import atexit
import glob
import importlib.util
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pipeline.outputs.atomic import write_json_atomic
from pipeline.app.config_schema import check_known_keys, register_configs
from pipeline.app.sweep_summary import FAILURE_FILE

# pipeline.app.run (torch, matplotlib, scikit-learn, pandas) is imported by main() only once the configuration has
# passed its checks: --help, --cfg job and a configuration error answer in about a second.

logger = logging.getLogger(__name__)

OPTUNA_PLUGIN = "hydra_plugins.hydra_optuna_sweeper"
OPTUNA_INSTALL_HINT = (
    "hparams_search needs the Optuna sweeper plugin, which is not installed: "
    "run `pip install -r requirements-sweep.txt` and try again"
)
# hydra/launcher options (presets in configs/hydra/launcher and the plugins' own) -> (plugin module, install hint)
_SUBMITIT = ("hydra_plugins.hydra_submitit_launcher", "run `pip install -r requirements-cluster.txt` and try again")
_RAY = ("hydra_plugins.hydra_ray_launcher", 'run `pip install -e ".[ray]"` (in an environment without dask) and try again')
LAUNCHER_PLUGINS = {"slurm": _SUBMITIT, "local_jobs": _SUBMITIT, "submitit_slurm": _SUBMITIT,
                    "submitit_local": _SUBMITIT, "ray_cluster": _RAY, "ray": _RAY, "ray_aws": _RAY}
# Errors that describe bad input or an unusable machine: reported in one line instead of a traceback
# (OSError covers a missing file and an unwritable output folder).
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError)
# Where Hydra puts run folders unless hydra.run.dir / hydra.sweep.dir say otherwise (its defaults).
DEFAULT_RUN_ROOT, DEFAULT_SWEEP_ROOT = "outputs", "multirun"

register_configs()


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> float:
    """Run the pipeline into ``cfg.paths.output_dir`` and return ``metrics["objective"]`` (lower is better).

    The configuration's keys and its input file are checked before the pipeline (and torch) is imported. A failing
    run writes ``failure.json`` (error, traceback, seconds) into its output folder. In a sweep the job
    then returns NaN, so the other jobs still run and the sweep summary lists it as failed. A single run exits
    with status 1 and one line on stderr (``HYDRA_FULL_ERROR=1`` shows the traceback instead).
    """
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    try:
        check_known_keys(cfg)
        check_input_exists(cfg)
        from pipeline.app.run import run

        metrics = run(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    except Exception as error:
        _write_failure_record(error, time.perf_counter() - started, output_dir)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            logger.error("job failed: %s: %s (details in %s)", type(error).__name__, error, output_dir / FAILURE_FILE)
            return math.nan
        if not isinstance(error, USER_ERRORS) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"train.py: error: {_one_line(error)}", file=sys.stderr)
        sys.exit(1)
    logger.info("objective %s = %.6g; outputs in %s", cfg.objective.name, metrics["objective"], output_dir)
    if HydraConfig.get().mode != RunMode.MULTIRUN and launched_rank() == 0:
        print(segment_summary(metrics, output_dir))
    return float(metrics["objective"])


def launched_rank() -> int:
    """This process's rank under torchrun / srun (RANK, else SLURM_PROCID), 0 when not launched as a group."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def quiet_rank_overrides(rank: int) -> list[str]:
    """Hydra overrides for a rank other than 0 of a distributed launch: its run folder is a temporary one (rank 0
    alone writes the run's folder), no .hydra copy, and Hydra's logging off (only warnings reach stderr)."""
    scratch = tempfile.mkdtemp(prefix=f"somtorch-rank{rank}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled"]


def check_input_exists(cfg: Mapping[str, Any]) -> None:
    """Raise FileNotFoundError when ``data.source`` is ``file`` and ``data.path`` (a file, a glob, a folder or a
    list of these) names nothing, so a mistyped path is reported before the pipeline is imported (the loader
    reports the other problems of a file)."""
    data = cfg.get("data") or {}
    path = data.get("path")
    if data.get("source") != "file" or not path:
        return
    for item in [path] if isinstance(path, str) else list(path):
        if glob.has_magic(str(item)):
            if not glob.glob(str(item), recursive=True):
                raise FileNotFoundError(f"no input file matches {item!r}")
        elif not Path(item).exists():
            raise FileNotFoundError(f"input table not found: {item}")


def segment_summary(metrics: dict, output_dir: Path) -> str:
    """The lines printed at the end of a single run: each segment's name and share, and where the report is."""
    units = "customers" if metrics["unit_level"] == "customer" else "transactions"
    lines = [f"{metrics['n_segments']} segments of {metrics['units']:,} {units} "
             f"(QE {metrics['quantization_error']:.3f}, TE {metrics['topographic_error']:.3f}):"]
    for segment in metrics["segments"]:
        lines.append(f"  {segment['segment']:>2}  {segment['name']}  "
                     f"({segment['customer_share']:.1%} of {units}, {segment['revenue_share']:.1%} of revenue)")
    lines.append(f"report: {output_dir / 'report.html'}")
    return "\n".join(lines)


def _write_failure_record(error: BaseException, seconds: float, output_dir: Path) -> None:
    """Write ``failure.json`` into ``output_dir``; a folder that cannot be written only logs a warning, so the
    original error is the one reported."""
    try:
        write_json_atomic(_failure_record(error, seconds), output_dir / FAILURE_FILE)
    except OSError as write_error:
        logger.warning("could not write %s: %s", output_dir / FAILURE_FILE, write_error)


def _failure_record(error: BaseException, seconds: float) -> dict[str, object]:
    """What ``failure.json`` holds: the error's type and message, its traceback, and the run time so far."""
    return {
        "status": "failed",
        "error_type": type(error).__name__,
        "error": str(error),
        "traceback": "".join(traceback.format_exception(error)),
        "runtime_s": seconds,
    }


def _one_line(error: BaseException) -> str:
    """``Type: message`` with the message's lines joined, for a single line on stderr."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def missing_plugin_message(arguments: Sequence[str]) -> str | None:
    """The install hint when the command line selects an ``hparams_search`` preset or the Optuna sweeper, or a
    launcher of a plugin (Slurm, local jobs, Ray), and the plugin is not installed; None otherwise."""
    for argument in arguments:
        key, _, value = argument.lstrip("+~").partition("=")
        wants_optuna = (key == "hparams_search" and value not in ("", "null")) or (
            key == "hydra/sweeper" and value == "optuna"
        )
        if wants_optuna and importlib.util.find_spec(OPTUNA_PLUGIN) is None:
            return OPTUNA_INSTALL_HINT
        plugin, hint = LAUNCHER_PLUGINS.get(value, (None, None)) if key == "hydra/launcher" else (None, None)
        if plugin and not _plugin_installed(plugin):
            return f"hydra/launcher={value} needs a launcher plugin that is not installed: {hint}"
    return None


def _plugin_installed(module: str) -> bool:
    return importlib.util.find_spec("hydra_plugins") is not None and importlib.util.find_spec(module) is not None


def unwritable_run_folder_message(arguments: Sequence[str]) -> str | None:
    """Why Hydra could not create the run (or sweep) folder the command line asks for, or None when it can.

    The folder is ``hydra.run.dir`` (``hydra.sweep.dir`` with ``-m``/``--multirun``) up to its first
    interpolation, else Hydra's default root; its nearest existing ancestor must be a folder in which a (probe)
    folder can be created and removed.
    """
    multirun = any(argument in ("-m", "--multirun") for argument in arguments)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    folder = DEFAULT_SWEEP_ROOT if multirun else DEFAULT_RUN_ROOT
    for argument in arguments:
        name, _, value = argument.partition("=")
        if name == key and value:
            folder = value.split("${", 1)[0] or "."
    ancestor = Path(folder).absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot create the run folder {folder}: {ancestor} is not a folder"
    try:  # creating a folder is what Hydra will do; os.access alone says yes to root, even in /proc
        os.rmdir(tempfile.mkdtemp(prefix=".write-probe-", dir=ancestor))
    except OSError as error:
        return f"cannot create the run folder {folder}: {ancestor} is not writable: {error.strerror or error}"
    return None


if __name__ == "__main__":
    missing_plugin = missing_plugin_message(sys.argv[1:])
    if missing_plugin:
        sys.exit(f"train.py: error: {missing_plugin}")
    unwritable = unwritable_run_folder_message(sys.argv[1:])
    if unwritable:
        sys.exit(f"train.py: error: {unwritable}")
    if launched_rank() > 0:
        sys.argv += quiet_rank_overrides(launched_rank())
    try:
        main()
    finally:
        from pipeline.app.hydra_callbacks import summarise_aborted_sweeps

        summarise_aborted_sweeps()
