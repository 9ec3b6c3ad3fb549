# The part of aioble the firmware uses, on the host board, fed by the host simulator.
#
# Scan (central, passive): like aioble, one scan() call keeps a result per device address for its
# duration (so a flood of rotating addresses grows that set until the scan ends: the firmware scans
# in finite windows), and a device yields again only when its advertising data changes.
#
# Connect (central to a GATT server): Device(addr_type, addr).connect(timeout_ms) -> DeviceConnection
# with pair(), service(uuid) -> service.characteristic(uuid) -> read(), write(), subscribe(),
# notified(), indicated(), and disconnected()/disconnect(). Behaviour copied from aioble on purpose:
#   - connect() cancels the scan in progress (the scanner's loop just ends);
#   - a device that is not there makes connect() wait its whole timeout, then asyncio.TimeoutError;
#   - a failed pairing is not reported: pair() times out (aioble's "TODO: Handle failure");
#   - a characteristic keeps only the newest notification and the newest indication (deque of 1),
#     in `_notify_queue` / `_indicate_queue`, like aioble's ClientCharacteristic;
#   - a disconnection makes every operation waiting on that connection raise DeviceDisconnectedError;
#   - operations on a characteristic without the property raise ValueError("Unsupported");
#   - the passkey comes from an IRQ handler registered with core.register_irq_handler answering
#     _IRQ_PASSKEY_ACTION with core.ble.gap_passkey(conn_handle, action, passkey).
# Timeouts are in board-clock ms (the host clock runs `speed` times faster than real time).
#
# The GATT half (Device.connect() and everything after it) lives in virtual_gatt.py and is imported on
# first use: a broadcast sensor never connects, so the host board does not spend that heap.
# The GATT server is the simulator's CGMS peripheral (tools/simlib/cgms_peer.py). Link messages:
#   firmware -> sim  {"ble": {"id": n, "op": "connect"|"pair"|"read"|"write"|"subscribe"|"disconnect",
#                             "addr": "aa:..", "uuid": 0x2aa7, "data": "<hex>", "passkey": n,
#                             "notify": bool, "indicate": bool, "response": bool}}
#   sim -> firmware  {"ble_rsp": {"id": n, "status": 0|code, "data": "<hex>", "gatt": {...}}}
#                    {"ble_evt": {"evt": "notify"|"indicate", "uuid": 0x2aa7, "data": "<hex>"}}
#                    {"ble_evt": {"evt": "disconnect", "reason": "..."}}
#                    {"periph": {"addr": "aa:..", "adv": "<hex>"|null}}  connectable advertising on/off
# status: 0 ok; "no_device" (connect: nobody answers at that address); any other code = GATT error.
# "gatt" (connect answer): {"<service uuid hex>": {"<char uuid hex>": properties}} with aioble's
# property bits (read 0x02, write 0x08, notify 0x10, indicate 0x20).
import json

from firmware.core import ticks
from firmware.shell.mailbox import Mailbox

# A busy flat delivers hundreds of adverts per second; 64 buffered covers a burst while the radio task
# is busy, and a fuller buffer drops the oldest (counted), like a BLE controller's own queue.
_BUFFERED = 64

_IRQ_PASSKEY_ACTION = 31      # bluetooth module IRQ numbers, as aioble.security uses them
_PASSKEY_ACTION_INPUT = 2


class DeviceDisconnectedError(Exception):
    pass


class GattError(Exception):
    def __init__(self, status):
        super().__init__(status)
        self._status = status


class UUID:
    """bluetooth.UUID for 16-bit UUIDs: compares equal by value."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, UUID) and other.value == self.value

    def __hash__(self):
        return self.value

    def __repr__(self):
        return "UUID(0x%04x)" % self.value


def _hex_addr(addr):
    return ":".join("%02x" % b for b in addr)


def _addr_bytes(text):
    return bytes(int(p, 16) for p in text.split(":"))


class Device:
    def __init__(self, addr_type, addr, radio=None):
        self.addr_type = addr_type
        self.addr = addr if type(addr) is bytes else _addr_bytes(addr)
        self._radio = radio
        self._connection = None

    def addr_hex(self):
        return _hex_addr(self.addr)

    async def connect(self, timeout_ms=10000):
        from firmware.hal import virtual_gatt  # the central: only a CGMS sensor connects
        return await virtual_gatt.connect(self, timeout_ms)


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
        self.cancelled = False
        self._seen_periph = False

    async def __aenter__(self):
        self.radio._cancel_scan()
        self.radio._scan = self
        self.t0 = self.radio.clock.ticks_ms()
        return self

    async def __aexit__(self, *exc):
        if self.radio._scan is self:
            self.radio._scan = None
        self.results = {}

    def __aiter__(self):
        return self

    def _result(self, addr, rssi, adv, connectable):
        res = self.results.get(addr)
        if res is None:
            res = self.results[addr] = ScanResult(Device(1, addr, self.radio))
        res.connectable = connectable
        if res._update(rssi, adv):
            return res
        return None

    async def __anext__(self):
        clock = self.radio.clock
        if not self._seen_periph:
            # A connectable peripheral advertises several times a second: any scan window hears it.
            self._seen_periph = True
            for addr, adv in list(self.radio.advertisers.items()):
                res = self._result(addr, -60, adv, True)
                if res is not None:
                    return res
        while True:
            if self.radio.wedged:
                await clock.sleep_ms(1000)
                continue
            if self.cancelled:
                raise StopAsyncIteration
            left = self.duration_ms - ticks.diff(clock.ticks_ms(), self.t0)
            if left <= 0:
                raise StopAsyncIteration
            item = await self.radio.inbox.get_ms(max(1, int(left / clock.speed)))
            if item is None:
                continue
            if item[3] and self.radio.advertisers.get(item[0]) != item[2]:
                continue  # a connectable advert from a peripheral that stopped advertising since
            res = self._result(item[0], item[1], item[2], item[3])
            if res is not None:
                return res


class _Core:
    """aioble.core: the IRQ handler list (for the passkey) and the bluetooth.BLE object."""

    def __init__(self, radio):
        self._handlers = []
        self.ble = self
        self._radio = radio

    def register_irq_handler(self, irq, shutdown=None):
        self._handlers.append(irq)

    def _irq(self, event, data):
        for h in self._handlers:
            r = h(event, data)
            if r is not None:
                return r

    def gap_passkey(self, conn_handle, action, passkey):
        self._radio._passkey = passkey


class VirtualRadio:
    """Stands in for the aioble module on the host board."""

    DeviceDisconnectedError = DeviceDisconnectedError
    GattError = GattError
    UUID = UUID

    def __init__(self, clock):
        self.clock = clock
        self.inbox = Mailbox(_BUFFERED)
        self.scans = 0
        self.link = None          # the simulator link's stream writer (set by the host board)
        self.advertisers = {}     # addr bytes -> adv bytes of connectable peripherals advertising now
        self.core = _Core(self)
        self._scan = None
        self._conn = None
        self._next_id = 0
        self._pending = {}        # request id -> [event, answer]
        self._passkey = None
        # Host fault injection (hang_radio): a BLE stack that stops answering. A scan then yields no result
        # and never ends its window, so the radio task stops checking in, as with a real wedged stack.
        self.wedged = False

    # ---- aioble surface --------------------------------------------------------------------------
    def scan(self, duration_ms, interval_us=1280000, window_us=11250, active=False):
        self.scans += 1
        return _Scan(self, duration_ms)

    def Device(self, addr_type, addr):
        return Device(addr_type, addr, self)

    # ---- from the simulator ----------------------------------------------------------------------
    def hear(self, addr, rssi, adv):
        self.inbox.put((addr, rssi, adv, False))

    def from_sim(self, msg):
        if "ble_rsp" in msg or "ble_evt" in msg:
            from firmware.hal import virtual_gatt
            virtual_gatt.from_sim(self, msg)
        elif "periph" in msg:
            p = msg["periph"]
            addr = _addr_bytes(p["addr"])
            if p.get("adv"):
                adv = bytes.fromhex(p["adv"])
                self.advertisers[addr] = adv
                self.inbox.put((addr, -60, adv, True))
            else:
                self.advertisers.pop(addr, None)

    # ---- internals -------------------------------------------------------------------------------
    def _cancel_scan(self):
        if self._scan is not None:
            self._scan.cancelled = True
            self._scan = None

    def _send(self, msg):
        if self.link is not None:
            self.link.write((json.dumps({"ble": msg}) + "\n").encode())
