"""The configurations whose outputs are kept as golden files, and how two output tables are compared.

Golden files were written by the implementation before the columnar rewrite (issue "the main job at scale") with
``python -m tests.pipeline.golden_cases`` and must not change unless a commit of its own says why. Synthetic cases
keep the whole tables (``tests/pipeline/golden/<case>/*.csv.gz``); real-data cases keep only fingerprints
(``fingerprints.json``), because outputs of the shared data sets may not be committed.

Equality: same columns in the same order and the same number of rows; counts, ids, labels and reasons exactly;
floats to ``FLOAT_RTOL`` relative. A column that parses as numbers in both tables is compared as numbers, so a raw
value written as ``33`` or ``33.0`` is the same value.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TABLES = ("result.csv", "dropped_rows.csv", "cluster_profiles.csv")
FLOAT_RTOL = 1e-9
FLOAT_ATOL = 1e-12

# case name -> Hydra overrides of configs/config.yaml (plots off: they are not compared).
SYNTHETIC_CASES: dict[str, list[str]] = {
    "default_customers": ["data.n_customers=2000"],
    "sample_heavy_dirt": ["data.n_customers=3000", "data.rows_per_customer=sample", "data.dirt=heavy", "seed=1"],
    "seed_reproduction_synthetic": ["experiment=seed_reproduction", "data=synthetic", "data.n_customers=1500",
                                    "data.rows_per_customer=sample", "data.age_reference_date=2018-03-01",
                                    "data.age_range=null"],
    "behavioural_batch": ["features=behavioural", "som=batch", "data.n_customers=1500",
                          "data.rows_per_customer=sample", "som.x=8", "som.y=8"],
}
REAL_CASES: dict[str, tuple[str, list[str]]] = {
    "bigbazaar_real": ("bigbazaar_skrohit/cproducts.csv", ["data=bigbazaar"]),
}


def case_config(overrides: list[str], output_dir: Path, data_path: Path | None = None) -> dict[str, Any]:
    """The run configuration of ``train.py <overrides>`` (composed by Hydra), writing into ``output_dir``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from pipeline.app.config_schema import register_configs

    register_configs()
    extra = [f"data.path={data_path}"] if data_path is not None else []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, *extra, "plots.enabled=false"])
    config = OmegaConf.to_container(cfg, resolve=False)
    config["paths"]["output_dir"] = str(output_dir)
    if config["data"].get("seed") == "${seed}":
        config["data"]["seed"] = config["seed"]
    return config


def read_output(path: Path) -> pd.DataFrame:
    """An output table as text cells (keep_default_na off: an empty cell is '')."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def compare_tables(expected: pd.DataFrame, actual: pd.DataFrame, name: str) -> list[str]:
    """The differences between two output tables (empty when equal under the module's rules)."""
    problems: list[str] = []
    if list(expected.columns) != list(actual.columns):
        return [f"{name}: columns differ: expected {list(expected.columns)}, got {list(actual.columns)}"]
    if len(expected) != len(actual):
        return [f"{name}: {len(expected)} rows expected, got {len(actual)}"]
    for column in expected.columns:
        want, got = expected[column], actual[column]
        if (want == got).all():
            continue
        want_numbers, got_numbers = _numbers(want), _numbers(got)
        if want_numbers is not None and got_numbers is not None:
            close = np.isclose(got_numbers, want_numbers, rtol=FLOAT_RTOL, atol=FLOAT_ATOL, equal_nan=True)
            bad = np.flatnonzero(~close)
        else:
            bad = np.flatnonzero((want != got).to_numpy())
        if len(bad):
            first = bad[0]
            problems.append(f"{name}: column {column!r} differs in {len(bad)} rows, first at row {first}: "
                            f"expected {want.iloc[first]!r}, got {got.iloc[first]!r}")
    return problems


def fingerprint(table: pd.DataFrame) -> dict[str, Any]:
    """Per column of a text table: a sha256 of its cells when not numeric, else (count, sum, weighted sum, sum of
    squares) in float64, for tolerance checks without keeping the data."""
    columns: dict[str, Any] = {}
    weights = np.arange(1, len(table) + 1, dtype=np.float64) / max(len(table), 1)
    for column in table.columns:
        numbers = _numbers(table[column])
        if numbers is None:
            digest = hashlib.sha256("\x1f".join(table[column].tolist()).encode()).hexdigest()
            columns[column] = {"sha256": digest}
        else:
            finite = np.where(np.isnan(numbers), 0.0, numbers)
            columns[column] = {"nan": int(np.isnan(numbers).sum()), "sum": float(finite.sum()),
                               "weighted_sum": float((finite * weights).sum()),
                               "sum_sq": float((finite * finite).sum())}
    return {"rows": len(table), "columns": list(table.columns), "fingerprints": columns}


def compare_fingerprints(expected: dict[str, Any], actual: dict[str, Any], name: str) -> list[str]:
    """Differences between two ``fingerprint`` results (floats to FLOAT_RTOL relative of the column's scale)."""
    if expected["columns"] != actual["columns"] or expected["rows"] != actual["rows"]:
        return [f"{name}: shape differs: expected {expected['rows']} rows {expected['columns']}, "
                f"got {actual['rows']} rows {actual['columns']}"]
    problems = []
    for column, want in expected["fingerprints"].items():
        got = actual["fingerprints"][column]
        if set(want) != set(got):
            problems.append(f"{name}: column {column!r} changed kind (text vs numbers)")
        elif "sha256" in want:
            if want != got:
                problems.append(f"{name}: column {column!r} text differs")
        else:
            scale = max(np.sqrt(want["sum_sq"]), 1.0) * max(expected["rows"], 1)
            for key in ("sum", "weighted_sum", "sum_sq"):
                tolerance = FLOAT_RTOL * (scale * scale if key == "sum_sq" else scale)
                if want["nan"] != got["nan"] or abs(want[key] - got[key]) > tolerance:
                    problems.append(f"{name}: column {column!r} {key} {got[key]!r} != {want[key]!r}")
                    break
    return problems


def _numbers(cells: pd.Series) -> np.ndarray | None:
    """The cells as float64 (empty -> NaN) when every non-empty cell is a number, else None."""
    numbers = pd.to_numeric(cells.replace("", np.nan), errors="coerce").to_numpy(dtype=np.float64)
    parsed = ~np.isnan(numbers) | (cells == "").to_numpy() | cells.str.lower().isin(["nan"]).to_numpy()
    return numbers if parsed.all() else None


def write_golden() -> None:
    """Run every case with the current implementation and (re)write the golden files."""
    import tempfile

    from pipeline.app.run import run

    for case, overrides in SYNTHETIC_CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            run(case_config(overrides, Path(tmp)))
            target = GOLDEN_DIR / case
            target.mkdir(parents=True, exist_ok=True)
            for table in TABLES:
                read_output(Path(tmp) / table).to_csv(target / f"{table}.gz", index=False)
        print("wrote", case)
    for case, (relative, overrides) in REAL_CASES.items():
        data_path = SHARED_DATA / relative
        if not data_path.is_file():
            print("skipped", case, "(no", data_path, ")")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            run(case_config(overrides, Path(tmp), data_path))
            prints = {table: fingerprint(read_output(Path(tmp) / table)) for table in TABLES}
        target = GOLDEN_DIR / case
        target.mkdir(parents=True, exist_ok=True)
        (target / "fingerprints.json").write_text(json.dumps(prints, indent=1))
        print("wrote", case)


if __name__ == "__main__":
    sys.exit(write_golden())
