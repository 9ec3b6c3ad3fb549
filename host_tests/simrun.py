# Helpers for tests that drive the firmware through tools/sim.py against a real mosquitto.
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from simlib import brokers  # noqa: E402

MOSQUITTO_HINT = ("mosquitto is not installed: `apt-get install -y mosquitto` (Debian/Ubuntu) or "
                  "`brew install mosquitto`; .ci/run installs it")


class Follower:
    """Subscribes to <prefix>/# and records every message, as a family's follower app would."""

    def __init__(self, port, prefix="nightstand/bedroom"):
        import paho.mqtt.client as mqtt
        self.prefix = prefix
        self.messages = []  # (monotonic, suffix, payload bytes, retained)
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port, 30)
        self.c.subscribe(prefix + "/#", 1)
        self.c.loop_start()
        time.sleep(0.2)

    def _on(self, c, u, msg):
        with self.lock:
            self.messages.append((time.monotonic(), msg.topic[len(self.prefix) + 1:], msg.payload, msg.retain))

    def payloads(self, suffix):
        with self.lock:
            return [p for _, s, p, _ in self.messages if s == suffix]

    def readings(self):
        return [json.loads(p) for p in self.payloads("reading")]

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


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
