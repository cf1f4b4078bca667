"""Output table writers: what pandas reads back equals what it reads from the old pandas writer's file
(``DataFrame.to_csv(index=False)``) or the frame itself (Parquet); files appear whole or not at all; chunks equal
one write."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from pipeline.outputs.writers import FORMATS, ChunkedTableWriter, table_path, to_polars, write_table
from tests.pipeline.golden_cases import GOLDEN_DIR, TABLES, compare_tables, read_output


def awkward_table() -> pd.DataFrame:
    """Every kind of cell an output table can hold, including the missing ones."""
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "id": np.arange(8, dtype=np.int64),
        "x": np.array([1.5, np.nan, np.inf, -np.inf, 1e300, 0.1, 1 / 3, -2.5e-17]),
        "noise": rng.normal(size=8),
        "f32": np.array([0.1, 0.2, 0.3, 1.0, 2.0, 3.0, np.nan, 7.5], dtype=np.float32),
        "flag": [True, False, True, False, True, False, True, True],
        "text": ["a", None, "b,c", 'say "hi"', "line\nbreak", np.nan, "é ünïcode", "plain"],
        "nullable_int": pd.array([1, None, 3, 4, 5, 6, None, 8], dtype="Int64"),
        "nullable_text": pd.array(["x", None, "y", "z", "v", "w", None, "u"], dtype="string"),
        "category": pd.Categorical(["a", "b", None, "a", "b", "a", "a", "b"]),
        "day": [dt.date(2020, 1, 1), dt.date(2020, 2, 29), None, dt.date(1999, 12, 31)] * 2,
        "stamp": pd.to_datetime(["2020-01-01 10:30:00", "2020-01-02 00:00:00.5"] * 4, format="ISO8601"),
        "mixed": pd.Series([1, "a", None, 2.5, True, "x", 7, np.nan], dtype=object),
        "int_objects": pd.Series([2655, 2906] * 4, dtype=object),
    })


def read_back(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, parse_dates=["stamp"])


def test_csv_reads_back_as_the_old_pandas_writers_file(tmp_path: Path) -> None:
    table = awkward_table()
    table.to_csv(tmp_path / "old.csv", index=False)
    written = write_table(table, tmp_path / "new.csv")
    assert written == tmp_path / "new.csv"
    pd.testing.assert_frame_equal(read_back(written), read_back(tmp_path / "old.csv"))
    # and as text cells, as the golden comparison reads them (empty string and missing both '')
    old_text = pd.read_csv(tmp_path / "old.csv", dtype=str, keep_default_na=False)
    new_text = pd.read_csv(written, dtype=str, keep_default_na=False)
    same_text = [name for name in old_text.columns if name != "stamp"]  # pandas pads .000 on every stamp
    pd.testing.assert_frame_equal(new_text[same_text], old_text[same_text])


def test_floats_round_trip_exactly(tmp_path: Path) -> None:
    values = np.random.default_rng(0).normal(scale=1e6, size=1000) ** 3
    written = write_table(pl.DataFrame({"v": values}), tmp_path / "t.csv")
    np.testing.assert_array_equal(pd.read_csv(written)["v"].to_numpy(), values)


def test_polars_nan_is_written_as_an_empty_cell(tmp_path: Path) -> None:
    frame = pl.DataFrame({"v": [1.0, float("nan"), None]})
    assert write_table(frame, tmp_path / "t.csv").read_text() == "v\n1.0\n\n\n"
    assert pd.read_parquet(write_table(frame, tmp_path / "t", fmt="parquet"))["v"].isna().tolist() == [
        False, True, True]


def test_parquet_reads_back_as_the_frame(tmp_path: Path) -> None:
    table = awkward_table().drop(columns=["mixed"])
    written = write_table(table, tmp_path / "result.csv", fmt="parquet")
    assert written == tmp_path / "result.parquet"
    back = pd.read_parquet(written)
    assert list(back.columns) == list(table.columns)
    for name in table.columns:
        expected, got = table[name], back[name]
        assert got.isna().tolist() == expected.isna().tolist(), name
        present = expected.notna().to_numpy()
        assert got[present].astype(object).tolist() == expected[present].astype(object).tolist(), name


def test_mixed_object_column_is_written_as_text(tmp_path: Path) -> None:
    back = pd.read_parquet(write_table(awkward_table()[["mixed"]], tmp_path / "t", fmt="parquet"))["mixed"]
    assert back.tolist()[:2] == ["1", "a"] and back.isna().tolist() == [
        False, False, True, False, False, False, False, True]
    assert back.tolist()[3:7] == ["2.5", "True", "x", "7"]


def test_bad_format_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'xlsx'.*csv, parquet"):
        write_table(pl.DataFrame({"a": [1]}), tmp_path / "t.csv", fmt="xlsx")
    with pytest.raises(ValueError, match=r"'json'.*csv, parquet"):
        ChunkedTableWriter(tmp_path / "t.csv", fmt="json")
    assert FORMATS == ("csv", "parquet")
    assert table_path(tmp_path / "dropped_rows.csv", "parquet") == tmp_path / "dropped_rows.parquet"


def test_duplicated_pandas_columns_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicated column names"):
        to_polars(pd.DataFrame([[1, 2]], columns=["a", "a"]))


@pytest.mark.parametrize("fmt", FORMATS)
def test_many_chunks_equal_one_write(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(1)
    frame = pl.DataFrame({
        "id": np.arange(1000), "v": rng.normal(size=1000), "flag": rng.random(1000) > 0.5,
        "label": rng.choice(["north", "south, east", None], size=1000).tolist(),
    })
    whole = write_table(frame, tmp_path / "whole.csv", fmt=fmt)
    with ChunkedTableWriter(tmp_path / "chunked.csv", fmt=fmt) as writer:
        for start in (0, 10, 11, 500):
            writer.write(frame.slice(start, {0: 10, 10: 1, 11: 489, 500: 500}[start]))
    chunked = tmp_path / f"chunked.{fmt}"
    assert writer.rows_written == 1000
    if fmt == "csv":
        assert chunked.read_bytes() == whole.read_bytes()
    else:
        assert pq.ParquetFile(chunked).num_row_groups == 4
        pd.testing.assert_frame_equal(pd.read_parquet(chunked), pd.read_parquet(whole))


def test_chunk_with_an_all_null_column_takes_the_first_chunks_dtype(tmp_path: Path) -> None:
    with ChunkedTableWriter(tmp_path / "t", fmt="parquet") as writer:
        writer.write(pl.DataFrame({"a": [1, 2], "s": ["x", "y"]}))
        writer.write(pl.DataFrame({"a": [None], "s": [None]}))
    schema = pq.read_schema(tmp_path / "t.parquet")
    assert [str(field.type) for field in schema] == ["int64", "large_string"]
    assert pd.read_parquet(tmp_path / "t.parquet")["s"].isna().tolist() == [False, False, True]


def test_csv_first_chunk_all_null_then_typed(tmp_path: Path) -> None:
    with ChunkedTableWriter(tmp_path / "t.csv") as writer:
        writer.write(pl.DataFrame({"a": [1], "s": [None]}))
        writer.write(pl.DataFrame({"a": [2], "s": ["y"]}))
    assert (tmp_path / "t.csv").read_text() == "a,s\n1,\n2,y\n"


def test_parquet_first_chunk_all_null_needs_a_dtype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\['s'\].*all null"):
        with ChunkedTableWriter(tmp_path / "t", fmt="parquet") as writer:
            writer.write(pl.DataFrame({"a": [1], "s": [None]}))
    assert list(tmp_path.iterdir()) == []
    with ChunkedTableWriter(tmp_path / "t", fmt="parquet", columns={"a": pl.Int64, "s": pl.String}) as writer:
        writer.write(pl.DataFrame({"a": [1], "s": [None]}))
        writer.write(pl.DataFrame({"a": [2], "s": ["y"]}))
    assert pd.read_parquet(tmp_path / "t.parquet")["s"].tolist()[1] == "y"


def test_dtype_change_and_column_change_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"column 'a' of chunk 1 .* Float64; earlier chunks have Int64"):
        with ChunkedTableWriter(tmp_path / "t.csv") as writer:
            writer.write(pl.DataFrame({"a": [1]}))
            writer.write(pl.DataFrame({"a": [1.5]}))
    with pytest.raises(ValueError, match=r"has columns \['b', 'a'\]"):
        with ChunkedTableWriter(tmp_path / "t.csv") as writer:
            writer.write(pl.DataFrame({"a": [1], "b": [2]}))
            writer.write(pl.DataFrame({"b": [2], "a": [1]}))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_chunk_writes_the_header_of_the_given_columns(tmp_path: Path, fmt: str) -> None:
    with ChunkedTableWriter(tmp_path / "dropped_rows.csv", fmt=fmt, columns=["row_id", "reason"]):
        pass
    path = tmp_path / f"dropped_rows.{fmt}"
    back = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    assert list(back.columns) == ["row_id", "reason"] and len(back) == 0
    with pytest.raises(ValueError, match="no columns were given"):
        with ChunkedTableWriter(tmp_path / "other.csv", fmt=fmt):
            pass
    assert not (tmp_path / f"other.{fmt}").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_error_inside_the_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"result.{fmt}"
    write_table(pl.DataFrame({"a": [1, 2, 3]}), target, fmt=fmt)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="interrupted"):
        with ChunkedTableWriter(target, fmt=fmt) as writer:
            writer.write(pl.DataFrame({"a": [7, 8]}))
            raise RuntimeError("interrupted")
    assert target.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [target.name]
    with pytest.raises(RuntimeError, match="interrupted"):
        with ChunkedTableWriter(tmp_path / "fresh.csv", fmt=fmt) as writer:
            writer.write(pl.DataFrame({"a": [7, 8]}))
            raise RuntimeError("interrupted")
    assert sorted(path.name for path in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_write_table_failing_midway_leaves_the_old_file(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = write_table(pl.DataFrame({"a": [1]}), tmp_path / "t", fmt=fmt)
    before = target.read_bytes()

    def half_write(frame: pl.DataFrame, file: Path, **options: object) -> None:
        Path(file).write_bytes(b"a\n9\n")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, f"write_{fmt}", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_table(pl.DataFrame({"a": [9]}), target, fmt=fmt)
    assert target.read_bytes() == before and sorted(tmp_path.iterdir()) == [target]
    with pytest.raises(TypeError, match="Polars or pandas DataFrame"):
        write_table([1, 2], target)


@pytest.mark.parametrize("table", TABLES)
def test_golden_tables_survive_a_round_trip(tmp_path: Path, table: str) -> None:
    """A golden output table read by pandas and written again compares equal to the golden file."""
    golden = GOLDEN_DIR / "sample_heavy_dirt" / f"{table}.gz"
    written = write_table(pd.read_csv(golden), tmp_path / table)
    expected = pd.read_csv(golden, dtype=str, keep_default_na=False)
    assert compare_tables(expected, read_output(written), table) == []
