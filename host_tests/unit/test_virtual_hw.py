# The host's virtual hardware (tools/virtual_hw) under the MicroPython unix port: the low-level BLE
# object delivers IRQs as NimBLE does, so aioble and the firmware meet the board's behaviour on the host.
# (The simulator scenarios in test_sim_radio_stack.py run the whole gateway over it.)
import json
import os
import subprocess

from host_tests.paths import ROOT

_SCRIPT = r"""
import sys, json
sys.path.insert(0, '.')
sys.path.append('tools/virtual_hw')
import asyncio
import bluetooth

class Clock:               # 1000 board ms per real ms: the 30 s ATT timeout takes 30 ms
    speed = 1000
    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(max(1, ms // 1000))

sent = []
bluetooth.attach(Clock(), sent.append, 0)
irqs = []
ble = bluetooth.BLE()
ble.irq(lambda e, d: irqs.append([e] + [x.hex() if isinstance(x, bytes) else x for x in d]))
ble.active(True)
ADDR = b"\xc4\x7a\x01\x22\x33\x44"

def take():
    out = list(irqs)
    del irqs[:]
    return out

async def main():
    out = {}
    ble.gap_scan(10000)
    bluetooth.feed({"air": [{"addr": "c4:7a:01:22:33:44", "adv_type": 2, "rssi": -61, "adv": "0%d" % i}
                            for i in (1, 2, 3)]})
    await asyncio.sleep_ms(40)
    out["scan"] = take()
    ble.gap_connect(0, ADDR, 2000)                     # nobody answers
    await asyncio.sleep_ms(40)
    out["noconn"] = take()
    ble.gap_connect(0, ADDR)
    bluetooth.feed({"rsp": {"id": sent[-1]["ble"]["id"], "status": 0}})
    h = take()[0][1]
    ble.gattc_discover_services(h)                     # the peer never answers
    await asyncio.sleep_ms(60)
    out["stall"] = take()
    out["ops"] = [m["ble"]["op"] for m in sent]
    print("OUT " + json.dumps(out))

asyncio.run(main())
"""


def test_virtual_controller_delivers_irqs_as_nimble_does(tmp_path):
    script = tmp_path / "vhw.py"
    script.write_text(_SCRIPT)
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, ".deps", "lib") + ":.frozen")
    p = subprocess.run([os.path.join(ROOT, ".venv", "bin", "micropython"), str(script)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    line = [x for x in p.stdout.splitlines() if x.startswith("OUT ")]
    assert line, p.stdout + p.stderr
    out = json.loads(line[0][4:])
    # a burst: three _IRQ_SCAN_RESULT (5), ADV_SCAN_IND (2), in air order, before anything else; then the
    # scan ends (_IRQ_SCAN_DONE, 6) after its 10 s
    assert [e[0] for e in out["scan"]] == [5, 5, 5, 6], out["scan"]
    assert [(e[3], e[5]) for e in out["scan"][:3]] == [(2, "01"), (2, "02"), (2, "03")], out["scan"]
    # a connection nobody answers: _IRQ_PERIPHERAL_DISCONNECT (8) with conn_handle 0xFFFF
    assert out["noconn"] == [[8, 65535, 0, "c47a01223344"]], out["noconn"]
    # a discovery the peer never answers: after the 30 s ATT timeout, _IRQ_GATTC_SERVICE_DONE (10) with
    # BLE_HS_ETIMEOUT (13), then the link is terminated (8 with the connection's handle)
    h = out["stall"][-1][1]
    assert out["stall"] == [[10, h, 13], [8, h, 0, "c47a01223344"]], out["stall"]
    assert out["ops"] == ["connect", "connect", "services", "disconnect"], out["ops"]
