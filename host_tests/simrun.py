# Helpers for tests that drive the firmware through tools/sim.py against a real mosquitto.
import json
import os
import subprocess
import sys
import uuid

from host_tests.paths import ROOT
sys.path.insert(0, os.path.join(ROOT, "tools"))

from simlib import brokers, faults

MOSQUITTO_HINT = ("mosquitto is not installed: `make test` installs it (tools/setup_system.sh), or run "
                  "`sudo apt-get install -y mosquitto` (Debian/Ubuntu) or `brew install mosquitto`")


class Follower(faults.Recorder):
    """A family's follower app: every message under <prefix>/#, re-subscribing after reconnects
    (the fault matrix's recorder, with a client id of its own per instance)."""

    def __init__(self, port, prefix="nightstand/bedroom"):
        faults.Recorder.__init__(self, port, prefix, client_id="follower-" + uuid.uuid4().hex[:12])


def run_sim(tmp_path, trace_text, port, *extra, speed=600, timeout=150):
    """Run the simulator; returns (returncode, events list, stderr text)."""
    trace = tmp_path / "trace.csv"
    trace.write_text(trace_text)
    events = tmp_path / "events.jsonl"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "sim.py"), "--trace", str(trace), "--speed",
           str(speed), "--events", str(events), "--broker", "127.0.0.1:%d" % port, "--quiet"] + list(extra)
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    evs = []
    if events.exists():
        evs = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    return p.returncode, evs, p.stderr


def trace(rows):
    """rows: (minute, mgdl or None, event or '') -> CSV text."""
    out = ["minute,mgdl,event"]
    for m, v, *ev in rows:
        out.append("%s,%s,%s" % (m, "" if v is None else v, ev[0] if ev else ""))
    return "\n".join(out) + "\n"


def patterns(evs):
    return [(e["t"], e["name"]) for e in evs if e["event"] == "pattern"]


def first(evs, **match):
    for e in evs:
        if all(e.get(k) == v for k, v in match.items()):
            return e
    return None


__all__ = ["brokers", "Follower", "run_sim", "trace", "patterns", "first", "MOSQUITTO_HINT"]
