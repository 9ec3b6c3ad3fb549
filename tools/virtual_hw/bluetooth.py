# HOST ONLY (never on a board): MicroPython's low-level `bluetooth` module, as a virtual BLE controller.
#
# The host board (firmware/hal/host.py) puts tools/virtual_hw/ on sys.path, so the real aioble from
# micropython-lib (.deps/lib, tools/install_deps.py) runs unmodified on the unix port over this module,
# exactly as it runs over NimBLE on an ESP32. Everything a sensor does on the air is played by the
# simulator (tools/sim.py, tools/simlib/peripheral.py) on the other end of the simulator link.
#
# The BLE object (bluetooth.BLE(), one per process) offers what aioble's central, client and security
# parts call: active, config, irq, gap_scan, gap_connect, gap_disconnect, gap_pair, gap_passkey,
# gattc_discover_services/characteristics/descriptors, gattc_read, gattc_write, gattc_exchange_mtu.
# IRQs come as NimBLE (MicroPython's ESP32 stack) delivers them:
#   - scan: one _IRQ_SCAN_RESULT per advert heard, a burst of adverts as consecutive IRQs before any
#     task runs (aioble's scan queue then hands them over newest first); _IRQ_SCAN_DONE at the end of
#     the scan's duration and also when gap_scan(None) stops it;
#   - gap_connect: _IRQ_PERIPHERAL_CONNECT, or when nobody answers within scan_duration_ms (2 s by
#     default) _IRQ_PERIPHERAL_DISCONNECT with conn_handle 0xFFFF (a failed connection);
#   - every GATT procedure waits for the peer; a peer that never answers gets NimBLE's ATT timeout:
#     after 30 s the procedure's DONE IRQ with status BLE_HS_ETIMEOUT (13), then the link is terminated;
#   - gap_pair: with mitm and a keyboard, _IRQ_PASSKEY_ACTION (input) and the answer via gap_passkey;
#     bonded keys go out through _IRQ_SET_SECRET and are asked for with _IRQ_GET_SECRET on the next
#     pairing (a bonded peer then re-encrypts without a passkey); _IRQ_ENCRYPTION_UPDATE ends it
#     (encrypted=False on failure, which aioble does not handle: its pair() times out).
# Times are board-clock ms (the host's scaled clock: attach() gives it).
#
# The link (JSON lines; `send` is given by attach()):
#   controller -> sim  {"ble": {"id": n, "op": OP, "addr": "aa:..", ...}}
#     OP connect | disconnect | services {uuid} | characteristics {start, end, uuid} |
#        descriptors {start, end} | read {handle} | write {handle, data, response} | mtu {mtu} |
#        pair {bond, mitm, passkey, key}            (uuid: int for 16-bit, hex string for 128-bit)
#   sim -> controller (feed() takes the parsed dict)
#     {"rsp": {"id": n, "status": 0|code, "items": [[...], ...], "data": "<hex>", "mtu": n, "key": "<hex>",
#              "authenticated": bool}}
#        items: services [start, end, uuid]; characteristics [end, value_handle, properties, uuid];
#        descriptors [handle, uuid]. connect answers status 0 or "no_device".
#     {"evt": {"evt": "notify"|"indicate", "addr": .., "handle": n, "data": "<hex>"}}
#     {"evt": {"evt": "disconnect", "addr": .., "reason": "..."}}
#     {"evt": [EVT, ...]}   events of one connection event (several notifications): consecutive IRQs
#     {"air": ADV | [ADV, ...]}  ADV = {"addr", "addr_type": 0|1, "adv_type": 0..4, "rssi", "adv": "<hex>"|null,
#                                       "every_ms": n}
#        A list is one burst (consecutive IRQs). every_ms > 0: the device keeps advertising this payload
#        every every_ms (re-heard while a scan runs) until the next ADV from that address; adv null
#        stops it. every_ms 0/absent: heard once.
# Host-only extras: attach(clock, send), feed(msg), wedge() (a stack that stops answering: the
# simulator's hang_radio injection), stats().
from micropython import const

import asyncio
import time

FLAG_BROADCAST = const(0x0001)
FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)

_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_SERVICE_RESULT = const(9)
_IRQ_GATTC_SERVICE_DONE = const(10)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_DESCRIPTOR_RESULT = const(13)
_IRQ_GATTC_DESCRIPTOR_DONE = const(14)
_IRQ_GATTC_READ_RESULT = const(15)
_IRQ_GATTC_READ_DONE = const(16)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_GATTC_NOTIFY = const(18)
_IRQ_GATTC_INDICATE = const(19)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)

_PASSKEY_ACTION_INPUT = const(2)
_IO_KEYBOARD_ONLY = const(2)
_IO_KEYBOARD_DISPLAY = const(4)
_SEC_PEER = const(2)              # NimBLE's store object type for a peer's bonding keys

# Between two scan windows a board is deaf for well under a millisecond, but here the next window starts
# when the radio task next runs: a few real ms on a loaded machine, seconds of scenario time at a high
# speed. An advert heard once in that gap (a capture replay sends each frame once) would be lost where a
# board's device, repeating it, is heard in the next window. So adverts heard once between windows are
# kept in arrival order (a burst stays whole), a few at most, and heard when the next window starts
# within this much real time.
_GAP_REAL_MS = const(100)
_GAP_KEEP = const(16)
_ATT_TIMEOUT_MS = const(30000)    # Core spec Vol 3 Part F 3.3.3: a transaction not answered in 30 s
_SMP_TIMEOUT_MS = const(30000)    # Core spec Vol 3 Part H 3.4: the same for pairing
_CONNECT_SCAN_MS = const(2000)    # MicroPython's default gap_connect scan_duration_ms
_BLE_HS_ETIMEOUT = const(13)
_BLE_HS_ENOTCONN = const(7)
_NO_HANDLE = const(0xFFFF)
_MTU_DEFAULT = const(23)


class UUID:
    """bluetooth.UUID: from an int (16-bit), 2 or 16 bytes (little-endian, as on the air), a string
    ("0x181f", or 128-bit "xxxxxxxx-xxxx-..."), or another UUID. Equal by value."""

    def __init__(self, value):
        if isinstance(value, UUID):
            value = value._v
        elif isinstance(value, (bytes, bytearray, memoryview)):
            b = bytes(value)
            value = b[0] | b[1] << 8 if len(b) == 2 else b
        elif isinstance(value, str):
            s = value.replace("-", "")
            value = int(s, 16) if len(s) <= 6 else bytes(reversed(bytes.fromhex(s)))
        self._v = value

    def __eq__(self, other):
        return isinstance(other, UUID) and other._v == self._v

    def __hash__(self):
        return hash(self._v)

    def __repr__(self):
        if isinstance(self._v, int):
            return "UUID(0x%04x)" % self._v
        return "UUID(%r)" % self._v

    def wire(self):
        """What goes on the simulator link: an int, or 32 hex digits (big-endian text form)."""
        if isinstance(self._v, int):
            return self._v
        return bytes(reversed(self._v)).hex()


_wire_uuid = UUID


def _hex(addr):
    return ":".join("%02x" % b for b in addr)


def _addr(text):
    return bytes(int(p, 16) for p in text.split(":"))


class _Conn:
    def __init__(self, handle, addr_type, addr):
        self.handle = handle
        self.addr_type = addr_type
        self.addr = addr
        self.up = True
        self.passkey = None
        self.passkey_wait = None


class _Controller:
    def __init__(self):
        self.clock = None
        self.send = None
        self.handler = None
        self.is_active = False
        self.cfg = {"mtu": _MTU_DEFAULT, "bond": True, "le_secure": True, "mitm": False, "io": 3,
                    "gap_name": b"nightstand", "addr_mode": 0, "mac": (0, b"\x24\x0a\xc4\x00\x00\x01")}
        self.scan_gen = 0            # bumped by every gap_scan(): stale timers do nothing
        self.scanning = False
        self.advertisers = {}        # addr bytes -> [addr_type, adv_type, rssi, adv bytes, every_ms, gen]
        self.conns = {}              # conn_handle -> _Conn
        self.connecting = None       # (addr_type, addr, attempt number)
        self.attempts = 0
        self.next_handle = 1
        self.next_id = 0
        self.pending = {}            # request id -> (conn, callback(rsp or None))
        self.wedged = False
        self.gap = []                # [(ticks_ms real, IRQ data)] heard between two windows, in order
        self.peer_real_ms = 0
        self.heard = 0               # adverts delivered as IRQs (stats)
        self.missed = 0              # adverts on the air while no scan ran

    # ---- plumbing ---------------------------------------------------------------------------------
    def irq(self, event, data):
        if self.handler is not None:
            return self.handler(event, data)

    def later(self, ms, fn, *args, peer=False):
        async def run():
            await (self.sleep_peer(ms) if peer else self.sleep(ms))
            fn(*args)
        asyncio.create_task(run())

    async def sleep_peer(self, ms):
        """A wait for the peer (the other end of the simulator link): never shorter than peer_real_ms
        of real time, or at a high speed the link's own round trip would look like a silent peer."""
        speed = self.clock.speed if self.clock is not None else 1
        await asyncio.sleep_ms(max(int(ms / speed), self.peer_real_ms))

    async def sleep(self, ms):
        if self.clock is None:
            await asyncio.sleep_ms(ms)
        else:
            await self.clock.sleep_ms(ms)

    def request(self, conn, msg, cb, timeout_ms=_ATT_TIMEOUT_MS):
        """Send one request to the peer; cb(rsp) with its answer, or cb(None) after timeout_ms."""
        self.next_id += 1
        rid = self.next_id
        msg["id"] = rid
        if conn is not None:
            msg["addr"] = _hex(conn.addr)
        self.pending[rid] = (conn, cb)
        if self.send is not None:
            self.send({"ble": msg})
        if timeout_ms:
            self.later(timeout_ms, self._expire, rid, peer=True)
        return rid

    def _expire(self, rid):
        p = self.pending.pop(rid, None)
        if p is not None:
            p[1](None)

    def _answer(self, rsp):
        if self.wedged:
            return
        p = self.pending.pop(rsp.get("id"), None)
        if p is None:
            return   # answered after its timeout: NimBLE has forgotten the procedure
        if p[0] is not None and not p[0].up:
            return
        p[1](rsp)

    def scan_irq(self, event, data):
        # Delivered at once, in the caller's context: MicroPython's NimBLE binding on the ESP32 runs IRQ
        # handlers synchronously as events arrive (MICROPY_PY_BLUETOOTH_USE_SYNC_EVENTS), so adverts heard
        # together reach aioble's scan queue back to back, before its task runs. No ring here, so no
        # buffer of this module's own is spent on a flood (aioble's queue holds what its task has not
        # taken yet, as on a board).
        self.irq(event, data)

    # ---- air ---------------------------------------------------------------------------------------
    def hear(self, adv):
        addr = _addr(adv["addr"])
        data = adv.get("adv")
        every = adv.get("every_ms") or 0
        if every or data is None:
            self.advertisers.pop(addr, None)
            if data is None:
                return
            entry = [adv.get("addr_type", 0), adv.get("adv_type", 0), adv.get("rssi", -60),
                     bytes.fromhex(data), every, 0]
            self.advertisers[addr] = entry
            if self.scanning:
                self._deliver(addr, entry)
                self._repeat(addr, entry)
            return
        irq = (adv.get("addr_type", 0), addr, adv.get("adv_type", 3), adv.get("rssi", -70), bytes.fromhex(data))
        if self.scanning and not self.wedged:
            self.heard += 1
            self.scan_irq(_IRQ_SCAN_RESULT, irq)
        elif self.is_active and not self.wedged and self.scan_gen:
            if len(self.gap) >= _GAP_KEEP:
                self.gap.pop(0)
                self.missed += 1
            self.gap.append((time.ticks_ms(), irq))
        else:
            self.missed += 1

    def _deliver(self, addr, e):
        if self.scanning and not self.wedged and self.advertisers.get(addr) is e:
            self.heard += 1
            self.scan_irq(_IRQ_SCAN_RESULT, (e[0], addr, e[1], e[2], e[3]))

    def _repeat(self, addr, e):
        e[5] += 1
        gen, scan = e[5], self.scan_gen

        async def run():
            while True:
                await self.sleep(e[4])
                if e[5] != gen or scan != self.scan_gen or self.advertisers.get(addr) is not e:
                    return
                self._deliver(addr, e)
        asyncio.create_task(run())

    def scan_start(self, duration_ms):
        self.scan_gen += 1
        self.scanning = True
        gen = self.scan_gen
        if duration_ms:
            self.later(duration_ms, self._scan_end, gen)
        gap, self.gap = self.gap, []
        now = time.ticks_ms()
        for t, irq in gap:
            if time.ticks_diff(now, t) <= _GAP_REAL_MS:
                self.heard += 1
                self.scan_irq(_IRQ_SCAN_RESULT, irq)
            else:
                self.missed += 1
        # Advertisers in range are heard at once (a scan window soon meets their next advert), then
        # every advertising interval for as long as the scan runs.
        for addr, e in list(self.advertisers.items()):
            self._deliver(addr, e)
            self._repeat(addr, e)

    def _scan_end(self, gen):
        if gen != self.scan_gen or not self.scanning or self.wedged:
            return   # a wedged stack never says the scan is over
        self.scanning = False
        self.scan_irq(_IRQ_SCAN_DONE, ())

    def scan_stop(self):
        self.scan_gen += 1
        if self.scanning:
            self.scanning = False
            self.irq(_IRQ_SCAN_DONE, ())

    # ---- connections -------------------------------------------------------------------------------
    def connect(self, addr_type, addr, scan_ms):
        self.attempts += 1
        attempt = self.attempts
        self.connecting = (addr_type, bytes(addr), attempt)

        def answered(rsp):
            if self.connecting is None or self.connecting[2] != attempt:
                if rsp is not None and rsp.get("status") == 0:
                    self.request(None, {"op": "disconnect", "addr": _hex(addr)}, lambda r: None, 0)
                return
            if rsp is None or rsp.get("status") != 0:
                return   # nobody there: the attempt ends at its deadline below
            self.connecting = None
            h = self.next_handle
            self.next_handle += 1
            self.conns[h] = _Conn(h, addr_type, bytes(addr))
            self.irq(_IRQ_PERIPHERAL_CONNECT, (h, addr_type, bytes(addr)))

        def deadline():
            if self.connecting is not None and self.connecting[2] == attempt:
                self.connecting = None
                self.irq(_IRQ_PERIPHERAL_DISCONNECT, (_NO_HANDLE, addr_type, bytes(addr)))

        self.request(None, {"op": "connect", "addr": _hex(addr)}, answered, 0)
        self.later(scan_ms or _CONNECT_SCAN_MS, deadline, peer=True)

    def lost(self, conn, why=None):
        if not conn.up:
            return
        conn.up = False
        self.conns.pop(conn.handle, None)
        for rid in [r for r, p in self.pending.items() if p[0] is conn]:
            self.pending.pop(rid)[1]({"status": _BLE_HS_ENOTCONN, "gone": True})
        self.irq(_IRQ_PERIPHERAL_DISCONNECT, (conn.handle, conn.addr_type, conn.addr))

    def conn_by_addr(self, text):
        a = _addr(text)
        for c in self.conns.values():
            if c.addr == a:
                return c
        return None

    def event(self, ev):
        if self.wedged:
            return
        conn = self.conn_by_addr(ev.get("addr", "00:00:00:00:00:00"))
        if conn is None:
            return
        kind = ev.get("evt")
        if kind == "disconnect":
            self.lost(conn, ev.get("reason"))
        elif kind in ("notify", "indicate"):
            self.irq(_IRQ_GATTC_NOTIFY if kind == "notify" else _IRQ_GATTC_INDICATE,
                     (conn.handle, ev["handle"], bytes.fromhex(ev.get("data", ""))))

    # ---- GATT client -------------------------------------------------------------------------------
    def conn(self, handle):
        c = self.conns.get(handle)
        if c is None:
            raise OSError(_BLE_HS_ENOTCONN)
        return c

    def procedure(self, conn, msg, on_item, result_irq, done_irq, done_args):
        """A discovery, read or write: results then a DONE IRQ; NimBLE's ATT timeout ends the link."""
        def answered(rsp):
            if rsp is None:
                self.irq(done_irq, (conn.handle,) + done_args + (_BLE_HS_ETIMEOUT,))
                self.request(None, {"op": "disconnect", "addr": _hex(conn.addr)}, lambda r: None, 0)
                self.lost(conn, "att_timeout")
                return
            if rsp.get("gone"):
                return   # the disconnect IRQ says it
            status = rsp.get("status", 0)
            if status == 0 and result_irq is not None:
                for item in rsp.get("items", ()) if on_item else (rsp,):
                    self.irq(result_irq, (conn.handle,) + (on_item(item) if on_item else
                                                           done_args + (bytes.fromhex(rsp.get("data", "")),)))
            if done_irq is not None:
                self.irq(done_irq, (conn.handle,) + done_args + (status if type(status) is int else 1,))
        self.request(conn, msg, answered)

    def pair(self, conn):
        cfg = self.cfg
        key = bytes((conn.addr_type,)) + conn.addr
        stored = self.irq(_IRQ_GET_SECRET, (_SEC_PEER, 0, key))
        msg = {"op": "pair", "bond": bool(cfg["bond"]), "mitm": bool(cfg["mitm"])}
        if stored:
            msg["key"] = bytes(stored).hex()

        def done(rsp):
            if not conn.up:
                return
            if rsp is None or rsp.get("status") != 0:
                self.irq(_IRQ_ENCRYPTION_UPDATE, (conn.handle, False, False, False, 0))
                return
            if rsp.get("key") and cfg["bond"]:
                self.irq(_IRQ_SET_SECRET, (_SEC_PEER, key, bytes.fromhex(rsp["key"])))
            self.irq(_IRQ_ENCRYPTION_UPDATE, (conn.handle, True, bool(rsp.get("authenticated")),
                                              bool(cfg["bond"] and rsp.get("key")), 16))

        def go():
            if conn.up:
                msg["passkey"] = conn.passkey
                self.request(conn, msg, done, _SMP_TIMEOUT_MS)

        if not stored and cfg["mitm"] and cfg["io"] in (_IO_KEYBOARD_ONLY, _IO_KEYBOARD_DISPLAY):
            # Passkey entry: the stack asks the application, which answers with gap_passkey().
            conn.passkey = None
            conn.passkey_wait = go
            self.irq(_IRQ_PASSKEY_ACTION, (conn.handle, _PASSKEY_ACTION_INPUT, 0))
            if conn.passkey_wait is not None:
                # Nobody answered at once: the SMP timeout ends the wait (the peer sees no passkey).
                def give_up():
                    if conn.passkey_wait is not None:
                        conn.passkey_wait = None
                        go()
                self.later(_SMP_TIMEOUT_MS, give_up, peer=True)
        else:
            go()


_ctl = _Controller()


class _BLE:
    """The one BLE object (MicroPython's bluetooth.BLE() is a singleton too)."""

    def active(self, value=None):
        if value is not None:
            _ctl.is_active = bool(value)
            if not value:
                _ctl.scan_stop()
                for c in list(_ctl.conns.values()):
                    _ctl.lost(c)
        return _ctl.is_active

    def config(self, *args, **kw):
        if args:
            if args[0] not in _ctl.cfg:
                raise ValueError("unknown config param")
            return _ctl.cfg[args[0]]
        for k in kw:
            _ctl.cfg[k] = kw[k]

    def irq(self, handler):
        _ctl.handler = handler

    def _need_active(self):
        if not _ctl.is_active:
            raise OSError(1)   # EPERM: the stack is off

    def gap_scan(self, duration_ms, interval_us=1280000, window_us=11250, active=False):
        self._need_active()
        if duration_ms is None:
            _ctl.scan_stop()
        else:
            _ctl.scan_start(duration_ms)

    def gap_connect(self, addr_type, addr, scan_duration_ms=None, min_conn_interval_us=None,
                    max_conn_interval_us=None):
        self._need_active()
        if _ctl.connecting is not None:
            raise OSError(114)   # EALREADY: one connection attempt at a time
        _ctl.scan_stop()
        _ctl.connect(addr_type, addr, scan_duration_ms)

    def gap_disconnect(self, conn_handle):
        c = _ctl.conns.get(conn_handle)
        if c is None:
            return False
        _ctl.request(c, {"op": "disconnect"}, lambda r: None, 0)
        _ctl.later(1, _ctl.lost, c, "local")
        return True

    def gap_pair(self, conn_handle):
        _ctl.pair(_ctl.conn(conn_handle))

    def gap_passkey(self, conn_handle, action, passkey):
        c = _ctl.conn(conn_handle)
        c.passkey = passkey
        go, c.passkey_wait = c.passkey_wait, None
        if go is not None:
            _ctl.later(1, go)

    def gattc_discover_services(self, conn_handle, uuid=None):
        c = _ctl.conn(conn_handle)
        _ctl.procedure(c, {"op": "services", "uuid": None if uuid is None else UUID(uuid).wire()},
                       lambda it: (it[0], it[1], _wire_uuid(it[2])),
                       _IRQ_GATTC_SERVICE_RESULT, _IRQ_GATTC_SERVICE_DONE, ())

    def gattc_discover_characteristics(self, conn_handle, start_handle, end_handle, uuid=None):
        c = _ctl.conn(conn_handle)
        _ctl.procedure(c, {"op": "characteristics", "start": start_handle, "end": end_handle,
                           "uuid": None if uuid is None else UUID(uuid).wire()},
                       lambda it: (it[0], it[1], it[2], _wire_uuid(it[3])),
                       _IRQ_GATTC_CHARACTERISTIC_RESULT, _IRQ_GATTC_CHARACTERISTIC_DONE, ())

    def gattc_discover_descriptors(self, conn_handle, start_handle, end_handle):
        c = _ctl.conn(conn_handle)
        _ctl.procedure(c, {"op": "descriptors", "start": start_handle, "end": end_handle},
                       lambda it: (it[0], _wire_uuid(it[1])),
                       _IRQ_GATTC_DESCRIPTOR_RESULT, _IRQ_GATTC_DESCRIPTOR_DONE, ())

    def gattc_read(self, conn_handle, value_handle):
        c = _ctl.conn(conn_handle)
        _ctl.procedure(c, {"op": "read", "handle": value_handle}, None,
                       _IRQ_GATTC_READ_RESULT, _IRQ_GATTC_READ_DONE, (value_handle,))

    def gattc_write(self, conn_handle, value_handle, data, mode=0):
        c = _ctl.conn(conn_handle)
        msg = {"op": "write", "handle": value_handle, "data": bytes(data).hex(), "response": bool(mode)}
        if mode:
            _ctl.procedure(c, msg, None, None, _IRQ_GATTC_WRITE_DONE, (value_handle,))
        else:
            _ctl.request(c, msg, lambda r: None, 0)   # write without response: no answer, no IRQ

    def gattc_exchange_mtu(self, conn_handle):
        c = _ctl.conn(conn_handle)

        def done(rsp):
            if rsp is not None and not rsp.get("gone"):
                _ctl.irq(_IRQ_MTU_EXCHANGED, (c.handle, min(_ctl.cfg["mtu"], rsp.get("mtu", _MTU_DEFAULT))))
        _ctl.request(c, {"op": "mtu", "mtu": _ctl.cfg["mtu"]}, done)


_the = _BLE()


def BLE():
    return _the


# ---- host-only -------------------------------------------------------------------------------------
def attach(clock, send, peer_real_ms=0):
    """The host board: the scaled clock for every controller timer, the link to the simulator, and the
    shortest real time a wait for the peer may take (see _Controller.sleep_peer)."""
    _ctl.clock = clock
    _ctl.send = send
    _ctl.peer_real_ms = peer_real_ms


def feed(msg):
    """One parsed message from the simulator (see the header)."""
    if "rsp" in msg:
        _ctl._answer(msg["rsp"])
    elif "evt" in msg:
        e = msg["evt"]
        for ev in (e if isinstance(e, list) else (e,)):
            _ctl.event(ev)
    elif "air" in msg:
        a = msg["air"]
        for adv in (a if isinstance(a, list) else (a,)):
            _ctl.hear(adv)


def wedge():
    """A BLE stack that stops answering: no scan result, no end of a scan, no GATT answer."""
    _ctl.wedged = True


def stats():
    return {"heard": _ctl.heard, "missed": _ctl.missed, "advertisers": len(_ctl.advertisers),
            "pending": len(_ctl.pending)}
