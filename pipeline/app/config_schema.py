"""Typed schema of the Hydra app's configuration (the keys ``pipeline.app.run.run`` reads), for Hydra's ConfigStore.

The dataclasses mirror ``configs/`` key for key. ``register_configs()`` stores ``AppConfig`` as ``config_schema``,
the first entry of ``configs/config.yaml``'s defaults list, so every group option is merged into a typed, closed
node: ``som.x=abc`` fails ("could not be converted to Integer") and a typo such as ``som.sigmaa=2`` fails
("Key 'sigmaa' not in 'SomConfig'") before any work starts. Hydra's ``+key=value`` adds a key even to a
closed node, so ``check_known_keys`` catches those keys (which nothing would read) before a run.

Only the entry points (``train.py``) call ``register_configs``; the pipeline itself never needs Hydra.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

SCHEMA_NAME = "config_schema"


@dataclass
class PathsConfig:
    """Where a run writes its outputs (Hydra's run or job folder unless overridden)."""

    output_dir: str = II("hydra:runtime.output_dir")


@dataclass
class ColumnMapping:
    """Column roles of a generic transactions file (``pipeline.sources.cleaning.clean_generic``).

    ``id`` and ``date`` are required; give ``amount``, or ``quantity`` and ``unit_price`` (amount = their product).
    """

    id: Optional[str] = None
    date: Optional[str] = None
    date_format: Optional[str] = None
    amount: Optional[str] = None
    quantity: Optional[str] = None
    unit_price: Optional[str] = None
    invoice: Optional[str] = None
    categoricals: List[str] = field(default_factory=list)
    numerics: List[str] = field(default_factory=list)


@dataclass
class DataConfig:
    """Where the transactions come from and how they are cleaned (synthetic-only keys are ignored for files)."""

    source: str = "synthetic"
    schema: str = "bigbazaar"
    path: Any = None  # a file, a glob ('parts/*.parquet'), a Parquet dataset folder, or a list of these
    n_customers: int = 10_000
    seed: int = II("seed")
    separation: float = 1.0
    noise_frac: float = 0.05
    dirt: str = "real"
    rows_per_customer: str = "history"
    age_reference_date: Optional[str] = None
    age_range: Optional[List[float]] = field(default_factory=lambda: [14, 100])
    columns: Optional[ColumnMapping] = None
    chunk_rows: int = 100_000


@dataclass
class FeaturesConfig:
    """The feature set: ``customer`` (default), ``behavioural`` or ``seed`` (``pipeline.features.feature_sets``)."""

    name: str = "customer"


@dataclass
class SomConfig:
    """``somtorch.SOM`` arguments and how it is initialised and trained (names as in MiniSom 2.3.6)."""

    x: int = 20
    y: int = 20
    sigma: float = 3.0
    learning_rate: float = 0.5
    mode: str = "random"
    iters: int = 30_000
    epochs: int = 20
    topology: str = "rectangular"
    periodic: bool = False
    neighborhood_function: str = "gaussian"
    activation_distance: str = "euclidean"
    decay_function: str = "asymptotic_decay"
    sigma_decay_function: str = "asymptotic_decay"
    init: str = "pca"


@dataclass
class DeviceConfig:
    """Where and in which precision the SOM runs."""

    type: str = "auto"
    dtype: str = "float32"
    allow_tf32: bool = False


@dataclass
class ClusteringConfig:
    """Segments from the neurons (``pipeline.segmentation.clustering.cluster_neurons``): ``n_clusters`` (an int or ``auto``) or,
    with ``n_clusters: null``, a cut height ``max_d``."""

    method: str = "hit_weighted_ward"
    refine: str = "kmeans"
    points: str = "hit_means"
    connectivity: bool = False
    n_clusters: Any = 8
    max_d: Optional[float] = None
    k_range: List[int] = field(default_factory=lambda: [2, 12])
    min_segment_share: float = 0.01
    truncate_p: int = 12
    annotate_above: Optional[float] = None


@dataclass
class PlotsConfig:
    """Whether and at which resolution the PNGs under ``plots/`` are drawn."""

    enabled: bool = True
    dpi: int = 100


@dataclass
class OutputsConfig:
    """How result and dropped rows are written: ``csv`` (default) or ``parquet`` (large runs)."""

    format: str = "csv"


@dataclass
class EngineConfig:
    """Where the heavy stages run (``pipeline.engines``): ``local`` (this process), ``dask`` (a Dask cluster:
    ``address`` of an existing scheduler, or a LocalCluster of ``n_workers`` × ``threads_per_worker``) or
    ``torch`` (the ranks of a torchrun launch). ``accumulate``: the distributed batch map's sums, ``float64`` or
    ``exact`` (bit-identical for any number of workers)."""

    name: str = "local"
    address: Optional[str] = None
    n_workers: int = 2
    threads_per_worker: int = 1
    processes: bool = True
    memory_limit: str = "auto"
    blocksize: str = "64MB"
    partitions: Optional[int] = None
    accumulate: str = "float64"
    timeout_s: float = 60.0


@dataclass
class ObjectiveConfig:
    """The number a sweep minimises: ``qe_te`` = QE + te_weight·TE, or ``silhouette`` (returned negated)."""

    name: str = "qe_te"
    te_weight: float = 1.0


@dataclass
class AppConfig:
    """The whole run configuration (``configs/config.yaml`` and its groups)."""

    seed: int = 0
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    som: SomConfig = field(default_factory=SomConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    plots: PlotsConfig = field(default_factory=PlotsConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)


def register_configs() -> None:
    """Store ``AppConfig`` in Hydra's ConfigStore as ``config_schema`` (idempotent)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=AppConfig)


def check_known_keys(cfg: DictConfig) -> None:
    """Raise ValueError naming any key of ``cfg`` that ``AppConfig`` does not define (one added with ``+``)."""
    schema = OmegaConf.structured(AppConfig)
    try:
        OmegaConf.merge(schema, OmegaConf.to_container(cfg))
    except ConfigKeyError as error:
        parent, _, _ = str(error.full_key).rpartition(".")
        section = OmegaConf.select(schema, parent) if parent else schema
        valid = ", ".join(section.keys()) if isinstance(section, DictConfig) else "see configs/"
        where = f"of {parent}" if parent else "at the top level"
        raise ValueError(
            f"unknown configuration key {error.full_key!r} (added with '+'?); nothing would read it. "
            f"Valid keys {where}: {valid}"
        ) from error
