# ESP32 drivers against fake `machine`, `neopixel`, `network`, `ntptime` and `aioble` modules:
# the exact hardware calls a pattern turns into, and the adapter's behaviour around them.
import asyncio
import json
import os
import sys
import time
from unittest import mock

import pytest

from firmware.core import board as board_schema

from host_tests.paths import ROOT


def _board_cfg(name):
    with open(os.path.join(ROOT, "board_configs", name + ".json")) as f:
        return board_schema.parse(f.read())


@pytest.fixture
def hw():
    """Fake hardware modules, visible to the drivers' lazy imports for the test's duration."""
    fakes = {n: mock.MagicMock(name=n) for n in ("machine", "neopixel", "network", "ntptime", "aioble")}
    # CPython's time has no ticks_ms/sleep_ms: give the board's clock MicroPython's.
    with mock.patch.dict(sys.modules, fakes), \
            mock.patch("time.ticks_ms", create=True, new=lambda: int(time.monotonic() * 1000) & 0x3FFFFFFF), \
            mock.patch("time.sleep_ms", create=True, new=lambda ms: None):
        yield fakes


class FakeClock:
    """ticks advance only when a task sleeps: the test drives time."""

    def __init__(self, t=0):
        self.t = t

    def ticks_ms(self):
        return self.t & 0x3FFFFFFF

    async def sleep_ms(self, ms):
        self.t += ms


# --- LED ---

def test_plain_led_gpio_active_high(hw):
    from firmware.hal.esp32_led import PlainLed
    m = hw["machine"]
    led = PlainLed(23, active_low=False, dim=False)
    m.Pin.assert_called_once_with(23, m.Pin.OUT, value=0)   # created dark
    pin = m.Pin.return_value
    led.show((255, 0, 0))
    led.show((0, 0, 0))
    led.show((0, 0, 9))
    led.show(None)
    assert pin.value.call_args_list == [mock.call(1), mock.call(0), mock.call(1), mock.call(0)]
    assert not m.PWM.called


def test_plain_led_gpio_active_low_lights_on_low(hw):
    from firmware.hal.esp32_led import PlainLed
    m = hw["machine"]
    led = PlainLed(8, active_low=True, dim=False)
    m.Pin.assert_called_once_with(8, m.Pin.OUT, value=1)    # high = dark on this board
    pin = m.Pin.return_value
    led.show((0, 255, 0))
    led.show(None)
    assert pin.value.call_args_list == [mock.call(0), mock.call(1)]


def test_plain_led_pwm_keeps_the_heartbeat_visible(hw):
    """The player's never-dark phase is the colour dimmed (>> 3): on a one-colour LED it must glow
    faintly, not look as lit as the beat, or the `ok` heartbeat would be a steady light."""
    from firmware.hal.esp32_led import PlainLed
    m = hw["machine"]
    led = PlainLed(23)
    m.Pin.assert_called_once_with(23, m.Pin.OUT, value=0)
    m.PWM.assert_called_once_with(m.Pin.return_value, freq=1000, duty_u16=0)
    pwm = m.PWM.return_value
    led.show((255, 0, 0))
    led.show((0, 160, 0))                   # ok beat
    led.show((0, 20, 0))                    # ok between beats
    led.show((0, 1, 0))
    led.show(None)
    duties = [c.args[0] for c in pwm.duty_u16.call_args_list]
    assert duties[0] == 65535 and duties[-1] == 0
    assert duties[1] > 20 * duties[2] > 0   # beat clearly brighter than the glow, glow not dark
    assert duties[3] >= 1


def test_plain_led_pwm_active_low_inverts_duty(hw):
    from firmware.hal.esp32_led import PlainLed
    m = hw["machine"]
    led = PlainLed(8, active_low=True)
    m.Pin.assert_called_once_with(8, m.Pin.OUT, value=1)
    m.PWM.assert_called_once_with(m.Pin.return_value, freq=1000, duty_u16=65535)   # dark
    pwm = m.PWM.return_value
    led.show((255, 255, 255))
    led.show(None)
    assert pwm.duty_u16.call_args_list == [mock.call(0), mock.call(65535)]


def test_rgb_led_colour_and_dark(hw):
    from firmware.hal.esp32_led import PixelLed
    m, npmod = hw["machine"], hw["neopixel"]
    led = PixelLed(48)
    m.Pin.assert_called_once_with(48, m.Pin.OUT)
    npmod.NeoPixel.assert_called_once_with(m.Pin.return_value, 1)
    px = npmod.NeoPixel.return_value
    px.reset_mock()
    led.show((255, 128, 0))                 # amber, in (r, g, b): NeoPixel reorders to GRB itself
    led.show(None)
    assert px.fill.call_args_list == [mock.call((255, 128, 0)), mock.call((0, 0, 0))]
    assert px.write.call_count == 2


def test_rgb_brightness_scales_but_never_darkens(hw):
    from firmware.hal.esp32_led import PixelLed
    px = hw["neopixel"].NeoPixel.return_value
    led = PixelLed(27, brightness=40)
    led.show((255, 128, 0))
    assert px.fill.call_args == mock.call((102, 52, 0))
    led.show((1, 0, 2))
    assert px.fill.call_args == mock.call((1, 0, 1))     # dim, never (0, 0, 0)


# --- buzzer ---

def test_passive_piezo_tone_on_off(hw):
    from firmware.hal.esp32_buzzer import PwmBuzzer
    m = hw["machine"]
    bz = PwmBuzzer(25)
    m.Pin.assert_called_once_with(25)
    m.PWM.assert_called_once_with(m.Pin.return_value, freq=2000, duty_u16=0)  # silent at start
    pwm = m.PWM.return_value
    bz.tone(2700)
    bz.tone(0)
    bz.tone(2700)
    assert pwm.freq.call_args_list == [mock.call(2700)]   # unchanged pitch is not re-set (click)
    assert pwm.duty_u16.call_args_list == [mock.call(32768), mock.call(0), mock.call(32768)]


def test_piezo_clamps_inaudible_pitches(hw):
    from firmware.hal.esp32_buzzer import PwmBuzzer
    pwm = hw["machine"].PWM.return_value
    bz = PwmBuzzer(4)
    bz.tone(20)
    bz.tone(50000)
    assert pwm.freq.call_args_list == [mock.call(100), mock.call(10000)]


def test_active_buzzer_is_switched(hw):
    from firmware.hal.esp32_buzzer import make_buzzer
    m = hw["machine"]
    bz = make_buzzer({"kind": "active", "pin": 26, "active_low": True})
    m.Pin.assert_called_once_with(26, m.Pin.OUT, value=1)
    bz.tone(3000)
    bz.tone(0)
    assert m.Pin.return_value.value.call_args_list == [mock.call(0), mock.call(1)]
    assert not m.PWM.called


# --- button ---

class ScriptedPin:
    """Reads pressed (active low: 0) during the given [start, end) ms intervals of clock time."""

    def __init__(self, clock, intervals, active_low=True):
        self.clock, self.intervals, self.low = clock, intervals, active_low

    def value(self):
        down = any(a <= self.clock.t < b for a, b in self.intervals)
        return (0 if down else 1) if self.low else (1 if down else 0)


def _press(intervals, t0=0):
    from firmware.hal.esp32_button import Button
    clock = FakeClock(t0)
    pin = ScriptedPin(clock, [(t0 + a, t0 + b) for a, b in intervals])
    cfg = {"pin": 0, "pull": "up", "active_low": True}
    b = Button(cfg, clock, 30, 1500, pin=pin)

    async def go():
        return await asyncio.wait_for(b.wait(), 5)

    kind = asyncio.run(go())
    return kind, clock.t - t0


def test_button_short_press():
    kind, at = _press([(100, 400)])
    assert kind == "short"
    assert 400 <= at < 460            # reported on release, after the debounce


def test_button_long_press_fires_while_held():
    kind, at = _press([(100, 5000)])
    assert kind == "long"
    assert 1600 <= at < 1650          # 1.5 s after the press began, not at release


def test_button_ignores_bounce_then_sees_press():
    bounces = [(100 + 8 * i, 104 + 8 * i) for i in range(5)]   # 4 ms blips: contact bounce
    kind, at = _press(bounces + [(600, 800)])
    assert kind == "short"
    assert at >= 800


def test_button_across_ticks_wrap():
    kind, _ = _press([(100, 2000)], t0=0x3FFFFFFF - 500)
    assert kind == "long"


def test_button_pin_setup(hw):
    from firmware.hal.esp32_button import make_pin
    m = hw["machine"]
    make_pin({"pin": 0, "pull": "up", "active_low": True})
    make_pin({"pin": 39, "pull": "none", "active_low": True})
    assert m.Pin.call_args_list == [mock.call(0, m.Pin.IN, m.Pin.PULL_UP),
                                    mock.call(39, m.Pin.IN, None)]


# --- board ---

def test_board_builds_drivers_from_each_config(hw):
    from firmware.hal.esp32 import Esp32Board
    from firmware.hal.esp32_buzzer import PwmBuzzer
    from firmware.hal.esp32_led import PixelLed, PlainLed
    b = Esp32Board(_board_cfg("m5_atom_lite"), data_dir=os.devnull + "/x")
    assert isinstance(b.led, PixelLed) and isinstance(b.buzzer, PwmBuzzer)
    hw["neopixel"].NeoPixel.assert_called_once()
    b = Esp32Board(_board_cfg("esp32c3_supermini"), data_dir=os.devnull + "/x")
    assert isinstance(b.led, PlainLed)
    assert mock.call(8, hw["machine"].Pin.OUT, value=1) in hw["machine"].Pin.call_args_list
    assert mock.call(hw["machine"].Pin.return_value, freq=1000, duty_u16=65535) in \
        hw["machine"].PWM.call_args_list


def test_board_refuses_a_bad_board_json(hw):
    from firmware.hal.esp32 import Esp32Board
    raw = {"name": "x", "kind": "esp32", "led": {"kind": "plain", "pin": 36},
           "buzzer": {"kind": "active", "pin": 25}, "button": {"pin": 0}}
    # the board imports its validator afresh each time (boot only), so its ConfigError is that import's
    with pytest.raises(Exception) as e:
        Esp32Board(raw)
    assert type(e.value).__name__ == "ConfigError" and e.value.key == "led.pin"
    assert not hw["machine"].Pin.called


def test_board_emit_pattern_watchdog_reset_ble(hw, capsys, tmp_path):
    from firmware.hal.esp32 import Esp32Board
    m = hw["machine"]
    b = Esp32Board(_board_cfg("esp32_devkitc"), data_dir=str(tmp_path / "data"))
    assert os.path.isdir(tmp_path / "data")
    b.emit({"event": "pattern", "name": "sensor_silent", "sound": True})
    line = capsys.readouterr().out.strip().splitlines()[-1]
    ev = json.loads(line)
    assert ev["event"] == "pattern" and ev["name"] == "sensor_silent" and ev["sound"] is True
    assert "t" in ev
    w = b.watchdog(8000)
    w.feed()
    m.WDT.assert_called_once_with(timeout=8000)
    m.WDT.return_value.feed.assert_called_once_with()
    b.watchdog(100)
    assert m.WDT.call_args == mock.call(timeout=2000)   # never a reset loop
    b.reset()
    m.reset.assert_called_once_with()
    assert b.ble is hw["aioble"]
    assert isinstance(b.heap_free(), (int, type(None)))


def test_wall_clock_none_until_ntp(hw, capsys, tmp_path):
    from firmware.hal.esp32 import Esp32Board
    b = Esp32Board(_board_cfg("esp32_devkitc"), data_dir=str(tmp_path))
    assert b.clock.wall_ms() is None
    hw["ntptime"].settime.side_effect = OSError(110, "ETIMEDOUT")
    assert b.set_wall_from_ntp() is False
    assert b.clock.wall_ms() is None
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["event"] == "clock" and ev["synced"] is False and "110" in ev["why"]
    hw["ntptime"].settime.side_effect = None
    assert b.set_wall_from_ntp("pool.example") is True
    assert hw["ntptime"].host == "pool.example"
    assert abs(b.clock.wall_ms() - __import__("time").time() * 1000) < 5000


# --- Wi-Fi ---

def _wifi(hw, connects_on_ssid):
    from firmware.hal.esp32 import Wifi
    wlan = hw["network"].WLAN.return_value
    state = {"up": False}

    def connect(ssid, pw):
        state["up"] = ssid == connects_on_ssid

    wlan.connect.side_effect = connect
    wlan.isconnected.side_effect = lambda: state["up"]
    wlan.status.return_value = -58
    events = []
    clock = FakeClock()
    w = Wifi(clock, [{"ssid": "upstairs", "password": "a"}, {"ssid": "garage", "password": "b"}],
             events.append)
    return w, wlan, clock, events


def test_wifi_tries_networks_in_order(hw):
    w, wlan, clock, events = _wifi(hw, "garage")
    assert w.rssi() is None
    assert asyncio.run(w.connect()) is True
    hw["network"].WLAN.assert_called_once_with(hw["network"].STA_IF)
    wlan.active.assert_called_with(True)
    assert [c.args[0] for c in wlan.connect.call_args_list] == ["upstairs", "garage"]
    assert events and events[0]["ssid"] == "upstairs" and events[0]["ok"] is False
    assert w.rssi() == -58
    wlan.status.assert_called_with("rssi")


def test_wifi_backoff_is_capped_with_jitter(hw):
    w, wlan, clock, events = _wifi(hw, None)
    sleeps = []
    real_sleep = clock.sleep_ms

    async def sleep(ms):
        if ms > 1000:
            sleeps.append(ms)
        await real_sleep(ms)

    clock.sleep_ms = sleep
    assert asyncio.run(w.connect(rounds=12)) is False
    assert len(sleeps) == 11
    assert 2000 <= sleeps[0] <= 2500
    assert sleeps[1] >= 4000
    assert all(s <= 300000 * 1.25 for s in sleeps)
    assert sleeps[-1] >= 300000                    # reached the cap and stays there


def test_a_running_board_keeps_no_config_or_board_validator_loaded(hw, tmp_path):
    """Boot-only code (config_store.BOOT_ONLY) is dropped on a board too: the board config's validator
    once the board is built; the config loader never comes back for the Wi-Fi networks (the app hands
    them over: firmware/hal reads no config of its own)."""
    from firmware.hal.esp32 import Esp32Board
    from firmware.lib.unload import forget
    from firmware.shell.config_store import BOOT_ONLY
    for name in BOOT_ONLY:          # as the app leaves it after loading the config
        forget(name)
    b = Esp32Board(_board_cfg("esp32_devkitc"), data_dir=str(tmp_path / "data"))
    b.set_networks([{"ssid": "home", "password": "pw"}])
    assert b.wifi.has_networks()
    assert [n for n in BOOT_ONLY if n in sys.modules] == []


def test_wifi_without_networks_says_so(hw):
    from firmware.hal.esp32 import Wifi
    events = []
    w = Wifi(FakeClock(), [], events.append)
    assert asyncio.run(w.connect()) is False
    assert events[0]["why"] == "no networks configured"


# --- safe mode ---

def test_safe_mode_by_button_or_file(hw, tmp_path, monkeypatch, capsys):
    from firmware.hal.esp32 import safe_mode_requested
    monkeypatch.chdir(tmp_path)
    cfg = _board_cfg("esp32_devkitc")
    clock = FakeClock()
    held = ScriptedPin(clock, [(0, 10 ** 6)])
    free = ScriptedPin(clock, [])
    late = ScriptedPin(clock, [(400, 10 ** 6)])          # pressed after RESET was let go
    assert safe_mode_requested(cfg, held, lambda ms: None) is True

    def sleeper(ms):
        clock.t += ms

    clock.t = 0
    assert safe_mode_requested(cfg, free, sleeper) is False
    assert clock.t >= 1500                              # the whole window was watched
    clock.t = 0
    assert safe_mode_requested(cfg, late, sleeper) is True
    clock.t = 0
    blip = ScriptedPin(clock, [(100, 120)])            # 20 ms glitch is not a held button
    assert safe_mode_requested(cfg, blip, sleeper) is False
    (tmp_path / "safe_mode").write_text("")
    assert safe_mode_requested(cfg, free, sleeper) is True
    # A broken board.json cannot block the way in: the flag file still works, the button does not.
    assert safe_mode_requested({"name": "x"}, held, sleeper) is True
    (tmp_path / "safe_mode").unlink()
    assert safe_mode_requested({"name": "x"}, held, sleeper) is False
    assert "booting normally" in capsys.readouterr().out


def test_safe_mode_from_raw_board_json(hw, tmp_path, monkeypatch):
    """boot.py passes the raw /board.json: a BOOT-strap button still gets its 1.5 s window."""
    from firmware.hal.esp32 import safe_mode_requested
    monkeypatch.chdir(tmp_path)
    with open(os.path.join(ROOT, "board_configs", "esp32c3_supermini.json")) as f:
        raw = json.load(f)
    clock = FakeClock()

    def sleeper(ms):
        clock.t += ms

    assert safe_mode_requested(raw, ScriptedPin(clock, [(1200, 10 ** 6)]), sleeper) is True


def test_switched_plain_led_tells_the_player_it_cannot_dim(hw):
    # Without this a switched LED would show every never-dark phase fully on: one steady light for
    # every pattern, and the family could not tell `ok` from an alarm on a one-colour box.
    from firmware.hal.esp32_led import PlainLed
    from firmware.core.patterns import led_phase
    led = PlainLed(23, dim=False)
    assert led.can_dim is False
    assert led_phase("ok", 1, led.can_dim) is None      # the heartbeat's off-phase is really off
    assert PlainLed(23).can_dim is True
