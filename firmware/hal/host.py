# Host board: the firmware under the MicroPython unix port, driven by tools/sim.py. HOST ONLY.
# It IS the ESP32 board adapter (a subclass of firmware/hal/esp32.py's Esp32Board) over virtual hardware
# at MicroPython's own module boundary (tools/virtual_hw/, put on sys.path here and nowhere else):
#   bluetooth   the real aioble (.deps/lib, tools/install_deps.py), opened by firmware/hal/ble.py
#   machine     the ESP32 LED and buzzer drivers over Pin/PWM (neopixel too); Esp32Board.watchdog's
#               machine.WDT, which says `watchdog` {"expired": true} where a board would reset
#   network     Esp32Board's Wifi class and network task over WLAN(STA_IF); wifi_down/up is the AP
#   ntptime     Esp32Board.set_wall_from_ntp over the simulator's wall clock
# What this file overrides is host-only and stays small: the scaled clock (and aioble's timeouts on it),
# the simulator link, the event log on stdout (scenario `t`), the simulator's AP standing in for an empty
# wifi.networks, fault injection, the flash-write counter, and the button (a press arrives as a message,
# not as pin levels: at speed 600 one 15 ms poll of the ESP32 driver is 1.2 s of scenario time, longer
# than its 30 ms debounce, so it could not tell a short press from a long one).
# The simulator listens on a loopback port (NIGHTSTAND_SIM=host:port) and sends JSON lines:
#   {"start": {"speed": N, "wall_ms": ms|null, "ticks0": n}}   scenario time 0 (sent once)
#   {"air": ...} {"rsp": ...} {"evt": ...}    the radio: adverts, GATT answers and events for the
#                                             virtual controller (message formats in its header)
#   {"adv": "<hex>", "addr": "aa:bb:..", "rssi": -61}           one non-connectable advert (captures)
# and the controller sends {"ble": {...}} GATT requests back on the same link.
#   {"wifi": true|false}   {"button": "short"|"long"}   {"quit": true}
#   {"dns": true|false}    name lookups fail while false (fault tests)
#   {"flash": true|false}  writes to the data dir fail with ENOSPC while false (flash full)
#   {"inject": "crash_radio"|"crash_tick"|"crash_player"|"hang_radio"}  host-only fault injection
# Every write to a file under the data dir is counted (flash_bytes); with NIGHTSTAND_FLASH_EVENTS=1 each
# one is also a host-only `flash` event {"path", "bytes"} (the bench's flash bytes per reading).
# Events go to stdout as JSON lines (the simulator writes them to the --events file).
import gc
import io
import json
import os
import sys
import time

import asyncio

from firmware.lib.clock import Clock, SCALED_FLOOR_MS
from firmware.lib.mailbox import Mailbox
from firmware.hal.esp32 import Esp32Board, Wifi

# tools/virtual_hw/ next to firmware/: MicroPython's hardware modules as the host plays them.
_VHW = __file__.rsplit("firmware/hal/", 1)[0] + "tools/virtual_hw"
if _VHW not in sys.path:
    sys.path.append(_VHW)


class _HostFlag:
    """asyncio.ThreadSafeFlag's behaviour (one waiter; wait() returns once per set(), clearing it) on
    an asyncio.Event. The unix port polls a ThreadSafeFlag only between 10 ms waits of its system poll
    (extmod/modselect.c), so every BLE event aioble waits for would come ~10 ms of real time late: at
    speed 600 that is 6 s of scenario time per GATT step or scan window. On a board IRQs set it."""

    def __init__(self):
        self._ev = asyncio.Event()

    def set(self):
        self._ev.set()

    def clear(self):
        self._ev.clear()

    async def wait(self):
        await self._ev.wait()
        self._ev.clear()


class _HostAsyncio:
    """What aioble's modules see as `asyncio` on the host (the scaled clock's part): operation
    timeouts (`with conn.timeout(ms)`, connect, pair) sleep on the board clock instead of real ms, and
    ThreadSafeFlag is _HostFlag. Every other name is asyncio's own."""

    ThreadSafeFlag = _HostFlag

    def __init__(self, clock):
        self._clock = clock

    def __getattr__(self, name):
        return getattr(asyncio, name)

    def sleep_ms(self, ms):
        # Never less than PEER_REAL_MS of real time: a round trip over the simulator link is a few real
        # ms, which at speed 300 is a second of scenario time; that is not a stalled peer.
        return asyncio.sleep_ms(max(int(ms / self._clock.speed), PEER_REAL_MS))


def _readable(sock):
    # A generator, not an async def: asyncio's own way (asyncio/stream.py) to sleep until a socket reads.
    yield asyncio.core._io_queue.queue_read(sock)


class _SimLink:
    """The simulator link: JSON lines both ways over a loopback TCP socket. asyncio.open_connection's
    Stream would do the same, but its module keeps ~1 KiB of heap for the whole run that a board never
    loads (the broadcast gateway has no other use for it), and the frozen build's heap figures are meant
    to be a board's."""

    def __init__(self, host, port):
        import socket
        self.s = s = socket.socket()
        s.connect(socket.getaddrinfo(host, port)[0][-1])   # loopback: connects at once
        try:   # TCP_NODELAY: every BLE operation is a small request and answer on this link
            s.setsockopt(6, 1, 1)
        except (AttributeError, OSError):
            pass
        s.setblocking(False)

    def write(self, data):
        """All of data, now (a line is small and the simulator reads as fast as it can)."""
        mv, n = memoryview(data), 0
        while n < len(mv):
            try:
                w = self.s.write(mv[n:])
            except OSError:
                w = None   # EAGAIN: the simulator's buffer is full for a moment
            if w:
                n += w
            else:
                time.sleep_ms(1)

    async def readline(self):
        """One line (with its newline); b"" when the simulator closed the link."""
        line = b""
        while True:
            await _readable(self.s)
            part = self.s.readline()   # reads what is there, never blocks
            if part is None:
                continue
            line += part
            if not part or line[-1] == 10:
                return line


# The shortest real wait for an answer from a simulated peer (aioble's timeouts and the virtual
# controller's connect, ATT and SMP timeouts): tests of those limits run at a low --speed.
PEER_REAL_MS = 250


class _Recorder:
    """The LED (show) and buzzer (tone) of a board config without them (a bench's): they only remember
    what they were last told. One class for both: each class is ~250 B of heap for the whole run."""

    def __init__(self):
        self.value = None

    def _set(self, value):
        self.value = value

    show = tone = _set


_ENOSPC = 28


class _CountedFile(io.IOBase):
    """A writable file under the data dir: counts bytes written, fails them while flash is full.
    An io.IOBase, so json.dump (aioble's bonding keys) can write to it as to a real file."""

    def __init__(self, f, board, path):
        self._f, self._board, self._path = f, board, path

    def write(self, data):
        self._board._flash_write(self._path, len(data))
        return self._f.write(data)

    def read(self, *a):
        return self._f.read(*a)

    def readinto(self, *a):
        return self._f.readinto(*a)

    def seek(self, *a):
        return self._f.seek(*a)

    def tell(self):
        return self._f.tell()

    def flush(self):
        return self._f.flush()

    def close(self):
        return self._f.close()

    def ioctl(self, req, arg):
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _drivers(board_cfg):
    """The ESP32 adapter's own LED and buzzer drivers over tools/virtual_hw (machine.Pin/PWM, neopixel),
    as the board config asks for them (board_configs/host.json); a config without them (a bench's) gets
    plain recorders."""
    if "led" not in board_cfg or "buzzer" not in board_cfg:
        return _Recorder(), _Recorder()
    from firmware.hal.esp32_buzzer import make_buzzer
    from firmware.hal.esp32_led import make_led
    # board_configs/host.json is checked with the other board files (host_tests/unit); the schema
    # module is not loaded for it here, as an ESP32 loads it only to check /board.json at boot.
    return make_led(board_cfg["led"]), make_buzzer(board_cfg["buzzer"])


# The button's clock runs at most this many times real time: its 15 ms polls then cost 3 ms of real time
# (the unix port's sleeps are whole ms), so the 30 ms debounce still sees two samples and a short press
# reads as short. A press then lasts up to speed/5 times longer in scenario time: at speed 600 a short
# press (_SHORT_HOLD_MS, then the debounce) reaches the app about 20 scenario seconds after the message.
_BUTTON_SPEED = 5
_SHORT_HOLD_MS = 120   # a parent's quick press: well past the debounce, far below the long press
_MASK = 0x3FFFFFFF     # ticks_ms period 2**30, as on the ESP32


class ScaledClock(Clock):
    """The host board's clock: scenario time runs `speed` times faster than real time, from the
    simulator's instant (start())."""

    def __init__(self, speed=1, ticks0=0):
        Clock.__init__(self)
        self.speed = speed
        self.ticks0 = ticks0 & _MASK  # lets tests start just before the 2**30 wrap
        self._real0 = time.time_ns()
        self._wall0 = None

    def start(self, speed=None, wall0_ms=None, ticks0=None, real0_ns=None):
        """Scenario time 0 is now, or at real0_ns on the system clock (the simulator's instant)."""
        if speed:
            self.speed = speed
        if ticks0 is not None:
            self.ticks0 = ticks0 & _MASK
        self._wall0 = wall0_ms
        self._real0 = real0_ns or time.time_ns()

    def sim_ms(self):
        return int((time.time_ns() - self._real0) * self.speed) // 1000000

    def ticks_ms(self):
        return (self.ticks0 + self.sim_ms()) & _MASK

    def sleep_ms(self, ms):
        return asyncio.sleep_ms(max(SCALED_FLOOR_MS, int(ms / self.speed)))   # see Clock.sleep_ms

    def sleep_blocking_ms(self, ms):
        time.sleep_ms(max(1, int(ms / self.speed)))

    def set_wall_ms(self, epoch_ms):
        self._wall0 = epoch_ms - self.sim_ms()

    def wall_ms(self):
        if self._wall0 is None:
            return None
        return self._wall0 + self.sim_ms()

    def scenario_s(self):
        return self.sim_ms() / 1000


class _ButtonClock:
    """Host only: ticks_ms() and sleep_ms() for esp32_button.Button, at min(speed, _BUTTON_SPEED) times
    real time (see _BUTTON_SPEED)."""

    def __init__(self, clock):
        self._clock = clock

    def _k(self):
        return max(1, min(self._clock.speed, _BUTTON_SPEED))

    def ticks_ms(self):
        return int(time.time_ns() * self._k() // 1000000) & _MASK

    def sleep_ms(self, ms):
        return asyncio.sleep_ms(max(1, int(ms / self._k())))   # as Clock.sleep_ms (firmware/lib/clock.py)


# The simulator's access point: what the host joins when the gateway config lists no network (the host
# always had a link; a test of the "no networks" fault needs an ESP32).
SIM_NETWORKS = ({"ssid": "nightstand-sim", "password": ""},)


class HostBoard(Esp32Board):
    kind = "host"

    def __init__(self, board_cfg):
        # Not Esp32Board.__init__: the scaled clock instead of the RTC one, no schema build (a bench passes
        # only a name), the button from the simulator (see the header); every other part is the board's.
        self.name = board_cfg.get("name", "host")
        self.cfg = board_cfg
        self.clock = ScaledClock()
        self._ble = None
        self.led, self.buzzer = _drivers(board_cfg)
        self.wifi = Wifi(self.clock, (), self.emit)
        self._networks_given = False
        self.data_dir = os.getenv("NIGHTSTAND_DATA") or "data"
        self.presses = Mailbox(4)
        self._button = self._button_cfg = self._press_lock = None
        if "button" in board_cfg:
            # The ESP32 driver over a virtual input pin (board_configs/host.json); a bench's config has
            # no button, and its presses go straight to the app.
            from firmware.core import board as board_schema
            from firmware.hal.esp32_button import Button
            full = board_schema.build(board_cfg)
            self._button_cfg = full
            self._button = Button(full["button"], _ButtonClock(self.clock), full["debounce_ms"],
                                  full["long_press_ms"])
        self.stopping = False
        # Host test hook: "crash_<task>" names from the simulator; the supervisor raises once inside
        # that task at its next check-in (firmware/shell/supervisor.py). hang_radio wedges the radio.
        self.inject = set()
        self.rx_memory_errors = 0  # simulator lines lost to a full heap (_listen)
        self._link = None       # the simulator link (_SimLink), when NIGHTSTAND_SIM names one
        self.dns_ok = True
        self.flash_ok = True
        self.flash_bytes = 0
        self._flash_events = os.getenv("NIGHTSTAND_FLASH_EVENTS") == "1"
        self._heap_trace = os.getenv("NIGHTSTAND_HEAP_TRACE") == "1"
        self._heap_low = None
        self._install_open()
        import machine   # tools/virtual_hw/machine.py: its WDT reports on this board's clock and log
        machine.attach(self.clock, self.emit, lambda: not self.stopping)

    def set_networks(self, networks):
        Esp32Board.set_networks(self, networks or SIM_NETWORKS)

    @property
    def ble(self):
        """The real aioble over the virtual controller, opened as the ESP32 adapter opens it."""
        if self._ble is None:
            gc.collect()   # as open_ble() does, before the virtual controller's import too
            import bluetooth
            bluetooth.attach(self.clock, self._send, PEER_REAL_MS)
            from firmware.hal.ble import open_ble
            self._ble = open_ble(self.data_dir)
            host_asyncio = _HostAsyncio(self.clock)
            for name in ("device", "central", "client", "security"):
                mod = getattr(self._ble, name, None)
                if mod is not None and getattr(mod, "asyncio", None) is asyncio:
                    mod.asyncio = host_asyncio
        return self._ble

    def _send(self, msg):
        if self._link is not None:
            self._link.write((json.dumps(msg) + "\n").encode())

    def _install_open(self):
        import builtins
        real = builtins.open
        root = self.data_dir.rstrip("/") + "/"
        board = self

        def counted_open(path, mode="r", *a):
            if type(path) is str and path.startswith(root) and (mode[0] != "r" or "+" in mode):
                if not board.flash_ok:
                    raise OSError(_ENOSPC)
                return _CountedFile(real(path, mode, *a), board, path)
            return real(path, mode, *a)

        builtins.open = counted_open

    def _flash_write(self, path, n):
        if not self.flash_ok:
            raise OSError(_ENOSPC)
        self.flash_bytes += n
        if self._flash_events:
            self.emit({"event": "flash", "path": path.rsplit("/", 1)[-1], "bytes": n})

    async def start(self):
        """Connect to the simulator and wait for scenario time 0."""
        where = os.getenv("NIGHTSTAND_SIM")
        if not where:
            self.clock.start()
            await Esp32Board.start(self)
            return
        host, port = where.rsplit(":", 1)
        self._link = _SimLink(host, int(port))
        self._link.write(b'{"hello": "nightstand"}\n')
        while True:
            msg = json.loads(await self._link.readline())
            if "start" in msg:
                s = msg["start"]
                self.clock.start(s.get("speed", 1), None, s.get("ticks0", 0), s.get("real0_ns"))
                import ntptime   # tools/virtual_hw: the simulator's wall clock is the NTP server's
                ntptime.attach(self.clock, s.get("wall_ms"))
                break
        asyncio.create_task(self._listen())
        await Esp32Board.start(self)   # the board's own Wi-Fi and NTP upkeep, over virtual network/ntptime

    async def _listen(self):
        while True:
            try:
                if await self._listen_one():
                    return
            except MemoryError:
                # The simulated radio, like a board's BLE interrupt handler, loses this one event on a
                # full heap and hears the next. (Before, this task died and the box heard nothing more
                # for the rest of the run: a simulated week at 48 KiB went sensor_silent for 6 days.)
                self.rx_memory_errors += 1

    async def _listen_one(self):
        """One line from the simulator; True when the simulator is gone or said quit."""
        line = await self._link.readline()
        if not line:
            self.stopping = True
            return True
        try:
            msg = json.loads(line)
        except ValueError:
            return False
        if "air" in msg or "rsp" in msg or "evt" in msg:
            import bluetooth
            bluetooth.feed(msg)
        elif "adv" in msg:
            import bluetooth
            bluetooth.feed({"air": {"addr": msg.get("addr", "00:00:00:00:00:00"), "adv_type": 3,
                                    "rssi": msg.get("rssi", -70), "adv": msg["adv"]}})
        elif "wifi" in msg:
            import network   # tools/virtual_hw: the AP goes away or comes back
            network.set_ap(bool(msg["wifi"]))
        elif "dns" in msg:
            self.dns_ok = bool(msg["dns"])
            import socket   # tools/virtual_hw/socket.py when the simulator runs the firmware
            if hasattr(socket, "set_dns"):
                socket.set_dns(self.dns_ok)
        elif "flash" in msg:
            self.flash_ok = bool(msg["flash"])
        elif msg.get("inject") == "hang_radio":
            import bluetooth
            bluetooth.wedge()
        elif "inject" in msg:
            self.inject.add(msg["inject"])
        elif "button" in msg:
            if self._button is None:
                self.presses.put(msg["button"])
            else:
                asyncio.create_task(self._press(msg["button"] == "long"))
        elif "quit" in msg:
            self.stopping = True
            return True
        return False

    async def button(self):
        if self._button is None:
            return await self.presses.get()
        return await Esp32Board.button(self)   # esp32_button.Button.wait() on the virtual pin

    async def _press(self, long):
        """Hold the virtual button pin down as a parent would: briefly, or past the long press, then let
        it go for the debounce; presses sent close together are played one after the other."""
        import machine
        if self._press_lock is None:
            self._press_lock = asyncio.Lock()
        cfg = self._button_cfg
        pin, down = cfg["button"]["pin"], 0 if cfg["button"]["active_low"] else 1
        clock = self._button._clock
        async with self._press_lock:
            machine.Pin.drive(pin, down)
            await clock.sleep_ms(cfg["long_press_ms"] + _SHORT_HOLD_MS if long else _SHORT_HOLD_MS)
            machine.Pin.drive(pin, 1 - down)
            await clock.sleep_ms(_SHORT_HOLD_MS)

    def emit(self, event):
        event["t"] = round(self.clock.scenario_s(), 3)
        sys.stdout.write(json.dumps(event) + "\n")

    def heap_free(self):
        gc.collect()
        free = gc.mem_free()
        if self._heap_trace and (self._heap_low is None or free < self._heap_low):
            self._heap_low = free
            self._heap_dump(free)
        return free

    def _heap_dump(self, free):
        """Host-only (NIGHTSTAND_HEAP_TRACE=1, tools/heap_profile.py): on a new low of the free heap
        after a collection, the block map and what the virtual radio holds, as plain lines the
        simulator passes to its stderr."""
        import micropython
        import bluetooth
        print("HEAPTRACE begin t=%d free=%d radio=%s" % (self.clock.scenario_s(), free, bluetooth.stats()))
        micropython.mem_info(1)
        print("HEAPTRACE end")
