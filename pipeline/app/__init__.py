"""The application around the pipeline: ``run(cfg)``, the config schema, Hydra callbacks and the sweep summary."""
