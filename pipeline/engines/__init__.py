"""Where a run's heavy stages execute: one process (``local``), a Dask cluster (``dask``) or a torch.distributed
group launched by torchrun (``torch``). ``make_engine`` builds one from the ``engine`` config section."""
