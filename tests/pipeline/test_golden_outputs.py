"""The outputs of the main job do not change: result.csv, dropped_rows.csv and cluster_profiles.csv equal the golden
files written by the implementation before the columnar rewrite (``tests/pipeline/golden_cases.py``)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.app.run import run
from tests.pipeline.golden_cases import (
    GOLDEN_DIR,
    REAL_CASES,
    SHARED_DATA,
    SYNTHETIC_CASES,
    TABLES,
    case_config,
    compare_fingerprints,
    compare_tables,
    fingerprint,
    read_output,
)


@pytest.mark.parametrize("case", sorted(SYNTHETIC_CASES))
def test_synthetic_outputs_equal_golden_files(case: str, tmp_path: Path) -> None:
    run(case_config(SYNTHETIC_CASES[case], tmp_path))
    problems = []
    for table in TABLES:
        expected = pd.read_csv(GOLDEN_DIR / case / f"{table}.gz", dtype=str, keep_default_na=False)
        problems += compare_tables(expected, read_output(tmp_path / table), table)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", sorted(REAL_CASES))
def test_real_data_outputs_equal_golden_fingerprints(case: str, tmp_path: Path) -> None:
    relative, overrides = REAL_CASES[case]
    data_path = SHARED_DATA / relative
    if not data_path.is_file():
        pytest.skip(f"real data not found: {data_path}")
    run(case_config(overrides, tmp_path, data_path))
    expected = json.loads((GOLDEN_DIR / case / "fingerprints.json").read_text())
    problems = []
    for table in TABLES:
        problems += compare_fingerprints(expected[table], fingerprint(read_output(tmp_path / table)), table)
    assert not problems, "\n".join(problems)


def test_comparison_catches_a_changed_float_and_a_changed_reason() -> None:
    expected = pd.DataFrame({"x": ["1.5", "2"], "reason": ["missing DOB", ""]})
    assert compare_tables(expected, expected.copy(), "t") == []
    assert compare_tables(expected, pd.DataFrame({"x": ["1.5000000001", "2.0"], "reason": ["missing DOB", ""]}),
                          "t") == []
    assert compare_tables(expected, pd.DataFrame({"x": ["1.50001", "2"], "reason": ["missing DOB", ""]}), "t")
    assert compare_tables(expected, pd.DataFrame({"x": ["1.5", "2"], "reason": ["missing PinCode", ""]}), "t")
    prints = fingerprint(expected)
    assert compare_fingerprints(prints, fingerprint(expected.assign(x=["1.5", "2.001"])), "t")
