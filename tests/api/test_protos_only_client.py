"""A client generated from protos/ alone, with no Argus code importable, can append, subscribe and
query a real server."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]

CLIENT = r'''
import json, sys
sys.path[:0] = [sys.argv[1]]          # the generated code only
sys.path += json.loads(sys.argv[3])   # site-packages for grpc and protobuf, without .pth hooks
import grpc
from argus.v1 import events_pb2 as ev, event_log_service_pb2 as el, event_log_service_pb2_grpc as el_grpc
from argus.v1 import projection_service_pb2 as ps, projection_service_pb2_grpc as ps_grpc
import argus
assert getattr(argus, "__file__", None) is None, argus  # a bare namespace: no Argus code at all
channel = grpc.insecure_channel(sys.argv[2])
log = el_grpc.EventLogServiceStub(channel)
T0 = 1_709_904_600_000_000_000  # 2024-03-08 13:30 UTC
def header(t, ts, iid):
    return ev.RecordHeader(type=t, ts_event=ts, ts_recv=ts, instrument_id=iid)
batch = ev.EventBatch(events=[ev.Event(header=header(ev.EVENT_TYPE_INSTRUMENT_DEFINED, T0, 0),
                                       instrument_defined=ev.InstrumentDefined(instrument_id=0, symbol="ACME",
                                                                               multiplier=1.0))])
for i in range(40):  # one trade every 15 s: ten 1-minute bars
    batch.events.append(ev.Event(header=header(ev.EVENT_TYPE_TRADE, T0 + i * 15_000_000_000, 0),
                                 trade=ev.Trade(price=100.0 + i, size=10.0, trade_id=i + 1)))
ack = log.Append(el.AppendRequest(events=batch))
seen = []
for resp in log.Subscribe(el.SubscribeRequest(from_offset=0, format=el.BATCH_FORMAT_EVENTS)):
    seen += [e.offset for e in resp.events.events]
    if len(seen) >= 41:
        break
proj = ps_grpc.ProjectionServiceStub(channel)
import time
bars = []
for _ in range(100):  # the live projections catch up with the append
    bars = [r for resp in proj.GetRange(ps.GetRangeRequest(output="bars", symbol="ACME", timeframe="1m"))
            for r in resp.rows]
    if len(bars) >= 9:
        break
    time.sleep(0.05)
print(json.dumps({"first": ack.first_offset, "count": ack.count, "seen": seen,
                  "bars": [[r.values["open"], r.values["close"], r.values["volume"]] for r in bars]}))
'''


def test_client_generated_from_the_protos_alone_appends_subscribes_and_queries(tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    gen.mkdir()
    include = Path(protoc.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos" / "argus" / "v1").glob("*.proto"))
    assert protoc.main(["protoc", f"-I{ROOT / 'protos'}", f"-I{include}", f"--python_out={gen}",
                        f"--grpc_python_out={gen}", *protos]) == 0
    server = subprocess.Popen([sys.executable, "-m", "argus.cli.main", "--data", str(tmp_path / "data"), "serve",
                               "--port", "0", "--durability", "fast"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("listening on "), line
        target = line.removeprefix("listening on ")
        paths = json.dumps(site.getsitepackages())
        # -S: no site initialisation, so the editable install's import hook never loads
        out = subprocess.run([sys.executable, "-S", "-c", CLIENT, str(gen), target, paths], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path, env={"PATH": os.environ.get("PATH", "")})
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
    finally:
        server.terminate()
        server.wait(30)
    assert (result["first"], result["count"]) == (0, 41)
    assert result["seen"][:41] == list(range(41))
    # Minute k holds trades 4k..4k+3 (prices 100+4k .. 103+4k, 10 each); the last minute is still open.
    assert result["bars"][:9] == [[100.0 + 4 * k, 103.0 + 4 * k, 40.0] for k in range(9)]
