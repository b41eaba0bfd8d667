"""A local Dask cluster set up for Argus sweeps (tests, benchmarks, `--cluster` users who start their own).

Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in every worker before it starts (the
`distributed.nanny.pre-spawn-environ` setting), which makes glibc hand memory back to the system after
every large free; a numpy-heavy sweep then runs slower than on a plain process pool. Measured on this
project's 2-core machine (benchmarks/bench_research.py), leaving glibc's default trimming in place brings
the cluster level with the pool, so `local_cluster` removes that variable from the pre-spawn environment.
"""

from __future__ import annotations

__all__ = ["local_cluster", "worker_environment"]


def worker_environment() -> dict:
    """The nanny's pre-spawn environment without MALLOC_TRIM_THRESHOLD_."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def local_cluster(n_workers: int = 2, *, trim_malloc: bool = False):
    """A LocalCluster of `n_workers` single-threaded worker processes (the caller closes it)."""
    import dask
    from distributed import LocalCluster

    if trim_malloc:
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment()}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
