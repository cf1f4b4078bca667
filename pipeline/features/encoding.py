"""Invertible column encoders and a standard scaler whose fitted state is plain Python.

Each encoder turns one source column (n values) into a float64 block (n x k) and decodes such a block back to
the source column in original units, so SOM prototypes and scaled rows can be reported as labels and amounts.
``state()`` holds only str, int, float, bool, None, lists and dicts: it is stored in ``model.pt`` and read back
with ``torch.load(weights_only=True)``; ``encoder_from_state`` rebuilds an identical encoder.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

OTHER_CATEGORY = "(other)"
NUMERIC_TRANSFORMS = ("identity", "slog1p")


class ColumnEncoder(ABC):
    """Encodes one source column into ``len(output_names)`` model columns and decodes them back."""

    kind: ClassVar[str]

    def __init__(self, source: str) -> None:
        self.source = source

    @property
    @abstractmethod
    def output_names(self) -> list[str]:
        """Names of the model columns this encoder produces."""

    @abstractmethod
    def fit(self, values: pd.Series) -> ColumnEncoder:
        """Learn the encoding (classes, categories, dtype) from the source values."""

    @abstractmethod
    def encode(self, values: pd.Series) -> np.ndarray:
        """Source values (n) -> float64 block (n x len(output_names))."""

    @abstractmethod
    def decode(self, block: np.ndarray) -> pd.Series:
        """Float block (n x len(output_names)) -> source values in original units (n)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Fitted parameters as plain Python types, including ``kind`` and ``source``."""


class NumericEncoder(ColumnEncoder):
    """One number column, optionally through the signed log ``slog1p(v) = sign(v)·log(1 + |v|)``.

    Decoding applies the inverse ``sign(y)·(exp(|y|) − 1)`` and rounds to whole numbers when the fitted source
    column held integers.
    """

    kind = "numeric"

    def __init__(self, source: str, *, transform: str = "identity", integer: bool = False) -> None:
        super().__init__(source)
        if transform not in NUMERIC_TRANSFORMS:
            raise ValueError(f"numeric transform {transform!r} for {source!r} is unknown; valid: {NUMERIC_TRANSFORMS}")
        self.transform = transform
        self.integer = integer

    @property
    def output_names(self) -> list[str]:
        return [self.source if self.transform == "identity" else f"{self.transform}_{self.source}"]

    def fit(self, values: pd.Series) -> NumericEncoder:
        self.integer = bool(pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values))
        return self

    def encode(self, values: pd.Series) -> np.ndarray:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if self.transform == "slog1p":
            numbers = np.sign(numbers) * np.log1p(np.abs(numbers))
        return numbers[:, None]

    def decode(self, block: np.ndarray) -> pd.Series:
        numbers = block[:, 0]
        if self.transform == "slog1p":
            numbers = np.sign(numbers) * np.expm1(np.abs(numbers))
        if self.integer:
            return pd.Series(np.rint(numbers).astype(np.int64), name=self.source)
        return pd.Series(numbers, name=self.source)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "transform": self.transform, "integer": self.integer}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NumericEncoder:
        return cls(state["source"], transform=state["transform"], integer=state["integer"])


class LabelCodeEncoder(ColumnEncoder):
    """Labels -> their index among the sorted fitted classes (as sklearn's LabelEncoder), one model column.

    An unseen label encodes as −1 (with a warning). Decoding rounds and clips to a valid index.
    """

    kind = "label"

    def __init__(self, source: str, classes: Sequence[Any] | None = None) -> None:
        super().__init__(source)
        self.classes = list(classes) if classes is not None else None

    @property
    def output_names(self) -> list[str]:
        return [self.source]

    def fit(self, values: pd.Series) -> LabelCodeEncoder:
        self.classes = sorted(_plain_list(values.dropna().unique()))
        return self

    def encode(self, values: pd.Series) -> np.ndarray:
        codes = pd.Index(self._fitted_classes()).get_indexer(values).astype(np.float64)
        _warn_unseen(self.source, values, codes < 0, "encoded as -1")
        return codes[:, None]

    def decode(self, block: np.ndarray) -> pd.Series:
        classes = self._fitted_classes()
        codes = np.clip(np.rint(block[:, 0]), 0, len(classes) - 1).astype(np.int64)
        return pd.Series(np.asarray(classes, dtype=object)[codes], name=self.source)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "classes": self._fitted_classes()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LabelCodeEncoder:
        return cls(state["source"], classes=state["classes"])

    def _fitted_classes(self) -> list[Any]:
        if self.classes is None:
            raise RuntimeError(f"label encoder for {self.source!r} is not fitted")
        return self.classes


class OneHotEncoder(ColumnEncoder):
    """Categories -> 0/1 columns ``source=category``, in sorted category order; decoding takes the argmax.

    With ``max_categories`` set and more categories seen, the ``max_categories − 1`` most frequent are kept and
    the rest share an ``(other)`` column. A category never seen at fit encodes as all zeros (with a warning).
    """

    kind = "onehot"

    def __init__(
        self,
        source: str,
        *,
        max_categories: int | None = None,
        categories: Sequence[Any] | None = None,
        seen: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(source)
        if max_categories is not None and max_categories < 2:
            raise ValueError(f"max_categories for {source!r} must be at least 2, got {max_categories}")
        self.max_categories = max_categories
        self.categories = list(categories) if categories is not None else None
        self.seen = list(seen) if seen is not None else None

    @property
    def has_other(self) -> bool:
        return len(self._fitted_seen()) > len(self._fitted_categories())

    @property
    def output_names(self) -> list[str]:
        labels = [*self._fitted_categories(), *([OTHER_CATEGORY] if self.has_other else [])]
        return [f"{self.source}={label}" for label in labels]

    def fit(self, values: pd.Series) -> OneHotEncoder:
        counts = values.dropna().value_counts()
        self.seen = sorted(_plain_list(counts.index))
        if self.max_categories is not None and len(counts) > self.max_categories:
            ranked = sorted(zip(_plain_list(counts.index), counts.to_numpy()), key=lambda item: (-item[1], item[0]))
            self.categories = sorted(label for label, _ in ranked[: self.max_categories - 1])
        else:
            self.categories = list(self.seen)
        return self

    def encode(self, values: pd.Series) -> np.ndarray:
        categories = self._fitted_categories()
        positions = pd.Index(categories).get_indexer(values).astype(np.int64)
        if self.has_other:
            infrequent = (positions < 0) & pd.Series(values).isin(self._fitted_seen()).to_numpy()
            positions[infrequent] = len(categories)
        _warn_unseen(self.source, values, positions < 0, "encoded as all zeros")
        block = np.zeros((len(positions), len(self.output_names)), dtype=np.float64)
        known = positions >= 0
        block[np.flatnonzero(known), positions[known]] = 1.0
        return block

    def decode(self, block: np.ndarray) -> pd.Series:
        labels = np.asarray([*self._fitted_categories(), *([OTHER_CATEGORY] if self.has_other else [])], dtype=object)
        return pd.Series(labels[np.argmax(block, axis=1)], name=self.source)

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "source": self.source, "max_categories": self.max_categories,
            "categories": self._fitted_categories(), "seen": self._fitted_seen(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OneHotEncoder:
        return cls(
            state["source"], max_categories=state["max_categories"], categories=state["categories"], seen=state["seen"]
        )

    def _fitted_categories(self) -> list[Any]:
        if self.categories is None:
            raise RuntimeError(f"one-hot encoder for {self.source!r} is not fitted")
        return self.categories

    def _fitted_seen(self) -> list[Any]:
        if self.seen is None:
            raise RuntimeError(f"one-hot encoder for {self.source!r} is not fitted")
        return self.seen


class MajorityEncoder(ColumnEncoder):
    """A category -> ``source!=<majority>`` (1 unless the value is the fit data's most frequent one, e.g. 1 for
    a foreign country) plus ``source=<value>`` for up to ``max_others`` next most frequent values.

    A many-valued category (UCI Online Retail: 37 countries, 89% of lines in one) adds a few columns, not a one-hot
    that splits the map by rare values. The others get columns only when there are at least two of them (with
    one, its column would repeat the first). Ties in frequency go to the smaller value. Decoding: the majority
    value when the first column is below 0.5, else the listed value with the largest column if it is ≥ 0.5, else
    ``(other)``. Block columns may be shares (customer level), not only 0/1.
    """

    kind = "majority"

    def __init__(
        self,
        source: str,
        *,
        max_others: int = 3,
        majority: Any = None,
        others: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(source)
        if max_others < 0:
            raise ValueError(f"max_others for {source!r} must be at least 0, got {max_others}")
        self.max_others = max_others
        self.majority = majority
        self.others = list(others) if others is not None else None

    @property
    def output_names(self) -> list[str]:
        others = self._fitted_others()
        return [f"{self.source}!={self.majority}", *(f"{self.source}={label}" for label in others)]

    def fit(self, values: pd.Series) -> MajorityEncoder:
        counts = values.dropna().value_counts()
        if counts.empty:
            raise ValueError(f"cannot fit the majority encoder for {self.source!r}: no non-missing values")
        ranked = sorted(zip(_plain_list(counts.index), counts.to_numpy()), key=lambda item: (-item[1], item[0]))
        labels = [label for label, _ in ranked]
        self.majority = labels[0]
        self.others = labels[1:1 + self.max_others] if len(labels) > 2 else []
        return self

    def encode(self, values: pd.Series) -> np.ndarray:
        others = self._fitted_others()
        labels = pd.Series(values).to_numpy(dtype=object)
        return np.column_stack([labels != self.majority, *(labels == label for label in others)]).astype(np.float64)

    def decode(self, block: np.ndarray) -> pd.Series:
        others = self._fitted_others()
        decoded = np.full(len(block), OTHER_CATEGORY, dtype=object)
        decoded[block[:, 0] < 0.5] = self.majority
        if others:
            best = np.argmax(block[:, 1:], axis=1)
            listed = (block[:, 0] >= 0.5) & (block[np.arange(len(block)), 1 + best] >= 0.5)
            decoded[listed] = np.asarray(others, dtype=object)[best[listed]]
        return pd.Series(decoded, name=self.source)

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "source": self.source, "max_others": self.max_others,
            "majority": self.majority, "others": self._fitted_others(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MajorityEncoder:
        return cls(state["source"], max_others=state["max_others"], majority=state["majority"], others=state["others"])

    def _fitted_others(self) -> list[Any]:
        if self.others is None:
            raise RuntimeError(f"majority encoder for {self.source!r} is not fitted")
        return self.others


class TokenSetEncoder(ColumnEncoder):
    """A separator-joined token set (``"T24Club,Payback"``) -> one 0/1 column ``source:token`` per vocabulary token.

    Decoding joins the tokens whose value is ≥ 0.5 in vocabulary order. Unknown tokens are ignored (with a warning).
    """

    kind = "tokens"

    def __init__(self, source: str, tokens: Sequence[str], *, separator: str = ",") -> None:
        super().__init__(source)
        if not tokens:
            raise ValueError(f"token vocabulary for {source!r} is empty")
        self.tokens = list(tokens)
        self.separator = separator

    @property
    def output_names(self) -> list[str]:
        return [f"{self.source}:{token}" for token in self.tokens]

    def fit(self, values: pd.Series) -> TokenSetEncoder:
        return self

    def encode(self, values: pd.Series) -> np.ndarray:
        token_lists = pd.Series(values).reset_index(drop=True).fillna("").astype(str).str.split(self.separator)
        exploded = token_lists.explode().str.strip()  # index = row position, one entry per token
        exploded = exploded[exploded != ""]
        unknown = ~exploded.isin(self.tokens)
        if unknown.any():
            logger.warning(
                "%d unknown token(s) in %r ignored (e.g. %s); vocabulary: %s",
                int(unknown.sum()), self.source, sorted(set(exploded[unknown]))[:5], self.tokens,
            )
        known = exploded[~unknown]
        block = np.zeros((len(token_lists), len(self.tokens)), dtype=np.float64)
        block[known.index.to_numpy(), pd.Index(self.tokens).get_indexer(known.to_numpy())] = 1.0
        return block

    def decode(self, block: np.ndarray) -> pd.Series:
        present = block >= 0.5
        joined = [self.separator.join(t for t, on in zip(self.tokens, row) if on) for row in present]
        return pd.Series(joined, name=self.source, dtype=object)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "tokens": list(self.tokens), "separator": self.separator}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TokenSetEncoder:
        return cls(state["source"], state["tokens"], separator=state["separator"])


class CyclicEncoder(ColumnEncoder):
    """A periodic integer (month 1..12) -> ``(sin θ, cos θ)`` with θ = 2π(v − start)/period.

    Decoding: v = start + (round(atan2(sin, cos)·period/2π) mod period), so December and January stay neighbours.
    """

    kind = "cyclic"

    def __init__(self, source: str, *, period: int, start: int) -> None:
        super().__init__(source)
        if period < 2:
            raise ValueError(f"cyclic period for {source!r} must be at least 2, got {period}")
        self.period = period
        self.start = start

    @property
    def output_names(self) -> list[str]:
        return [f"{self.source}_sin", f"{self.source}_cos"]

    def fit(self, values: pd.Series) -> CyclicEncoder:
        return self

    def encode(self, values: pd.Series) -> np.ndarray:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        angle = 2.0 * np.pi * (numbers - self.start) / self.period
        return np.column_stack([np.sin(angle), np.cos(angle)])

    def decode(self, block: np.ndarray) -> pd.Series:
        angle = np.arctan2(block[:, 0], block[:, 1])
        steps = np.mod(np.rint(angle * self.period / (2.0 * np.pi)), self.period).astype(np.int64)
        return pd.Series(self.start + steps, name=self.source)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "period": self.period, "start": self.start}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CyclicEncoder:
        return cls(state["source"], period=state["period"], start=state["start"])


ENCODERS: dict[str, type[ColumnEncoder]] = {
    encoder.kind: encoder
    for encoder in (NumericEncoder, LabelCodeEncoder, OneHotEncoder, MajorityEncoder, TokenSetEncoder, CyclicEncoder)
}


def encoder_from_state(state: dict[str, Any]) -> ColumnEncoder:
    """Rebuild a fitted encoder from ``ColumnEncoder.state()``."""
    kind = state.get("kind")
    if kind not in ENCODERS:
        raise ValueError(f"unknown encoder kind {kind!r} in preprocessor state; valid: {sorted(ENCODERS)}")
    return ENCODERS[kind].from_state(state)


PROPORTION_SCALE = 0.5  # the largest standard deviation of a variable in [0, 1]
DEFAULT_Z_CAP = 5.0


class Standardizer:
    """Column-wise z-scores z = (v − mean) / scale, with scale = population std (ddof 0), 1 for a constant column.

    The same parameters as sklearn's ``StandardScaler``; kept as plain lists for the preprocessor state.
    ``fit(values, proportion_columns=mask)`` gives the masked columns (indicators and shares, values in [0, 1])
    the fixed scale 0.5 instead: the largest standard deviation a [0, 1] column can have, reached by a balanced
    0/1 column. A rare indicator then stays within ±2 instead of reaching z ≈ 30 on its few rows, which would make
    a Euclidean SOM spend neurons on those rows and isolate them as singleton segments.

    ``z_cap`` (None: no cap) winsorises the z-scores: z = clip((v − mean) / scale, −z_cap, z_cap), so one extreme
    value (a wholesaler's spend, a data error) moves its unit to the edge of the data instead of pulling
    neurons away from everyone else. The mean and scale are still those of the uncapped values, and
    ``inverse_transform`` of a capped z gives the value at the cap. Mean and scale are computed on each column
    divided by its largest magnitude, so values up to the float64 limit do not overflow.
    """

    def __init__(
        self,
        mean: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        *,
        z_cap: float | None = None,
    ) -> None:
        if z_cap is not None and not z_cap > 0:
            raise ValueError(f"z_cap must be None or a positive number of standard deviations, got {z_cap!r}")
        self.mean = np.asarray(mean, dtype=np.float64) if mean is not None else None
        self.scale = np.asarray(scale, dtype=np.float64) if scale is not None else None
        self.z_cap = None if z_cap is None else float(z_cap)

    def fit(self, values: np.ndarray, proportion_columns: np.ndarray | None = None) -> Standardizer:
        """Learn mean and scale from ``values`` (n x D, n ≥ 1); ``proportion_columns`` (D,) bool gets scale 0.5."""
        if values.ndim != 2 or len(values) == 0:
            raise ValueError(f"standardizer needs a non-empty 2-D array, got shape {values.shape}")
        values = np.asarray(values, dtype=np.float64)
        n_columns = values.shape[1]
        self.mean, self.scale = np.empty(n_columns), np.empty(n_columns)
        constant = np.empty(n_columns, dtype=bool)
        for column in range(n_columns):  # column by column: no temporary of the data's size
            values_j = values[:, column]
            low, high = values_j.min(), values_j.max()
            magnitude = max(abs(low), abs(high)) or 1.0
            shrunk = values_j / magnitude  # within [-1, 1]: the sums and squares below cannot overflow
            constant[column] = low == high  # exact test: a float std of a constant can be 1e-13
            self.mean[column] = shrunk.mean() * magnitude
            self.scale[column] = 1.0 if constant[column] else shrunk.std() * magnitude
        if proportion_columns is not None:
            self.scale = np.where(proportion_columns & ~constant, PROPORTION_SCALE, self.scale)
        if self.z_cap is not None:
            limit_low, limit_high = self.mean - self.z_cap * self.scale, self.mean + self.z_cap * self.scale
            capped = sum(int(np.count_nonzero((values[:, column] <= limit_low[column])
                                              | (values[:, column] >= limit_high[column])))
                         for column in range(n_columns))
            if capped:
                logger.info("%d of %d scaled values capped at |z| = %g", capped, values.size, self.z_cap)
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(n x D) -> (n x D) z-scores, capped at ±z_cap when set (one new array, in the layout of ``values``)."""
        mean, scale = self._fitted()
        scaled = np.subtract(values, mean)
        scaled /= scale
        return scaled if self.z_cap is None else np.clip(scaled, -self.z_cap, self.z_cap, out=scaled)

    def inverse_transform(self, scaled: np.ndarray) -> np.ndarray:
        """(n x D) z-scores -> (n x D) values: v = z·scale + mean."""
        mean, scale = self._fitted()
        return scaled * scale + mean

    def state(self) -> dict[str, Any]:
        mean, scale = self._fitted()
        return {"mean": mean.tolist(), "scale": scale.tolist(), "z_cap": self.z_cap}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Standardizer:
        return cls(state["mean"], state["scale"], z_cap=state["z_cap"])

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.scale is None:
            raise RuntimeError("standardizer is not fitted")
        return self.mean, self.scale


def _plain_list(values: Any) -> list[Any]:
    """Values as plain Python scalars (numpy ints/floats/strs -> int/float/str) for a weights_only state."""
    return [value.item() if isinstance(value, np.generic) else value for value in values]


def _warn_unseen(source: str, values: pd.Series, unseen: np.ndarray, outcome: str) -> None:
    if unseen.any():
        examples = sorted(map(str, pd.Series(values)[unseen].unique()))[:5]
        logger.warning(
            "%d value(s) of %r were not seen at fit (e.g. %s); %s", int(unseen.sum()), source, examples, outcome
        )
