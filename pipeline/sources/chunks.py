"""Read transaction tables (CSV, gzip CSV, Parquet, in-memory frames) as a stream of Polars chunks with ``row_id``.

Every chunk is a ``pl.DataFrame`` with ``row_id`` (Int64, the row's 0-based position in the input, continuing
across chunks) first, then the table's columns. Memory per chunk is bounded by ``chunk_rows``: the file is never
read whole. The errors are those of ``pipeline.sources.loading.read_table`` (same types, same messages).

CSV engine, measured on a 199 MB Big Bazaar CSV (1.15 M rows, every column as text, 250k-row chunks, 2 cores):

=====================================================  ========  ========  ==========================
reader                                                 seconds   peak RSS  5x the file (993 MB)
=====================================================  ========  ========  ==========================
``pl.scan_csv(...).collect_batches(chunk_size=...)``    0.9       525 MB    4.8 s, 613 MB (gzip: 6.0 s, 534 MB)
slicing a lazy ``pl.scan_csv`` (``.slice().collect()``)  1.4       515 MB    10.4 s, 600 MB
``pyarrow.csv.open_csv`` + ``pl.from_arrow``             1.3       594 MB    9.8 s, 1309 MB
``pyarrow.csv.read_csv`` (whole file, for scale)         2.8       702 MB    -
=====================================================  ========  ========  ==========================

``collect_batches`` is the fastest, its memory stays flat when the file grows fivefold, and it streams gzip
(decompressing as it goes); ``pl.read_csv_batched`` no longer exists in Polars 2.1. Parquet is read by
``pyarrow.parquet.ParquetFile.iter_batches`` (row-group streaming; footer errors are pyarrow's, as in pandas).
Chunk size, summary + read + ``BigBazaarCleaner`` over a 1 M-row (173 MB) file: 50k rows 2.2 s / 533 MB peak RSS,
100k 1.9 s / 627 MB, 250k 1.9 s / 923 MB, 500k 1.9 s / 1127 MB: memory follows the chunk, not the file.

Pandas compatibility of the CSV reader (``pd.read_csv`` is the reference):

- the texts pandas reads as missing (``'NA'``, ``'NULL'``, ``'nan'``, ...) are missing here too, and an empty
  field is missing;
- blank lines are skipped (pandas ``skip_blank_lines``). Polars returns a blank line as a row of nulls, so a row
  whose every field is missing is skipped; a line of only separators (``,,,``), which pandas keeps as a row of
  missing values, is therefore skipped as well (a documented difference);
- a row_id column in the file is kept (moved first). It must hold integers (TypeError) and be unique (ValueError)
  within each chunk. When every chunk's ids lie above the previous chunks' ids (files written by this pipeline)
  that proves them unique over the file; otherwise a duplicate across chunks goes unnoticed (a warning says so
  once): remembering every id would need memory that grows with the rows.
- a truncated gzip stream or a bad line far into the file is found when its chunk is read, i.e. after the
  earlier chunks were yielded (pandas reads everything first); the error is the same ValueError.
"""
from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
from pandas._libs.parsers import STR_NA_VALUES

from pipeline.sources.bigbazaar_columnar import iso8601_dates
from pipeline.sources.loading import (
    BIGBAZAAR_COLUMNS,
    BIGBAZAAR_DTYPES,
    PARQUET_SUFFIXES,
    READ_ERRORS,
    ROW_ID,
    check_table_path,
    read_problem,
    require_columns,
)

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 100_000
# Texts pandas' read_csv reads as missing by default; the empty field is Polars' default null already.
PANDAS_NA_TEXTS = tuple(sorted(STR_NA_VALUES - {""}))
# A header line longer than this is not a CSV header (binary data without line breaks).
MAX_HEADER_BYTES = 1 << 20
# The Polars errors raised while a CSV is parsed (bad lines, invalid UTF-8, decompression) that mean "unreadable".
POLARS_READ_ERRORS = (pl.exceptions.PolarsError, OSError)


def read_chunks(
    path: str | os.PathLike,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    text_columns: Sequence[str] | None = None,
    required_columns: Iterable[str] = (),
    what: str = "table",
    first_row_id: int = 0,
) -> Iterator[pl.DataFrame]:
    """Stream a CSV / gzip CSV / Parquet file as chunks of about ``chunk_rows`` rows, ``row_id`` first.

    ``text_columns``: columns delivered as Utf8 exactly as written ('0000971754' keeps its zeros); None = every
    column (CSV and Parquet alike). Other CSV columns get the type Polars infers from the first 10,000 rows;
    other Parquet columns keep the file's type. ``required_columns`` missing from the header raise ValueError
    (``require_columns`` with ``what``) before any row is read. Path, format and header problems raise here;
    a header-only file raises ValueError "<path> has no data rows ..." at the first chunk. Positions count from
    ``first_row_id`` (the rows of the files before this one in a multi-file input); a file's own row_id is kept.
    """
    table_path = check_table_path(path)
    chunk_rows = _checked_chunk_rows(chunk_rows)
    if table_path.name.lower().endswith(PARQUET_SUFFIXES):
        columns, frames = _parquet_frames(table_path, chunk_rows, text_columns)
    else:
        columns, frames = _csv_frames(table_path, chunk_rows, text_columns)
    require_columns(_header_only(columns), required_columns, what=what)
    logger.info("streaming %s in chunks of %d rows (%d columns)", table_path, chunk_rows, len(columns))
    return _numbered(frames, table_path, columns, first_row_id)


def read_bigbazaar_chunks(path: str | os.PathLike, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                          first_row_id: int = 0) -> Iterator[pl.DataFrame]:
    """A Big Bazaar file as ``read_bigbazaar`` reads it, in chunks: a CSV with every column as text, a Parquet file
    with its text columns (``BIGBAZAAR_DTYPES``) as text and its numbers typed; the 16 columns are required."""
    is_parquet = Path(path).name.lower().endswith(PARQUET_SUFFIXES)
    return read_chunks(
        path, chunk_rows=chunk_rows, text_columns=tuple(BIGBAZAAR_DTYPES) if is_parquet else None,
        required_columns=BIGBAZAAR_COLUMNS, what=f"Big Bazaar transactions file {Path(path).name}",
        first_row_id=first_row_id,
    )


def frame_chunks(frame: pl.DataFrame | pd.DataFrame, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 first_row_id: int = 0) -> Iterator[pl.DataFrame]:
    """An in-memory table as the chunks ``read_chunks`` gives: ``row_id`` (its own, validated, or positions from
    ``first_row_id``) first, then the columns with their types (pandas text columns become Utf8, numbers stay
    numbers)."""
    chunk_rows = _checked_chunk_rows(chunk_rows)
    if isinstance(frame, pd.DataFrame):
        frame = frame.reset_index(drop=True)
    elif not isinstance(frame, pl.DataFrame):
        raise TypeError(f"frame must be a polars or pandas DataFrame, got {type(frame).__name__}")
    columns = [str(column) for column in frame.columns]
    if len(frame) == 0:
        raise ValueError(f"no data rows: the table has only its header ({len(columns)} columns)")
    if ROW_ID in columns:
        _check_whole_row_ids(frame[ROW_ID])
    return _frame_slices(frame, chunk_rows, first_row_id)


def scan_bigbazaar_summary(source: str | os.PathLike | pl.DataFrame | pd.DataFrame) -> tuple[int, date | None]:
    """(number of data rows, latest parseable transactionDate) of a Big Bazaar table, in one lazy streaming pass
    over transactionDate (a second pass over every column counts the rows when some transactionDate is missing).

    The rows are counted as ``read_chunks`` yields them (blank CSV lines skipped); the date is the latest of
    ``pd.to_datetime(transactionDate, format="ISO8601", errors="coerce")`` (``iso8601_dates``), None if no cell
    parses. The cleaner needs both before its first chunk: the "too large to sum" limit (float64 max / n) and
    the default Age reference date.
    """
    if isinstance(source, (pl.DataFrame, pd.DataFrame)):
        dates = pl.from_pandas(source[["transactionDate"]]) if isinstance(source, pd.DataFrame) else source
        latest = dates.select(_as_dates(dates.schema["transactionDate"]).max()).item()
        return len(source), latest
    table_path = check_table_path(source)
    is_parquet = table_path.name.lower().endswith(PARQUET_SUFFIXES)
    if is_parquet:
        columns, _ = _parquet_frames(table_path, DEFAULT_CHUNK_ROWS, None)  # pyarrow's errors for a bad file
        rows = pl.scan_parquet(table_path)
    else:
        _check_csv_start(table_path)
        rows = _csv_scan(table_path, None)
        columns = _csv_columns(rows, table_path)
    require_columns(_header_only(columns), ["transactionDate"], what=f"Big Bazaar transactions file {table_path.name}")
    dtype = rows.collect_schema()["transactionDate"]
    summary = (pl.len(), pl.col("transactionDate").null_count().alias("n_missing"), _as_dates(dtype).max())
    try:
        n_rows, n_missing_dates, latest = rows.select(summary).collect(engine="streaming").row(0)
        if n_missing_dates and not is_parquet:
            # a blank line has no transactionDate either: count the rows read_chunks keeps (reads every column)
            not_blank = rows.filter(~pl.all_horizontal(pl.all().is_null()))
            n_rows = not_blank.select(pl.len()).collect(engine="streaming").item()
    except POLARS_READ_ERRORS as error:
        raise ValueError(f"cannot read {table_path}: {_polars_problem(error)}") from error
    return int(n_rows), latest


def _as_dates(dtype: pl.DataType) -> pl.Expr:
    """transactionDate as Date: typed dates as they are, text through ``iso8601_dates``."""
    column = pl.col("transactionDate")
    if dtype == pl.Date:
        return column
    if isinstance(dtype, pl.Datetime):
        return column.dt.date()
    return column.cast(pl.Utf8).map_batches(iso8601_dates, return_dtype=pl.Date, is_elementwise=True)


def _header_only(columns: Sequence[str]) -> pl.DataFrame:
    """A frame with the header's columns and no rows (what ``require_columns`` inspects)."""
    return pl.DataFrame(schema={column: pl.Null for column in columns})


def _checked_chunk_rows(chunk_rows: int) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    return int(chunk_rows)


def _check_csv_start(path: Path) -> None:
    """Read the header line with Python's gzip / UTF-8 decoders, so that a file that is not gzip, not text or has
    no header fails with pandas' messages (Polars would read binary bytes as a column name)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            header = stream.readline(MAX_HEADER_BYTES)
        header.decode("utf-8")
    except READ_ERRORS as error:
        raise ValueError(f"cannot read {path}: {read_problem(error)}") from error
    if not header.strip():
        raise ValueError(f"cannot read {path}: {read_problem(pd.errors.EmptyDataError())}")


def _csv_scan(path: Path, text_columns: Sequence[str] | None) -> pl.LazyFrame:
    if text_columns is None:
        return pl.scan_csv(path, infer_schema=False, null_values=list(PANDAS_NA_TEXTS))
    return pl.scan_csv(
        path, infer_schema_length=10_000, null_values=list(PANDAS_NA_TEXTS),
        schema_overrides={column: pl.Utf8 for column in text_columns},
    )


def _csv_columns(scan: pl.LazyFrame, path: Path) -> list[str]:
    try:
        return scan.collect_schema().names()
    except POLARS_READ_ERRORS as error:
        raise ValueError(f"cannot read {path}: {_polars_problem(error)}") from error


def _csv_frames(
    path: Path, chunk_rows: int, text_columns: Sequence[str] | None
) -> tuple[list[str], Iterator[pl.DataFrame]]:
    _check_csv_start(path)
    scan = _csv_scan(path, text_columns)
    columns = _csv_columns(scan, path)

    def frames() -> Iterator[pl.DataFrame]:
        blank_line = pl.all_horizontal(pl.all().is_null())
        batches = iter(scan.collect_batches(chunk_size=chunk_rows))
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except POLARS_READ_ERRORS as error:
                raise ValueError(f"cannot read {path}: {_polars_problem(error)}") from error
            yield batch.filter(~blank_line).with_columns(
                pl.when(pl.col(name) != "").then(pl.col(name)).alias(name)  # a quoted "" is missing, as in pandas
                for name, dtype in batch.schema.items() if dtype == pl.Utf8
            )

    return columns, frames()


def _parquet_frames(
    path: Path, chunk_rows: int, text_columns: Sequence[str] | None
) -> tuple[list[str], Iterator[pl.DataFrame]]:
    try:
        parquet = pq.ParquetFile(path)
    except READ_ERRORS as error:
        raise ValueError(f"cannot read {path}: {read_problem(error)}") from error
    # pandas.read_parquet turns the columns of a saved index into the index, which read_table then discards
    index_columns = {name for name in (parquet.schema_arrow.pandas_metadata or {}).get("index_columns", [])
                     if isinstance(name, str)}
    columns = [name for name in parquet.schema_arrow.names if name not in index_columns]
    as_text = set(columns if text_columns is None else text_columns).intersection(columns)

    def frames() -> Iterator[pl.DataFrame]:
        try:
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                frame = pl.from_arrow(batch)
                yield frame.with_columns(pl.col(name).cast(pl.Utf8) for name in columns if name in as_text)
        except READ_ERRORS as error:
            raise ValueError(f"cannot read {path}: {read_problem(error)}") from error

    return columns, frames()


def _polars_problem(error: BaseException) -> str:
    """read_table's wording for a Polars read error (truncated gzip, invalid UTF-8), else the error's own line."""
    message = str(error).lower()
    if isinstance(error, OSError) and "unexpected end of file" in message:
        return read_problem(EOFError())
    if "utf-8" in message or "utf8" in message:
        return read_problem(UnicodeDecodeError("utf-8", b"", 0, 1, "invalid"))
    return read_problem(error)


def _numbered(frames: Iterator[pl.DataFrame], path: Path, columns: list[str], first_row_id: int) -> Iterator[pl.DataFrame]:
    """Number the rows of a file's chunks from ``first_row_id`` (or check the file's own row_id); header only ->
    ValueError."""
    row_ids = _RowIds(first_row_id)
    for frame in frames:
        if frame.height:
            yield row_ids.attach(frame)
    if row_ids.n_rows == 0:
        raise ValueError(f"{path} has no data rows (only a header with {len(columns)} columns)")
    logger.info("read %d rows x %d columns from %s", row_ids.n_rows, len(columns), path)


def _frame_slices(frame: pl.DataFrame | pd.DataFrame, chunk_rows: int, first_row_id: int) -> Iterator[pl.DataFrame]:
    row_ids = _RowIds(first_row_id)
    for start in range(0, len(frame), chunk_rows):
        if isinstance(frame, pd.DataFrame):
            yield row_ids.attach(polars_from_pandas(frame.iloc[start:start + chunk_rows]))
        else:
            yield row_ids.attach(frame.slice(start, chunk_rows))


def polars_from_pandas(part: pd.DataFrame) -> pl.DataFrame:
    """A pandas slice as Polars; object columns (text mixed with numbers: '12,5x' among floats) become the text
    pandas' astype('string') writes, which is what the pandas cleaners parse."""
    mixed = {column: "string" for column in part.columns if part[column].dtype == object}
    return pl.from_pandas(part.astype(mixed) if mixed else part)


def number_rows(frame: pl.DataFrame, first_row_id: int = 0) -> pl.DataFrame:
    """``frame`` as one chunk of ``read_chunks``: ``row_id`` first, positions from ``first_row_id``, or the frame's
    own row_id validated as the readers validate it (integers, unique within the frame)."""
    return _RowIds(first_row_id).attach(frame)


class _RowIds:
    """Gives chunks their row_id: positions continuing across chunks, or the input's own ids (validated)."""

    def __init__(self, first_row_id: int = 0) -> None:
        self.first_row_id = first_row_id
        self.n_rows = 0
        self.largest_id: int | None = None
        self.warned = False

    def attach(self, frame: pl.DataFrame) -> pl.DataFrame:
        if ROW_ID in frame.columns:
            own = self._checked_own_ids(frame[ROW_ID])
            frame = frame.with_columns(own)
        else:
            start = self.first_row_id + self.n_rows
            positions = pl.int_range(start, start + frame.height, dtype=pl.Int64)
            frame = frame.with_columns(positions.alias(ROW_ID))
        self.n_rows += frame.height
        return frame.select(ROW_ID, pl.exclude(ROW_ID))

    def _checked_own_ids(self, ids: pl.Series) -> pl.Series:
        """Int64 ids; TypeError unless integers, ValueError for a duplicate within the chunk."""
        numbers = _integer_ids(ids)
        duplicated = numbers.filter(numbers.is_duplicated()).unique(maintain_order=True)
        if duplicated.len():
            raise ValueError(f"column {ROW_ID!r} has duplicate ids, e.g. {duplicated.head(5).to_list()}")
        smallest, largest = numbers.min(), numbers.max()
        if self.largest_id is not None and smallest <= self.largest_id and not self.warned:
            self.warned = True
            logger.warning("the %r ids do not increase from chunk to chunk: duplicates across chunks are not "
                           "checked", ROW_ID)
        self.largest_id = largest if self.largest_id is None else max(self.largest_id, largest)
        return numbers


def _integer_ids(ids: pl.Series) -> pl.Series:
    """A row_id column as Int64; TypeError when a value is missing or not an integer (like ``with_row_id``)."""
    if ids.dtype.is_integer():
        numbers = ids.cast(pl.Int64, strict=False)
    elif ids.dtype == pl.Utf8:
        numbers = ids.str.strip_chars().cast(pl.Int64, strict=False)
    else:
        raise TypeError(f"column {ROW_ID!r} must hold integers, got dtype {ids.dtype}")
    if numbers.null_count():
        bad = ids.filter(numbers.is_null()).head(3).to_list()
        raise TypeError(f"column {ROW_ID!r} must hold integers, got values {bad}")
    return numbers.alias(ROW_ID)


def _check_whole_row_ids(ids: pl.Series | pd.Series) -> None:
    """An in-memory frame's own row_id: integers (TypeError) and unique over the whole frame (ValueError)."""
    series = pl.from_pandas(ids) if isinstance(ids, pd.Series) else ids
    if not series.dtype.is_integer():
        raise TypeError(f"column {ROW_ID!r} must hold integers, got dtype {ids.dtype}")
    duplicated = series.filter(series.is_duplicated()).unique(maintain_order=True)
    if duplicated.len():
        raise ValueError(f"column {ROW_ID!r} has duplicate ids, e.g. {duplicated.head(5).to_list()}")
