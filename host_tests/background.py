# Helpers (no tests here) for the MQTT tests: the simulator in the background, so a test can act while
# the scenario plays (send a command, kill the gateway) and wait for events as they are written.
import json
import os
import subprocess
import sys
import time

from host_tests.paths import ROOT


class BackgroundSim:
    def __init__(self, tmp_path, trace_text, port, *extra, speed=600, name="bg"):
        tr = tmp_path / (name + "-trace.csv")
        tr.write_text(trace_text)
        self.events_path = tmp_path / (name + "-events.jsonl")
        if self.events_path.exists():
            self.events_path.unlink()
        self.err_path = tmp_path / (name + "-stderr.txt")
        self._err = open(self.err_path, "w")
        cmd = [sys.executable, os.path.join(ROOT, "tools", "sim.py"), "--trace", str(tr), "--speed",
               str(speed), "--events", str(self.events_path), "--broker", "127.0.0.1:%d" % port,
               "--quiet"] + list(extra)
        self.p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._err)
        self._seen = 0

    def events(self):
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line being written
        return out

    def wait(self, pred, timeout_s):
        """The first event after the last one wait() returned that matches pred; fails on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            evs = self.events()
            for i in range(self._seen, len(evs)):
                if pred(evs[i]):
                    self._seen = i + 1
                    return evs[i]
            if self.p.poll() is not None and len(self.events()) == len(evs):
                break
            time.sleep(0.05)
        raise AssertionError("no matching event within %s s (sim rc %s): %s" % (
            timeout_s, self.p.poll(), self.stderr()[-2000:]))

    def firmware_pid(self):
        """The micropython process the simulator started (its only child)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with open("/proc/%d/task/%d/children" % (self.p.pid, self.p.pid)) as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                kids = []
            if kids:
                return kids[0]
            time.sleep(0.05)
        raise AssertionError("the simulator started no firmware process")

    def finish(self, timeout_s=120):
        self.p.wait(timeout_s)
        return self.p.returncode

    def stderr(self):
        if not self._err.closed:
            self._err.flush()
        return self.err_path.read_text()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._err.close()
