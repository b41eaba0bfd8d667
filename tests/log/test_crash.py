"""Crash safety: a writer process is killed with SIGKILL in the middle of appends, again and again.

After every kill, every acknowledged offset must be present with the content that was acknowledged,
offsets must stay dense, and `verify` must pass. Half the rounds use the `fast` durability mode, which
promises to survive a process crash too."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from argus.log import EventLog
from tests.log.helpers import trade_ids

KILLS = 50

# The writer asks for the head, builds a batch whose trade ids equal the offsets it will get, appends
# it with that expected head, and prints the acknowledged range only after append() returned.
WRITER = textwrap.dedent("""
    import random, sys
    from argus.log import EventLog
    from tests.log.helpers import trades
    path, durability, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    lg = EventLog.open(path, durability=durability, map_size=1 << 20)
    if lg.info().instruments == 0:
        lg.define_instrument("SPY")
    print("READY", flush=True)
    while True:
        head = lg.head()
        n = rng.choice([1, 7, 300, 5000, 40000])
        res = lg.append(trades(n, head), expected_head=head)
        print("ACK", res.first_offset, res.count, flush=True)
""")


def test_sigkill_during_appends_loses_no_acknowledged_event(tmp_path: Path) -> None:
    path = tmp_path / "log"
    rng = random.Random(20261127)
    acked_end = 0
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    for round_ in range(KILLS):
        durability = "fast" if round_ % 2 else "safe"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), durability, str(round_)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"READY", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out = proc.stdout.read()
        # Only whole lines were acknowledged: a line cut by the kill was never fully printed.
        for line in out.split(b"\n")[:-1]:
            _, first, count = line.split()
            acked_end = max(acked_end, int(first) + int(count))
        with EventLog.open(path, readonly=True) as lg:
            report = lg.verify()
            assert report.ok, (round_, report.errors)
            head = lg.head()
            assert head >= acked_end, f"round {round_}: head {head} lost acknowledged events up to {acked_end}"
    with EventLog.open(path, readonly=True) as lg:
        ids = trade_ids(lg, 1)
        # Every trade sits at the offset it was built for: offsets are dense and nothing moved.
        assert ids.tolist() == list(range(1, lg.head()))
        assert lg.head() > 1
