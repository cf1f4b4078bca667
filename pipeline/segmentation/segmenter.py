"""A scikit-learn-shaped customer segmenter: clean → encode/scale → SOM → hierarchical clustering of the neurons.

``CustomerSegmenter.fit(raw)`` learns the cleaning settings (the resolved Age reference date), the feature
preprocessor (encoders and scaler), the SOM weights and the neuron → cluster map; ``predict(raw)`` applies the
same cleaning, encoding and scaling to new rows and gives each row the cluster of its best-matching unit.
``save``/``load`` keep all of it in one ``model.pt`` of tensors and plain values (``torch.load(weights_only=True)``).
``pipeline.app.run.run`` is built on this class, so training and scoring share one code path.
"""
from __future__ import annotations

import inspect
import logging
import os
import resource
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import polars as pl
import torch

from pipeline.engines.base import Engine
from pipeline.engines.local import LocalEngine
from pipeline.outputs.atomic import write_atomic
from pipeline.sources.cleaning import (
    REASON,
    CleanResult,
    clean_bigbazaar,
    clean_generic,
    clean_online_retail,
)
from pipeline.segmentation.clustering import LINKAGE_METHODS, REFINEMENTS, NeuronClusters, assign_rows, cluster_neurons
from pipeline.features.feature_sets import BIGBAZAAR, CUSTOMER, FEATURE_SETS, SCHEMAS
from pipeline.features.preprocessor import FeaturePreprocessor
from pipeline.segmentation.streaming import (
    CleaningSettings,
    CleaningSummary,
    DroppedSink,
    resolve_age_reference,
)
from pipeline.sources.chunks import polars_from_pandas
from pipeline.sources.loading import ROW_ID, with_row_id
from pipeline.sources.transactions import TransactionSource
from somtorch import SOM
from somtorch._inputs import resolve_device, resolve_dtype
from somtorch.persistence import broken_part, load_state, not_a_model

logger = logging.getLogger(__name__)

MODEL_FORMAT = "pipeline.segmenter.CustomerSegmenter/2"
CLEANING_SCHEMAS = ("bigbazaar", "generic", "online_retail")
TRAINING_MODES = ("random", "sequential", "batch")
AUTO = "auto"
WEIGHT_INITS = ("random_unit", "sample", "pca")
CLUSTER_POINTS = ("hit_means", "prototypes")
BIGBAZAAR_DATE_COLUMN = "transactionDate"
SEGMENT_COLUMNS = (ROW_ID, "bmu_i", "bmu_j", "cluster")
NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
RawTransactions = "pd.DataFrame | pl.DataFrame | str | os.PathLike | TransactionSource"


def _hit_means(X: np.ndarray, unit_bmu: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """(x, y, D) mean of the rows of X (n, D) that hit each neuron: Σ_{n: bmu_n = k} x_n / hits_k (0 where no hits)."""
    sums = np.stack([np.bincount(unit_bmu, weights=X[:, d], minlength=hits.size) for d in range(X.shape[1])], axis=1)
    flat_hits = hits.reshape(-1)
    means = np.divide(sums, flat_hits[:, None], out=np.zeros_like(sums), where=flat_hits[:, None] > 0)
    return means.reshape(*hits.shape, X.shape[1])


@dataclass(frozen=True)
class Segmentation:
    """Every stage's output for one table of raw transactions, as segmented by a fitted model.

    Attributes:
        cleaning: input, kept and dropped row counts, reasons, and the dropped rows (None when they were streamed
            to a file).
        units: one row per clustered unit (a transaction or a customer): ``unit_id``, identifiers, the model
            columns before scaling (``FeaturePreprocessor.transform_units``).
        X: (n_units, D) float64 scaled features, the SOM's input.
        row_ids: (n_kept_rows,) ``row_id`` of each kept input row, in input order.
        row_customer_ids: (n_kept_rows,) the id column's value of each kept row.
        unit_of_row: (n_kept_rows,) the unit of each kept row (identity at transaction level).
        unit_bmu: (n_units,) flat BMU index i·y + j of each unit.
        unit_cluster: (n_units,) cluster of each unit = cluster of its BMU.
        map_width: y, the number of map columns, to split flat indices into (i, j).
    """

    cleaning: CleaningSummary
    units: pd.DataFrame
    X: np.ndarray
    row_ids: np.ndarray
    row_customer_ids: np.ndarray
    unit_of_row: np.ndarray
    unit_bmu: np.ndarray
    unit_cluster: np.ndarray
    map_width: int

    @property
    def row_cluster(self) -> np.ndarray:
        """(n_kept_rows,) cluster of each kept row (its unit's cluster)."""
        return self.unit_cluster[self.unit_of_row]

    def row_segments(self, id_column: str, rows: slice = slice(None)) -> pd.DataFrame:
        """Kept rows in input order (or the ``rows`` slice of them): ``row_id``, the id column, ``bmu_i``,
        ``bmu_j``, ``cluster``."""
        units = self.unit_of_row[rows]
        bmu_i, bmu_j = np.divmod(self.unit_bmu[units], self.map_width)
        return pd.DataFrame({
            ROW_ID: self.row_ids[rows],
            id_column: self.row_customer_ids[rows],
            "bmu_i": bmu_i.astype(np.int64),
            "bmu_j": bmu_j.astype(np.int64),
            "cluster": self.unit_cluster[units].astype(np.int64),
        })


@dataclass(frozen=True)
class _KeptRows:
    """The kept rows of one cleaning (summary, row ids, id values, unit of each row), before the SOM."""

    cleaning: CleaningSummary
    row_ids: np.ndarray
    row_customer_ids: np.ndarray
    unit_of_row: np.ndarray

    def segmentation(self, units: pd.DataFrame, X: np.ndarray, unit_bmu: np.ndarray, labels: np.ndarray,
                     map_width: int) -> Segmentation:
        return Segmentation(
            cleaning=self.cleaning, units=units, X=X, row_ids=self.row_ids, row_customer_ids=self.row_customer_ids,
            unit_of_row=np.asarray(self.unit_of_row, dtype=np.int64), unit_bmu=unit_bmu,
            unit_cluster=assign_rows(labels, unit_bmu), map_width=map_width,
        )


def _like(raw: Any, table: pd.DataFrame) -> pd.DataFrame | pl.DataFrame:
    """``table`` as a Polars frame when ``raw`` was one, else as it is (pandas). A column mixing types (the id
    column: parsed ids of kept rows, raw text of dropped ones) becomes text in Polars."""
    return polars_from_pandas(table) if isinstance(raw, pl.DataFrame) else table


class CustomerSegmenter:
    """Segment retail transactions with a SOM whose neurons are clustered hierarchically.

    Constructor arguments are stored unchanged and validated by ``fit`` (scikit-learn's convention); fitted state
    ends in ``_``. The defaults are those of ``configs/``: customers as units, a 20 × 20 map from the PCA plane
    with σ 3 and 30,000 random-order updates, 8 segments by hit-weighted ward over the neurons' customer means,
    refined by hit-weighted k-means.

    Args:
        feature_set: ``customer`` (one unit per customer, the default), ``behavioural`` or ``seed``
            (transaction level; ``pipeline.features.feature_sets``).
        schema: how raw rows are cleaned: ``bigbazaar`` (cproducts.csv), ``generic`` (needs ``columns``) or
            ``online_retail`` (UCI Online Retail).
        columns: the column mapping of the generic schema (``pipeline.sources.cleaning.clean_generic``).
        age_reference_date: Big Bazaar Age reference day; None → the latest transaction date of the fit data,
            then kept fixed for ``predict``.
        age_range: (low, high) plausible ages in years for Big Bazaar rows; rows outside are dropped with a
            reason; None keeps every age (the seed reproduction).
        x, y, sigma, learning_rate, topology, periodic, neighborhood_function, activation_distance,
            decay_function, sigma_decay_function: ``somtorch.SOM`` arguments.
        mode: ``random`` (``iters`` updates on rows shuffled with ``seed`` first, so the first ``iters`` rows
            MiniSom's order draws are a random sample), ``sequential`` (``iters`` updates in data order) or
            ``batch`` (``epochs`` epochs of the batch map).
        init: ``random_unit`` (the SOM constructor's random unit vectors), ``sample`` (``random_weights_init``,
            rows drawn from the data) or ``pca`` (``pca_weights_init``).
        linkage_method, n_clusters, max_d, refine, cluster_points, connectivity, k_range, min_segment_share: how
            the neurons are clustered (``pipeline.segmentation.clustering.cluster_neurons``, weighted by their
            hits): a scipy linkage hierarchy over the non-empty neurons cut into ``n_clusters`` segments (an int,
            or ``"auto"`` to pick k in ``k_range``) or, with ``n_clusters=None``, at height ``max_d``;
            ``refine="kmeans"`` refines the cut by hit-weighted k-means; ``cluster_points="hit_means"`` clusters
            each neuron by the mean of its units' scaled features, ``"prototypes"`` by its weights;
            ``connectivity`` keeps segments contiguous on the map; clusters with less than
            ``min_segment_share`` of the units are outlier groups.
        seed: SOM random_seed and row-shuffling seed.
        device, dtype, allow_tf32: where and in which precision the SOM runs.
    """

    def __init__(
        self,
        feature_set: str = "customer",
        *,
        schema: str = "bigbazaar",
        columns: Mapping[str, Any] | None = None,
        age_reference_date: str | None = None,
        age_range: Sequence[float] | None = (14, 100),
        x: int = 20,
        y: int = 20,
        sigma: float = 3.0,
        learning_rate: float = 0.5,
        mode: str = "random",
        iters: int = 30_000,
        epochs: int = 20,
        topology: str = "rectangular",
        periodic: bool = False,
        neighborhood_function: str = "gaussian",
        activation_distance: str = "euclidean",
        decay_function: str = "asymptotic_decay",
        sigma_decay_function: str = "asymptotic_decay",
        init: str = "pca",
        linkage_method: str = "hit_weighted_ward",
        n_clusters: int | str | None = 8,
        max_d: float | None = None,
        refine: str = "kmeans",
        cluster_points: str = "hit_means",
        connectivity: bool = False,
        k_range: Sequence[int] = (2, 12),
        min_segment_share: float = 0.01,
        seed: int = 0,
        device: str = "auto",
        dtype: str = "float32",
        allow_tf32: bool = False,
    ) -> None:
        self.feature_set = feature_set
        self.schema = schema
        self.columns = columns
        self.age_reference_date = age_reference_date
        self.age_range = age_range
        self.x = x
        self.y = y
        self.sigma = sigma
        self.learning_rate = learning_rate
        self.mode = mode
        self.iters = iters
        self.epochs = epochs
        self.topology = topology
        self.periodic = periodic
        self.neighborhood_function = neighborhood_function
        self.activation_distance = activation_distance
        self.decay_function = decay_function
        self.sigma_decay_function = sigma_decay_function
        self.init = init
        self.linkage_method = linkage_method
        self.n_clusters = n_clusters
        self.max_d = max_d
        self.refine = refine
        self.cluster_points = cluster_points
        self.connectivity = connectivity
        self.k_range = k_range
        self.min_segment_share = min_segment_share
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.allow_tf32 = allow_tf32

    @classmethod
    def from_sections(
        cls, *, seed: int | None = None, data: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None, som: Mapping[str, Any] | None = None,
        device: Mapping[str, Any] | None = None, clustering: Mapping[str, Any] | None = None,
    ) -> CustomerSegmenter:
        """Build a segmenter from the config sections it uses (``data``, ``features``, ``som``, ``device``,
        ``clustering`` as in ``configs/``, and the run's ``seed``); missing keys take the constructor's defaults."""
        data, som, device, clustering = data or {}, som or {}, device or {}, clustering or {}
        som_keys = ("x", "y", "sigma", "learning_rate", "mode", "iters", "epochs", "topology", "periodic",
                    "neighborhood_function", "activation_distance", "decay_function", "sigma_decay_function", "init")
        arguments: dict[str, Any] = {key: som[key] for key in som_keys if key in som}
        renamed = {
            "feature_set": (features or {}).get("name"),
            "schema": data.get("schema"),
            "columns": data.get("columns"),
            "age_reference_date": data.get("age_reference_date"),
            "linkage_method": clustering.get("method"),
            "seed": seed,
            "device": device.get("type"),
            "dtype": device.get("dtype"),
            "allow_tf32": device.get("allow_tf32"),
        }
        arguments.update({key: value for key, value in renamed.items() if value is not None})
        for key in ("n_clusters", "max_d", "refine", "connectivity", "k_range", "min_segment_share"):
            if key in clustering:  # None is meaningful for n_clusters and max_d
                arguments[key] = clustering[key]
        if clustering.get("points") is not None:
            arguments["cluster_points"] = clustering["points"]
        if "age_range" in data:  # None turns the age rule off
            arguments["age_range"] = data["age_range"]
        return cls(**arguments)

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, as given."""
        return {name: getattr(self, name) for name in inspect.signature(type(self)).parameters}

    # ------------------------------------------------------------------ fitting
    def fit(self, raw: RawTransactions, *, dropped_sink: DroppedSink | None = None,
            engine: Engine | None = None) -> CustomerSegmenter:
        """Clean ``raw``, fit the features, train the SOM, cluster its neurons. Returns self.

        ``raw``: a pandas or Polars frame of raw transactions, a file path, or a ``TransactionSource``. Big Bazaar
        data with customer features take the columnar path (``pipeline.segmentation.streaming``: the input is read
        and cleaned in chunks, never held whole); other combinations are cleaned in memory. ``dropped_sink``
        receives the dropped rows chunk by chunk (columnar path; e.g. a file writer), instead of keeping them in
        ``training_.cleaning.dropped``. ``engine`` (``pipeline.engines``; default: this process) runs the
        columnar path's pre-pass, cleaning pass and batch-map training; a distributed engine needs ``mode="batch"``
        and Big Bazaar customers (ValueError otherwise).

        Fitted attributes: ``cleaning_`` (schema, resolved age_reference_date, columns), ``preprocessor_``,
        ``som_``, ``neuron_clusters_`` (linkage, labels (x, y), cut height, cophenetic correlation),
        ``quantization_error_``, ``topographic_error_`` (on the training units), ``training_`` (the
        ``Segmentation`` of ``raw``) and ``timings_`` (seconds per stage).
        """
        self.validate_params()
        engine = LocalEngine() if engine is None else engine
        self.check_engine(engine)
        source = TransactionSource.of(raw)
        source.check()
        self.timings_: dict[str, float] = {}
        preprocessor = FeaturePreprocessor(self.feature_set)
        if self._columnar(self.schema, preprocessor.level):
            with timed_stage("clean", self.timings_):
                summary = engine.summarize(source)
                age_reference = resolve_age_reference(summary, self.age_reference_date, source.name)
                self.cleaning_ = self._cleaning_settings(age_reference.isoformat())
                streamed = engine.stream(source, self._settings(summary[0]), dropped_sink)
            cleaning = streamed.cleaning
            self._check_rows_left(cleaning.n_input, cleaning.n_kept, cleaning.reason_counts)
            with timed_stage("features", self.timings_):
                reference = streamed.latest_kept_day
                learned = streamed.aggregates.store_addresses()
                built = streamed.aggregates.units(reference, learned)
                X, units = preprocessor.fit_transform_units(built, schema=BIGBAZAAR, reference_date=reference,
                                                            learned=learned)
                rows = _KeptRows(streamed.cleaning, streamed.row_ids, streamed.customer_ids,
                                 streamed.aggregates.unit_codes(streamed.customer_ids))
                del streamed, built  # the aggregates and source columns are not needed any more: free them
        else:
            frame = source.frame(self.schema)
            self.cleaning_ = self._cleaning_settings(self._resolve_age_reference(frame))
            with timed_stage("clean", self.timings_):
                cleaning = self._clean(frame)
            self._check_rows_left(cleaning.n_input, len(cleaning.clean), cleaning.reason_counts())
            with timed_stage("features", self.timings_):
                X, units = preprocessor.fit_transform(cleaning.clean)
                rows = self._kept_rows(cleaning, preprocessor)
        self._check_unit_count(len(X), preprocessor.level)
        with timed_stage("train", self.timings_):
            som, data = self._train_som(X, engine)
        with timed_stage("evaluate", self.timings_):
            evaluation = som.evaluate(data)  # BMUs, QE and TE from one two-best search
            del data
            unit_bmu = evaluation.bmu.cpu().numpy()
            self.quantization_error_ = evaluation.quantization_error
            self.topographic_error_ = evaluation.topographic_error
        logger.info("quantization error %.5g, topographic error %.4f",
                    self.quantization_error_, self.topographic_error_)
        with timed_stage("cluster", self.timings_):
            hits = np.bincount(unit_bmu, minlength=self.x * self.y).reshape(self.x, self.y)
            means = _hit_means(X, unit_bmu, hits) if self.cluster_points == "hit_means" else None
            self.neuron_clusters_ = cluster_neurons(
                som.get_weights(), method=self.linkage_method, n_clusters=self.n_clusters, max_d=self.max_d,
                hits=hits, hit_means=means, refine=self.refine, connectivity=self.connectivity,
                coords=np.stack(som.get_euclidean_coordinates(), axis=-1), k_range=tuple(self.k_range),
                min_segment_share=self.min_segment_share, seed=self.seed,
            )
        self.preprocessor_ = preprocessor
        self.som_ = som
        self.training_ = rows.segmentation(units, X, unit_bmu, self.neuron_clusters_.labels, self.y)
        return self

    @staticmethod
    def _columnar(schema: str, level: str) -> bool:
        """Whether data of ``schema`` at unit ``level`` take the columnar, chunked path (Big Bazaar customers)."""
        return schema == BIGBAZAAR and level == CUSTOMER

    def _cleaning_settings(self, age_reference_date: str | None) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "age_reference_date": age_reference_date,
            "columns": None if self.columns is None else to_plain(self.columns),
            "age_range": None if self.age_range is None else [float(age) for age in self.age_range],
        }

    def _settings(self, n_rows: int) -> CleaningSettings:
        """This model's cleaning settings (``cleaning_``) for an input of ``n_rows`` rows."""
        age_range = self.cleaning_.get("age_range")
        return CleaningSettings(age_reference=pd.Timestamp(self.cleaning_["age_reference_date"]).date(), n_rows=n_rows,
                                age_range=None if age_range is None else (float(age_range[0]), float(age_range[1])))

    def check_engine(self, engine: Engine) -> None:
        """Raise ValueError when ``engine`` is distributed and this model cannot run on it: online training
        (``mode`` random or sequential) or a combination other than Big Bazaar customers."""
        if not engine.distributed:
            return
        if self.mode != "batch":
            raise ValueError(
                f"som.mode={self.mode!r} cannot run on engine={engine.name!r}: online training updates the map after "
                "every sample, each update depending on the one before, so it cannot be split over processes. Use "
                "som.mode=batch (the batch map sums per-neuron statistics over shards) or engine=local"
            )
        if not self._columnar(self.schema, FeaturePreprocessor(self.feature_set).level):
            raise ValueError(
                f"engine={engine.name!r} runs Big Bazaar data with customer features (data.schema=bigbazaar, "
                f"features=customer); schema={self.schema!r} with feature_set={self.feature_set!r} runs on "
                "engine=local"
            )

    @staticmethod
    def _check_rows_left(n_input: int, n_kept: int, reasons: Mapping[str, int]) -> None:
        if n_kept == 0:
            raise ValueError(
                f"no rows left after cleaning: all {n_input} input rows were dropped (reasons: {dict(reasons)})"
            )

    @staticmethod
    def _kept_rows(cleaning: CleanResult, preprocessor: FeaturePreprocessor) -> _KeptRows:
        """The kept rows of an in-memory cleaning as the arrays a ``Segmentation`` holds."""
        id_column = SCHEMAS[preprocessor.schema_].id
        clean = cleaning.clean
        return _KeptRows(CleaningSummary.of(cleaning), clean[ROW_ID].to_numpy(np.int64),
                         clean[id_column].to_numpy(), preprocessor.unit_index(clean))

    def validate_params(self) -> None:
        """Check every constructor argument before any work is done (the device must be available here)."""
        resolve_device(self.device)
        resolve_dtype(self.dtype)
        check_choice("feature_set", self.feature_set, tuple(FEATURE_SETS))
        check_choice("schema", self.schema, CLEANING_SCHEMAS)
        check_choice("mode", self.mode, TRAINING_MODES)
        check_choice("init", self.init, WEIGHT_INITS)
        check_choice("linkage_method", self.linkage_method, LINKAGE_METHODS)
        check_choice("refine", self.refine, REFINEMENTS)
        check_choice("cluster_points", self.cluster_points, CLUSTER_POINTS)
        if not isinstance(self.connectivity, (bool, np.bool_)):
            raise ValueError(f"connectivity must be true or false, got {self.connectivity!r}")
        _check_range("k_range", self.k_range, integer=True, low=2)
        if self.age_range is not None:
            _check_range("age_range", self.age_range, integer=False, low=0)
        if not (isinstance(self.min_segment_share, (int, float)) and 0 <= self.min_segment_share < 0.5):
            raise ValueError(f"min_segment_share must be a share in [0, 0.5), got {self.min_segment_share!r}")
        if self.age_reference_date is not None:
            _check_date("age_reference_date", self.age_reference_date)
        if self.schema == "generic" and not self.columns:
            raise ValueError("schema='generic' needs a column mapping (data.columns): {id, date, amount, ...}")
        for name in ("x", "y", "iters", "epochs"):
            _check_positive_int(name, getattr(self, name))
        if (self.n_clusters is None) == (self.max_d is None):
            raise ValueError(
                f"give exactly one of n_clusters and max_d, got n_clusters={self.n_clusters!r}, max_d={self.max_d!r}"
            )
        if self.n_clusters is not None and self.n_clusters != AUTO:
            _check_positive_int("n_clusters", self.n_clusters)
            if self.n_clusters > self.x * self.y:
                raise ValueError(
                    f"n_clusters={self.n_clusters} is more than the {self.x}×{self.y} map's {self.x * self.y} "
                    "neurons; lower n_clusters or enlarge the map"
                )
        if self.max_d is not None and not (
            isinstance(self.max_d, (int, float, np.number)) and not isinstance(self.max_d, bool)
            and np.isfinite(self.max_d) and self.max_d >= 0
        ):
            raise ValueError(f"max_d must be a finite, non-negative cut height, got {self.max_d!r}")

    def _resolve_age_reference(self, raw: pd.DataFrame) -> str | None:
        """The Age reference day as 'YYYY-MM-DD' (Big Bazaar only): the given one, else the latest parseable
        transactionDate of ``raw``."""
        if self.schema != "bigbazaar":
            return None
        if self.age_reference_date is not None:  # a date: validate_params checked it
            return pd.Timestamp(self.age_reference_date).date().isoformat()
        if BIGBAZAAR_DATE_COLUMN not in raw.columns:
            return None  # clean_bigbazaar reports the missing columns
        latest = pd.to_datetime(raw[BIGBAZAAR_DATE_COLUMN], format="ISO8601", errors="coerce").max()
        return None if pd.isna(latest) else latest.date().isoformat()

    def _clean(self, raw: pd.DataFrame) -> CleanResult:
        """Apply this model's cleaning (schema, resolved Age reference date, column mapping) to raw rows.

        A blank or non-numeric cell drops its row with a reason; a mostly unparseable column raises (a wrong
        column mapping), see ``pipeline.sources.cleaning``.
        """
        schema = self.cleaning_["schema"]
        raw = with_row_id(raw)
        if schema == "bigbazaar":
            return clean_bigbazaar(raw, age_reference_date=self.cleaning_["age_reference_date"],
                                   age_range=self.cleaning_.get("age_range"))
        if schema == "generic":
            return clean_generic(raw, self.cleaning_["columns"])
        return clean_online_retail(raw)

    def _check_unit_count(self, n_units: int, level: str) -> None:
        """Raise ValueError when there are fewer units than requested clusters; log one warning when there are
        fewer units than neurons (many neurons stay empty)."""
        fewest = self.k_range[0] if self.n_clusters == AUTO else self.n_clusters
        if fewest is not None and n_units < fewest:
            what = f"k_range starting at {fewest}" if self.n_clusters == AUTO else f"n_clusters={fewest}"
            raise ValueError(
                f"only {n_units} {level} units for {what}: need at least one unit per cluster; "
                "lower n_clusters or give more data"
            )
        neurons = self.x * self.y
        if n_units < neurons:
            logger.warning(
                "only %d %s units to train a %d×%d map of %d neurons: many neurons will stay empty; "
                "use a smaller map or more data", n_units, level, self.x, self.y, neurons,
            )

    def _train_som(self, X: np.ndarray, engine: Engine) -> tuple[SOM, torch.Tensor]:
        """Build the SOM, initialise its weights (``init``) and train it (``mode``; batch epochs on ``engine``).
        Returns the SOM and ``X`` as a tensor in its dtype on its device: converted once, used by every step of
        the fit."""
        som = SOM(
            self.x, self.y, X.shape[1], sigma=self.sigma, learning_rate=self.learning_rate,
            decay_function=self.decay_function, neighborhood_function=self.neighborhood_function,
            topology=self.topology, activation_distance=self.activation_distance, random_seed=self.seed,
            sigma_decay_function=self.sigma_decay_function, periodic=self.periodic, device=self.device,
            dtype=self.dtype, allow_tf32=self.allow_tf32,
        )
        data = torch.from_numpy(np.ascontiguousarray(X, dtype=NUMPY_DTYPES[som.dtype])).to(som.device)
        if self.init == "sample":
            som.random_weights_init(data)
        elif self.init == "pca":
            som.pca_weights_init(data)
        logger.info("training %r (%s mode, init %s) on %d units", som, self.mode, self.init, len(X))
        if self.mode == "random":
            # MiniSom's order draws only rows 0..T-1 when T < N; shuffling first makes those a random sample.
            order = torch.from_numpy(np.random.default_rng(self.seed).permutation(len(X))).to(som.device)
            som.train_random(data[order], self.iters, verbose=None)
        elif self.mode == "sequential":
            som.train_sequential(data, self.iters, verbose=None)
        else:
            engine.train_batch(som, data, self.epochs)
        return som, data

    # ------------------------------------------------------------------ prediction
    def segment(self, raw: RawTransactions, *, dropped_sink: DroppedSink | None = None) -> Segmentation:
        """Clean, encode and scale ``raw`` (a frame, a path or a ``TransactionSource``) with the fitted state and map
        every unit to its BMU and cluster. Big Bazaar customers stream in chunks as in ``fit``."""
        self._check_fitted()
        source = TransactionSource.of(raw)
        source.check()
        preprocessor = self.preprocessor_
        width = len(preprocessor.feature_names)
        if self._columnar(self.cleaning_["schema"], preprocessor.level):
            engine = LocalEngine()
            n_rows, _ = engine.summarize(source)
            streamed = engine.stream(source, self._settings(n_rows), dropped_sink)
            if streamed.cleaning.n_kept:
                unit_of_row = streamed.aggregates.unit_codes(streamed.customer_ids)
                X, units = preprocessor.transform_units(
                    streamed.aggregates.units(preprocessor.reference_date_, preprocessor.learned_))
            else:  # every row dropped: no customer to segment
                unit_of_row, X, units = np.empty(0, np.int64), np.empty((0, width)), pd.DataFrame()
            rows = _KeptRows(streamed.cleaning, streamed.row_ids, streamed.customer_ids, unit_of_row)
        else:
            cleaning = self._clean(source.frame(self.cleaning_["schema"]))
            if len(cleaning.clean) == 0:
                X, units = np.empty((0, width)), pd.DataFrame()
                rows = _KeptRows(CleaningSummary.of(cleaning), np.empty(0, np.int64), np.empty(0, object),
                                 np.empty(0, np.int64))
            else:
                X, units = preprocessor.transform(cleaning.clean)
                rows = self._kept_rows(cleaning, preprocessor)
        unit_bmu = self.som_.bmu_indices(X).cpu().numpy() if len(X) else np.empty(0, dtype=np.int64)
        return rows.segmentation(units, X, unit_bmu, self.neuron_clusters_.labels, self.som_.y)

    def predict(self, raw: RawTransactions) -> pd.DataFrame | pl.DataFrame:
        """One row per input row, in ``row_id`` order: ``row_id``, the id column, ``bmu_i``, ``bmu_j``,
        ``cluster`` (missing for dropped rows) and ``reason`` (why a row was dropped, else missing). A Polars
        frame in gives a Polars frame out; otherwise pandas (nullable Int64 columns)."""
        return _like(raw, self._prediction_table(self.segment(raw)))

    def fit_predict(self, raw: RawTransactions) -> pd.DataFrame | pl.DataFrame:
        """``fit(raw)``, then the ``predict`` table of the training rows (without segmenting them twice)."""
        return _like(raw, self.fit(raw)._prediction_table(self.training_))

    def _prediction_table(self, segmentation: Segmentation) -> pd.DataFrame:
        """Kept rows with their BMU and cluster, and dropped rows with their reason, in ``row_id`` order."""
        kept = segmentation.row_segments(self.id_column)
        kept[REASON] = pd.Series(pd.NA, index=kept.index, dtype="string")
        dropped = segmentation.cleaning.dropped
        removed = pd.DataFrame({
            ROW_ID: dropped[ROW_ID].to_numpy(),
            self.id_column: dropped.iloc[:, 1].to_numpy(),  # cleaners put the raw id column second
            REASON: dropped[REASON].astype("string").to_numpy(),
        })
        table = pd.concat([kept, removed], ignore_index=True).astype({name: "Int64" for name in SEGMENT_COLUMNS})
        return table.sort_values(ROW_ID, kind="stable").reset_index(drop=True)

    @property
    def id_column(self) -> str:
        """The customer id column of the cleaned rows (``customerID`` for Big Bazaar, ``customer_id`` otherwise)."""
        self._check_fitted()
        return SCHEMAS[self.preprocessor_.schema_].id

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything ``predict`` needs, as tensors and plain values (``torch.load(weights_only=True)``-safe)."""
        self._check_fitted()
        clusters = self.neuron_clusters_
        return {
            "format": MODEL_FORMAT,
            "params": to_plain(self.get_params()),
            "cleaning": dict(self.cleaning_),
            "preprocessor": self.preprocessor_.state_dict(),
            "som": self.som_.state_dict(),
            "neuron_clusters": torch.as_tensor(clusters.labels, dtype=torch.int64),
            "clustering": {
                "linkage_neurons": torch.as_tensor(clusters.linkage_neurons, dtype=torch.int64),
                "outlier": torch.as_tensor(clusters.outlier, dtype=torch.bool),
                "method": str(clusters.method),
                "n_clusters": int(clusters.n_clusters),
                "cut_height": float(clusters.cut_height),
                "cophenetic_correlation": float(clusters.cophenetic_correlation),
                "linkage": torch.as_tensor(clusters.linkage, dtype=torch.float64),
            },
            "training_metrics": {
                "quantization_error": float(self.quantization_error_),
                "topographic_error": float(self.topographic_error_),
            },
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``state_dict()`` to ``path`` (``model.pt``) atomically. Returns the path."""
        state = self.state_dict()
        return write_atomic(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> CustomerSegmenter:
        """Read a ``model.pt`` written by ``save`` (weights_only) and put its SOM on ``device`` (None → "auto").

        Raises FileNotFoundError for a missing file, ValueError ``<path> is not a somtorch model (...)`` for a
        foreign, damaged or incomplete file, and RuntimeError when ``device`` is unavailable.
        """
        model_path = Path(path)
        device = AUTO if device is None else device
        resolve_device(device)  # an unavailable device is reported as such, not as a broken file
        state = load_state(model_path)
        if state.get("format") != MODEL_FORMAT:
            raise not_a_model(model_path, f"format {state.get('format')!r}: it is not a CustomerSegmenter model, "
                                          f"expected format {MODEL_FORMAT!r}")
        try:
            segmenter = cls._from_state(state, device)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise not_a_model(model_path, broken_part(error)) from None
        logger.info("loaded %s: %s features, %r", model_path, segmenter.feature_set, segmenter.som_)
        return segmenter

    @classmethod
    def _from_state(cls, state: Mapping[str, Any], device: str) -> CustomerSegmenter:
        """Rebuild a fitted segmenter from a ``state_dict()`` mapping, its SOM on ``device``."""
        params = dict(state["params"])
        params["device"] = device
        segmenter = cls(**params)
        segmenter.cleaning_ = dict(state["cleaning"])
        segmenter.preprocessor_ = FeaturePreprocessor.from_state_dict(state["preprocessor"])
        segmenter.som_ = SOM.from_state_dict(state["som"], device=device)
        clustering = state["clustering"]
        segmenter.neuron_clusters_ = NeuronClusters(
            linkage=clustering["linkage"].numpy(),
            linkage_neurons=clustering["linkage_neurons"].numpy(),
            labels=state["neuron_clusters"].numpy(),
            outlier=clustering["outlier"].numpy(),
            method=clustering["method"],
            k_selection=None,
            n_clusters=clustering["n_clusters"],
            cut_height=clustering["cut_height"],
            cophenetic_correlation=clustering["cophenetic_correlation"],
        )
        segmenter.quantization_error_ = state["training_metrics"]["quantization_error"]
        segmenter.topographic_error_ = state["training_metrics"]["topographic_error"]
        return segmenter

    def _check_fitted(self) -> None:
        if not hasattr(self, "som_"):
            raise RuntimeError("CustomerSegmenter is not fitted; call fit() or CustomerSegmenter.load() first")


def read_raw_table(path: str | os.PathLike, schema: str) -> pd.DataFrame:
    """Read raw transactions for a cleaning ``schema``: Big Bazaar keeps its text columns as text."""
    check_choice("schema", schema, CLEANING_SCHEMAS)
    return TransactionSource.of(path).frame(schema)


@contextmanager
def timed_stage(stage: str, timings: dict[str, float], log: logging.Logger = logger) -> Iterator[None]:
    """Record the wall time of a stage in ``timings[stage]`` (seconds) and log it on ``log``, with the process's
    peak resident memory so far (where the memory of a run goes, stage by stage)."""
    started = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - started
    log.info("stage %s took %.2f s (peak RSS so far %.2f GB)", stage, timings[stage], peak_rss_bytes() / 1e9)


def peak_rss_bytes() -> int:
    """The peak resident set size of this process, in bytes (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def check_choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    """Raise ValueError naming an option, its bad value and the valid ones."""
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not supported; valid: {list(valid)}")


def _check_range(name: str, value: Any, *, integer: bool, low: float) -> None:
    """Check a (low, high) pair with ``low`` <= first <= second (integers when ``integer``)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if (
        isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, kinds) for v in value)
        or not low <= value[0] <= value[1]
    ):
        what = "integers" if integer else "numbers"
        raise ValueError(f"{name} must be two {what} [low, high] with {low} <= low <= high, got {value!r}")


def _check_date(name: str, value: Any) -> None:
    try:
        pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} {value!r} is not a date (use 'YYYY-MM-DD')") from error


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")


def to_plain(value: Any) -> Any:
    """Mappings and sequences (OmegaConf containers included) as plain dicts and lists, recursively; NumPy scalars
    as Python scalars."""
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [to_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
