# The ESP32 adapter is checked against the real ESP32 MicroPython API (micropython-esp32-stubs), so a
# call that does not exist on the board fails here, with no board attached.
import os
import sys

import pytest

from host_tests.paths import ROOT
sys.path.insert(0, os.path.join(ROOT, "tools"))

import typecheck

pytest.importorskip("mypy")


def _check_snippet(tmp_path, name, code):
    p = tmp_path / name
    p.write_text(code)
    return typecheck.run([str(p)])


def test_esp32_adapter_matches_the_esp32_api():
    targets = typecheck.default_targets()
    assert any(t.endswith("firmware/hal/esp32.py") for t in targets)
    rc, out = typecheck.run(targets)
    assert rc == 0, out


def test_a_correct_snippet_passes(tmp_path):
    # Proves the setup sees the stubs: the same calls the drivers make are accepted.
    rc, out = _check_snippet(tmp_path, "good_calls.py", (
        "import machine, neopixel, network, time\n"
        "p = machine.Pin(2, machine.Pin.OUT, value=0)\n"
        "p.value(1)\n"
        "pwm = machine.PWM(p, freq=2000, duty_u16=0)\n"
        "pwm.freq(2700)\n"
        "pwm.duty_u16(32768)\n"
        "np = neopixel.NeoPixel(p, 1)\n"
        "np.fill((1, 2, 3))\n"
        "np.write()\n"
        "w = network.WLAN(network.STA_IF)\n"
        "w.connect('ssid', 'pw')\n"
        "machine.WDT(timeout=8000).feed()\n"
        "t = time.ticks_diff(time.ticks_ms(), 0)\n"))
    assert rc == 0, out


def test_a_nonexistent_machine_api_fails(tmp_path):
    rc, out = _check_snippet(tmp_path, "bad_calls.py", (
        "import machine\n"
        "pwm = machine.PWM(machine.Pin(25))\n"
        "pwm.duty_percent(50)\n"                 # CircuitPython-ish; not on the ESP32
        "machine.Pin(2).high()\n"                # pyboard-era name; not on the ESP32
        "machine.WDT(timeout='5 s')\n"))         # wrong type
    assert rc != 0
    assert "duty_percent" in out
    assert '"Pin" has no attribute "high"' in out
    assert "bad_calls.py:5" in out
