"""Thread policy of somtorch's CPU work: a few long-lived workers instead of many short OpenMP teams.

A batch epoch or an evaluation is a loop over cache-sized chunks (see :mod:`somtorch.bmu`): per chunk a product,
an argmin and an accumulation, each well under a millisecond. Run on torch's OpenMP threads, every one of these
calls is a parallel region whose threads spin-wait for each other at its end; on a machine where another process
needs a core (a laptop, a notebook server, CI) a descheduled thread makes every region wait a whole scheduler slice.
Measured on a 2-core VM with one CPU-bound process beside it: a 100,000 × 32 epoch on 900 neurons went from 0.07 s
to 2.2 s (31×), where one thread took 0.08 s either way.

So on a CPU, somtorch runs each torch call on ONE OpenMP thread and parallelises over chunks instead:
:func:`ordered_map` hands the chunks to ``get_num_threads()`` worker threads (each single-threaded in torch and MKL,
each with its own scratch buffers) and yields their results in chunk order, so everything that adds them up runs
in the same order as a serial loop and results are bit-identical for any number of threads. A worker that the
operating system deschedules simply takes fewer chunks; nobody waits for it at a barrier.

The number of workers is ``torch.get_num_threads()`` of the calling thread (so ``OMP_NUM_THREADS`` and
``torch.set_num_threads`` apply as usual), unless :func:`set_num_threads` sets somtorch's own.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Callable, ContextManager, Iterable, Iterator, Optional, TypeVar

import torch

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
State = TypeVar("State")

# Below this many multiply-adds (N·M·D) a search runs on the calling thread alone: handing chunks to workers costs
# ~50 µs, and waking a second OpenMP thread cost 5–15 ms per call on the shared 2-core machine.
PARALLEL_WORK = 1 << 24
# Chunks handed out ahead of the one being consumed, per worker: enough to keep every worker busy while the
# caller adds up a result, few enough to bound the memory of pending results.
_AHEAD_PER_WORKER = 2

_configured: Optional[int] = None
_outer_threads = threading.local()  # count: torch's thread count outside the calling thread's single-threaded section
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_pool_lock = threading.Lock()


def set_num_threads(n: Optional[int]) -> None:
    """Use ``n`` worker threads for somtorch's CPU chunk loops (None: follow ``torch.get_num_threads()``).

    Raises ValueError for n < 1."""
    global _configured
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"set_num_threads needs a positive integer or None, got {n!r}")
    _configured = n


def get_num_threads() -> int:
    """Worker threads somtorch uses on a CPU: the value of :func:`set_num_threads`, else ``torch.get_num_threads()``
    (as it was outside somtorch's own single-threaded sections)."""
    if _configured is not None:
        return _configured
    outer = getattr(_outer_threads, "count", None)
    return outer if outer is not None else torch.get_num_threads()


def workers_for(multiply_adds: int, device: torch.device) -> int:
    """Workers for a chunk loop of ``multiply_adds`` (N·M·D): 1 (the calling thread) off the CPU or below
    ``PARALLEL_WORK``, else :func:`get_num_threads`."""
    if device.type != "cpu" or multiply_adds < PARALLEL_WORK:
        return 1
    return get_num_threads()


@contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Run the calling thread's torch CPU calls on one OpenMP thread inside the block (restored after);
    :func:`get_num_threads` still answers the count from outside the block."""
    previous = torch.get_num_threads()
    outermost = getattr(_outer_threads, "count", None) is None
    if outermost:
        _outer_threads.count = previous
    if previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous > 1:
            torch.set_num_threads(previous)
        if outermost:
            _outer_threads.count = None


def single_threaded_on_cpu(device: torch.device) -> ContextManager[None]:
    """:func:`single_threaded_torch` for work on a CPU device, nothing for other devices."""
    return single_threaded_torch() if device.type == "cpu" else nullcontext()


def _start_worker(started: threading.Barrier) -> None:
    torch.get_num_threads()  # torch initialises a thread's count on first use; do it before setting it
    torch.set_num_threads(1)
    started.wait()


def _workers(n: int) -> ThreadPoolExecutor:
    """The process's pool of ``n`` single-threaded workers, made (or remade at another size) on first use."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            caller_threads = torch.get_num_threads()
            pool = ThreadPoolExecutor(n, thread_name_prefix="somtorch")
            started = threading.Barrier(n + 1)
            for _ in range(n):  # each start blocks on the barrier, so n distinct threads start now
                pool.submit(_start_worker, started)
            started.wait()
            # torch.set_num_threads(1) in a worker also set the count that threads started later inherit: restore it
            torch.set_num_threads(caller_threads)
            _pool, _pool_size = pool, n
            logger.debug("started %d somtorch worker threads", n)
        return _pool


def _forget_pool_in_child() -> None:
    """A forked child has no copies of the parent's threads: it starts its own pool when it needs one."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def ordered_map(work: Callable[[Item, State], Result], items: Iterable[Item], n_workers: int,
                make_state: Callable[[], State]) -> Iterator[Result]:
    """Yield ``work(item, state)`` for every item, in the items' order.

    With ``n_workers`` > 1 the calls run on that many single-threaded workers, at most ``2 · n_workers`` ahead of
    the item being consumed; each worker makes its own ``state`` (scratch buffers) once per call of this function.
    With 1 they run on the calling thread, with one state. A worker's exception is raised here, at its item."""
    if n_workers <= 1:
        state = make_state()
        for item in items:
            yield work(item, state)
        return
    pool = _workers(n_workers)
    local = threading.local()

    def run(item: Item) -> Result:
        state = getattr(local, "state", None)
        if state is None:
            state = local.state = make_state()
        return work(item, state)

    pending: deque[Future] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append(pool.submit(run, item))
            if len(pending) >= _AHEAD_PER_WORKER * n_workers:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(pool.submit(run, item))
                break
            yield result
    finally:
        for future in pending:
            future.cancel()
