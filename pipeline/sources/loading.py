"""Read transaction tables (CSV, gzip CSV, Parquet) and give every input row a stable ``row_id``.

``row_id`` is the 0-based position of the row in the input (the files of a multi-file input counted one after
the other, in ``expand_table_paths`` order). It travels with the row through cleaning
(kept rows and dropped rows alike) to ``result.csv`` and ``dropped_rows.csv``, so any output row can be traced
back to its record in the input.
"""
from __future__ import annotations

import glob
import gzip
import logging
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

ROW_ID = "row_id"

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
# What pandas / gzip / pyarrow raise for a file that is not a readable table; each becomes one ValueError naming
# the file (UnicodeDecodeError, EmptyDataError and ParserError are ValueErrors; BadGzipFile is an OSError).
READ_ERRORS = (ValueError, OSError, EOFError, zlib.error)

BIGBAZAAR_COLUMNS = (
    "customerID", "DOB", "Gender", "State", "PinCode", "transactionDate", "store_code", "store_description",
    "till_no", "transaction_number_by_till", "promo_code", "promotion_description", "product_code",
    "product_description", "sale_price_after_promo", "discountUsed",
)
# Text columns of cproducts.csv are read as text so zero-padded promo codes ('0000971754') and ids survive;
# the numeric columns are left to inference, and cleaning converts (and reports) anything unparseable.
BIGBAZAAR_DTYPES: Mapping[str, Any] = {
    "customerID": str, "DOB": str, "Gender": str, "State": str, "transactionDate": str,
    "store_description": str, "promo_code": str, "promotion_description": str,
    "product_description": str, "discountUsed": str,
}


def read_table(
    path: str | os.PathLike,
    *,
    dtype: Mapping[str, Any] | None = None,
    usecols: Iterable[str] | None = None,
    nrows: int | None = None,
) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file and add ``row_id``.

    Returns the file's columns with ``row_id`` (int64, 0..n-1, the position in the file) inserted first.
    A file that already carries a ``row_id`` column (e.g. one written by this pipeline) keeps its own ids,
    which must be unique integers. ``nrows`` reads only the first rows (their ids are still positions).
    A table without data rows (a header-only file) raises ValueError "<path> has no data rows".
    """
    table_path = check_table_path(path)
    name = table_path.name.lower()
    columns = list(usecols) if usecols is not None else None
    try:
        if name.endswith(CSV_SUFFIXES):
            frame = pd.read_csv(table_path, dtype=dict(dtype) if dtype else None, usecols=columns, nrows=nrows)
        else:
            frame = pd.read_parquet(table_path, columns=columns)
            if nrows is not None:
                frame = frame.head(nrows)
            if dtype:
                frame = frame.astype({column: kind for column, kind in dtype.items() if column in frame.columns})
    except READ_ERRORS as error:
        raise ValueError(f"cannot read {table_path}: {read_problem(error)}") from error
    if len(frame) == 0:
        raise ValueError(f"{table_path} has no data rows (only a header with {frame.shape[1]} columns)")
    logger.info("read %d rows x %d columns from %s", len(frame), frame.shape[1], table_path)
    return with_row_id(frame)


def check_table_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, checked before anything is read: FileNotFoundError for a missing file, ValueError for a
    folder, an unsupported suffix or a 0-byte file."""
    table_path = Path(path)
    if table_path.is_dir():
        raise ValueError(f"cannot read {table_path}: it is a folder, not a table file")
    if not table_path.is_file():
        raise FileNotFoundError(f"input table not found: {table_path}")
    if not table_path.name.lower().endswith(SUPPORTED_SUFFIXES):
        raise ValueError(
            f"unsupported table file {table_path.name!r}: supported suffixes are {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if table_path.stat().st_size == 0:
        raise ValueError(f"cannot read {table_path}: the file is empty (0 bytes)")
    return table_path


def expand_table_paths(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The table files an input names, in input order: one file; a glob (``data/*.parquet``, sorted); a folder
    (a Parquet dataset: its ``*.parquet``/``*.pq`` files, sorted, recursively); or a list of any of these (in
    the list's order). Raises FileNotFoundError when a glob matches no file, ValueError for a folder without a
    Parquet file; each file is then checked by ``check_table_path``."""
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not specs:
        raise ValueError("no input files given (an empty list)")
    paths: list[Path] = []
    for item in specs:
        text = os.fspath(item)
        if glob.has_magic(text):
            found = sorted(Path(match) for match in glob.glob(text, recursive=True) if Path(match).is_file())
            if not found:
                raise FileNotFoundError(f"no input file matches {text!r}")
            paths.extend(found)
        elif Path(text).is_dir():
            found = sorted(path for path in Path(text).rglob("*")
                           if path.is_file() and path.name.lower().endswith(PARQUET_SUFFIXES))
            if not found:
                raise ValueError(f"cannot read {text}: it is a folder, not a table file (nor a Parquet dataset: it "
                                 "holds no *.parquet or *.pq file)")
            paths.extend(found)
        else:
            paths.append(Path(text))
    return [check_table_path(path) for path in paths]


def read_problem(error: BaseException) -> str:
    """One line saying why a table could not be read (bad gzip, truncated stream, not text, bad CSV)."""
    if isinstance(error, UnicodeDecodeError):
        return "not a UTF-8 text file (is it a binary file?)"
    if isinstance(error, gzip.BadGzipFile):
        return f"not a valid gzip file ({error})"
    if isinstance(error, EOFError):
        return "the compressed stream is truncated (the file ends before its end-of-stream marker)"
    if isinstance(error, zlib.error):
        return f"the compressed stream is corrupt ({error})"
    if isinstance(error, pd.errors.EmptyDataError):
        return "the file has no data rows (not even a header line)"
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def read_bigbazaar(path: str | os.PathLike, *, nrows: int | None = None) -> pd.DataFrame:
    """Read a Big Bazaar ``cproducts.csv``-style table (16 columns) with text columns kept as text."""
    frame = read_table(path, dtype=BIGBAZAAR_DTYPES, nrows=nrows)
    require_columns(frame, BIGBAZAAR_COLUMNS, what=f"Big Bazaar transactions file {Path(path).name}")
    return frame


def with_row_id(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with ``row_id`` as its first column: kept if present (validated), else 0..n-1."""
    if ROW_ID in frame.columns:
        row_ids = frame[ROW_ID]
        if not pd.api.types.is_integer_dtype(row_ids):
            raise TypeError(f"column {ROW_ID!r} must hold integers, got dtype {row_ids.dtype}")
        if row_ids.duplicated().any():
            duplicates = row_ids[row_ids.duplicated()].unique()[:5].tolist()
            raise ValueError(f"column {ROW_ID!r} has duplicate ids, e.g. {duplicates}")
        return frame
    labelled = frame.reset_index(drop=True)
    labelled.insert(0, ROW_ID, np.arange(len(labelled), dtype=np.int64))
    return labelled


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    """Raise ValueError naming every column of ``columns`` missing from ``frame`` and the columns present."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} is missing column(s) {missing}; columns present: {list(map(str, frame.columns))}"
        )
