# The host board is the ESP32 adapter over virtual hardware (firmware/hal/host.py): its Wi-Fi is
# esp32.Wifi and Esp32Board's network task driving a virtual network.WLAN, its wall clock comes from
# Esp32Board.set_wall_from_ntp over the virtual ntptime, its watchdog is esp32._Watchdog over a virtual
# machine.WDT that says where a board would reset, its button is esp32_button.Button on a virtual Pin.
# Run under the MicroPython unix port, as the simulator runs it.
import json
import os
import subprocess

from host_tests.paths import ROOT

_SCRIPT = r"""
import sys, json
sys.path.insert(0, '.')
import asyncio
from firmware.hal import esp32
from firmware.hal.host import HostBoard
import network, ntptime, socket, machine

WALL0 = 1764540000000
board = HostBoard(json.load(open('board_configs/host.json')))
out = {"kind": [type(board.wifi) is esp32.Wifi, isinstance(board, esp32.Esp32Board)]}

def ntp_error():
    try:
        ntptime.settime()
        return "set"
    except OSError as e:
        return e.args[0]

async def main():
    await board.start()              # no simulator: scenario time 0 is now, the network task starts
    board.clock.speed = 100
    ntptime.attach(board.clock, WALL0)
    board.set_networks([{"ssid": "home", "password": "pw"}])
    await asyncio.sleep_ms(30)
    out["up"] = [board.wifi.isconnected(), board.wifi.rssi()]
    out["calls"] = [list(c) for c in network.calls]
    out["same_wlan"] = board.wifi._wlan is network.WLAN(network.STA_IF)
    w = board.clock.wall_ms()
    out["wall"] = w is not None and abs(w - (WALL0 + board.clock.sim_ms())) < 1000
    network.set_ap(False)            # the simulator's wifi_down
    out["down"] = [board.wifi.isconnected(), board.wifi.rssi()]
    await asyncio.sleep_ms(250)      # 25 s: the task's 12 s join fails and it is said
    out["ntp"] = [ntp_error()]       # no link: the server never answers
    network.set_ap(True)             # wifi_up: the station asked to connect joins at once
    out["back"] = board.wifi.isconnected()
    socket.set_dns(False)
    out["ntp"].append(ntp_error())   # no DNS: the server's name does not resolve
    socket.set_dns(True)
    wdt = board.watchdog(3000)
    out["wdt"] = [type(wdt) is esp32._Watchdog, type(wdt._wdt) is machine.WDT]
    for _ in range(10):              # fed: no expiry
        wdt.feed()
        await asyncio.sleep_ms(10)
    out["fed_expired"] = wdt._wdt.expired
    await asyncio.sleep_ms(700)      # 70 s unfed (the bound is 0.5 s of real time: 50 s here)
    out["starved_expired"] = wdt._wdt.expired
    # the button: esp32_button.Button polling a virtual machine.Pin that the simulator's message holds down
    out["pin"] = type(board._button) is esp32.Button and type(board._button._pin) is machine.Pin
    out["presses"] = []
    for long in (False, True, False):
        asyncio.create_task(board._press(long))
        out["presses"].append(await asyncio.wait_for_ms(board.button(), 3000))
    board.stopping = True
    print("OUT " + json.dumps(out))

asyncio.run(main())
"""


def test_host_board_runs_the_esp32_wifi_ntp_and_watchdog_code(tmp_path):
    script = tmp_path / "hostboard.py"
    script.write_text(_SCRIPT)
    env = dict(os.environ, NIGHTSTAND_DATA=str(tmp_path / "data"),
               MICROPYPATH=os.path.join(ROOT, "tools", "virtual_hw") + ":" + os.path.join(ROOT, ".deps", "lib")
               + ":.frozen")
    env.pop("NIGHTSTAND_SIM", None)
    p = subprocess.run([os.path.join(ROOT, ".venv", "bin", "micropython"), str(script)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    line = [x for x in p.stdout.splitlines() if x.startswith("OUT ")]
    assert line, p.stdout + p.stderr
    out = json.loads(line[0][4:])
    evs = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert out["kind"] == [True, True]
    # esp32.Wifi brought the station up and joined the configured network, as on a board
    assert out["up"] == [True, -55], out
    assert out["calls"][:3] == [["active", [True]], ["disconnect", []], ["connect", ["home"]]], out["calls"]
    assert out["same_wlan"] is True
    # Esp32Board.set_wall_from_ntp set the wall clock from the simulator's, and said so
    assert out["wall"] is True
    assert any(e["event"] == "clock" and e["synced"] for e in evs), evs
    # the AP went away: the link is down at once; the network task's join gives up after 12 s and says so
    assert out["down"] == [False, None]
    tries = [e for e in evs if e["event"] == "wifi_try"]
    assert tries and tries[0]["ssid"] == "home" and "no connection after 12000 ms" in tries[0]["why"], evs
    assert out["ntp"] == [110, -2]            # ETIMEDOUT without a link, EAI_NONAME without DNS
    assert out["back"] is True
    # the watchdog is the board's, over machine.WDT; fed it holds, starved it reports where a board resets
    assert out["wdt"] == [True, True]
    assert out["fed_expired"] is False and out["starved_expired"] is True
    wd = [e for e in evs if e["event"] == "watchdog"]
    assert wd[0] == {"event": "watchdog", "timeout_ms": 3000, "t": wd[0]["t"]}, wd
    assert [e for e in wd if e.get("expired")], wd
    assert out["pin"] is True and out["presses"] == ["short", "long", "short"], out
