"""Model files: one ``torch.save`` file of tensors and plain values, written atomically, read with weights_only."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Union

import torch


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
    """Load a state saved by :func:`save_state` on the CPU, allowing only tensors and plain Python values."""
    if not Path(path).exists():
        raise FileNotFoundError(f"model file not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)
