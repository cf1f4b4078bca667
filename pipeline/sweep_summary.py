"""Summarise a Hydra sweep from the files its jobs left behind: one row per job, and a plot of metrics vs parameters.

Everything is read from disk (each job folder's ``.hydra/overrides.yaml``, ``.hydra/hydra.yaml``,
``metrics.json`` and ``failure.json``), so the summary is the same whichever launcher ran the jobs, in one
process or many, and it can be rebuilt later: ``write_sweep_summary(Path("multirun/2026-01-01/12-00-00"))``.

A job is ``ok`` when it wrote ``metrics.json``. It is ``failed`` when it wrote ``failure.json`` (train.py does
so for any error) or left no ``metrics.json`` at all (killed, or crashed outside the pipeline).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.atomic import write_atomic, write_csv_atomic

logger = logging.getLogger(__name__)

SUMMARY_CSV = "sweep_summary.csv"
SUMMARY_PNG = "sweep_summary.png"
METRICS_FILE = "metrics.json"
FAILURE_FILE = "failure.json"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
HYDRA_FILE = Path(".hydra") / "hydra.yaml"
STATUS_OK, STATUS_FAILED = "ok", "failed"
NO_METRICS_ERROR = "no metrics.json: the job stopped before the pipeline finished (killed, or crashed outside it)"
# Fixed columns of the summary; one column per overridden key (e.g. ``som.sigma``) follows them.
SUMMARY_COLUMNS = (
    "job", "overrides", "status", "error", "quantization_error", "topographic_error", "objective",
    "n_clusters", "cluster_sizes", "runtime_s", "job_dir",
)
PLOTTED_METRICS = ("quantization_error", "topographic_error", "objective")


@dataclass(frozen=True)
class SweepSummary:
    """The files written by ``write_sweep_summary`` and the job counts behind them."""

    csv_path: Path
    png_path: Path
    n_jobs: int
    n_failed: int


def find_job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every job folder under ``sweep_dir`` (any depth: a folder holding ``.hydra/overrides.yaml``), by job number."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"sweep folder not found: {root}")
    return sorted((path.parent.parent for path in root.rglob(str(OVERRIDES_FILE))), key=_job_order)


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """``["som.sigma=0.5", "+extra=1"]`` → ``{"som.sigma": "0.5", "extra": "1"}`` (deletions ``~key`` are skipped)."""
    parsed: dict[str, str] = {}
    for override in overrides:
        key, separator, value = override.partition("=")
        if separator and not key.startswith("~"):
            parsed[key.lstrip("+")] = value
    return parsed


def read_job(job_dir: str | Path) -> dict[str, Any]:
    """One summary row: job number, overrides, status, error, QE, TE, objective, cluster sizes (rows per
    cluster), runtime in seconds (sum of the stage timings, or the time until the failure) and one column per
    overridden key."""
    job_path = Path(job_dir)
    overrides = _read_yaml(job_path / OVERRIDES_FILE) or []
    row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(job=_job_number(job_path), overrides=" ".join(overrides), job_dir=str(job_path))
    metrics_path, failure_path = job_path / METRICS_FILE, job_path / FAILURE_FILE
    if failure_path.is_file():
        failure = json.loads(failure_path.read_text(encoding="utf-8"))
        row.update(status=STATUS_FAILED, error=f"{failure['error_type']}: {failure['error']}", runtime_s=failure.get("runtime_s"))
    elif metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        row.update(
            status=STATUS_OK,
            error="",
            quantization_error=metrics["quantization_error"],
            topographic_error=metrics["topographic_error"],
            objective=metrics["objective"],
            n_clusters=metrics["n_clusters"],
            cluster_sizes=json.dumps(metrics["cluster_sizes"]["rows"]),
            runtime_s=round(sum(metrics["timings_s"].values()), 3),
        )
    else:
        row.update(status=STATUS_FAILED, error=NO_METRICS_ERROR)
    row.update(parse_overrides(overrides))
    return row


def build_summary(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job folder of ``sweep_dir`` (``read_job``), ordered by job number; the fixed columns
    (``SUMMARY_COLUMNS``) first, then the overridden keys in order of first appearance."""
    rows = [read_job(job_dir) for job_dir in find_job_dirs(sweep_dir)]
    columns = list(dict.fromkeys(key for row in rows for key in row)) or list(SUMMARY_COLUMNS)
    return pd.DataFrame(rows, columns=columns)


def swept_parameters(summary: pd.DataFrame) -> list[str]:
    """The override columns whose value differs between jobs (the parameters the sweep varied)."""
    parameters = [column for column in summary.columns if column not in SUMMARY_COLUMNS]
    return [column for column in parameters if summary[column].astype(str).nunique(dropna=False) > 1]


def plot_summary(summary: pd.DataFrame, path: str | Path, *, dpi: int = 100) -> Path:
    """A grid of scatter plots: one row per metric (QE, TE, objective), one column per swept parameter
    (the job number when nothing varied). Failed jobs are marked with a red x on the bottom edge of each panel."""
    parameters = swept_parameters(summary) or ["job"]
    fig = Figure(figsize=(3.6 * len(parameters) + 0.8, 2.6 * len(PLOTTED_METRICS)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(PLOTTED_METRICS), len(parameters), squeeze=False)
    ok = summary["status"] == STATUS_OK
    for column, parameter in enumerate(parameters):
        positions, tick_labels = _axis_positions(summary[parameter])
        for row, metric in enumerate(PLOTTED_METRICS):
            ax = axes[row, column]
            values = pd.to_numeric(summary[metric], errors="coerce").to_numpy(dtype=float)
            ax.scatter(positions[ok], values[ok], color="tab:blue", alpha=0.8, label="ok")
            if (~ok).any():
                ax.scatter(positions[~ok], np.zeros(int((~ok).sum())), marker="x", color="tab:red",
                           transform=ax.get_xaxis_transform(), clip_on=False, label="failed")
            if tick_labels is not None:
                ax.set_xticks(np.arange(len(tick_labels)), tick_labels, rotation=30)
            ax.set_xlabel(parameter)
            ax.set_ylabel(metric.replace("_", " "))
            ax.grid(alpha=0.3)
    failed_note = f", {int((~ok).sum())} failed (red x)" if (~ok).any() else ""
    fig.suptitle(f"Sweep summary: {len(summary)} jobs{failed_note}")
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def write_sweep_summary(sweep_dir: str | Path, *, dpi: int = 100) -> SweepSummary:
    """Write ``sweep_summary.csv`` and ``sweep_summary.png`` into ``sweep_dir``; returns their paths and counts."""
    root = Path(sweep_dir)
    summary = build_summary(root)
    csv_path = write_csv_atomic(summary, root / SUMMARY_CSV)
    png_path = plot_summary(summary, root / SUMMARY_PNG, dpi=dpi)
    n_failed = int((summary["status"] == STATUS_FAILED).sum())
    logger.info("sweep summary of %d jobs (%d failed): %s", len(summary), n_failed, csv_path)
    return SweepSummary(csv_path=csv_path, png_path=png_path, n_jobs=len(summary), n_failed=n_failed)


def _axis_positions(values: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """x positions of a parameter's values: the numbers themselves when all are numeric, else category indices
    with their labels."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=float), None
    labels = [str(value) for value in dict.fromkeys(values.astype(str))]
    index = {label: position for position, label in enumerate(labels)}
    return np.array([index[str(value)] for value in values], dtype=float), labels


def _job_order(job_dir: Path) -> tuple[bool, int, str]:
    """Sort key: numbered jobs by number, then unnumbered ones by path."""
    number = _job_number(job_dir)
    return number is None, number or 0, str(job_dir)


def _job_number(job_dir: Path) -> int | None:
    """``hydra.job.num`` from the job's ``.hydra/hydra.yaml``; else its folder name when that is a number."""
    hydra_settings = _read_yaml(job_dir / HYDRA_FILE) or {}
    number = (hydra_settings.get("hydra") or {}).get("job", {}).get("num")
    if isinstance(number, int):
        return number
    return int(job_dir.name) if job_dir.name.isdigit() else None


def _read_yaml(path: Path) -> Any:
    """The parsed YAML file, or None when it does not exist."""
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text(encoding="utf-8"))
