"""Model files: one ``torch.save`` file of tensors and plain values, written atomically, read with weights_only.

Any file that cannot be read that way (random bytes, a truncated file, a pickle or torch file of other objects)
is reported as ``<path> is not a somtorch model (<problem>)``, never with torch's own advice to load it unsafely.
"""
from __future__ import annotations

import os
import pickle
import warnings
import tempfile
from pathlib import Path
from typing import Any, Union

import torch

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
PICKLE_PROTOCOL_MARK = b"\x80"  # first byte of a pickle of protocol 2 or later


def save_state(state: dict[str, Any], path: Union[str, Path]) -> Path:
    """``torch.save(state)`` to a temporary file beside ``path``, then rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the mode a plain open() would
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_state(path: Union[str, Path]) -> dict[str, Any]:
    """Load a state saved by :func:`save_state` on the CPU, allowing only tensors and plain Python values.

    Raises FileNotFoundError when ``path`` does not exist and ValueError ``<path> is not a somtorch model (...)``
    when it is a folder, cannot be read with ``weights_only``, or does not hold a dict.
    """
    model_path = Path(path)
    if not model_path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if model_path.is_dir():
        raise not_a_model(path, "it is a folder, not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's warnings about foreign pickles advise unsafe loading too
            state = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types here (UnpicklingError, RuntimeError, EOFError, ...)
        raise not_a_model(path, _load_problem(model_path, error)) from None  # the cause carries torch's advice
    if not isinstance(state, dict):
        raise not_a_model(path, f"it holds a {type(state).__name__}, not a dict of tensors and values")
    return state


def not_a_model(path: Union[str, Path], problem: str) -> ValueError:
    """The error for a file that is not a model: ``<path> is not a somtorch model (<problem>)``."""
    return ValueError(f"{path} is not a somtorch model ({problem})")


def broken_part(error: Exception) -> str:
    """What an error met while rebuilding a model from its loaded state says is wrong, in one line."""
    if isinstance(error, KeyError):
        return f"missing key {error.args[0]!r}" if error.args else "a key is missing"
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _load_problem(path: Path, error: Exception) -> str:
    """A one-line description of why ``torch.load(weights_only=True)`` failed, without torch's unsafe advice."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(ZIP_MAGIC))
    except OSError as read_error:
        return f"cannot read it: {read_error.strerror or type(read_error).__name__}"
    if not head:
        return "the file is empty"
    if head == ZIP_MAGIC:
        if isinstance(error, pickle.UnpicklingError):
            return "it holds objects other than tensors and plain values"
        return "a truncated or damaged torch file"
    if head[:1] == PICKLE_PROTOCOL_MARK:
        return "a pickle, not a torch file of tensors and plain values"
    return "not a torch file (neither a torch zip archive nor a pickle)"
