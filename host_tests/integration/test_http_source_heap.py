# A network source's poll when the box's own heap has no free block for the answer (firmware/shell/
# http_source.py _fetch), under the MicroPython unix port: one such failure is tried again and the
# reading still arrives; two in a row end the poll as the source's state `heap` (not `down`: the phone is
# fine), without crashing the task (which would write a crash log to flash and show `fault`); the next
# poll reads again. The heap failure is injected in fetch(): the real one (a fragmented 32-bit heap) is
# what tools/soak.py --source phone measures.
import json
import os
import subprocess

from host_tests.paths import ROOT

_DRIVER = r'''
import sys, json, asyncio, time
sys.path.insert(0, ".")
from firmware.shell.http_source import HttpSource
from firmware.sensor import lan_entries

NOW = 1796000000000
ANSWER = ("HTTP/1.0 200 OK\r\nDate: %s\r\n\r\n"
          "[{\"date\": %d, \"sgv\": 88, \"delta\": 0, \"direction\": \"Flat\"}]"
          % (lan_entries.http_date(NOW), NOW - 60000)).encode()

class Clock:
    speed = 1
    def ticks_ms(self):
        return time.ticks_ms()
    def wall_ms(self):
        return None
    def sleep_ms(self, ms):
        self.slept = ms
        return asyncio.sleep_ms(0)

class Gw:
    def __init__(self):
        self.out = []
    def on_reading(self, now, r, measured, name):
        self.out.append(["reading", r.mgdl])
    def on_source(self, now, name, outcome, why=None):
        self.out.append(["source", outcome, why])
    def on_reject(self, now, reason, source=None):
        self.out.append(["reject", reason])

class App:
    board = None
    def __init__(self):
        self.clock, self.gw = Clock(), Gw()
    def flush(self):
        pass

class NoHeap(HttpSource):
    """fetch() fails for want of heap the first `short` times."""
    short = 0
    async def fetch(self):
        if self.short:
            self.short -= 1
            raise MemoryError("memory allocation failed, allocating 513 bytes")
        return ANSWER, True

app = App()
src = NoHeap(app, {"kind": "phone", "name": "phone", "host": "127.0.0.1", "port": 17580, "secret": "",
                   "poll_s": 60, "timeout_s": 5})
result = []
for short in (1, 2, 0):
    src.short = short
    src.last_date = None          # each poll's answer is news again
    app.gw.out = []
    asyncio.run(src.poll())
    result.append({"short": short, "out": app.gw.out, "retries": src.heap_retries})
print("RESULT " + json.dumps(result))
'''


def _run(tmp_path):
    drv = tmp_path / "driver.py"
    drv.write_text(_DRIVER)
    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    p = subprocess.run([mp, str(drv)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, p.stdout + p.stderr
    return json.loads(line[0][7:]), p.stdout


def test_a_poll_without_heap_is_tried_again_then_is_the_state_heap_and_the_next_poll_reads(tmp_path):
    (once, twice, after), out = _run(tmp_path)
    # once: tried again, the reading arrives and the poll is ok
    assert once["out"] == [["reading", 88], ["source", "ok", None]], once
    assert once["retries"] == 1
    assert "no free heap block for the answer; trying again" in out      # what tools/soak.py counts
    # twice: no reading, the source's state says why, and poll() returned (the task lives on)
    assert twice["out"] == [["source", "heap", "no free heap on the box for the answer"]], twice
    # the next poll reads as usual
    assert after["out"] == [["reading", 88], ["source", "ok", None]], after
