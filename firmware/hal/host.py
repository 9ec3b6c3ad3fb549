# Host board: the firmware under the MicroPython unix port, driven by tools/sim.py.
# The simulator listens on a loopback port (NIGHTSTAND_SIM=host:port) and sends JSON lines:
#   {"start": {"speed": N, "wall_ms": ms|null, "ticks0": n}}   scenario time 0 (sent once)
#   {"adv": "<hex>", "addr": "aa:bb:..", "rssi": -61}           an advertisement on the air
#   {"wifi": true|false}   {"button": "short"|"long"}   {"quit": true}
#   {"ble_rsp": ...} {"ble_evt": ...} {"periph": ...}            the CGMS peripheral (virtual_aioble.py)
# and the firmware sends {"ble": {...}} GATT requests back on the same link.
#   {"dns": true|false}    name lookups fail while false (fault tests)
#   {"flash": true|false}  writes to the data dir fail with ENOSPC while false (flash full)
#   {"inject": "crash_radio"|"crash_tick"|"crash_player"|"hang_radio"}  host-only fault injection
# Every write to a file under the data dir is counted (flash_bytes); with NIGHTSTAND_FLASH_EVENTS=1 each
# one is also a host-only `flash` event {"path", "bytes"} (the bench's flash bytes per reading).
# Events go to stdout as JSON lines (the simulator writes them to the --events file).
import gc
import json
import os
import sys

import asyncio

from firmware.core import ticks
from firmware.hal.virtual_aioble import VirtualRadio
from firmware.shell.clock import ScaledClock, hang_bound_ms
from firmware.shell.mailbox import Mailbox


class VirtualLed:
    def __init__(self):
        self.rgb = None
        self.changes = 0

    def show(self, rgb):
        if rgb != self.rgb:
            self.rgb = rgb
            self.changes += 1


class VirtualBuzzer:
    def __init__(self):
        self.hz = 0
        self.changes = 0

    def tone(self, hz):
        if hz != self.hz:
            self.hz = hz
            self.changes += 1


class VirtualWlan:
    def __init__(self):
        self.up = True

    def isconnected(self):
        return self.up

    async def connect(self):
        return self.up

    def rssi(self):
        return -55 if self.up else None


_ENOSPC = 28


class _CountedFile:
    """A writable file under the data dir: counts bytes written, fails them while flash is full."""

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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


class _DnsFaults:
    """Stands in for the socket module inside mqtt_guard: lookups fail while the board says so."""

    def __init__(self, real, board):
        self._real, self._board = real, board
        self.socket = real.socket

    def getaddrinfo(self, *a):
        if not self._board.dns_ok:
            raise OSError(-2)  # EAI_NONAME, as a name that does not resolve
        return self._real.getaddrinfo(*a)


class _HostWatchdog:
    """Never resets the host. When it goes unfed past its timeout it emits a `watchdog` event with
    `expired: true` where a board would reset, once per starvation. Like the supervisor's hang check it
    also waits 0.5 s of real time (clock.hang_bound_ms), so a fast simulation does not report a host pause."""

    def __init__(self, board, timeout_ms):
        self.board = board
        self.timeout_ms = hang_bound_ms(board.clock, timeout_ms)
        self.feeds = 0
        self.fed_at = board.clock.ticks_ms()
        self.expired = False

    def feed(self):
        self.feeds += 1
        self.fed_at = self.board.clock.ticks_ms()
        self.expired = False

    def check(self):
        """Called by the host board once a scenario second."""
        if not self.expired and ticks.diff(self.board.clock.ticks_ms(), self.fed_at) >= self.timeout_ms:
            self.expired = True
            self.board.emit({"event": "watchdog", "expired": True, "timeout_ms": self.timeout_ms,
                             "why": "not fed: a board resets here; the host goes on"})


def _addr_bytes(text):
    return bytes(int(p, 16) for p in text.split(":"))


class HostBoard:
    kind = "host"

    def __init__(self, board_cfg):
        self.name = board_cfg.get("name", "host")
        self.clock = ScaledClock()
        self.ble = VirtualRadio(self.clock)
        self.led = VirtualLed()
        self.buzzer = VirtualBuzzer()
        self.wifi = VirtualWlan()
        self.data_dir = os.getenv("NIGHTSTAND_DATA") or "data"
        self.presses = Mailbox(4)
        self.stopping = False
        # Host test hook: "crash_<task>" names from the simulator; the supervisor raises once inside
        # that task at its next check-in (firmware/shell/supervisor.py). hang_radio wedges the radio.
        self.inject = set()
        self.rx_memory_errors = 0  # simulator lines lost to a full heap (_listen)
        self.wdt = None
        self._reader = None
        self.dns_ok = True
        self.flash_ok = True
        self.flash_bytes = 0
        self._flash_events = os.getenv("NIGHTSTAND_FLASH_EVENTS") == "1"
        self._heap_trace = os.getenv("NIGHTSTAND_HEAP_TRACE") == "1"
        self._heap_low = None
        self._install_open()

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
            return
        host, port = where.rsplit(":", 1)
        self._reader, self._writer = await asyncio.open_connection(host, int(port))
        self.ble.link = self._writer  # GATT requests to the simulated CGMS peripheral
        self._writer.write(b'{"hello": "nightstand"}\n')
        await self._writer.drain()
        while True:
            msg = json.loads(await self._reader.readline())
            if "start" in msg:
                s = msg["start"]
                self.clock.start(s.get("speed", 1), None, s.get("ticks0", 0), s.get("real0_ns"))
                if s.get("wall_ms"):
                    self.clock.set_wall_ms(s["wall_ms"])
                break
        asyncio.create_task(self._listen())

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
        line = await self._reader.readline()
        if not line:
            self.stopping = True
            return True
        try:
            msg = json.loads(line)
        except ValueError:
            return False
        if "adv" in msg:
            self.ble.hear(_addr_bytes(msg.get("addr", "00:00:00:00:00:00")),
                          msg.get("rssi", -70), bytes.fromhex(msg["adv"]))
        elif "ble_rsp" in msg or "ble_evt" in msg or "periph" in msg:
            self.ble.from_sim(msg)  # CGMS peripheral: answers, notifications, advertising
        elif "wifi" in msg:
            self.wifi.up = bool(msg["wifi"])
        elif "dns" in msg:
            self.dns_ok = bool(msg["dns"])
            from firmware.shell import mqtt_guard
            if not isinstance(mqtt_guard._socket, _DnsFaults):
                mqtt_guard._socket = _DnsFaults(mqtt_guard._socket, self)
        elif "flash" in msg:
            self.flash_ok = bool(msg["flash"])
        elif msg.get("inject") == "hang_radio":
            self.ble.wedged = True
        elif "inject" in msg:
            self.inject.add(msg["inject"])
        elif "button" in msg:
            self.presses.put(msg["button"])
        elif "quit" in msg:
            self.stopping = True
            return True
        return False

    async def button(self):
        return await self.presses.get()

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
        scan = self.ble._scan
        print("HEAPTRACE begin t=%d free=%d inbox=%d scan_results=%d" % (
            self.clock.scenario_s(), free, len(self.ble.inbox.items),
            -1 if scan is None else len(scan.results)))
        micropython.mem_info(1)
        print("HEAPTRACE end")

    def watchdog(self, timeout_ms):
        self.emit({"event": "watchdog", "timeout_ms": timeout_ms})  # host-only: it was started
        self.wdt = _HostWatchdog(self, timeout_ms)
        asyncio.create_task(self._watch(self.wdt))
        return self.wdt

    async def _watch(self, wdt):
        # Once a scenario second. A hang of one task shows here; a loop blocked for good would stop this
        # too (a board's hardware watchdog has no such limit).
        while not self.stopping:
            await self.clock.sleep_ms(1000)
            wdt.check()

    def reset(self):
        sys.exit(3)
