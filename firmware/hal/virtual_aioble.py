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
import asyncio
import json

from firmware.core import ticks
from firmware.shell.mailbox import Mailbox

try:
    from collections import deque
except ImportError:  # pragma: no cover
    deque = None

# A busy flat delivers hundreds of adverts per second; 64 buffered covers a burst while the radio task
# is busy, and a fuller buffer drops the oldest (counted), like a BLE controller's own queue.
_BUFFERED = 64

_IRQ_PASSKEY_ACTION = 31      # bluetooth module IRQ numbers, as aioble.security uses them
_PASSKEY_ACTION_INPUT = 2
_FLAG_READ = 0x02
_FLAG_WRITE_NO_RESPONSE = 0x04
_FLAG_WRITE = 0x08
_FLAG_NOTIFY = 0x10
_FLAG_INDICATE = 0x20


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


async def _wait(event, clock, timeout_ms):
    """Wait for an asyncio.Event; timeout_ms in board-clock ms (None = forever). True when set."""
    if timeout_ms is None:
        await event.wait()
        return True
    real_ms = max(1, int(timeout_ms / clock.speed))
    try:
        if hasattr(asyncio, "wait_for_ms"):
            await asyncio.wait_for_ms(event.wait(), real_ms)
        else:  # CPython, for the portable tests
            await asyncio.wait_for(event.wait(), real_ms / 1000)
        return True
    except asyncio.TimeoutError:
        return False


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
        if self._connection is not None:
            return self._connection
        radio = self._radio
        radio._cancel_scan()
        t0 = radio.clock.ticks_ms()
        rsp = await radio._request({"op": "connect", "addr": self.addr_hex()}, timeout_ms, None)
        if rsp is None or rsp.get("status") != 0:
            # Nobody at that address: the controller keeps trying until the timeout, then gives up.
            left = timeout_ms - ticks.diff(radio.clock.ticks_ms(), t0)
            if left > 0:
                await _wait(asyncio.Event(), radio.clock, left)
            raise asyncio.TimeoutError
        conn = DeviceConnection(self, radio, rsp.get("gatt") or {})
        self._connection = conn
        radio._conn = conn
        return conn


class ClientCharacteristic:
    def __init__(self, service, uuid, properties):
        self.service = service
        self.connection = service.connection
        self.uuid = uuid
        self.properties = properties
        self._notify_queue = deque((), 1)
        self._indicate_queue = deque((), 1)
        self._notify_event = asyncio.Event()
        self._indicate_event = asyncio.Event()

    def _check(self, flag):
        if not self.properties & flag:
            raise ValueError("Unsupported")

    async def read(self, timeout_ms=1000):
        self._check(_FLAG_READ)
        rsp = await self.connection._op({"op": "read", "uuid": self.uuid.value}, timeout_ms)
        return bytes.fromhex(rsp.get("data") or "")

    async def write(self, data, response=False, timeout_ms=1000):
        self._check(_FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE)
        msg = {"op": "write", "uuid": self.uuid.value, "data": bytes(data).hex(),
               "response": bool(response)}
        if response:
            await self.connection._op(msg, timeout_ms)
        else:
            self.connection._radio._send(msg)

    async def subscribe(self, notify=True, indicate=False):
        await self.connection._op({"op": "subscribe", "uuid": self.uuid.value, "notify": bool(notify),
                                   "indicate": bool(indicate)}, 2000)

    async def _next(self, queue, event, timeout_ms):
        # Same rule as aioble: with 0 or 1 item queued, wait for the flag (a ThreadSafeFlag there:
        # set when the queue goes from empty to one item, cleared by the wait), then take the front.
        # So, as there, a value queued behind another can wait for a flag nobody sets.
        conn = self.connection
        if len(queue) <= 1:
            if not conn.is_connected():
                raise DeviceDisconnectedError
            ok = await _wait(event, conn._radio.clock, timeout_ms)
            if not conn.is_connected():
                raise DeviceDisconnectedError
            if not ok:
                raise asyncio.TimeoutError
            event.clear()
        return queue.popleft()

    async def notified(self, timeout_ms=None):
        self._check(_FLAG_NOTIFY)
        return await self._next(self._notify_queue, self._notify_event, timeout_ms)

    async def indicated(self, timeout_ms=None):
        self._check(_FLAG_INDICATE)
        return await self._next(self._indicate_queue, self._indicate_event, timeout_ms)

    def _arrive(self, kind, data):
        if kind == "notify":
            q, ev = self._notify_queue, self._notify_event
        else:
            q, ev = self._indicate_queue, self._indicate_event
        wake = len(q) == 0
        q.append(data)
        if wake:
            ev.set()


class ClientService:
    def __init__(self, connection, uuid, chars):
        self.connection = connection
        self.uuid = uuid
        self._chars = chars   # {uuid value: properties}
        self._made = {}

    async def characteristic(self, uuid, timeout_ms=2000):
        props = self._chars.get(uuid.value)
        if props is None:
            return None
        c = self._made.get(uuid.value)
        if c is None:
            c = self._made[uuid.value] = ClientCharacteristic(self, uuid, props)
            self.connection._characteristics[uuid.value] = c
        return c


class DeviceConnection:
    def __init__(self, device, radio, gatt):
        self.device = device
        self._radio = radio
        self._gatt = {}
        for s, chars in gatt.items():
            self._gatt[int(s, 16)] = dict((int(c, 16), p) for c, p in chars.items())
        self._characteristics = {}
        self._up = True
        self._gone = asyncio.Event()
        self._waits = []      # events of operations in flight: woken on disconnection
        self.encrypted = self.authenticated = self.bonded = False
        self.reason = None    # why the link dropped (host only: what the simulator said)

    def is_connected(self):
        return self._up

    async def _op(self, msg, timeout_ms):
        if not self._up:
            raise DeviceDisconnectedError
        rsp = await self._radio._request(msg, timeout_ms, self)
        if not self._up:
            raise DeviceDisconnectedError
        if rsp is None:
            raise asyncio.TimeoutError
        status = rsp.get("status")
        if status != 0:
            raise GattError(status)
        return rsp

    async def pair(self, bond=True, le_secure=True, mitm=False, io=3, timeout_ms=20000):
        passkey = None
        if mitm:
            self._radio._passkey = None
            self._radio.core._irq(_IRQ_PASSKEY_ACTION, (1, _PASSKEY_ACTION_INPUT, 0))
            passkey = self._radio._passkey
        t0 = self._radio.clock.ticks_ms()
        try:
            await self._op({"op": "pair", "bond": bool(bond), "passkey": passkey}, timeout_ms)
        except GattError:
            # aioble does not report a failed pairing: the encryption never comes, pair() times out.
            left = timeout_ms - ticks.diff(self._radio.clock.ticks_ms(), t0)
            if left > 0:
                ev = asyncio.Event()
                self._waits.append(ev)
                await _wait(ev, self._radio.clock, left)
                self._waits.remove(ev)
            if not self._up:
                raise DeviceDisconnectedError
            raise asyncio.TimeoutError
        self.encrypted = self.authenticated = True
        self.bonded = bool(bond)

    async def service(self, uuid, timeout_ms=2000):
        chars = self._gatt.get(uuid.value)
        if chars is None:
            return None
        return ClientService(self, uuid, chars)

    async def disconnected(self, timeout_ms=60000, disconnect=False):
        if not self._up:
            return
        if disconnect:
            self._radio._send({"op": "disconnect"})
            self._lost("local")
            return
        if not await _wait(self._gone, self._radio.clock, timeout_ms):
            raise asyncio.TimeoutError

    async def disconnect(self, timeout_ms=2000):
        await self.disconnected(timeout_ms, disconnect=True)

    def _lost(self, reason):
        if not self._up:
            return
        self._up = False
        self.reason = reason
        self.device._connection = None
        if self._radio._conn is self:
            self._radio._conn = None
        self._gone.set()
        for ev in self._waits:
            ev.set()
        for c in self._characteristics.values():
            c._notify_event.set()
            c._indicate_event.set()


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
        if "ble_rsp" in msg:
            rsp = msg["ble_rsp"]
            p = self._pending.pop(rsp.get("id"), None)
            if p is not None:
                p[1] = rsp
                p[0].set()
        elif "ble_evt" in msg:
            ev = msg["ble_evt"]
            conn = self._conn
            if conn is None:
                return
            kind = ev.get("evt")
            if kind == "disconnect":
                conn._lost(ev.get("reason", "remote"))
            elif kind in ("notify", "indicate"):
                c = conn._characteristics.get(ev.get("uuid"))
                if c is not None:   # aioble drops values for characteristics nobody looked up
                    c._arrive(kind, bytes.fromhex(ev.get("data", "")))
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

    async def _request(self, msg, timeout_ms, conn):
        """Send one request; its answer dict, or None after timeout_ms or a disconnection."""
        self._next_id += 1
        msg["id"] = self._next_id
        ev = asyncio.Event()
        p = self._pending[self._next_id] = [ev, None]
        if conn is not None:
            conn._waits.append(ev)
        self._send(msg)
        if self.link is not None and hasattr(self.link, "drain"):
            await self.link.drain()
        try:
            await _wait(ev, self.clock, timeout_ms)
        finally:
            self._pending.pop(msg["id"], None)
            if conn is not None:
                conn._waits.remove(ev)
        return p[1]
