# Fault-matrix helpers (issue 8), CPython only: a follower that survives a broker restart, a mosquitto that
# can be killed and started again on the same port, the simulator run in the background, and the three
# checks every fault case makes (no reading lost, no alarm missed, the right pattern during the fault).
# Used by host_tests/faults/test_faults_matrix.py, tools/soak.py and tools/bench.py.
import json
import os
import signal
import subprocess
import sys
import threading
import time

from simlib import brokers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READING_S = 300          # one CGM reading period: "within one reading"
URGENT_LOW = 55          # default alarms.urgent_low (docs/configuration.md)
LOW = 70                 # default alarms.low
LOW_PATTERNS = ("urgent_low", "urgent_low_soon", "low")
DEMO_KEY = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f"   # tools/sim.py DEMO_BIND_KEY
SENSOR_ID = 200133374                          # config default sensor.id


# ---- broker ----------------------------------------------------------------------------------------
def start_mosquitto(port=None, persist_dir=None):
    """A mosquitto on 127.0.0.1. With persist_dir it keeps sessions on disk (saved every second), so a
    follower's persistent session survives a kill -9 and a restart on the same port."""
    return brokers.start_mosquitto(port=port, persist_dir=persist_dir)


def kill_broker(b):
    """kill -9: no goodbye to any client, sessions only as far as the last autosave."""
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(5)
    b.stop()  # removes its config folder (the persistence folder is the caller's)


# ---- follower ----------------------------------------------------------------------------------------
class Recorder:
    """A follower (a parent's app, Home Assistant): subscribes to <prefix>/# at QoS 1 with a persistent
    session and subscribes again after every reconnect, so it misses nothing a real follower would get."""

    def __init__(self, port, prefix, client_id=None):
        import paho.mqtt.client as mqtt
        self.prefix = prefix
        self.messages = []   # (monotonic, suffix, payload bytes, retained)
        self.lock = threading.Lock()
        self.connects = 0
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "rec-" + prefix[-10:],
                             clean_session=False)
        self.c.reconnect_delay_set(0.05, 0.5)
        self.c.on_message = self._on
        self.c.on_connect = self._on_connect
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        deadline = time.monotonic() + 5
        while not self.connects and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)

    def _on_connect(self, c, u, flags, rc, props=None):
        c.subscribe(self.prefix + "/#", 1)
        self.connects += 1

    def _on(self, c, u, msg):
        with self.lock:
            self.messages.append((time.monotonic(), msg.topic[len(self.prefix) + 1:], msg.payload, msg.retain))

    def payloads(self, suffix):
        with self.lock:
            return [p for _, s, p, _ in self.messages if s == suffix]

    def timed(self, suffix):
        with self.lock:
            return [(t, p) for t, s, p, _ in self.messages if s == suffix]

    def readings(self):
        out = []
        for p in self.payloads("reading"):
            try:
                out.append(json.loads(p))
            except ValueError:
                pass
        return out

    def seqs(self):
        return [r.get("seq") for r in self.readings()]

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


# ---- simulator -------------------------------------------------------------------------------------
def trace_text(rows):
    """rows: (minute, mgdl or None[, event]) -> CSV text."""
    out = ["minute,mgdl,event"]
    for m, v, *ev in rows:
        out.append("%s,%s,%s" % (m, "" if v is None else v, ev[0] if ev and ev[0] else ""))
    return "\n".join(out) + "\n"


class SimRun:
    """tools/sim.py in the background. events() reads the event log as far as it has been written."""

    def __init__(self, workdir, rows, broker_port, *extra, speed=200, env=None, name="sim"):
        self.workdir = str(workdir)
        self.trace = os.path.join(self.workdir, name + ".csv")
        with open(self.trace, "w") as f:
            f.write(rows if isinstance(rows, str) else trace_text(rows))
        self.events_path = os.path.join(self.workdir, name + "-events.jsonl")
        self.stderr_path = os.path.join(self.workdir, name + "-stderr.txt")
        cmd = [sys.executable, os.path.join(ROOT, "tools", "sim.py"), "--trace", self.trace, "--speed",
               str(speed), "--events", self.events_path, "--broker", "127.0.0.1:%d" % broker_port,
               "--quiet"] + [str(x) for x in extra]
        self._err = open(self.stderr_path, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._err,
                                     env=dict(os.environ, **(env or {})))

    def events(self):
        try:
            with open(self.events_path) as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line being written
        return out

    def wait_for(self, pred, timeout=120):
        """Until pred(events) is true; returns the events. Fails if the simulator ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            evs = self.events()
            if pred(evs):
                return evs
            if self.proc.poll() is not None:
                raise AssertionError("simulator ended before the condition: %s" % self.stderr())
            time.sleep(0.02)
        raise AssertionError("condition not reached in %s s" % timeout)

    def wait(self, timeout=300):
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._err.close()
        return rc, self.events(), self.stderr()

    def stderr(self):
        try:
            with open(self.stderr_path) as f:
                return f.read()
        except OSError:
            return ""


def run(workdir, rows, broker_port, *extra, speed=200, env=None, name="sim", timeout=300):
    return SimRun(workdir, rows, broker_port, *extra, speed=speed, env=env, name=name).wait(timeout)


def wait_until(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# ---- the three checks ----------------------------------------------------------------------------
def accepted(evs):
    return [e["seq"] for e in evs if e.get("event") == "reading" and not e.get("backfilled")]


def lost_readings(evs, follower_seqs):
    """Problems with delivery: seqs the gateway accepted that never reached the follower, and any
    reading that arrived out of order (a repeat of the previous one, a QoS 1 redelivery, is allowed)."""
    problems = []
    want = accepted(evs)
    got = [s for s in follower_seqs if s is not None]
    missing = sorted(set(want) - set(got))
    if missing:
        problems.append("never reached the follower: %s" % missing)
    dedup = [s for i, s in enumerate(got) if i == 0 or s != got[i - 1]]
    if dedup != sorted(set(dedup)):
        problems.append("out of order at the follower: %s" % got)
    return problems


def pattern_at(evs, t):
    name = None
    for e in evs:
        if e.get("event") == "pattern":
            if e["t"] > t:
                break
            name = e["name"]
    return name


def shown_between(evs, t0, t1):
    """Pattern names on display at any moment in [t0, t1] (simulated seconds)."""
    names = {pattern_at(evs, t0)}
    names.update(e["name"] for e in evs if e.get("event") == "pattern" and t0 < e["t"] <= t1)
    names.discard(None)
    return names


def missed_alarms(evs, urgent_low=URGENT_LOW, low=LOW, within_s=READING_S):
    """Readings that should have sounded and did not within one reading: an urgent low must show
    urgent_low, a low any low pattern (low, urgent_low_soon or urgent_low)."""
    missed = []
    for e in evs:
        if e.get("event") != "reading" or e.get("backfilled") or e.get("mgdl") is None:
            continue
        if e["mgdl"] <= urgent_low:
            want = ("urgent_low",)
        elif e["mgdl"] < low:
            want = LOW_PATTERNS
        else:
            continue
        if not shown_between(evs, e["t"], e["t"] + within_s) & set(want):
            missed.append((e["seq"], e["mgdl"], e["t"]))
    return missed


def first_after(evs, t, **match):
    for e in evs:
        if e.get("t", 0) >= t and all(e.get(k) == v for k, v in match.items()):
            return e
    return None


# ---- a broker path the caller controls from a plain thread -----------------------------------------
class ThreadedProxy:
    """simlib.proxy.BrokerProxy on its own event loop thread: put it between the simulator (--broker
    127.0.0.1:<port>) and mosquitto, then set_mode("halfopen") and kill the firmware to cut the power
    of a gateway without its TCP FIN reaching the broker (the simulator's own proxy dies with it)."""

    def __init__(self, upstream_port):
        import asyncio
        from simlib.proxy import BrokerProxy
        self.loop = asyncio.new_event_loop()
        self.proxy = BrokerProxy("127.0.0.1", upstream_port)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self.proxy.start())
        self.port = self.proxy.port

    def _call(self, coro, timeout=10):
        import asyncio
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def set_mode(self, mode):
        self._call(self.proxy.set_mode(mode))

    def close(self):
        try:
            self._call(self.proxy.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def kill_firmware(run):
    """SIGKILL the micropython child of a SimRun (the firmware), not the simulator itself."""
    out = subprocess.run(["pgrep", "-P", str(run.proc.pid)], capture_output=True, text=True).stdout.split()
    if not out:
        raise AssertionError("no firmware process under the simulator")
    for p in out:
        os.kill(int(p), signal.SIGKILL)
    return time.monotonic()
