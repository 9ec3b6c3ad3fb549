# The uplink's socket guard (firmware/shell/mqtt_guard.py) under the MicroPython unix port: waiting on a
# broker that accepted TCP and then says nothing must sleep in poll, not spin. A spinning wait allocated
# on every turn (heap dips of ~200 KiB) and on an ESP32 would hold the interpreter the alarm path
# needs for as long as the broker keeps the uplink waiting.
import os
import socket
import subprocess

from host_tests.paths import ROOT
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

PROBE = """
import sys, time, socket
sys.path.insert(0, ".")
from firmware.shell import mqtt_guard
T = mqtt_guard.TimedSocket
wakes = [0]
_wait = T._wait
def counted(self, deadline):
    wakes[0] += 1
    return _wait(self, deadline)
T._wait = counted
s = T(1, lambda: None)   # umqtt's timeout: 1 s
s.connect(socket.getaddrinfo("127.0.0.1", %d)[0][-1])
t0 = time.ticks_ms()
try:
    s.read(1)            # a CONNACK / PUBACK that never comes
    print("no timeout")
except OSError as e:
    print(e.errno, wakes[0], time.ticks_diff(time.ticks_ms(), t0))
"""


def test_waiting_on_a_silent_broker_sleeps_instead_of_spinning():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)     # accepts TCP (the kernel completes the handshake) and never answers
    try:
        r = subprocess.run([MICROPYTHON, "-c", PROBE % srv.getsockname()[1]], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
    finally:
        srv.close()
    assert r.returncode == 0, r.stderr
    errno, wakes, ms = (int(x) for x in r.stdout.split())
    assert errno == 110 and 900 <= ms <= 5000, r.stdout     # the guard's own deadline ended the wait
    # 100 ms poll slices: about 10 wake-ups a second; a spinning wait made about 200 000 here
    assert wakes <= 100, "the read woke %d times in %d ms" % (wakes, ms)
