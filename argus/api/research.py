"""argus.v1.ResearchService: submit a research run, follow its progress, fetch its results (argus.research).

A run is named by its run_id, BLAKE2b of the configuration's canonical JSON and the log's head at
submission, and lives in `<data>/research/<run_id>/` (docs/research-run-dir.md), so submitting the same
configuration on the same log again finds the same run, and a failed or interrupted one resumes from its
cache. Runs execute one at a time, each in a child process (`python -m argus.api.research`) that calls
`run_research` and reports progress as JSON lines on a pipe: the event loop only reads that pipe, the
sweep's CPU work never holds the server's GIL, and the child opens the log read-only in its own process
(LMDB allows one environment per path per process, and the server already has the log open). Stopping
the server kills the child's process group; the run is then FAILED and resumes when submitted again.

Watchers share the run's state: every change replaces the run's `changed` event, so a watcher sends the
state it saw and waits for the next change, and a slow watcher skips intermediate states rather than
queueing them.

Status codes:
  INVALID_ARGUMENT     the configuration does not parse or validate (the message names the field), a
                       symbol not in the log, workers / cluster / group_size out of bounds
  NOT_FOUND            an unknown run_id
  FAILED_PRECONDITION  GetResults of a run not done; a log directory that is not <data>/log
  UNAVAILABLE          the server is shutting down
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc import aio

from argus.api.refusals import Refused, abort
from argus.log import EventLog
from argus.v1 import research_service_pb2 as pb
from argus.v1 import research_service_pb2_grpc as pb_grpc

#: Research runs at a time (each may use many processes of its own: `workers`, a Dask cluster).
MAX_RUNNING = 1
#: Most local worker processes a run may ask for.
MAX_WORKERS = 256
#: Most configurations per replay pass a run may ask for (0: argus.research.sweep.GROUP_SIZE).
MAX_GROUP_SIZE = 100_000
#: Seconds a stopped run's child gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 5.0
_RUN_ID = re.compile(r"[0-9a-f]{24}")
_TERMINAL = (pb.RUN_STATE_DONE, pb.RUN_STATE_FAILED)

log = structlog.get_logger("argus.api.research")


def run_id_of(config: dict[str, Any], head: int) -> str:
    """BLAKE2b-96 (hex) of a configuration's canonical JSON and the log head it runs on."""
    text = json.dumps([config, head], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@dataclass
class _Run:
    """A run's state, shared by its task and its watchers."""

    run_id: str
    name: str
    run_dir: Path
    state: int = pb.RUN_STATE_QUEUED
    done: int = 0
    total: int = 0
    message: str = "queued"
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    def update(self, **changes: Any) -> None:
        for k, v in changes.items():
            setattr(self, k, v)
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def progress(self) -> pb.RunProgress:
        return pb.RunProgress(run_id=self.run_id, state=self.state, done=self.done, total=self.total,
                              message=self.message)


def _summary_line(summary: dict[str, Any]) -> str:
    killed = ", ".join(f"{k} {v}" for k, v in sorted((summary.get("killed") or {}).items())) or "none"
    return (f"done: {summary.get('configs')} configurations, {summary.get('survivors')} survivors, killed: {killed}; "
            f"results digest {str(summary.get('results_digest', ''))[:16]}")


def _from_disk(run_id: str, run_dir: Path) -> _Run:
    """A run found in <data>/research/ that this server did not start: DONE with its summary.json, else
    FAILED (interrupted)."""
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        n = int(summary.get("configs") or 0)
        return _Run(run_id, str(summary.get("name", "")), run_dir, pb.RUN_STATE_DONE, n, n, _summary_line(summary))
    name = ""
    with contextlib.suppress(Exception):
        import yaml

        name = str(yaml.safe_load((run_dir / "config.yaml").read_text()).get("name", ""))
    return _Run(run_id, name, run_dir, pb.RUN_STATE_FAILED, 0, 0,
                "interrupted before it finished: submit the same configuration to resume it")


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def results_of(run_dir: Path, limit: int) -> pb.GetResultsResponse:
    """GetResults of a finished run directory: summary.json and the rows of results.parquet."""
    import pandas as pd

    summary = (run_dir / "summary.json").read_text()
    cols = ["key", "strategy", "params", "sharpe", "dsr", "psr", "trades", "killed", "kill_gate", "kill_value",
            "kill_threshold"]
    df = pd.read_parquet(run_dir / "results.parquet", columns=cols)
    if limit:
        df = df.head(limit)
    resp = pb.GetResultsResponse(summary_json=summary)
    for row in df.itertuples(index=False):
        r = resp.results.add(key=row.key, strategy=row.strategy, params_json=row.params, trades=int(row.trades),
                             killed=bool(row.killed), kill_gate=row.kill_gate or "")
        for name in ("sharpe", "dsr", "psr", "kill_value", "kill_threshold"):
            v = _opt_float(getattr(row, name))
            if v is not None:
                setattr(r, name, v)
    report = run_dir / "report.html"
    if report.exists():
        resp.report_path = str(report)
    return resp


class ResearchServicer(pb_grpc.ResearchServiceServicer):
    """argus.v1.ResearchService over the server's log; run directories under <data>/research/."""

    def __init__(self, event_log: EventLog, log_dir: str | os.PathLike, closing: asyncio.Event):
        self.log = event_log
        self.data = Path(log_dir).resolve().parent
        self.root = self.data / "research"
        self.log_in_place = Path(log_dir).resolve() == (self.data / "log").resolve()
        self.closing = closing
        self.runs: dict[str, _Run] = {}
        self._slots = asyncio.Semaphore(MAX_RUNNING)

    # -- helpers ----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closing.is_set():
            raise Refused(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")

    def _get(self, run_id: str) -> _Run:
        run = self.runs.get(run_id)
        if run is not None:
            return run
        if _RUN_ID.fullmatch(run_id) and (self.root / run_id).is_dir():
            run = self.runs[run_id] = _from_disk(run_id, self.root / run_id)
            return run
        raise Refused(grpc.StatusCode.NOT_FOUND, f"field 'run_id' = {run_id!r}: no such run")

    def _validate(self, request: pb.SubmitRunRequest, head: int) -> tuple[dict[str, Any], int]:
        """The canonical configuration of a request and its number of configurations (raises Refused)."""
        import yaml

        from argus.research.config import ConfigError, load_research_config
        from argus.research.sweep import plan
        from argus.strategies.registry import default_registry

        bad = grpc.StatusCode.INVALID_ARGUMENT
        try:
            raw = yaml.safe_load(request.config_yaml)
        except yaml.YAMLError as exc:
            raise Refused(bad, f"field 'config_yaml': not YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise Refused(bad, f"field 'config_yaml': expected a mapping at the top, got {type(raw).__name__}")
        if request.HasField("run_name"):
            if not request.run_name.strip():
                raise Refused(bad, "field 'run_name' = '' must name the run (or be absent)")
            raw = {**raw, "name": request.run_name}
        if request.group_size > MAX_GROUP_SIZE:
            raise Refused(bad, f"field 'group_size' = {request.group_size} must be <= {MAX_GROUP_SIZE}")
        if request.workers > MAX_WORKERS:
            raise Refused(bad, f"field 'workers' = {request.workers} must be <= {MAX_WORKERS}")
        if request.HasField("cluster") and "://" not in request.cluster:
            raise Refused(bad, f"field 'cluster' = {request.cluster!r} must be a scheduler address (tcp://HOST:PORT)")
        try:
            cfg = load_research_config(raw)
            for symbol in cfg.data.symbols:
                if self.log.instrument_id(symbol) is None:
                    raise ConfigError(f"data.symbols: {symbol!r} is not in the log")
            if cfg.search.kind == "optuna":
                default_registry().get(cfg.strategies[0].name)
                total = cfg.search.trials
            else:
                total = len(plan(cfg, head))
                if not total:
                    raise ConfigError("strategies: the grids expand to no valid configuration")
        except ValueError as exc:  # ConfigError, an unknown strategy or a parameter out of its range
            raise Refused(bad, str(exc)) from None
        return cfg.canonical(), total

    async def _abort(self, context: aio.ServicerContext, exc: BaseException, method: str) -> None:
        await abort(context, exc, method, log)

    # -- running ----------------------------------------------------------------------------------

    async def _execute(self, run: _Run, config: dict[str, Any], workers: int, cluster: str | None,
                       group_size: int) -> None:
        try:
            async with self._slots:
                run.update(state=pb.RUN_STATE_RUNNING, message="starting")
                await self._child(run, config, workers, cluster, group_size)
        except asyncio.CancelledError:
            run.update(state=pb.RUN_STATE_FAILED,
                       message="stopped: the server shut down; submit the same configuration to resume")
            raise
        except Exception as exc:  # noqa: BLE001 - a failed run is a state, not a crash of the server
            log.warning("research run failed", run_id=run.run_id, error=f"{type(exc).__name__}: {exc}")
            run.update(state=pb.RUN_STATE_FAILED, message=f"failed: {exc}")

    async def _child(self, run: _Run, config: dict[str, Any], workers: int, cluster: str | None,
                     group_size: int) -> None:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH"))
                                                           if p)}
        job = json.dumps({"config": config, "data": str(self.data), "out": str(run.run_dir), "workers": workers,
                          "cluster": cluster, "group_size": group_size}).encode()
        with open(run.run_dir / "run.log", "ab") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "argus.api.research", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env, start_new_session=True)
        log.info("research run started", run_id=run.run_id, pid=proc.pid, run_dir=str(run.run_dir))
        try:
            proc.stdin.write(job)
            await proc.stdin.drain()
            proc.stdin.close()
            outcome: dict[str, Any] = {}
            async for line in proc.stdout:
                msg = json.loads(line)
                if "plan" in msg:
                    run.update(total=int(msg["plan"]), message="computing configurations")
                elif "progress" in msg:
                    done = run.done + int(msg["progress"])
                    run.update(done=done, message="computing statistics and robustness" if done >= run.total
                               else "computing configurations")
                else:
                    outcome = msg
            rc = await proc.wait()
        except BaseException:
            await _kill(proc)
            raise
        if outcome.get("done") and rc == 0:
            summary = await asyncio.to_thread(lambda: json.loads((run.run_dir / "summary.json").read_text()))
            run.update(state=pb.RUN_STATE_DONE, done=run.total, message=_summary_line(summary))
            log.info("research run done", run_id=run.run_id, configs=summary.get("configs"))
        else:
            raise RuntimeError(outcome.get("error") or f"the run process exited with code {rc} "
                                                       f"(see {run.run_dir / 'run.log'})")

    async def close(self) -> None:
        """Stop every queued or running run (their children are killed); they become FAILED."""
        tasks = [r.task for r in self.runs.values() if r.task is not None and not r.task.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- RPCs -------------------------------------------------------------------------------------

    async def SubmitRun(self, request, context):  # noqa: N802 - gRPC method name
        try:
            self._check_open()
            if not self.log_in_place:
                raise Refused(grpc.StatusCode.FAILED_PRECONDITION,
                              f"research runs need the log at <data>/log; this server's log is not {self.data / 'log'}")
            head = self.log.head()
            config, total = await asyncio.to_thread(self._validate, request, head)
            self._check_open()
            run_id = run_id_of(config, head)
            run_dir = self.root / run_id
            run = self.runs.get(run_id)
            if run is None and run_dir.is_dir():
                run = self.runs[run_id] = _from_disk(run_id, run_dir)
            if run is None or run.state == pb.RUN_STATE_FAILED:
                run = self.runs[run_id] = _Run(run_id, config["name"], run_dir, total=total)
                cluster = request.cluster if request.HasField("cluster") else None
                run.task = asyncio.create_task(self._execute(run, config, max(1, request.workers), cluster,
                                                             request.group_size))
                log.info("research run submitted", run_id=run_id, name=run.name, configs=total, head=head)
            return pb.SubmitRunResponse(run_id=run_id, run_dir=str(run_dir), state=run.state)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            await self._abort(context, exc, "SubmitRun")

    async def WatchRun(self, request, context):  # noqa: N802
        try:
            self._check_open()
            run = self._get(request.run_id)
            while True:
                changed = run.changed  # taken before the snapshot: a later change sets it
                msg = run.progress()
                yield msg
                if msg.state in _TERMINAL:
                    return
                closing = asyncio.ensure_future(self.closing.wait())
                waiting = asyncio.ensure_future(changed.wait())
                try:
                    await asyncio.wait({closing, waiting}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    closing.cancel()
                    waiting.cancel()
                if not changed.is_set() and self.closing.is_set():
                    raise Refused(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "WatchRun")

    async def GetResults(self, request, context):  # noqa: N802
        try:
            self._check_open()
            run = self._get(request.run_id)
            if run.state != pb.RUN_STATE_DONE:
                state = pb.RunState.Name(run.state).removeprefix("RUN_STATE_")
                raise Refused(grpc.StatusCode.FAILED_PRECONDITION,
                              f"run {run.run_id} is {state} ({run.done}/{run.total}): {run.message}")
            return await asyncio.to_thread(results_of, run.run_dir, request.limit)
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "GetResults")

    async def ListRuns(self, request, context):  # noqa: N802
        try:
            self._check_open()
            if self.root.is_dir():
                for d in self.root.iterdir():
                    if d.is_dir() and _RUN_ID.fullmatch(d.name) and d.name not in self.runs:
                        self._get(d.name)
            return pb.ListRunsResponse(runs=[
                pb.RunInfo(run_id=r.run_id, name=r.name, run_dir=str(r.run_dir), progress=r.progress())
                for _, r in sorted(self.runs.items())])
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "ListRuns")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the child's process group (its worker processes too), SIGKILL after KILL_GRACE_S."""
    if proc.returncode is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE_S)
            return
        except TimeoutError:
            continue


def _child_main() -> int:
    """The child process of a run: the job (JSON) on stdin; progress as JSON lines on the original
    stdout ({"plan": n}, {"progress": k}, then {"done": true} once summary.json is written, or {"error": "..."}); everything else
    printed goes to stderr (the run's run.log)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg, default=str) + "\n")

    job = json.loads(sys.stdin.read())
    try:
        from argus.research.config import load_research_config
        from argus.research.runner import run_research
        from argus.research.sweep import GROUP_SIZE

        summary = run_research(load_research_config(job["config"]), job["data"], job["out"], workers=job["workers"],
                               cluster=job["cluster"], progress=lambda k: send({"progress": k}),
                               on_plan=lambda n: send({"plan": n}), group_size=job["group_size"] or GROUP_SIZE)
    except Exception as exc:  # noqa: BLE001 - reported to the server, which marks the run FAILED
        import traceback

        traceback.print_exc()
        send({"error": f"{type(exc).__name__}: {exc}"[:4000]})
        return 1
    send({"done": True, "configs": summary["configs"]})
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
