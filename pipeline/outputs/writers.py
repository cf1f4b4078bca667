"""Output tables written by Polars, as CSV or Parquet, atomically: whole (``write_table``) or chunk by chunk
(``ChunkedTableWriter``).

What a reader gets back with pandas (``pd.read_csv`` / ``pd.read_parquet``) has the values of the old pandas
writer's file (``DataFrame.to_csv(index=False)``):

- floats: Polars' shortest text that reads back as the same float64 (the old ``%.10g`` kept 10 digits only);
  NaN and null are both written as an empty cell / a Parquet null (pandas reads NaN); ±inf as ``inf`` / ``-inf``;
- booleans: ``True`` / ``False`` in CSV (pandas' spelling), booleans in Parquet;
- dates: ``2020-01-31``; datetimes ``2020-01-31 10:30:00.000000``, every cell of a column with the digits of its
  time unit (ms 3, us 6, ns 9) and ``+01:00`` when it has a time zone, so a file has one format per column
  whatever its chunks hold (pandas trims the fraction to what the column needs, or writes dates for a column of
  midnights: the text differs, the values ``pd.to_datetime`` reads do not);
- pandas object columns: text and None stay text and null; a column mixing types (numbers and text, as raw
  input can) is written as each value's ``str`` like pandas does; nullable ``Int64`` / ``string`` / categorical
  columns keep their values and nulls;
- text is quoted only when it holds a comma, a quote or a line break, as pandas does; an empty string is
  written ``""`` (pandas reads it as NaN, or as "" with ``keep_default_na=False``, like its own empty cell).

The index of a pandas frame is not written (the old writer used ``index=False``).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import IO

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.outputs.atomic import atomic_path

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("csv", "parquet")
PART_NAME = "part-{:05d}"  # the part files of a table written as a Parquet dataset (a folder of parts)
CSV_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
FRACTION_DIGITS = {"ms": 3, "us": 6, "ns": 9}  # of a second, by a datetime column's time unit

Table = pl.DataFrame | pd.DataFrame
Columns = Sequence[str] | Mapping[str, pl.DataType]


def table_path(path: str | os.PathLike, fmt: str) -> Path:
    """``path`` with the suffix of ``fmt`` (``result.csv`` → ``result.parquet``); ValueError for an unknown fmt."""
    check_format(fmt)
    return Path(path).with_suffix(f".{fmt}")


def check_format(fmt: str) -> None:
    """Raise ValueError naming ``fmt`` and the valid formats unless it is one of ``FORMATS``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def write_table(table: Table, path: str | os.PathLike, *, fmt: str = "csv") -> Path:
    """Write ``table`` (Polars or pandas, n rows × c columns) as one CSV or Parquet file, atomically.

    The file is ``path`` with the suffix of ``fmt``; it appears complete or not at all (a temporary file beside
    it is renamed over it). Returns the path written.
    """
    target = table_path(path, fmt)
    frame = _nan_as_null(to_polars(table))
    with atomic_path(target) as tmp:
        if fmt == "csv":
            _csv_ready(frame).write_csv(tmp)
        else:
            frame.write_parquet(tmp)
    logger.info("wrote %s (%d rows × %d columns)", target, frame.height, frame.width)
    return target


class ChunkedTableWriter:
    """Stream chunks of one table into one CSV or Parquet file, atomically.

    ``with ChunkedTableWriter(path, fmt="parquet") as writer: writer.write(chunk)`` for each chunk, in order.
    CSV: one header, then every chunk's rows. Parquet: one row group per chunk. The data goes to a temporary file
    beside the target, renamed onto ``path`` (suffix from ``fmt``) only when the ``with`` block ends without an
    exception; after an exception the temporary file is removed and an existing target is left as it was.

    Columns: every chunk must have the columns of the first (or of ``columns``), in that order. Dtypes: a
    column's dtype is fixed by the first chunk where it is not all-null (or by ``columns`` given as a mapping
    name → dtype); a later chunk whose column is all-null (dtype Null) is cast to it; any other dtype change
    raises ValueError naming the column and both dtypes (no silent widening: Int64 → Float64 would change how
    the numbers are written). A Parquet file fixes its schema at the first chunk, so a column all-null in the
    first chunk needs its dtype from ``columns={name: dtype}``.

    Args:
        path: target file; its suffix is replaced by ``fmt``'s.
        fmt: "csv" or "parquet".
        columns: optional column names (or name → dtype). Needed for a writer that may get no chunk: it then
            writes a header-only CSV / an empty Parquet file with these columns.
    """

    def __init__(self, path: str | os.PathLike, *, fmt: str = "csv", columns: Columns | None = None) -> None:
        self.path = table_path(path, fmt)
        self.fmt = fmt
        self.rows_written = 0
        self._schema: dict[str, pl.DataType] | None = _schema_of(columns)
        self._stack: ExitStack | None = None
        self._tmp: Path | None = None
        self._handle: IO[bytes] | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._arrow_schema: pa.Schema | None = None
        self._chunks = 0

    def __enter__(self) -> ChunkedTableWriter:
        self._stack = ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        if self.fmt == "csv":
            self._handle = self._stack.enter_context(open(self._tmp, "wb"))
        return self

    def write(self, chunk: Table) -> None:
        """Append ``chunk`` (Polars or pandas, rows × the table's columns) to the file."""
        if self._stack is None:
            raise RuntimeError("ChunkedTableWriter.write needs the writer's `with` block")
        frame = self._conform(_nan_as_null(to_polars(chunk)))
        if self.fmt == "csv":
            _csv_ready(frame).write_csv(self._handle, include_header=self._chunks == 0)
        else:
            arrow = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
            if self._parquet is None:
                self._parquet = self._open_parquet(arrow.schema)
            self._parquet.write_table(arrow.cast(self._arrow_schema), row_group_size=max(arrow.num_rows, 1))
        self._chunks += 1
        self.rows_written += frame.height

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        stack = self._stack
        try:
            if exc_type is None:
                try:
                    self._finish()
                except BaseException as error:
                    stack.__exit__(type(error), error, error.__traceback__)
                    raise
            else:
                logger.info("removed the partial %s after an error", self.path)
            return bool(stack.__exit__(exc_type, exc, tb))
        finally:
            self._stack = None

    def _finish(self) -> None:
        """Write the header (CSV) or the schema (Parquet) of a writer that got no chunk; close the Parquet file."""
        if self._chunks == 0:
            if self._schema is None:
                raise ValueError(f"no chunk was written to {self.path} and no columns were given: pass columns= "
                                 "to write a file with only the header")
            empty = pl.DataFrame(schema=self._schema)
            if self.fmt == "csv":
                empty.write_csv(self._handle)
            else:
                self._parquet = self._open_parquet(empty.to_arrow(compat_level=pl.CompatLevel.oldest()).schema)
        if self._parquet is not None:
            self._parquet.close()
        logger.info("wrote %s (%d rows in %d chunks)", self.path, self.rows_written, self._chunks)

    def _open_parquet(self, schema: pa.Schema) -> pq.ParquetWriter:
        self._arrow_schema = schema
        writer = pq.ParquetWriter(self._tmp, schema)
        self._stack.callback(writer.close)  # closes the file on an error too (ParquetWriter.close is idempotent)
        return writer

    def _conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with the table's columns and dtypes (see the class docstring), fixing those not yet known."""
        if self._schema is None:
            self._schema = dict(frame.schema)
        if frame.columns != list(self._schema):
            raise ValueError(f"chunk {self._chunks} of {self.path} has columns {frame.columns}; the table's columns "
                             f"are {list(self._schema)}")
        casts = {}
        for name, dtype in frame.schema.items():
            known = self._schema[name]
            if dtype == known:
                continue
            if known == pl.Null:  # only before a Parquet file is opened: an untyped column stops that below
                self._schema[name] = dtype
            elif dtype == pl.Null:
                casts[name] = known
            else:
                raise ValueError(f"column {name!r} of chunk {self._chunks} of {self.path} has dtype {dtype}; "
                                 f"earlier chunks have {known}")
        if self.fmt == "parquet" and self._parquet is None:
            untyped = [name for name, dtype in self._schema.items() if dtype == pl.Null]
            if untyped:
                raise ValueError(f"columns {untyped} of {self.path} are all null in the first chunk, so the Parquet "
                                 "schema has no dtype for them: pass columns={name: dtype, ...}")
        return frame.cast(casts) if casts else frame


def to_polars(table: Table) -> pl.DataFrame:
    """A Polars frame of ``table`` (a pandas frame is converted without its index; column names as text).

    A pandas object column that Arrow cannot type (values of mixed types) becomes text: ``str(value)``, null
    for None/NaN, which is what ``DataFrame.to_csv`` writes for such a column.
    """
    if isinstance(table, pl.DataFrame):
        return table
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a Polars or pandas DataFrame, got {type(table).__name__}")
    names = [str(name) for name in table.columns]
    if len(set(names)) != len(names):
        duplicated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"table has duplicated column names {duplicated}; a file's columns must be unique")
    columns = []
    for name, (_, values) in zip(names, table.items()):
        try:
            column = pl.from_pandas(values.reset_index(drop=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            as_text = values.astype(str).where(values.notna(), None).astype(object)
            column = pl.from_pandas(as_text.reset_index(drop=True))
        columns.append(column.rename(name))
    return pl.DataFrame(columns) if columns else pl.DataFrame(schema=[])


def _nan_as_null(frame: pl.DataFrame) -> pl.DataFrame:
    """Float NaN as null, the one missing value of the files (pandas writes NaN and None alike)."""
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    return frame.with_columns(pl.col(floats).fill_nan(None)) if floats else frame


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Booleans as pandas spells them (True / False) and datetimes in one fixed format per column, for CSV."""
    texts = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Boolean:
            texts.append(pl.when(pl.col(name)).then(pl.lit("True")).when(pl.col(name).not_()).then(pl.lit("False"))
                         .alias(name))
        elif isinstance(dtype, pl.Datetime):
            zone = "%:z" if dtype.time_zone is not None else ""
            pattern = f"{CSV_DATETIME_FORMAT}%.{FRACTION_DIGITS[dtype.time_unit]}f{zone}"
            texts.append(pl.col(name).dt.to_string(pattern))
    return frame.with_columns(texts) if texts else frame


def _schema_of(columns: Columns | None) -> dict[str, pl.DataType] | None:
    """The schema given by ``columns``: names (dtype Null until a chunk tells) or name → dtype."""
    if columns is None:
        return None
    if isinstance(columns, Mapping):
        return {str(name): dtype for name, dtype in columns.items()}
    if isinstance(columns, str):
        raise TypeError(f"columns must be a sequence of column names or a mapping name -> dtype, got {columns!r}")
    return {str(name): pl.Null for name in columns}
