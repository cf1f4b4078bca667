"""Atomic file writes: write to a temporary file in the target folder, then rename over the target.

A reader never sees a half-written file, and a crash leaves the previous version (or nothing) in place.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())  # mkstemp creates 0600; give the file the mode a plain open() would
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def default_file_mode() -> int:
    """0666 less the process umask: the permissions ``open(path, "w")`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically. Returns ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike, **to_csv_kwargs: Any) -> Path:
    """Write ``frame`` as CSV (no index unless asked) atomically."""
    to_csv_kwargs.setdefault("index", False)
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, **to_csv_kwargs))


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return write_text_atomic(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", path)


def _json_default(value: Any) -> Any:
    """Convert NumPy scalars and arrays to plain Python for JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
