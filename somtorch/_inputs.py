"""Validation and conversion of user inputs: devices, dtypes, and data matrices."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import torch

DeviceSpec = Union[str, torch.device, None]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
_CHECK_ROWS = 1 << 16  # rows per block of the NaN/inf check


def resolve_device(device: DeviceSpec) -> torch.device:
    """``"auto"``/None → CUDA when available else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch.device as given.

    A CUDA request on a machine without CUDA raises RuntimeError: it never falls back to the CPU silently.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a valid device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device={str(device)!r} was requested but CUDA is not available "
                "(torch.cuda.is_available() is False); use device='cpu' or 'auto'"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise RuntimeError(f"device={str(device)!r} was requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif resolved.type != "cpu":
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return resolved


def resolve_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    """torch.float32 / torch.float64, also given as the strings "float32" / "float64"."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if dtype in (torch.float32, torch.float64):
        return dtype
    raise ValueError(f"dtype={dtype!r} is not supported; use torch.float32 or torch.float64 (or 'float32'/'float64')")


def to_host_matrix(data: Any, name: str = "data") -> Union[np.ndarray, torch.Tensor]:
    """A list, NumPy array, pandas DataFrame or tensor as a 2-D tensor or float array, without a device copy."""
    if isinstance(data, torch.Tensor):
        return data
    if hasattr(data, "to_numpy") and hasattr(data, "columns"):
        non_numeric = [str(c) for c in data.select_dtypes(exclude=["number", "bool"]).columns]
        if non_numeric:
            raise TypeError(f"{name} has non-numeric columns {non_numeric}; encode them as numbers first")
        return data.to_numpy(dtype=np.float64)
    try:
        array = np.asarray(data)
        # float32/float64 arrays pass through untouched (no N × D copy); anything else becomes float64
        return array if array.dtype in (np.float32, np.float64) else array.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric (list, NumPy array, DataFrame or tensor): {err}") from err


def check_matrix(
    data: Union[np.ndarray, torch.Tensor], input_len: int, name: str = "data", dtype: Optional[torch.dtype] = None
) -> None:
    """Raise ValueError unless ``data`` is a non-empty (N, input_len) matrix of finite numbers.

    With ``dtype`` (the SOM's), every value must also be representable in it: |x| <= torch.finfo(dtype).max,
    so that float64 data such as 1e300 cannot become inf in a float32 SOM. Errors name the first bad row and column.
    """
    if data.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, {input_len}); got shape {tuple(data.shape)}")
    if data.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if data.shape[1] != input_len:
        raise ValueError(f"{name} has {data.shape[1]} features per row, but the SOM expects input_len={input_len}")
    first_bad = _first_violation(data, lambda block: ~_isfinite(block))
    if first_bad is not None:
        count, row, col = first_bad
        raise ValueError(f"{name} contains {count} NaN or infinite value(s); the first is at row {row}, column {col}")
    if dtype is None or _max_of(data.dtype) <= torch.finfo(dtype).max:
        return
    limit = torch.finfo(dtype).max
    too_large = _first_violation(data, lambda block: abs(block) > limit)
    if too_large is not None:
        count, row, col = too_large
        raise ValueError(
            f"{name} has {count} value(s) too large for {str(dtype).replace('torch.', '')} (|x| > {limit:.4g}); "
            f"the first is {float(data[row, col]):.6g} at row {row}, column {col}: use dtype='float64' or rescale"
        )


def _isfinite(block: Union[np.ndarray, torch.Tensor]) -> Union[np.ndarray, torch.Tensor]:
    return torch.isfinite(block) if isinstance(block, torch.Tensor) else np.isfinite(block)


def _max_of(kind: Union[np.dtype, torch.dtype]) -> float:
    """The largest finite value of a NumPy or torch floating dtype (inf for non-float kinds: always checked)."""
    if isinstance(kind, torch.dtype):
        return torch.finfo(kind).max if kind.is_floating_point else float("inf")
    return float(np.finfo(kind).max) if np.issubdtype(kind, np.floating) else float("inf")


def _first_violation(
    data: Union[np.ndarray, torch.Tensor], is_bad: Callable[[Any], Any]
) -> Optional[tuple[int, int, int]]:
    """(count, row, column of the first) of the entries where ``is_bad(block)`` holds, or None.

    Checked in blocks of ``_CHECK_ROWS`` rows so the mask never costs N × D bytes at once.
    """
    count, first = 0, None
    for start in range(0, data.shape[0], _CHECK_ROWS):
        bad = is_bad(data[start : start + _CHECK_ROWS])
        n_bad = int(bad.sum())
        if n_bad and first is None:
            row, col = (int(v) for v in (bad.nonzero()[0] if isinstance(bad, torch.Tensor) else np.argwhere(bad)[0]))
            first = (start + row, col)
        count += n_bad
    return None if first is None else (count, first[0], first[1])


def as_matrix(data: Any, input_len: int, device: torch.device, dtype: torch.dtype, name: str = "data") -> torch.Tensor:
    """Validated (N, input_len) tensor on ``device`` in ``dtype`` (moved once; no copy if already there)."""
    host = to_host_matrix(data, name)
    if host.ndim == 1 and input_len == 1 and not isinstance(data, torch.Tensor):
        host = host.reshape(-1, 1)
    check_matrix(host, input_len, name, dtype=dtype)
    if isinstance(host, np.ndarray):
        host = torch.from_numpy(host)
    return host.to(device=device, dtype=dtype)


def as_sample(x: Any, input_len: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """One sample as a validated (1, input_len) tensor."""
    host = to_host_matrix(x, "x")
    return as_matrix(host.reshape(1, -1), input_len, device, dtype, name="x")


@contextmanager
def matmul_precision(allow_tf32: bool) -> Iterator[None]:
    """Let CUDA matrix products use TF32 inside the block only when ``allow_tf32``; the previous setting after."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
