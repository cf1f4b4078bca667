"""Summarise a Hydra sweep from the files its jobs left behind: one row per job, and a plot of metrics vs parameters.

Everything is read from disk (each job folder's ``.hydra/overrides.yaml``, ``.hydra/hydra.yaml``,
``metrics.json`` and ``failure.json``), so the summary is the same whichever launcher ran the jobs, in one
process or many, and it can be rebuilt later: ``write_sweep_summary(Path("multirun/2026-01-01/12-00-00"))``.

A job is ``ok`` when it wrote ``metrics.json``. It is ``failed`` when it wrote ``failure.json`` (train.py does
so for any error) or left no ``metrics.json`` at all (killed, or crashed outside the pipeline).

The best job is the ok job of lowest objective (ties: the lowest job number); the ``best`` column and a star in
the plot mark it. When its value of a swept numeric parameter sits at an edge of the range searched, a warning is
logged and the plot says so: the optimum may lie outside the range. The searched range is the sweep's own
declaration (``multirun.yaml`` of the basic sweeper, or ``hydra.sweeper.params`` of Optuna's: ``a,b,c``,
``choice(...)``, ``range(...)``, ``interval(lo, hi)``), else the values the jobs tried. "At an edge" means: equal
to the smallest or largest of a list of values, or within ``INTERVAL_EDGE_SHARE`` of the span from an end of an
interval. A list of two values is not judged, since its best is always at an edge.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import OverrideParseException

from pipeline.outputs.atomic import write_atomic, write_csv_atomic

# NumPy, pandas and matplotlib are imported by the functions that use them: train.py imports this module (for
# FAILURE_FILE) on every start, and --help or a config error must answer without loading them.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

SUMMARY_CSV = "sweep_summary.csv"
SUMMARY_PNG = "sweep_summary.png"
METRICS_FILE = "metrics.json"
FAILURE_FILE = "failure.json"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
HYDRA_FILE = Path(".hydra") / "hydra.yaml"
MULTIRUN_FILE = "multirun.yaml"
STATUS_OK, STATUS_FAILED = "ok", "failed"
NO_METRICS_ERROR = "no metrics.json: the job stopped before the pipeline finished (killed, or crashed outside it)"
# Fixed columns of the summary; one column per overridden key (e.g. ``som.sigma``) follows them.
SUMMARY_COLUMNS = (
    "job", "overrides", "status", "error", "quantization_error", "topographic_error", "objective", "best",
    "n_clusters", "cluster_sizes", "runtime_s", "job_dir",
)
PLOTTED_METRICS = ("quantization_error", "topographic_error", "objective")
INTERVAL_EDGE_SHARE = 0.05
BEST_COLOR = "#ffbf00"
BEST_GID = "best-job"


@dataclass(frozen=True)
class SearchedRange:
    """The values a sweep searched for one parameter: ``low``..``high``, either a list of ``n_values`` values or,
    when ``n_values`` is None, the continuous interval; ``source`` is "declared" (the sweep's configuration) or
    "tried" (the values of the jobs, when no declaration was found)."""

    low: float
    high: float
    n_values: int | None
    source: str


@dataclass(frozen=True)
class SweepSummary:
    """The files written by ``write_sweep_summary`` and the job counts behind them."""

    csv_path: Path
    png_path: Path
    n_jobs: int
    n_failed: int
    best_job: int | None = None
    edge_notes: Mapping[str, str] | None = None


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
    import pandas as pd

    rows = [read_job(job_dir) for job_dir in find_job_dirs(sweep_dir)]
    columns = list(dict.fromkeys(key for row in rows for key in row)) or list(SUMMARY_COLUMNS)
    summary = pd.DataFrame(rows, columns=columns)
    summary["best"] = best_job_mask(summary)
    return summary


def best_job_mask(summary: pd.DataFrame) -> pd.Series:
    """True for the one ok job of lowest finite objective (the first in row order among equals); all False
    when no ok job has an objective."""
    import pandas as pd

    objective = pd.to_numeric(summary["objective"], errors="coerce").where(summary["status"] == STATUS_OK)
    best = pd.Series(False, index=summary.index, dtype=bool)
    if objective.notna().any():
        best[objective.idxmin()] = True
    return best


def searched_ranges(sweep_dir: str | Path, summary: pd.DataFrame) -> dict[str, SearchedRange]:
    """The searched range of every numeric swept parameter (see the module docstring): declared by the sweep
    where ``multirun.yaml`` or the first job's ``.hydra/hydra.yaml`` says, else the values the jobs tried."""
    import pandas as pd

    declared = _declared_ranges(Path(sweep_dir), summary)
    ranges: dict[str, SearchedRange] = {}
    for parameter in swept_parameters(summary):
        if parameter in declared:
            ranges[parameter] = declared[parameter]
            continue
        tried = pd.to_numeric(summary[parameter], errors="coerce")
        if tried.notna().all():
            ranges[parameter] = SearchedRange(float(tried.min()), float(tried.max()), int(tried.nunique()), "tried")
    return ranges


def edge_notes(summary: pd.DataFrame, ranges: Mapping[str, SearchedRange]) -> dict[str, str]:
    """For each parameter whose best-job value sits at an edge of its searched range, a sentence saying so."""
    import pandas as pd

    best = summary.index[summary["best"].astype(bool)] if "best" in summary else []
    if len(best) == 0:
        return {}
    best_row = summary.loc[best[0]]
    notes: dict[str, str] = {}
    for parameter, searched in ranges.items():
        value = pd.to_numeric(pd.Series([best_row.get(parameter)]), errors="coerce").iloc[0]
        edge = _edge_of(float(value), searched) if pd.notna(value) else None
        if edge is not None:
            notes[parameter] = (
                f"the best job ({best_row['job']}) has {parameter}={value:g}, at the {edge} edge of the searched "
                f"range [{searched.low:g}, {searched.high:g}] ({searched.source}): the optimum may lie beyond it"
            )
    return notes


def swept_parameters(summary: pd.DataFrame) -> list[str]:
    """The override columns whose value differs between jobs (the parameters the sweep varied)."""
    parameters = [column for column in summary.columns if column not in SUMMARY_COLUMNS]
    return [column for column in parameters if summary[column].astype(str).nunique(dropna=False) > 1]


def plot_summary(
    summary: pd.DataFrame, path: str | Path, *, dpi: int = 100, notes: Mapping[str, str] | None = None
) -> Path:
    """Write ``summary_figure`` (same arguments) as a PNG at ``path``; return the path."""
    fig = summary_figure(summary, notes=notes)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def summary_figure(summary: pd.DataFrame, *, notes: Mapping[str, str] | None = None) -> Figure:
    """A grid of scatter plots: one row per metric (QE, TE, objective), one column per swept parameter
    (the job number when nothing varied). Failed jobs are marked with a red x on the bottom edge of each panel,
    the best job (``best`` column) with a star. ``notes`` (``edge_notes``) put a red "best at the edge" title on
    their parameter's column and their text under the figure."""
    import numpy as np
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    notes = dict(notes or {})
    parameters = swept_parameters(summary) or ["job"]
    fig = Figure(figsize=(3.6 * len(parameters) + 0.8, 2.6 * len(PLOTTED_METRICS) + 0.3 * len(notes)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(PLOTTED_METRICS), len(parameters), squeeze=False)
    ok = summary["status"] == STATUS_OK
    best = summary["best"].astype(bool).to_numpy() if "best" in summary else np.zeros(len(summary), dtype=bool)
    for column, parameter in enumerate(parameters):
        positions, tick_labels = _axis_positions(summary[parameter])
        for row, metric in enumerate(PLOTTED_METRICS):
            ax = axes[row, column]
            values = pd.to_numeric(summary[metric], errors="coerce").to_numpy(dtype=float)
            ax.scatter(positions[ok], values[ok], color="tab:blue", alpha=0.8, label="ok")
            if best.any():
                ax.scatter(positions[best], values[best], s=220, marker="*", color=BEST_COLOR, edgecolors="black",
                           zorder=3, label=f"best: job {summary['job'][best].iloc[0]}", gid=BEST_GID)
            if (~ok).any():
                ax.scatter(positions[~ok], np.zeros(int((~ok).sum())), marker="x", color="tab:red",
                           transform=ax.get_xaxis_transform(), clip_on=False, label="failed")
                # the x-axis spans failed jobs too, so their marks stay inside this panel
                ax.update_datalim(np.column_stack([positions, np.zeros_like(positions)]), updatey=False)
                ax.autoscale_view()
            if tick_labels is not None:
                ax.set_xticks(np.arange(len(tick_labels)), tick_labels, rotation=30)
            ax.set_xlabel(parameter)
            ax.set_ylabel(metric.replace("_", " "))
            ax.grid(alpha=0.3)
        if parameter in notes:
            axes[0, column].set_title(f"{parameter}: best at the edge of the range", color="tab:red",
                                      fontsize="medium")
    if best.any() or (~ok).any():
        axes[0, 0].legend(fontsize="small")
    failed_note = f", {int((~ok).sum())} failed (red x)" if (~ok).any() else ""
    best_note = ""
    if best.any():
        best_row = summary[best].iloc[0]
        best_note = f"; best: job {best_row['job']} (objective {float(best_row['objective']):.4g}, star)"
    fig.suptitle(f"Sweep summary: {len(summary)} jobs{failed_note}{best_note}")
    if notes:
        fig.supxlabel("\n".join(f"warning: {text}" for text in notes.values()), color="tab:red", fontsize="small")
    return fig


def write_sweep_summary(sweep_dir: str | Path, *, dpi: int = 100) -> SweepSummary:
    """Write ``sweep_summary.csv`` and ``sweep_summary.png`` into ``sweep_dir``; returns their paths and counts."""
    import pandas as pd

    root = Path(sweep_dir)
    summary = build_summary(root)
    notes = edge_notes(summary, searched_ranges(root, summary))
    for text in notes.values():
        logger.warning("sweep summary: %s; widen the range", text)
    csv_path = write_csv_atomic(summary, root / SUMMARY_CSV)
    png_path = plot_summary(summary, root / SUMMARY_PNG, dpi=dpi, notes=notes)
    n_failed = int((summary["status"] == STATUS_FAILED).sum())
    best = summary.loc[summary["best"], "job"]
    best_job = int(best.iloc[0]) if len(best) and pd.notna(best.iloc[0]) else None
    logger.info("sweep summary of %d jobs (%d failed, best job %s): %s", len(summary), n_failed, best_job, csv_path)
    return SweepSummary(csv_path=csv_path, png_path=png_path, n_jobs=len(summary), n_failed=n_failed,
                        best_job=best_job, edge_notes=notes)


def _axis_positions(values: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """x positions of a parameter's values: the numbers themselves when all are numeric, else category indices
    with their labels."""
    import numpy as np
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=float), None
    labels = [str(value) for value in dict.fromkeys(values.astype(str))]
    index = {label: position for position, label in enumerate(labels)}
    return np.array([index[str(value)] for value in values], dtype=float), labels


def _declared_ranges(root: Path, summary: pd.DataFrame) -> dict[str, SearchedRange]:
    """Numeric searched ranges declared by the sweep: the sweep overrides of ``multirun.yaml`` and the
    ``hydra.sweeper.params`` of it, or of the first job's ``.hydra/hydra.yaml`` when it is absent."""
    settings = _read_yaml(root / MULTIRUN_FILE)
    if settings is None and len(summary):
        settings = _read_yaml(Path(summary["job_dir"].iloc[0]) / HYDRA_FILE)
    hydra_settings = (settings or {}).get("hydra") or {}
    declarations = list((hydra_settings.get("overrides") or {}).get("task") or [])
    params = (hydra_settings.get("sweeper") or {}).get("params") or {}
    declarations += [f"{key}={value}" for key, value in params.items()]
    parser = OverridesParser.create()
    ranges: dict[str, SearchedRange] = {}
    for declaration in declarations:
        try:
            override = parser.parse_override(str(declaration))
        except OverrideParseException:
            logger.debug("sweep summary: cannot parse the override %r; its range comes from the jobs", declaration)
            continue
        if override.is_sweep_override():
            searched = _numeric_range(override.value(), list(override.sweep_iterator())
                                      if override.is_discrete_sweep() else [])
            if searched is not None:
                ranges[override.key_or_group] = searched
    return ranges


def _numeric_range(sweep: Any, values: list[Any]) -> SearchedRange | None:
    """The ``SearchedRange`` of a parsed Hydra sweep of numbers; None for other values."""
    if isinstance(sweep, IntervalSweep):
        return SearchedRange(float(sweep.start), float(sweep.end), None, "declared")
    if isinstance(sweep, (ChoiceSweep, RangeSweep)) and values:
        if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
            return SearchedRange(float(min(values)), float(max(values)), len(set(values)), "declared")
    return None


def _edge_of(value: float, searched: SearchedRange) -> str | None:
    """"lower" or "upper" when ``value`` sits at that edge of ``searched`` (module docstring), else None."""
    if searched.n_values is not None:
        if searched.n_values < 3:
            return None
        tolerance = 1e-9 * max(abs(searched.low), abs(searched.high), 1.0)
    else:
        tolerance = INTERVAL_EDGE_SHARE * (searched.high - searched.low)
    if value <= searched.low + tolerance:
        return "lower"
    if value >= searched.high - tolerance:
        return "upper"
    return None


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
