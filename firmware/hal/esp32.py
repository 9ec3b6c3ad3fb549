# ESP32 board adapter: the surface documented in firmware/hal/__init__.py, on real hardware.
# machine, network, neopixel, ntptime and aioble are imported inside constructors and methods so this
# module imports (and its pure parts are tested) where they do not exist.
import gc
import json
import time

import asyncio

from firmware.core import ticks
from firmware.lib.clock import Clock as BaseClock
from firmware.lib.unload import forget
from firmware.hal.esp32_button import Button, make_pin
from firmware.hal.esp32_buzzer import make_buzzer
from firmware.hal.esp32_led import make_led

from micropython import const

# Seconds from 1970 to 2000: ports whose time.time() counts from 2000 need it added for epoch ms.
_Y2K = const(946684800)
# Wi-Fi: how long one SSID gets to associate and get an address (DHCP on a busy home router can
# take several seconds), then the wait between rounds doubles from 2 s up to 5 min, with up to 25 %
# random jitter so that after a power cut a street of gateways does not hammer the router together.
_JOIN_MS = const(12000)
_JOIN_POLL_MS = const(250)
_BACKOFF_MIN_MS = const(2000)
_BACKOFF_MAX_MS = const(300000)
# machine.WDT on ESP32 refuses very short timeouts and a box that resets every few hundred ms is
# a crash loop, not a watchdog: never ask for less than 2 s.
_WDT_MIN_MS = const(2000)
# Network upkeep: look at the link every 5 s (the core judges wifi down "at once", so a drop is seen
# within that), and re-read NTP every 6 h: the ESP32 RTC drifts up to a few seconds a day.
_NET_CHECK_MS = const(5000)
_NTP_EVERY_MS = const(6 * 3600 * 1000)
_NETWORKS_WAIT_MS = const(5000)   # for the app to hand over wifi.networks from the config
# Safe-mode button sampling: the button must read pressed for this many consecutive 10 ms samples
# (50 ms), so a bounce or interference spike at power-on does not skip the firmware.
_SAFE_SAMPLES = const(5)
_SAFE_STEP_MS = const(10)

SAFE_MODE_FILE = "safe_mode"


class Clock(BaseClock):
    """The shell's real-time clock (ticks, asyncio sleeps, blocking sleeps for the uplink thread)
    with wall time from the RTC once NTP has set it."""

    def __init__(self):
        BaseClock.__init__(self)
        self._synced = False
        # 0 where time.time() already counts from 1970; 30 years where the port counts from 2000.
        self._offset = _Y2K if time.gmtime(0)[0] == 2000 else 0

    def wall_ms(self):
        """Epoch ms, or None until NTP has set the RTC (after a power cut it restarts at 2000; a
        reading stamped with that date would be worse than no date). The RTC keeps counting across
        the 12-day ticks wrap, which an offset from ticks would not."""
        if not self._synced:
            return BaseClock.wall_ms(self)
        return (time.time() + self._offset) * 1000

    def mark_synced(self):
        self._synced = True


def _jitter(ms):
    try:
        import random
        return ms + random.getrandbits(16) * (ms // 4) // 65536
    except (ImportError, AttributeError):
        return ms


class Wifi:
    """network.WLAN in station mode over a list of {"ssid", "password"} networks (gateway config
    wifi.networks), tried in order."""

    def __init__(self, clock, networks=(), emit=None):
        self._clock = clock
        self._networks = list(networks)
        self._emit = emit
        self._wlan = None

    def set_networks(self, networks):
        self._networks = list(networks)

    def has_networks(self):
        return bool(self._networks)

    def _sta(self):
        if self._wlan is None:
            import network
            self._wlan = network.WLAN(network.STA_IF)
            self._wlan.active(True)
        return self._wlan

    def isconnected(self):
        return self._wlan is not None and self._wlan.isconnected()

    def rssi(self):
        w = self._wlan
        if w is None or not w.isconnected():
            return None
        try:
            return w.status("rssi")
        except (OSError, ValueError, TypeError):
            return None

    async def _join(self, net):
        w = self._sta()
        try:
            w.disconnect()  # the ESP32 refuses a new connect while an old attempt is pending
        except OSError:
            pass
        try:
            w.connect(net["ssid"], net.get("password", ""))
        except OSError as e:
            self._note(net, "connect refused: %s" % e)
            return False
        waited = 0
        while waited < _JOIN_MS:
            if w.isconnected():
                return True
            await self._clock.sleep_ms(_JOIN_POLL_MS)
            waited += _JOIN_POLL_MS
        self._note(net, "no connection after %d ms" % _JOIN_MS)
        return False

    def _note(self, net, why):
        if self._emit is not None:
            self._emit({"event": "wifi_try", "ssid": net["ssid"], "ok": False, "why": why})

    async def connect(self, rounds=0):
        """Try every network until one connects; between rounds wait with capped backoff and
        jitter. rounds=0 keeps trying (cancel the task to stop). Returns True once connected,
        False after `rounds` failed rounds or when no network is configured."""
        if not self._networks:
            if self._emit is not None:
                self._emit({"event": "wifi_try", "ssid": None, "ok": False,
                            "why": "no networks configured"})
            return False
        if self.isconnected():
            return True
        backoff = _BACKOFF_MIN_MS
        n = 0
        while True:
            for net in self._networks:
                if await self._join(net):
                    return True
            n += 1
            if rounds and n >= rounds:
                return False
            await self._clock.sleep_ms(_jitter(backoff))
            backoff = min(backoff * 2, _BACKOFF_MAX_MS)


class _Watchdog:
    def __init__(self, timeout_ms):
        import machine
        self._wdt = machine.WDT(timeout=max(timeout_ms, _WDT_MIN_MS))

    def feed(self):
        self._wdt.feed()


class Esp32Board:
    def __init__(self, board_cfg, networks=(), data_dir="data"):
        # Validated here as well as by the tools: the loader passes the raw /board.json.
        board_cfg = _validated(board_cfg)
        self.name = board_cfg["name"]
        self.cfg = board_cfg
        self.clock = Clock()
        self.data_dir = data_dir
        self.stopping = False  # the app's main loop runs until this is set; a board runs forever
        self._ble = None
        self._t0 = self.clock.ticks_ms()
        self.led = make_led(board_cfg["led"])
        self.buzzer = make_buzzer(board_cfg["buzzer"])
        self._button = Button(board_cfg["button"], self.clock, board_cfg["debounce_ms"],
                              board_cfg["long_press_ms"])
        self.wifi = Wifi(self.clock, networks, self.emit)
        self._networks_given = bool(networks)
        try:
            import os
            os.mkdir(data_dir)
        except OSError:
            pass  # already there (EEXIST): the normal case after the first boot

    async def start(self):
        """Start keeping Wi-Fi up and the clock set, in the background: nothing here waits for the
        network, so the alarm path runs from the first second even with the router off."""
        asyncio.create_task(self._network_task())

    def set_networks(self, networks):
        """The gateway config's wifi.networks, given by the app once it has loaded the config (the board
        adapter reads no config of its own: firmware/hal does not import the shell)."""
        self.wifi.set_networks(networks)
        self._networks_given = True

    async def _network_task(self):
        # The app loads the config right after start() and before its first await, so the networks are
        # normally here at once; a short wait covers an app that awaits something first.
        waited = 0
        while not self._networks_given and waited < _NETWORKS_WAIT_MS:
            await self.clock.sleep_ms(_JOIN_POLL_MS)
            waited += _JOIN_POLL_MS
        if not self.wifi.has_networks():
            # Said once, not every 5 s: the bedside alarm works without Wi-Fi; the app's wifi
            # link shows "down" for as long as this lasts.
            self.emit({"event": "fault", "name": "wifi", "why": "no networks in the config"})
            return
        synced_at = None
        while True:
            try:
                if not self.wifi.isconnected():
                    await self.wifi.connect()  # retries with capped backoff inside
                if self.wifi.isconnected():
                    now = self.clock.ticks_ms()
                    if synced_at is None or ticks.diff(now, synced_at) >= _NTP_EVERY_MS:
                        if self.set_wall_from_ntp():
                            synced_at = now
            except Exception as e:  # keep trying; never let upkeep die quietly
                self.emit({"event": "fault", "name": "network_task", "why": repr(e)})
            await self.clock.sleep_ms(_NET_CHECK_MS)

    @property
    def ble(self):
        if self._ble is None:
            from firmware.hal.ble import open_ble
            self._ble = open_ble(self.data_dir)
        return self._ble

    async def button(self):
        return await self._button.wait()

    def emit(self, event):
        """One JSON line on the console (USB serial): what `mpremote` shows a maker."""
        if "t" not in event:
            event = dict(event)
            # Uptime in seconds; good for 6 days between wraps of the diff, which is for reading
            # a log, not for judging links (the core does that from ticks itself).
            event["t"] = ticks.diff(self.clock.ticks_ms(), self._t0) / 1000
        try:
            print(json.dumps(event))
        except (TypeError, ValueError):
            print(repr(event))

    def set_wall_from_ntp(self, host=None):
        """Set the RTC from NTP (needs Wi-Fi). True on success; on failure emits a `clock` event
        with the reason and wall_ms() stays None, so readings go out without a date rather than
        with a wrong one."""
        try:
            import ntptime
            if host:
                ntptime.host = host
            ntptime.settime()
        except Exception as e:  # OSError timeout, no DNS, ImportError on a build without ntptime
            self.emit({"event": "clock", "synced": False, "why": repr(e)})
            return False
        self.clock.mark_synced()
        self.emit({"event": "clock", "synced": True})
        return True

    def heap_free(self):
        gc.collect()
        try:
            return gc.mem_free()
        except AttributeError:
            return None

    def watchdog(self, timeout_ms):
        return _Watchdog(timeout_ms)

    def reset(self):
        import machine
        machine.reset()


def _validated(raw):
    """The board config through firmware.core.board. The validator and its chip tables are needed only
    at boot: imported here and dropped again (config_store.BOOT_ONLY), not kept for the night."""
    from firmware.core import board as board_schema
    try:
        return board_schema.build(raw)
    finally:
        forget("firmware.core.board")
        forget("firmware.core.checks")


def _file_exists(path):
    import os
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def safe_mode_requested(board_cfg, pin=None, sleep_ms=None):
    """For boot.py: True when the file `safe_mode` exists or the button is held during the board's
    safe-mode window (board config safe_mode_window_ms). Then boot.py skips main.py and starts no
    watchdog, so mpremote can always reach the board. Never raises: a broken button config must not
    stop the gateway from booting, so an error is printed and counts as "not requested" (the
    `safe_mode` file still works)."""
    if _file_exists(SAFE_MODE_FILE):
        return True
    try:
        board_cfg = _validated(board_cfg)   # raw /board.json is fine: fills the window
        bcfg = board_cfg["button"]
        if pin is None:
            pin = make_pin(bcfg)
        if sleep_ms is None:
            sleep_ms = time.sleep_ms
        want = 0 if bcfg["active_low"] else 1
        window = board_cfg["safe_mode_window_ms"]
        held = 0
        waited = 0
        while True:
            held = held + 1 if pin.value() == want else 0
            if held >= _SAFE_SAMPLES:
                return True
            if waited >= window:
                return False
            sleep_ms(_SAFE_STEP_MS)
            waited += _SAFE_STEP_MS
    except Exception as e:
        print("safe mode: cannot read the button (%r); booting normally" % (e,))
        return False
