"""`argusctl research run` end to end on a small synthetic market: the same results digest serial, on
a process pool and on a Dask LocalCluster; resuming; optuna; gates; DSR recomputed independently; init,
report and promote through the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import kurtosis, norm, skew

from argus.cli.main import cli
from argus.research.config import load_research_config
from argus.research.runner import run_research


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    data = tmp_path_factory.mktemp("research-market")
    res = CliRunner().invoke(cli, ["--data", str(data), "ingest", "synthetic", "--seed", "11", "--symbols", "SPY,QQQ",
                                   "--days", "24", "--events-per-day", "1500", "--json"])
    assert res.exit_code == 0, res.output
    return data


def config(**over):
    doc = {"name": "t", "data": {"symbols": ["SPY", "QQQ"], "timeframe": "15m"},
           "strategies": [{"name": "sma_cross", "grid": {"fast": [2, 4, 6], "slow": [10, 20]}},
                          {"name": "zscore_revert", "grid": {"lookback": [8, 16], "entry_z": [1.0, 2.0]}}],
           "folds": {"n": 3, "cpcv_groups": 4, "cpcv_test_groups": 2},
           "robustness": {"bootstrap_paths": 100, "reps": 100, "top": 2, "regimes": False},
           "gates": {"dsr_min": 0.5, "min_trades": 3}}
    doc.update(over)
    return load_research_config(doc)


def test_serial_pool_and_dask_give_the_same_results(market, tmp_path):
    from argus.research.cluster import local_cluster

    serial = run_research(config(), market, tmp_path / "serial", group_size=3)
    pool = run_research(config(), market, tmp_path / "pool", workers=2, group_size=3)
    with local_cluster(2) as cluster:
        dask = run_research(config(), market, tmp_path / "dask", cluster=cluster.scheduler_address, group_size=3)
    assert serial["configs"] == 10 and serial["computed"] == 10
    assert serial["results_digest"] == pool["results_digest"] == dask["results_digest"]
    a = pd.read_parquet(tmp_path / "serial" / "results.parquet")
    b = pd.read_parquet(tmp_path / "dask" / "results.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_resume_computes_only_what_is_missing(market, tmp_path):
    out = tmp_path / "run"
    first = run_research(config(), market, out, group_size=4)
    groups = sorted((out / "cache").glob("group-*.json"))
    assert len(groups) == 3
    victim = next(g for g in groups if "benchmark_close" not in json.loads(g.read_text()))
    lost = len(json.loads(victim.read_text())["trials"])
    victim.unlink()  # as if the run had stopped before this group finished
    again = run_research(config(), market, out, group_size=4)
    assert again["computed"] == lost and again["cached"] == 10 - lost
    assert again["results_digest"] == first["results_digest"]


def test_gates_and_statistics(market, tmp_path):
    out = tmp_path / "run"
    summary = run_research(config(), market, out)
    res = pd.read_parquet(out / "results.parquet")
    rets = pd.read_parquet(out / "returns.parquet")
    # every kill names a gate whose threshold the value broke
    for _, row in res[res["killed"]].iterrows():
        if row["kill_gate"] == "dsr_min":
            assert row["kill_value"] < row["kill_threshold"] or math.isnan(row["kill_value"])
        elif row["kill_gate"] == "min_trades":
            assert row["trades"] < row["kill_threshold"]
    assert summary["killed"] == res[res["killed"]]["kill_gate"].value_counts().sort_index().to_dict()
    # DSR recomputed from the daily returns with scipy (Bailey & Lopez de Prado 2014, eqs. as in the paper)
    keys = list(res["key"])
    R = rets[keys].to_numpy()
    sr = R.mean(axis=0) / R.std(axis=0, ddof=1)
    v = np.var(sr, ddof=1)
    n = len(keys)
    g = 0.5772156649015329
    sr0 = math.sqrt(v) * ((1 - g) * norm.ppf(1 - 1 / n) + g * norm.ppf(1 - 1 / (n * math.e)))
    j = 0
    r = R[:, j]
    t = len(r)
    s, k = skew(r), kurtosis(r, fisher=False)
    dsr = norm.cdf((sr[j] - sr0) * math.sqrt(t - 1) / math.sqrt(1 - s * sr[j] + (k - 1) / 4 * sr[j] ** 2))
    assert res["dsr"].iloc[0] == pytest.approx(dsr, rel=1e-6)
    assert summary["trials"]["n"] == n and 1 <= summary["trials"]["effective"] <= n
    assert 0 <= summary["stats"]["pbo"] <= 1
    folds = pd.read_parquet(out / "folds.parquet")
    assert set(folds["fold"]) == {0, 1, 2} and folds.groupby("fold")["selected"].sum().tolist() == [1, 1, 1]


def test_optuna_search_resumes(market, tmp_path):
    cfg = config(search={"kind": "optuna", "trials": 4, "seed": 3},
                 strategies=[{"name": "sma_cross", "grid": {"fast": {"start": 2, "stop": 8, "step": 2},
                                                            "slow": {"start": 10, "stop": 30, "step": 10}}}])
    first = run_research(cfg, market, tmp_path / "opt")
    assert first["configs"] >= 1 and (tmp_path / "opt" / "optuna.journal").exists()
    again = run_research(cfg, market, tmp_path / "opt")
    assert again["computed"] == 0 and again["results_digest"] == first["results_digest"]


def test_cli_init_run_report_promote(market, tmp_path):
    runner = CliRunner()
    path = tmp_path / "research.yaml"
    assert runner.invoke(cli, ["research", "init", str(path)]).exit_code == 0
    example = load_research_config(path)
    from argus.research.sweep import plan

    assert len(plan(example, 0)) >= 20
    cfg_path = tmp_path / "small.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(config().canonical()))
    out = tmp_path / "cli-run"
    r = runner.invoke(cli, ["--data", str(market), "research", "run", str(cfg_path), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert set(doc) == {"run_dir", "configs", "folds", "seconds", "configs_per_s", "survivors", "killed",
                        "results_digest"}
    r = runner.invoke(cli, ["research", "report", str(out)])
    assert r.exit_code == 0 and (out / "report.html").exists()
    import shutil

    copy = tmp_path / "market-copy"
    shutil.copytree(market, copy)
    p1 = json.loads(runner.invoke(cli, ["--data", str(copy), "research", "promote", str(out), "--json"]).output)
    p2 = json.loads(runner.invoke(cli, ["--data", str(copy), "research", "promote", str(out), "--json"]).output)
    assert not p1["duplicate"] and p2["duplicate"] and p1["offset"] == p2["offset"]
    bad = runner.invoke(cli, ["--data", str(market), "research", "run", str(path.parent / "nope.yaml")])
    assert bad.exit_code == 2
