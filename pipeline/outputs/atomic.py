"""Atomic file writes: write to a temporary file in the target folder, then rename over the target.

A reader never sees a half-written file, and a crash leaves the previous version (or nothing) in place.
Output folders are probed for writability before a run reads any data, and a run's staging folder
(``.staging-<pid>-<random>``) that a killed process left behind is removed by the next run in that folder.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:  # annotations only: train.py imports this module for --help, which must not load pandas
    import pandas as pd

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"
# A staging folder whose name carries no pid (written before pids were recorded) is stale after this many seconds.
STALE_UNNAMED_STAGING_S = 3600.0


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


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (with parents) and write then remove a probe file in it. Returns the folder.

    Raises OSError naming the folder and the problem (a file in the way, no permission, read-only disk) so that a
    run fails before it reads any data rather than after training.
    """
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        problem = error.strerror or type(error).__name__
        raise OSError(f"output folder {target} is not writable: {problem}") from error
    return target


def make_staging_dir(folder: str | os.PathLike) -> Path:
    """A new hidden staging folder ``folder/.staging-<pid>-<random>`` (the pid tells later runs it is alive)."""
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=folder))


def remove_stale_staging(folder: str | os.PathLike) -> list[Path]:
    """Remove the staging folders of ``folder`` that no live process holds; return those removed.

    A folder ``.staging-<pid>-<random>`` is stale when no process ``pid`` exists (its run was killed). A folder
    whose name has no pid is stale when its mtime is more than ``STALE_UNNAMED_STAGING_S`` seconds old.
    """
    target = Path(folder)
    if not target.is_dir():
        return []
    removed = []
    for staging in sorted(target.glob(f"{STAGING_PREFIX}*")):
        if staging.is_dir() and _is_stale(staging):
            shutil.rmtree(staging, ignore_errors=True)
            logger.info("removed the stale staging folder %s of a run that did not finish", staging)
            removed.append(staging)
    return removed


def _is_stale(staging: Path) -> bool:
    """``.staging-<pid>-*``: its process is gone; any other staging name: older than STALE_UNNAMED_STAGING_S."""
    pid_text, dash, _ = staging.name[len(STAGING_PREFIX):].partition("-")
    if dash and pid_text.isascii() and pid_text.isdigit():
        return not _process_alive(int(pid_text))
    try:
        return time.time() - staging.stat().st_mtime > STALE_UNNAMED_STAGING_S
    except OSError:
        return False


def _process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OverflowError:
        return False
    return True
