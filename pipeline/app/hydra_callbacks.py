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

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Summarise the jobs under ``hydra.sweep.dir``."""
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
