"""Raw transactions as one object, whether they lie in a file or in memory: ``TransactionSource``.

The segmenter reads a source in two ways. The columnar path (Big Bazaar data, customer features) streams it in
chunks (``chunks``, ``pipeline.sources.chunks``), so the input is never held whole; every other combination of
schema and feature set reads it whole into pandas (``frame``). A source made from a file is checked before
anything heavy happens (``check``): missing file, folder, unsupported suffix, empty file.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from pipeline.sources.chunks import DEFAULT_CHUNK_ROWS, frame_chunks, read_bigbazaar_chunks, scan_bigbazaar_summary
from pipeline.sources.loading import check_table_path, read_bigbazaar, read_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransactionSource:
    """Raw transactions of one schema: a file (``path``) or a frame in memory (``table``, pandas or Polars).

    ``chunk_rows`` is the number of rows per chunk of the columnar path; memory per chunk is about
    ``chunk_rows`` × the row width.
    """

    path: Path | None = None
    table: pd.DataFrame | pl.DataFrame | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    @classmethod
    def of(cls, raw: Any, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> TransactionSource:
        """A source from a path, a pandas or Polars frame, or a source (returned as it is)."""
        if isinstance(raw, TransactionSource):
            return raw
        if isinstance(raw, (pd.DataFrame, pl.DataFrame)):
            return cls(table=raw, chunk_rows=chunk_rows)
        if isinstance(raw, (str, os.PathLike)):
            return cls(path=Path(raw), chunk_rows=chunk_rows)
        raise TypeError(f"raw transactions must be a pandas or Polars DataFrame or a file path, got {type(raw).__name__}")

    @property
    def name(self) -> str:
        """The file path, or ``<in-memory frame>``."""
        return str(self.path) if self.path is not None else "<in-memory frame>"

    def check(self) -> None:
        """Raise before any data is read: FileNotFoundError for a missing file, ValueError for a folder, an
        unsupported suffix or a 0-byte file."""
        if self.path is not None:
            check_table_path(self.path)

    def chunks(self) -> Iterator[pl.DataFrame]:
        """The rows in chunks of about ``chunk_rows``: ``row_id`` (position in the input) first, then the columns
        (a file's columns as text; a frame's columns with their types)."""
        if self.table is not None:
            return frame_chunks(self.table, self.chunk_rows)
        return read_bigbazaar_chunks(self.path, chunk_rows=self.chunk_rows)

    def bigbazaar_summary(self) -> tuple[int, date | None]:
        """(number of rows, latest parseable transactionDate or None), read before cleaning: the cleaner needs the
        row count of the whole input and the default Age reference day."""
        return scan_bigbazaar_summary(self.path if self.table is None else self.table)

    def frame(self, schema: str) -> pd.DataFrame:
        """The whole input as one pandas frame, read the way ``schema``'s cleaner expects (Big Bazaar text columns
        as text)."""
        if self.table is not None:
            return self.table.to_pandas() if isinstance(self.table, pl.DataFrame) else self.table
        if schema == "bigbazaar":
            return read_bigbazaar(self.path)
        return read_table(self.path)

