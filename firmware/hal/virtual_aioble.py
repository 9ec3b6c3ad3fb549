# The part of aioble's central-scan surface the firmware uses, fed by the host simulator.
# Like aioble, one scan() call keeps a result per device address for its duration (so a flood of
# rotating addresses grows that set until the scan ends: the firmware scans in finite windows), and a
# device yields again only when its advertising data changes.
import asyncio

from firmware.shell.mailbox import Mailbox

# A busy flat delivers hundreds of adverts per second; 64 buffered covers a burst while the radio task
# is busy, and a fuller buffer drops the oldest (counted), like a BLE controller's own queue.
_BUFFERED = 64


class Device:
    def __init__(self, addr, addr_type=1):
        self.addr = addr
        self.addr_type = addr_type

    def addr_hex(self):
        return ":".join("%02x" % b for b in self.addr)


class ScanResult:
    def __init__(self, device):
        self.device = device
        self.rssi = None
        self.adv_data = None
        self.connectable = False

    def _update(self, rssi, adv_data):
        changed = adv_data != self.adv_data
        self.rssi = rssi
        self.adv_data = adv_data
        return changed

    def manufacturer(self, filter=None):
        data = self.adv_data or b""
        i = 0
        while i + 1 < len(data):
            n = data[i]
            if n == 0 or i + 1 + n > len(data):
                return
            if data[i + 1] == 0xFF and n >= 3:
                cid = data[i + 2] | data[i + 3] << 8
                if filter is None or cid == filter:
                    yield cid, bytes(data[i + 4:i + 1 + n])
            i += 1 + n


class _Scan:
    def __init__(self, radio, duration_ms):
        self.radio = radio
        self.duration_ms = duration_ms
        self.results = {}

    async def __aenter__(self):
        self.t0 = self.radio.clock.ticks_ms()
        return self

    async def __aexit__(self, *exc):
        self.results = {}

    def __aiter__(self):
        return self

    async def __anext__(self):
        from firmware.core import ticks
        clock = self.radio.clock
        while True:
            left = self.duration_ms - ticks.diff(clock.ticks_ms(), self.t0)
            if left <= 0:
                raise StopAsyncIteration
            item = await self.radio.inbox.get_ms(max(1, int(left / clock.speed)))
            if item is None:
                continue
            addr, rssi, adv = item
            res = self.results.get(addr)
            if res is None:
                res = self.results[addr] = ScanResult(Device(addr))
            if res._update(rssi, adv):
                return res


class VirtualRadio:
    """Stands in for the aioble module on the host board."""

    def __init__(self, clock):
        self.clock = clock
        self.inbox = Mailbox(_BUFFERED)
        self.scans = 0

    def hear(self, addr, rssi, adv):
        self.inbox.put((addr, rssi, adv))

    def scan(self, duration_ms, interval_us=1280000, window_us=11250, active=False):
        self.scans += 1
        return _Scan(self, duration_ms)
