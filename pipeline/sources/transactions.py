"""Raw transactions as one object, whether they lie in files or in memory: ``TransactionSource``.

The segmenter reads a source in two ways. The columnar path (Big Bazaar data, customer features) streams it in
chunks (``chunks``, ``pipeline.sources.chunks``), so the input is never held whole; every other combination of
schema and feature set reads it whole into pandas (``frame``). A source made from a file is checked before
anything heavy happens (``check``): missing file, folder, unsupported suffix, empty file. A source may span several
files (a glob, a list, a Parquet dataset folder: ``expand_table_paths``), read one after the other with ``row_id``
continuing across them.
"""
from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from pipeline.sources.chunks import DEFAULT_CHUNK_ROWS, frame_chunks, read_bigbazaar_chunks, scan_bigbazaar_summary
from pipeline.sources.loading import check_table_path, expand_table_paths, read_bigbazaar, read_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransactionSource:
    """Raw transactions of one schema: files (``paths``, read in order) or a frame in memory (``table``, pandas
    or Polars). ``path`` is the single file of a one-file source (None otherwise).

    ``chunk_rows`` is the number of rows per chunk of the columnar path; memory per chunk is about
    ``chunk_rows`` × the row width.
    """

    path: Path | None = None
    table: pd.DataFrame | pl.DataFrame | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    paths: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.path is not None and not self.paths:
            object.__setattr__(self, "paths", (Path(self.path),))
        elif self.path is None and len(self.paths) == 1:
            object.__setattr__(self, "path", Path(self.paths[0]))

    @classmethod
    def of(cls, raw: Any, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> TransactionSource:
        """A source from a path, a glob, a list of paths, a Parquet dataset folder, a pandas or Polars frame, or a
        source (returned as it is)."""
        if isinstance(raw, TransactionSource):
            return raw
        if isinstance(raw, (pd.DataFrame, pl.DataFrame)):
            return cls(table=raw, chunk_rows=chunk_rows)
        if isinstance(raw, (str, os.PathLike)) and not glob.has_magic(os.fspath(raw)) and not Path(raw).is_dir():
            return cls(path=Path(raw), chunk_rows=chunk_rows)
        if isinstance(raw, (str, os.PathLike, list, tuple)):
            return cls(paths=tuple(expand_table_paths(raw)), chunk_rows=chunk_rows)
        raise TypeError(f"raw transactions must be a pandas or Polars DataFrame, a file path, a glob or a list of "
                        f"paths, got {type(raw).__name__}")

    @property
    def name(self) -> str:
        """The file path, ``<first> and N more files``, or ``<in-memory frame>``."""
        if self.table is not None:
            return "<in-memory frame>"
        more = len(self.paths) - 1
        return str(self.paths[0]) + (f" and {more} more file{'s' if more > 1 else ''}" if more else "")

    def check(self) -> None:
        """Raise before any data is read: FileNotFoundError for a missing file, ValueError for a folder, an
        unsupported suffix or a 0-byte file."""
        for path in self.paths:
            check_table_path(path)

    def chunks(self, first_row_id: int = 0) -> Iterator[pl.DataFrame]:
        """The rows in chunks of about ``chunk_rows``: ``row_id`` (position in the input from ``first_row_id``,
        continuing across files; an input's own row_id is kept) first, then the columns (a file's columns as text;
        a frame's columns with their types)."""
        if self.table is not None:
            return frame_chunks(self.table, self.chunk_rows, first_row_id)
        return self._files_chunks(first_row_id)

    def _files_chunks(self, first_row_id: int = 0) -> Iterator[pl.DataFrame]:
        offset = first_row_id
        for path in self.paths:
            n_rows = 0
            for chunk in read_bigbazaar_chunks(path, chunk_rows=self.chunk_rows, first_row_id=offset):
                n_rows += chunk.height
                yield chunk
            offset += n_rows

    def bigbazaar_summary(self) -> tuple[int, date | None]:
        """(number of rows, latest parseable transactionDate or None), read before cleaning: the cleaner needs the
        row count of the whole input and the default Age reference day."""
        if self.table is not None:
            return scan_bigbazaar_summary(self.table)
        return merge_summaries([scan_bigbazaar_summary(path) for path in self.paths])

    def frame(self, schema: str) -> pd.DataFrame:
        """The whole input as one pandas frame, read the way ``schema``'s cleaner expects (Big Bazaar text columns
        as text); the files of a multi-file source one after the other."""
        if self.table is not None:
            return self.table.to_pandas() if isinstance(self.table, pl.DataFrame) else self.table
        read = read_bigbazaar if schema == "bigbazaar" else read_table
        frames = [read(path) for path in self.paths]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def merge_summaries(summaries: Sequence[tuple[int, date | None]]) -> tuple[int, date | None]:
    """The (rows, latest date) of an input from its shards' summaries: rows add up, the latest date is the maximum."""
    dates = [latest for _, latest in summaries if latest is not None]
    return sum(n for n, _ in summaries), max(dates) if dates else None
