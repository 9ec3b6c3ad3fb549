# The GATT central half of the host board's aioble stand-in (firmware/hal/virtual_aioble.py has the
# scan half, the message formats and the behaviour copied from aioble). Imported on the first
# Device.connect() or GATT message, so a host gateway with a broadcast sensor never loads it: the
# whole central is host stand-in heap (tools/heap_profile.py) that the ESP32 does not spend.
import asyncio

from firmware.core import ticks
from firmware.hal.virtual_aioble import DeviceDisconnectedError, GattError, _IRQ_PASSKEY_ACTION, \
    _PASSKEY_ACTION_INPUT

try:
    from collections import deque
except ImportError:  # pragma: no cover
    deque = None

_FLAG_READ = 0x02
_FLAG_WRITE_NO_RESPONSE = 0x04
_FLAG_WRITE = 0x08
_FLAG_NOTIFY = 0x10
_FLAG_INDICATE = 0x20


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


async def connect(device, timeout_ms=10000):
    """Device.connect() for the scan side's Device (virtual_aioble.py)."""
    if device._connection is not None:
        return device._connection
    radio = device._radio
    radio._cancel_scan()
    t0 = radio.clock.ticks_ms()
    rsp = await request(radio, {"op": "connect", "addr": device.addr_hex()}, timeout_ms, None)
    if rsp is None or rsp.get("status") != 0:
        # Nobody at that address: the controller keeps trying until the timeout, then gives up.
        left = timeout_ms - ticks.diff(radio.clock.ticks_ms(), t0)
        if left > 0:
            await _wait(asyncio.Event(), radio.clock, left)
        raise asyncio.TimeoutError
    conn = DeviceConnection(device, radio, rsp.get("gatt") or {})
    device._connection = conn
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
        rsp = await request(self._radio, msg, timeout_ms, self)
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


def from_sim(radio, msg):
    """VirtualRadio.from_sim for GATT answers and events from the simulated peripheral."""
    if "ble_rsp" in msg:
        rsp = msg["ble_rsp"]
        p = radio._pending.pop(rsp.get("id"), None)
        if p is not None:
            p[1] = rsp
            p[0].set()
    elif "ble_evt" in msg:
        ev = msg["ble_evt"]
        conn = radio._conn
        if conn is None:
            return
        kind = ev.get("evt")
        if kind == "disconnect":
            conn._lost(ev.get("reason", "remote"))
        elif kind in ("notify", "indicate"):
            c = conn._characteristics.get(ev.get("uuid"))
            if c is not None:   # aioble drops values for characteristics nobody looked up
                c._arrive(kind, bytes.fromhex(ev.get("data", "")))


async def request(radio, msg, timeout_ms, conn):
    """Send one request over the radio's link; its answer dict, or None after timeout_ms or a
    disconnection."""
    radio._next_id += 1
    msg["id"] = radio._next_id
    ev = asyncio.Event()
    p = radio._pending[radio._next_id] = [ev, None]
    if conn is not None:
        conn._waits.append(ev)
    radio._send(msg)
    if radio.link is not None and hasattr(radio.link, "drain"):
        await radio.link.drain()
    try:
        await _wait(ev, radio.clock, timeout_ms)
    finally:
        radio._pending.pop(msg["id"], None)
        if conn is not None:
            conn._waits.remove(ev)
    return p[1]
