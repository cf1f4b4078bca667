"""Data sources that deliver a data set to the SOM's device chunk by chunk.

``train_batch`` and the batched queries only ever touch one chunk at a time, so a data set may live in host memory
(a NumPy array or CPU tensor larger than the GPU) or arrive as an iterable of chunks. Host chunks bound for CUDA
are staged through two pinned buffers and copied with ``non_blocking=True``, so the copy of chunk k+1 overlaps the
work on chunk k.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import torch

from ._inputs import check_matrix, to_host_matrix

logger = logging.getLogger(__name__)

STREAM_CHUNK_BYTES = 128 * 2**20  # host rows copied to the device per streamed chunk (two pinned buffers)


def stream_rows(dim: int, itemsize: int) -> int:
    """Rows per streamed chunk: ``STREAM_CHUNK_BYTES`` of (rows, dim) values."""
    return max(1, STREAM_CHUNK_BYTES // (dim * itemsize))


class ChunkSource:
    """Re-iterable source of (rows, D) tensors on ``device``/``dtype``, validated chunk by chunk.

    ``data`` is a matrix (device tensor: sliced without copies; host array or tensor: streamed) or a re-iterable
    of matrices (a list of arrays, or an object whose ``__iter__`` starts over each epoch).
    """

    def __init__(self, data: Any, input_len: int, device: torch.device, dtype: torch.dtype, rows_per_chunk: Optional[int] = None) -> None:
        self.input_len, self.device, self.dtype = input_len, device, dtype
        self.rows_per_chunk = max(1, int(rows_per_chunk)) if rows_per_chunk else stream_rows(input_len, torch.finfo(dtype).bits // 8)
        if _is_matrix(data):
            self.matrix: Optional[Any] = to_host_matrix(data)
            check_matrix(self.matrix, input_len, dtype=dtype)
            self.chunks: Optional[Iterable[Any]] = None
        else:
            if iter(data) is data:
                logger.warning("data is a one-shot iterator: it can be read for one epoch only; pass a list or re-iterable")
            self.matrix, self.chunks = None, data

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.matrix is not None:
            yield from self._matrix_chunks(self.matrix)
            return
        seen = 0
        for k, chunk in enumerate(self.chunks):
            host = to_host_matrix(chunk, name=f"chunk {k}")
            check_matrix(host, self.input_len, name=f"chunk {k}", dtype=self.dtype)
            seen += host.shape[0]
            yield from self._matrix_chunks(host)
        if seen == 0:
            raise ValueError("the chunk iterable yielded no rows (a one-shot iterator is exhausted after one epoch)")

    def _matrix_chunks(self, matrix: Any) -> Iterator[torch.Tensor]:
        tensor = torch.from_numpy(matrix) if isinstance(matrix, np.ndarray) else matrix
        if tensor.device == self.device or self.device.type != "cuda":
            for start in range(0, tensor.shape[0], self.rows_per_chunk):
                yield tensor[start : start + self.rows_per_chunk].to(self.device, self.dtype)
            return
        yield from _pinned_transfer(tensor, self.rows_per_chunk, self.device, self.dtype)


def _is_matrix(data: Any) -> bool:
    return isinstance(data, (np.ndarray, torch.Tensor)) or hasattr(data, "columns") or (
        isinstance(data, (list, tuple)) and len(data) > 0 and np.ndim(data[0]) == 1
    )


def _pinned_transfer(host: torch.Tensor, rows: int, device: torch.device, dtype: torch.dtype) -> Iterator[torch.Tensor]:
    """Copy host rows to ``device`` through two alternating pinned buffers with non-blocking copies."""
    host = host.to(dtype)
    staging = [torch.empty((rows, host.shape[1]), dtype=dtype).pin_memory() for _ in range(2)]
    ready = [torch.cuda.Event(), torch.cuda.Event()]
    for k, start in enumerate(range(0, host.shape[0], rows)):
        slot = k % 2
        ready[slot].synchronize()  # the copy that last used this buffer has finished
        part = host[start : start + rows]
        buffer = staging[slot][: part.shape[0]]
        buffer.copy_(part)
        chunk = buffer.to(device, non_blocking=True)
        ready[slot].record()
        yield chunk
