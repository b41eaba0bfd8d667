"""A local Dask cluster set up for Argus sweeps (tests, benchmarks, `--cluster` users who start their own).

Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in every worker before it starts (the
`distributed.nanny.pre-spawn-environ` setting), which makes glibc hand memory back to the system after
large frees. It was reported to slow numpy-heavy sweeps down; measured on this project's 2-core machine
(benchmarks/bench_research.py, benchmarks/RESULTS.md "Research sweeps": 1,000 sma_cross configurations
over 50 instruments x 2,000 and x 20,000 bars), it does not: with Dask's setting the cluster ran the
sweep as fast as or faster than with the variable removed (1% apart at 2,000 bars; 7% and 22% faster in
two runs at 20,000 bars, where the workers hold gigabytes between groups). So `local_cluster` keeps
Dask's environment by default; `trim_malloc=False` removes the variable (`worker_environment`).
"""

from __future__ import annotations

__all__ = ["local_cluster", "worker_environment"]


def worker_environment() -> dict:
    """The nanny's pre-spawn environment without MALLOC_TRIM_THRESHOLD_."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def local_cluster(n_workers: int = 2, *, trim_malloc: bool = True):
    """A LocalCluster of `n_workers` single-threaded worker processes (the caller closes it). With
    `trim_malloc` (the default, Dask's own setting) workers start with MALLOC_TRIM_THRESHOLD_=65536;
    without it, with glibc's default trimming."""
    import dask
    from distributed import LocalCluster

    if trim_malloc:
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment()}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
