"""Atomic writes: the target appears whole or not at all, with ordinary file permissions."""
from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from pipeline.outputs.atomic import default_file_mode, write_atomic, write_csv_atomic, write_json_atomic


def test_written_files_have_the_permissions_of_a_plain_open(tmp_path):
    path = write_csv_atomic(pd.DataFrame({"a": [1, 2]}), tmp_path / "out.csv")
    with open(tmp_path / "plain.txt", "w") as handle:
        handle.write("x")
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode) == default_file_mode()
    assert pd.read_csv(path)["a"].tolist() == [1, 2]


def test_failed_write_leaves_neither_target_nor_temporary_file(tmp_path):
    write_json_atomic({"version": 1}, tmp_path / "metrics.json")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(tmp_path / "metrics.json", broken)
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    assert (tmp_path / "metrics.json").read_text().strip().startswith("{")
