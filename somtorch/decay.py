"""Decay schedules for the learning rate η and the neighbourhood radius σ.

Every schedule is ``f(p, t, T)``: p the initial value, t the step (or epoch), T the number of steps.
The arithmetic is written exactly as MiniSom 2.3.6 writes it, so the values agree bit for bit.

==========================  ==========================  ============
name                        formula                     applies to
==========================  ==========================  ============
``asymptotic_decay``        p / (1 + t / (T/2))          η and σ
``inverse_decay_to_zero``   p·C / (C + t), C = T/100     η
``linear_decay_to_zero``    p·(1 − t/T)                  η
``inverse_decay_to_one``    σ / (1 + t·(σ − 1)/T)        σ
``linear_decay_to_one``     σ + t·(1 − σ)/T              σ
==========================  ==========================  ============

A callable ``f(p, t, T)`` is accepted wherever a name is.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np

DecayFunction = Callable[[float, float, float], float]
DecaySpec = Union[str, DecayFunction]


def asymptotic_decay(p, t, T):
    """p / (1 + t/(T/2)): reaches p/3 at t = T."""
    return p / (1 + t / (T / 2))


def inverse_decay_to_zero(p, t, T):
    """p·C/(C + t) with C = T/100: approaches 0."""
    C = T / 100.0
    return p * C / (C + t)


def linear_decay_to_zero(p, t, T):
    """p·(1 − t/T): reaches 0 at t = T."""
    return p * (1 - t / T)


def inverse_decay_to_one(sigma, t, T):
    """σ/(1 + t·C) with C = (σ − 1)/T: reaches 1 at t = T."""
    C = (sigma - 1) / T
    return sigma / (1 + (t * C))


def linear_decay_to_one(sigma, t, T):
    """σ + t·(1 − σ)/T: reaches 1 at t = T."""
    return sigma + (t * (1 - sigma) / T)


LEARNING_RATE_DECAYS: dict[str, DecayFunction] = {
    "inverse_decay_to_zero": inverse_decay_to_zero,
    "linear_decay_to_zero": linear_decay_to_zero,
    "asymptotic_decay": asymptotic_decay,
}
SIGMA_DECAYS: dict[str, DecayFunction] = {
    "inverse_decay_to_one": inverse_decay_to_one,
    "linear_decay_to_one": linear_decay_to_one,
    "asymptotic_decay": asymptotic_decay,
}


def resolve_decay(spec: DecaySpec, registry: dict[str, DecayFunction], argument: str) -> DecayFunction:
    """Map a schedule name (or a callable) to its function; unknown names raise ValueError listing valid ones."""
    if callable(spec):
        return spec
    if isinstance(spec, str) and spec in registry:
        return registry[spec]
    raise ValueError(f"{argument}={spec!r} is not supported; choose one of {sorted(registry)} or pass a callable f(p, t, T)")


def decay_schedule(function: DecayFunction, initial: float, steps: np.ndarray, total: int) -> np.ndarray:
    """Values ``function(initial, t, total)`` for every t in ``steps``, as float64 (len(steps),).

    Named schedules are evaluated vectorised (identical IEEE arithmetic to the scalar call). A callable that does
    not accept arrays is called once per step.
    """
    steps = np.asarray(steps)
    try:
        values = np.asarray(function(initial, steps.astype(np.float64), total), dtype=np.float64)
        if values.shape == ():
            return np.full(steps.shape, float(values))
        if values.shape == steps.shape:
            return values
    except (TypeError, ValueError):
        pass
    return np.array([float(function(initial, int(t), total)) for t in steps], dtype=np.float64)
