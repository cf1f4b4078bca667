"""Composition of the Hydra configs in configs/ (fast: hydra.compose, no run).

The expected keys and values below are written out from the configuration contract and the seed script's
documented settings (SEED_PIPELINE.md), not read from the code under test.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from pipeline.app.config_schema import check_known_keys, register_configs

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs"
SHARED_DATA = REPO.parent / "shared" / "data"  # ../shared/data beside the repo root
OPTUNA_INSTALLED = importlib.util.find_spec("hydra_plugins") is not None and (
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
)

CONTRACT_KEYS = {
    "seed": None,
    "paths": ("output_dir",),
    "data": ("source", "schema", "path", "n_customers", "seed", "separation", "noise_frac", "dirt",
             "rows_per_customer", "age_reference_date", "age_range", "columns", "chunk_rows"),
    "features": ("name",),
    "som": ("x", "y", "sigma", "learning_rate", "mode", "iters", "epochs", "topology", "periodic",
            "neighborhood_function", "activation_distance", "decay_function", "sigma_decay_function", "init"),
    "device": ("type", "dtype", "allow_tf32"),
    "clustering": ("method", "refine", "points", "connectivity", "n_clusters", "max_d", "k_range", "min_segment_share",
                   "truncate_p", "annotate_above"),
    "plots": ("enabled", "dpi"),
    "outputs": ("format",),
    "engine": ("name", "address", "n_workers", "threads_per_worker", "processes", "memory_limit", "blocksize",
               "partitions", "accumulate", "timeout_s"),
    "objective": ("name", "te_weight"),
}
GROUP_OPTIONS = {
    "som": {"default", "batch", "large"},
    "data": {"synthetic", "bigbazaar", "csv", "online_retail"},
    "features": {"seed", "behavioural", "customer"},
    "clustering": {"default"},
    "engine": {"local", "dask", "torch"},
    "device": {"auto", "cpu", "cuda"},
    "experiment": {"seed_reproduction", "quick"},
    "hparams_search": {"som_optuna"},
}


def compose_config(*overrides: str, hydra_config: bool = False):
    """The composed config for ``overrides``, as train.py would see it."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra_config)


def resolved(*overrides: str) -> dict:
    """The composed job config as plain values (output_dir pinned, since there is no Hydra run here)."""
    cfg = compose_config(*overrides, "paths.output_dir=/tmp/out")
    return OmegaConf.to_container(cfg, resolve=True)


def test_every_option_file_is_listed_here():
    found = {group: {path.stem for path in (CONFIG_DIR / group).glob("*.yaml")} for group in GROUP_OPTIONS}
    assert found == GROUP_OPTIONS


@pytest.mark.parametrize(
    "group, option",
    [(group, option) for group, options in GROUP_OPTIONS.items() for option in sorted(options)],
)
def test_every_group_option_composes_with_all_contract_keys(group, option):
    if group == "hparams_search" and not OPTUNA_INSTALLED:
        pytest.skip("hydra-optuna-sweeper not installed (pip install -r requirements-sweep.txt)")
    cfg = compose_config(f"{group}={option}")
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert set(plain) == set(CONTRACT_KEYS)
    for section, keys in CONTRACT_KEYS.items():
        if keys is not None:
            assert set(plain[section]) == set(keys), section


def test_defaults_segment_synthetic_customers():
    cfg = resolved()
    assert cfg["seed"] == 0
    assert cfg["som"] == {
        "x": 20, "y": 20, "sigma": 3.0, "learning_rate": 0.5, "mode": "random", "iters": 30000, "epochs": 20,
        "topology": "rectangular", "periodic": False, "neighborhood_function": "gaussian",
        "activation_distance": "euclidean", "decay_function": "asymptotic_decay",
        "sigma_decay_function": "asymptotic_decay", "init": "pca",
    }
    assert cfg["data"]["source"] == "synthetic" and cfg["data"]["n_customers"] == 10000
    assert cfg["data"]["rows_per_customer"] == "history" and cfg["data"]["age_range"] == [14, 100]
    assert cfg["features"] == {"name": "customer"}
    assert cfg["device"] == {"type": "auto", "dtype": "float32", "allow_tf32": False}
    assert cfg["clustering"] == {
        "method": "hit_weighted_ward", "refine": "kmeans", "points": "hit_means", "connectivity": False, "n_clusters": 8,
        "max_d": None,
        "k_range": [2, 12], "min_segment_share": 0.01, "truncate_p": 12, "annotate_above": None,
    }
    assert cfg["objective"] == {"name": "qe_te", "te_weight": 1.0}


def test_synthetic_seed_follows_the_run_seed_unless_given():
    assert resolved("seed=5")["data"]["seed"] == 5
    data = resolved("seed=5", "data.seed=9", "data.n_customers=300")["data"]
    assert (data["seed"], data["n_customers"]) == (9, 300)


def test_paths_output_dir_is_hydras_run_folder():
    cfg = compose_config()
    assert OmegaConf.to_container(cfg.paths, resolve=False) == {"output_dir": "${hydra:runtime.output_dir}"}


@pytest.mark.parametrize("option, mode", [("batch", "batch"), ("large", "batch")])
def test_som_presets_change_the_training(option, mode):
    som = resolved(f"som={option}")["som"]
    assert som["mode"] == mode
    assert som["x"] * som["y"] >= 15 * 15
    assert som["sigma_decay_function"] == "linear_decay_to_one"


def test_device_group_sets_the_device_type():
    assert [resolved(f"device={name}")["device"]["type"] for name in ("auto", "cpu", "cuda")] == ["auto", "cpu", "cuda"]


def test_bigbazaar_segments_customers_unless_told_otherwise():
    cfg = resolved("data=bigbazaar")
    assert cfg["features"]["name"] == "customer"
    assert (cfg["data"]["source"], cfg["data"]["schema"]) == ("file", "bigbazaar")
    assert cfg["data"]["age_range"] == [14, 100]
    assert resolved("data=bigbazaar", "features=behavioural")["features"]["name"] == "behavioural"
    assert resolved("features=seed", "data=bigbazaar")["features"]["name"] == "seed"


def test_n_clusters_takes_auto_or_an_integer():
    assert resolved("clustering.n_clusters=auto")["clustering"]["n_clusters"] == "auto"
    assert resolved("clustering.n_clusters=5")["clustering"]["n_clusters"] == 5
    assert resolved("clustering.n_clusters=null", "clustering.max_d=2.5")["clustering"]["n_clusters"] is None


def test_online_retail_is_customer_level_with_the_shared_file_by_default():
    cfg = resolved("data=online_retail")
    assert cfg["features"]["name"] == "customer"
    assert (cfg["data"]["source"], cfg["data"]["schema"]) == ("file", "online_retail")
    assert cfg["data"]["path"] == "../shared/data/online_retail_uci/online_retail.csv.gz"


@pytest.mark.parametrize("option", ["bigbazaar", "online_retail"])
def test_default_data_paths_point_at_the_shared_files(option):
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    assert (REPO / resolved(f"data={option}")["data"]["path"]).is_file()


def test_csv_takes_a_column_mapping_from_the_command_line():
    data = resolved(
        "data=csv", "data.path=sales.csv", "data.columns.id=client", "data.columns.amount=null",
        "data.columns.quantity=qty", "data.columns.unit_price=price", "data.columns.categoricals=[shop,channel]",
    )["data"]
    assert (data["source"], data["schema"], data["path"]) == ("file", "generic", "sales.csv")
    assert data["columns"] == {
        "id": "client", "date": "date", "date_format": None, "amount": None, "quantity": "qty",
        "unit_price": "price", "invoice": None, "categoricals": ["shop", "channel"], "numerics": [],
    }


def test_seed_reproduction_uses_the_2018_settings():
    cfg = resolved("experiment=seed_reproduction")
    assert cfg["features"]["name"] == "seed"
    assert cfg["data"]["schema"] == "bigbazaar" and cfg["data"]["path"].endswith("bigbazaar_skrohit/cproducts.csv")
    assert cfg["data"]["age_reference_date"] == "2018-03-01"
    som = cfg["som"]
    assert (som["x"], som["y"], som["sigma"], som["learning_rate"], som["mode"], som["iters"], som["init"]) == (
        15, 15, 1.0, 0.5, "random", 10000, "sample"
    )
    clustering = cfg["clustering"]
    assert (clustering["method"], clustering["refine"], clustering["n_clusters"]) == ("average", "none", 8)
    assert clustering["points"] == "prototypes"
    assert clustering["min_segment_share"] == 0 and cfg["data"]["age_range"] is None


def test_command_line_beats_an_experiment():
    assert resolved("experiment=quick", "som.x=9")["som"]["x"] == 9


@pytest.mark.skipif(not OPTUNA_INSTALLED, reason="hydra-optuna-sweeper not installed")
def test_optuna_preset_searches_sigma_learning_rate_size_and_iterations():
    cfg = compose_config("hparams_search=som_optuna", "som.x=12", "paths.output_dir=/tmp/out", hydra_config=True)
    assert cfg.som.y == 12, "square maps: som.y follows som.x"
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_.lower()
    assert str(sweeper.direction).endswith("minimize")
    assert set(sweeper.params) == {"som.sigma", "som.learning_rate", "som.x", "som.iters"}
    assert cfg.hydra.mode.name == "MULTIRUN"


def test_sweep_summary_callback_is_configured():
    cfg = compose_config(hydra_config=True)
    assert cfg.hydra.callbacks.sweep_summary._target_ == "pipeline.app.hydra_callbacks.SweepSummaryCallback"


def test_a_non_integer_map_size_fails_with_the_key_named():
    with pytest.raises(ConfigCompositionException) as failure:
        compose_config("som.x=abc")
    message = f"{failure.value} {failure.value.__cause__}"
    assert "som.x" in message and "abc" in message
    assert isinstance(failure.value.__cause__, ValidationError)


def test_a_misspelt_key_fails_with_the_key_named():
    with pytest.raises(ConfigCompositionException) as failure:
        compose_config("som.sigmaa=2")
    assert "Key 'sigmaa' not in 'SomConfig'" in str(failure.value.__cause__)


def test_an_added_unknown_key_is_caught_before_a_run():
    cfg = compose_config("+som.sigmaa=2")
    with pytest.raises(ValueError, match=r"'som\.sigmaa'.*Valid keys of som: x, y, sigma"):
        check_known_keys(cfg)
    check_known_keys(compose_config())


def test_an_unknown_group_option_lists_the_valid_ones():
    with pytest.raises(MissingConfigException) as failure:
        compose_config("som=nope")
    message = str(failure.value)
    assert "som/nope" in message
    assert all(option in message for option in GROUP_OPTIONS["som"])
