"""argus.v1.ResearchService against a real in-process server on loopback: submit a run, follow it to the
end, fetch its results (the same as the run directory's files), resubmit, find it again after a restart;
one run at a time (the next waits, QUEUED); a run stopped by the server's shutdown resumes from its cache
when resubmitted; bad configurations and unknown runs."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import grpc
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from argus.api.server import start_server
from argus.cli.main import cli
from argus.client import ArgusClient
from argus.v1 import research_service_pb2 as pb
from argus.v1 import research_service_pb2_grpc as pb_grpc
from tests.api.conftest import TIMEOUT

CONFIG = {"name": "grpc", "data": {"symbols": ["SPY", "QQQ"], "timeframe": "15m"},
          "strategies": [{"name": "sma_cross", "grid": {"fast": [2, 4], "slow": [10, 20]}}],
          "folds": {"n": 3, "cpcv_groups": 4, "cpcv_test_groups": 2},
          "robustness": {"bootstrap_paths": 100, "reps": 100, "top": 1, "regimes": False},
          "gates": {"dsr_min": 0.5, "min_trades": 3}}
CONFIGS = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A data directory holding a small synthetic SPY/QQQ market in data/log."""
    data = tmp_path_factory.mktemp("research-grpc")
    res = CliRunner().invoke(cli, ["--data", str(data), "ingest", "synthetic", "--seed", "11", "--symbols", "SPY,QQQ",
                                   "--days", "24", "--events-per-day", "1500", "--json"])
    assert res.exit_code == 0, res.output
    return data


def with_server(data: Path, body):
    """Start a server over data/log, run `await body(client, stub)`, stop the server."""

    async def main():
        server = await start_server(data / "log", port=0, projections=False)
        try:
            async with await ArgusClient.connect(f"127.0.0.1:{server.port}") as client:
                stub = pb_grpc.ResearchServiceStub(client._channel)
                return await asyncio.wait_for(body(client, stub), TIMEOUT)
        finally:
            await server.stop(grace=2)

    return asyncio.run(main())


async def code_of(coro) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    return info.value.code(), info.value.details()


def test_a_run_is_followed_to_the_end_and_its_results_are_the_run_directorys(data: Path) -> None:
    text = yaml.safe_dump(CONFIG)

    async def body(client: ArgusClient, stub):
        sub = await client.submit_research(text, group_size=1)  # one progress step per configuration
        early = await code_of(client.research_results(sub.run_id))
        seen = [p async for p in client.watch_research(sub.run_id)]
        results = await client.research_results(sub.run_id)
        top = await client.research_results(sub.run_id, limit=2)
        again = await client.submit_research(text, workers=2)  # workers are not part of the run_id
        late = [p async for p in client.watch_research(sub.run_id)]
        runs = await client.research_runs()
        return sub, early, seen, results, top, again, late, runs

    sub, early, seen, results, top, again, late, runs = with_server(data, body)
    run_dir = Path(sub.run_dir)
    assert run_dir == data / "research" / sub.run_id and len(sub.run_id) == 24
    assert sub.state in (pb.RUN_STATE_QUEUED, pb.RUN_STATE_RUNNING)
    assert early[0] == grpc.StatusCode.FAILED_PRECONDITION and sub.run_id in early[1]

    # progress: states move forward only, done never decreases, the stream ends with DONE at total
    states = [p.state for p in seen]
    assert states == sorted(states) and states[-1] == pb.RUN_STATE_DONE
    assert pb.RUN_STATE_FAILED not in states
    dones = [p.done for p in seen]
    assert dones == sorted(dones)
    assert seen[-1].done == seen[-1].total == CONFIGS
    assert all(p.total in (0, CONFIGS) for p in seen) and all(p.run_id == sub.run_id for p in seen)
    assert any(p.state == pb.RUN_STATE_RUNNING and 0 < p.done < CONFIGS for p in seen), seen
    assert "4 configurations" in seen[-1].message

    # results: summary.json and results.parquet of the run directory
    summary = json.loads((run_dir / "summary.json").read_text())
    assert json.loads(results.summary_json) == summary and summary["configs"] == CONFIGS
    df = pd.read_parquet(run_dir / "results.parquet")
    assert [r.key for r in results.results] == df["key"].tolist()
    for r, row in zip(results.results, df.itertuples(index=False), strict=True):
        assert (r.strategy, r.params_json, r.trades, r.killed) == (row.strategy, row.params, row.trades, row.killed)
        assert r.kill_gate == (row.kill_gate or "")
        for name in ("sharpe", "dsr", "psr", "kill_value", "kill_threshold"):
            value = getattr(row, name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert not r.HasField(name), name
            else:
                assert getattr(r, name) == pytest.approx(float(value), rel=1e-12), name
    assert sum(r.killed for r in results.results) == sum(summary["killed"].values())
    assert not results.HasField("report_path")
    assert [r.key for r in top.results] == df["key"].tolist()[:2]

    # the same configuration again: the same run, already done; a late watcher gets the end at once
    assert (again.run_id, again.state) == (sub.run_id, pb.RUN_STATE_DONE)
    assert [(p.state, p.done, p.total) for p in late] == [(pb.RUN_STATE_DONE, CONFIGS, CONFIGS)]
    assert [(r.run_id, r.name, r.progress.state) for r in runs] == [(sub.run_id, "grpc", pb.RUN_STATE_DONE)]

    # a restarted server finds the finished run in data/research/
    async def after_restart(client: ArgusClient, stub):
        watched = [p async for p in client.watch_research(sub.run_id)]
        res = await client.research_results(sub.run_id, limit=1)
        resubmitted = await client.submit_research(text)
        return watched, res, resubmitted

    watched, res, resubmitted = with_server(data, after_restart)
    assert [(p.state, p.done) for p in watched] == [(pb.RUN_STATE_DONE, CONFIGS)]
    assert json.loads(res.summary_json) == summary and len(res.results) == 1
    assert (resubmitted.run_id, resubmitted.state) == (sub.run_id, pb.RUN_STATE_DONE)


def test_a_bad_configuration_is_invalid_argument_naming_the_field(data: Path) -> None:
    bad_top = {**CONFIG, "robustness": {**CONFIG["robustness"], "top": 0}}
    bad_symbol = {**CONFIG, "data": {**CONFIG["data"], "symbols": ["SPY", "NOPE"]}}
    bad_param = {**CONFIG, "strategies": [{"name": "sma_cross", "grid": {"fastest": [2]}}]}
    bad_strategy = {**CONFIG, "strategies": [{"name": "no_such_strategy"}]}

    async def body(client: ArgusClient, stub):
        before = await client.research_runs()
        out = [await code_of(client.submit_research(yaml.safe_dump(doc)))
               for doc in (bad_top, bad_symbol, bad_param, bad_strategy)]
        out.append(await code_of(client.submit_research("name: [unclosed")))
        out.append(await code_of(client.submit_research("just a string")))
        out.append(await code_of(client.submit_research(yaml.safe_dump(CONFIG), run_name="")))
        return out, before, await client.research_runs()

    out, before, after = with_server(data, body)
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for code, _ in out), out
    messages = [m for _, m in out]
    assert "robustness.top" in messages[0]
    assert "data.symbols" in messages[1] and "NOPE" in messages[1]
    assert "fastest" in messages[2]
    assert "no_such_strategy" in messages[3]
    assert "config_yaml" in messages[4] and "config_yaml" in messages[5]
    assert "run_name" in messages[6]
    assert after == before  # nothing was started


def test_an_unknown_run_is_not_found(data: Path) -> None:
    async def body(client: ArgusClient, stub):
        out = []
        for run_id in ("0" * 24, "../log", ""):
            out.append(await code_of(client.research_results(run_id)))
            out.append(await code_of(stub.WatchRun(pb.WatchRunRequest(run_id=run_id)).read()))
        return out

    out = with_server(data, body)
    assert [code for code, _ in out] == [grpc.StatusCode.NOT_FOUND] * 6
    assert "run_id" in out[0][1]


def test_a_second_run_waits_for_the_first_and_a_stopped_run_resumes_when_resubmitted(data: Path) -> None:
    first = yaml.safe_dump({**CONFIG, "name": "first"})
    second = yaml.safe_dump({**CONFIG, "name": "second"})

    async def stop_mid_run(client: ArgusClient, stub):
        a = await client.submit_research(first, group_size=1)
        b = await client.submit_research(second)
        b_state = (await anext(aiter(client.watch_research(b.run_id)))).state
        async for p in client.watch_research(a.run_id):
            if p.done >= 1:
                break  # leave the server (it stops) with the first run part done
        return a, b, b_state

    a, b, b_state = with_server(data, stop_mid_run)
    assert b_state == pb.RUN_STATE_QUEUED
    cached = len(list((Path(a.run_dir) / "cache").glob("group-*.json")))
    assert not (Path(a.run_dir) / "summary.json").exists()

    async def resume(client: ArgusClient, stub):
        before = {r.run_id: r.progress for r in await client.research_runs()}
        again = await client.submit_research(first, group_size=1)
        seen = [p async for p in client.watch_research(a.run_id)]
        return before, again, seen

    before, again, seen = with_server(data, resume)
    assert before[a.run_id].state == pb.RUN_STATE_FAILED and "resume" in before[a.run_id].message
    assert b.run_id not in before  # queued, never started: no run directory
    assert again.run_id == a.run_id
    assert seen[-1].state == pb.RUN_STATE_DONE and seen[-1].done == CONFIGS
    summary = json.loads((Path(a.run_dir) / "summary.json").read_text())
    assert summary["cached"] == cached >= 1 and summary["computed"] == CONFIGS - cached


def test_argusctl_serve_serves_the_research_service(data: Path, serve_process) -> None:
    server = serve_process(data, "--no-projections")

    async def main():
        async with await ArgusClient.connect(server.address) as client:
            runs = await client.research_runs()
            bad = await code_of(client.submit_research("name: x\n"))
            return runs, bad

    try:
        runs, bad = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    finally:
        assert server.stop() == 0
    assert all(r.run_dir.startswith(str(data / "research")) for r in runs)
    assert bad[0] == grpc.StatusCode.INVALID_ARGUMENT and "data" in bad[1]
