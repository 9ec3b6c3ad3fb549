#!/usr/bin/env python3
"""Issue 15's G6 figures over a simulated day (tools/bench.py part `g6`, or alone):

    python tools/bench_g6.py OUT.json [--hours H] [--speed S]

Runs tools/sim.py --sensor dexcom_g6 (the real firmware and aioble against the virtual transmitter of
tools/simlib/g6_peer.py, no faults) on a day's trace and reads its event log:
  windows_caught   share of the transmitter's windows (20 s + k * 300 s) whose glucose reached the core
                   as a live reading inside that period (target 100 %);
  latency          window opening -> the reading at the core (the `reading` event), median and p99, in
                   simulated seconds (the connection, auth, re-encryption, time and glucose round trips);
  scan_duty        board time the G6 central scanned, as a share of the time between its first and last
                   session (from the `scan_ms` of its `done` events): the radio between windows is Wi-Fi's.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
PHASE, PERIOD = 20, 300


def day_trace(path, hours):
    with open(path, "w") as f:
        f.write("minute,mgdl,event\n")
        for m in range(0, int(hours * 60) + 1, 5):
            f.write("%d,%d,\n" % (m, 140 + 50 * math.sin(m / 97.0)))


def run(hours, speed, port):
    work = tempfile.mkdtemp(prefix="nightstand-bench-g6-")
    tr, ev, cfg = (os.path.join(work, n) for n in ("day.csv", "events.jsonl", "config.json"))
    day_trace(tr, hours)
    with open(cfg, "w") as f:
        json.dump({"gateway_id": "benchg6%d" % os.getpid()}, f)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "sim.py"), "--trace", tr, "--speed", str(speed),
                        "--events", ev, "--broker", "127.0.0.1:%d" % port, "--config", cfg, "--quiet",
                        "--sensor", "dexcom_g6", "--drain-s", "5"], cwd=ROOT, capture_output=True, text=True,
                       timeout=int(hours * 3600 / speed) + 300)
    if p.returncode != 0:
        raise RuntimeError("sim.py: %s" % (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1])
    with open(ev) as f:
        return [json.loads(line) for line in f if line.strip()]


def figures(evs, hours):
    live = [e["t"] for e in evs if e.get("event") == "reading" and not e.get("backfilled")]
    boot = next((e["t"] for e in evs if e.get("event") == "g6"), 0)
    end = hours * 3600
    wins = [w for w in range(PHASE, int(end) - PERIOD, PERIOD) if w > boot]
    lat = []
    for w in wins:
        got = [t - w for t in live if w <= t < w + PERIOD]
        if got:
            lat.append(got[0])
    done = [e for e in evs if e.get("event") == "g6" and e.get("state") == "done" and "scan_ms" in e]
    duty = None
    if len(done) >= 2 and done[-1]["t"] > done[0]["t"]:
        duty = (done[-1]["scan_ms"] - done[0]["scan_ms"]) / 1000.0 / (done[-1]["t"] - done[0]["t"])
    lat.sort()
    return {"windows": len(wins), "caught": len(lat),
            "caught_pct": 100.0 * len(lat) / len(wins) if wins else None,
            "latency_median_s": statistics.median(lat) if lat else None,
            "latency_p99_s": lat[min(len(lat) - 1, int(math.ceil(0.99 * len(lat))) - 1)] if lat else None,
            "scan_duty_pct": None if duty is None else 100.0 * duty,
            "faults": [e for e in evs if e.get("event") == "fault" and e.get("active")][:5]}


def measure(hours=24.0, speed=120.0):
    from simlib import faults
    broker = faults.start_mosquitto()
    try:
        return figures(run(hours, speed, broker.port), hours)
    finally:
        broker.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--speed", type=float, default=120.0)
    a = ap.parse_args(argv)
    res = measure(a.hours, a.speed)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
