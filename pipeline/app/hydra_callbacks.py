"""Hydra callbacks of ``train.py`` (configured under ``hydra.callbacks`` in ``configs/config.yaml``).

``SweepSummaryCallback`` runs once at the end of every multirun, in the process that launched it. It keeps no
state between jobs: it reads the files the jobs wrote (``pipeline.app.sweep_summary``), so it works with any
launcher (basic, joblib) and sweeper (basic, Optuna).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.app.sweep_summary import write_sweep_summary

logger = logging.getLogger(__name__)

# sweep folder -> summary dpi, from on_multirun_start until on_multirun_end
_UNFINISHED_SWEEPS: dict[Path, int] = {}


class SweepSummaryCallback(Callback):
    """Write ``sweep_summary.csv`` and ``sweep_summary.png`` into the sweep folder when a multirun ends.

    Args:
        fail_on_error: after writing the summary, exit with status 1 (and one line naming the failed jobs)
            when any job failed, so scripts and CI notice; every job has still run.
        dpi: resolution of ``sweep_summary.png``.
    """

    def __init__(self, fail_on_error: bool = True, dpi: int = 100) -> None:
        self.fail_on_error = fail_on_error
        self.dpi = dpi

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Remember the sweep folder: a sweep that a launcher aborts (a submitit job killed at its time limit
        raises in the launching process) never reaches ``on_multirun_end``; ``summarise_aborted_sweeps`` then
        writes its summary."""
        _UNFINISHED_SWEEPS[Path(config.hydra.sweep.dir)] = self.dpi

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Summarise the jobs under ``hydra.sweep.dir``."""
        _UNFINISHED_SWEEPS.pop(Path(config.hydra.sweep.dir), None)
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = write_sweep_summary(sweep_dir, dpi=self.dpi)
        logger.info("sweep summary: %s and %s", summary.csv_path, summary.png_path)
        if summary.n_failed:
            message = (
                f"{summary.n_failed} of {summary.n_jobs} sweep jobs failed; "
                f"see the status and error columns of {summary.csv_path}"
            )
            logger.warning(message)
            if self.fail_on_error:
                sys.exit(f"train.py: error: {message}")


def summarise_aborted_sweeps() -> None:
    """Write the summary of every sweep started in this process that did not end (its launcher raised): the job
    folders that exist, a job without metrics.json listed as failed. ``train.py`` calls it when ``main`` exits."""
    while _UNFINISHED_SWEEPS:
        sweep_dir, dpi = _UNFINISHED_SWEEPS.popitem()
        if not sweep_dir.is_dir():
            continue
        try:
            summary = write_sweep_summary(sweep_dir, dpi=dpi)
        except (OSError, ValueError) as error:
            logger.warning("the sweep was aborted and its summary could not be written: %s", error)
            continue
        print(f"train.py: the sweep was aborted; summary of the {summary.n_jobs} job folders found: {summary.csv_path}",
              file=sys.stderr)
