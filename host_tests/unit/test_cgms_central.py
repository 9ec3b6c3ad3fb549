# The CGMS central (firmware/shell/cgms_central.py) against a fake aioble on CPython, plus the tracker's
# handling of notifications lost during a backfill. The fake copies the aioble behaviour the central
# relies on (micropython-lib aioble central.py, device.py, client.py, security.py):
#   - a characteristic keeps the newest notification only: deque of 1 in `_notify_queue`, woken like
#     a ThreadSafeFlag only when the queue goes from empty to one item;
#   - a disconnection makes every operation waiting on the connection raise DeviceDisconnectedError;
#   - a failed pairing is never reported: pair() just times out;
#   - the passkey is given from an IRQ handler registered with core.register_irq_handler;
#   - discovery ignores its timeout_ms: only `with conn.timeout(ms)` bounds it (DeviceTimeout cancels
#     the waiting task and raises asyncio.TimeoutError).
# The same central runs on the real aioble in the simulator tests (test_sim_sensors.py).
import asyncio
import os
import sys
from collections import deque

import pytest

from host_tests.paths import ROOT
from host_tests.aioble_fakes import UUID, DeviceDisconnectedError, GattError, LinkState
sys.path.insert(0, os.path.join(ROOT, "tools"))

from firmware.sensor import cgms
from firmware.shell import cgms_central
from simlib.cgms_peer import encode_record, feature_value

ADDR = "c4:7a:01:22:33:44"
SPEED = 200          # fake clock ms per real ms: a 60 s backoff takes 0.3 s
MIN = 60000


class Clock:
    def __init__(self):
        self.t0 = asyncio.get_event_loop().time()
        self.sleeps = []
        self.skipped = 0

    def skip(self, ms):
        """Time passes (the sensor out of range for a while) without waiting for it."""
        self.skipped += ms

    def ticks_ms(self):
        real = (asyncio.get_event_loop().time() - self.t0) * 1000 * SPEED
        return int(real + self.skipped) & 0x3FFFFFFF

    def wall_ms(self):
        return 1700000000000 + self.ticks_ms()

    async def sleep_ms(self, ms):
        self.sleeps.append(ms)
        await asyncio.sleep(ms / 1000 / SPEED)


class Core:
    def __init__(self):
        self.handlers = []
        self.ble = self
        self.passkeys = []

    def register_irq_handler(self, irq, shutdown):
        self.handlers.append(irq)

    def gap_passkey(self, conn_handle, action, passkey):
        self.passkeys.append((conn_handle, action, passkey))


class Peer:
    """The sensor: stores every record, notifies when connected, answers the RACP."""

    def __init__(self, passkey=123456, crc=True, expose_queue=True):
        self.passkey, self.crc, self.expose_queue = passkey, crc, expose_queue
        self.records = []
        self.in_range = True
        self.conn = None
        self.racp = []          # RACP commands received
        self.lose = set()       # offsets whose report notification arrives on top of the next one
        self.bad_feature = False
        self.stall = 0          # connections on which service discovery never answers

    def measure(self, offset, mgdl, bad_crc=False):
        rec = encode_record(offset, mgdl, None, self.crc)
        self.records.append((offset, rec))
        if bad_crc:
            rec = rec[:-1] + bytes((rec[-1] ^ 1,))   # damaged on the air; the stored copy is sound
        c = self.conn
        if c is not None and c.meas is not None and c.meas.subscribed:
            c.meas.arrive(rec)

    def leave(self):
        self.in_range = False
        if self.conn is not None:
            self.conn.drop()

    async def report(self, conn, since, last):
        recs = [r for o, r in self.records if o >= since]
        lost = [o for o, r in self.records if o >= since]
        if last:
            recs, lost = recs[-1:], lost[-1:]
        held = None
        for off, rec in zip(lost, recs):
            if off in self.lose:
                self.lose.discard(off)
                held = rec            # overwritten by the next one before the central looks
                continue
            if held is not None:
                conn.meas.arrive(held)
                held = None
            conn.meas.arrive(rec)
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.002)
        conn.racp_char.arrive(bytes((6, 0, 1, 1 if recs else 6)), indicate=True)


class Char:
    def __init__(self, conn, uuid, props):
        self.conn, self.uuid, self.properties = conn, uuid, props
        # aioble's own attribute names (client.py), or private ones for "aioble internals changed"
        self._qname = "_notify_queue" if conn.peer.expose_queue else "_private_q"
        self._evname = "_notify_event" if conn.peer.expose_queue else "_private_ev"
        setattr(self, self._qname, deque((), 1))
        setattr(self, self._evname, asyncio.Event())
        self._iq = deque((), 1)
        self._iev = asyncio.Event()
        self.subscribed = False

    def arrive(self, data, indicate=False):
        q, ev = (self._iq, self._iev) if indicate else (getattr(self, self._qname), self._ev())
        wake = len(q) == 0
        q.append(data)
        if wake:
            ev.set()

    async def _take(self, q, ev, timeout_ms):
        if len(q) <= 1:
            await self.conn.wait(ev, timeout_ms)
            ev.clear()
        return q.popleft()

    def _ev(self):
        return getattr(self, self._evname)

    async def notified(self, timeout_ms=None):
        return await self._take(getattr(self, self._qname), self._ev(), timeout_ms)

    async def indicated(self, timeout_ms=None):
        return await self._take(self._iq, self._iev, timeout_ms)

    async def read(self, timeout_ms=1000):
        self.conn.check()
        v = feature_value(self.conn.peer.crc)
        return v[:-1] + b"\x00" if self.conn.peer.bad_feature else v

    async def subscribe(self, notify=True, indicate=False):
        self.conn.check()
        self.subscribed = notify or indicate

    async def write(self, data, response=False, timeout_ms=1000):
        self.conn.check()
        peer = self.conn.peer
        peer.racp.append(bytes(data))
        if data == b"\x01\x06":
            asyncio.ensure_future(peer.report(self.conn, 0, True))
        else:
            asyncio.ensure_future(peer.report(self.conn, data[3] | data[4] << 8, False))


class Service:
    def __init__(self, conn):
        self.conn = conn

    async def characteristic(self, uuid, timeout_ms=2000):
        c = self.conn
        if uuid.v == 0x2AA7:
            c.meas = c.meas or Char(c, uuid, 0x10)
            return c.meas
        if uuid.v == 0x2AA8:
            return Char(c, uuid, 0x02)
        if uuid.v == 0x2A52:
            c.racp_char = c.racp_char or Char(c, uuid, 0x28)
            return c.racp_char
        return None


class Connection(LinkState):
    def __init__(self, ble, peer):
        LinkState.__init__(self)
        self.ble, self.peer = ble, peer
        self.meas = self.racp_char = None

    def drop(self):
        self.gone.set()
        self.peer.conn = None

    async def wait(self, ev, timeout_ms):
        self.check()
        tasks = [asyncio.ensure_future(ev.wait()), asyncio.ensure_future(self.gone.wait())]
        t = None if timeout_ms is None else timeout_ms / 1000 / SPEED
        done, pending = await asyncio.wait(tasks, timeout=t, return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()
        self.check()
        if not done:
            raise asyncio.TimeoutError

    async def pair(self, bond=True, le_secure=True, mitm=False, io=3, timeout_ms=20000):
        core = self.ble.core
        before = len(core.passkeys)
        for h in core.handlers:
            h(31, (7, 2, 0))   # _IRQ_PASSKEY_ACTION, conn 7, action INPUT
        given = core.passkeys[before][2] if len(core.passkeys) > before else None
        if self.peer.passkey is not None and given != self.peer.passkey:
            await self.wait(asyncio.Event(), timeout_ms)   # never encrypted: aioble times out
        self.encrypted = True

    async def service(self, uuid, timeout_ms=2000):
        if self.peer.stall:
            self.peer.stall -= 1
            await asyncio.Event().wait()   # aioble ignores timeout_ms here: only conn.timeout() ends it
        return Service(self) if uuid.v == 0x181F else None

    def timeout(self, timeout_ms):
        return DeviceTimeout(timeout_ms)

    async def disconnect(self, timeout_ms=2000):
        self.ble.log.append("disconnect")
        self.drop()


class DeviceTimeout:
    """aioble's DeviceTimeout: after timeout_ms the waiting task is cancelled, then TimeoutError."""

    def __init__(self, timeout_ms):
        self.ms, self.task, self.fired, self.handle = timeout_ms, asyncio.current_task(), False, None

    def __enter__(self):
        self.handle = asyncio.get_event_loop().call_later(self.ms / 1000 / SPEED, self._fire)

    def _fire(self):
        self.fired = True
        self.task.cancel()

    def __exit__(self, exc_type, exc, tb):
        self.handle.cancel()
        if exc_type is asyncio.CancelledError and self.fired:
            self.task.uncancel()
            raise asyncio.TimeoutError


class Device:
    def __init__(self, ble, addr):
        self.ble, self.addr, self.addr_type = ble, addr, 1

    async def connect(self, timeout_ms=10000):
        ble = self.ble
        assert ble.scanning == 0, "connect while a scan runs (aioble cancels it; the central must not rely on it)"
        ble.log.append("connect")
        if not ble.peer.in_range:
            await asyncio.sleep(timeout_ms / 1000 / SPEED)
            raise asyncio.TimeoutError
        c = Connection(ble, ble.peer)
        ble.peer.conn = c
        ble.connections.append(c)
        return c


class Result:
    def __init__(self, device):
        self.device, self.adv_data, self.rssi = device, b"\x02\x01\x06\x03\x03\x1f\x18", -60


class Scan:
    def __init__(self, ble, duration_ms):
        self.ble, self.duration_ms = ble, duration_ms

    async def __aenter__(self):
        self.ble.scanning += 1
        self.ble.log.append("scan")
        return self

    async def __aexit__(self, *exc):
        self.ble.scanning -= 1

    def __aiter__(self):
        self.items = [Result(Device(self.ble, bytes(6)))]   # a neighbour first
        if self.ble.peer.in_range and self.ble.peer.conn is None:
            self.items.append(Result(Device(self.ble, bytes.fromhex(ADDR.replace(":", "")))))
        return self

    async def __anext__(self):
        if self.items:
            return self.items.pop(0)
        await asyncio.sleep(self.duration_ms / 1000 / SPEED)
        raise StopAsyncIteration


class FakeAioble:
    DeviceDisconnectedError = DeviceDisconnectedError
    GattError = GattError
    UUID = UUID

    def __init__(self, peer):
        self.peer = peer
        self.core = Core()
        self.log = []
        self.scanning = 0
        self.connections = []

    def scan(self, duration_ms, interval_us=None, window_us=None, active=False):
        self.scan_args = (duration_ms, interval_us, window_us, active)
        return Scan(self, duration_ms)

    def Device(self, addr_type, addr):   # aioble.Device, a class there
        return Device(self, addr)


class Gw:
    def __init__(self):
        self.readings, self.rejects = [], []

    def on_reading(self, now, r):
        self.readings.append(r)

    def on_reject(self, now, reason):
        self.rejects.append(reason)


class Board:
    def __init__(self, ble):
        self.ble = ble
        self.events = []
        self.clock = None

    def emit(self, ev):
        ev["_sleeps"] = len(self.clock.sleeps)   # where in the clock's sleeps this happened
        ev["_t"] = self.clock.ticks_ms()
        self.events.append(ev)


class Sup:
    def __init__(self):
        self.checkins = 0

    def checkin(self, name):
        assert name == "radio"
        self.checkins += 1


class App:
    def __init__(self, peer, passkey=123456):
        self.board = Board(FakeAioble(peer))
        self.clock = Clock()
        self.board.clock = self.clock
        self.gw = Gw()
        self.sup = Sup()
        self.cfg = {"sensor": {"kind": "cgms", "address": ADDR, "passkey": passkey}}
        self.receiver = cgms.CgmsTracker(ADDR)

    def flush(self):
        pass

    def states(self):
        return [(e["state"], e.get("why")) for e in self.board.events if e["event"] == "cgms"]


@pytest.fixture(autouse=True)
def _fresh_passkey_hook():
    cgms_central._hooked[:] = []   # one IRQ handler per aioble module; each test has its own fake
    yield


async def _until(pred, real_s=10.0):   # a bound on a hang, not a speed claim: CI is loaded
    end = asyncio.get_event_loop().time() + real_s
    while not pred():
        assert asyncio.get_event_loop().time() < end, "timed out waiting"
        await asyncio.sleep(0.002)


def _run(scenario, peer, **kw):
    async def main():
        app = App(peer, **kw)
        task = asyncio.ensure_future(cgms_central.central_task(app))
        try:
            await scenario(app)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return app
    return asyncio.run(main())


def _seqs(app):
    return [(r.seq, r.backfilled) for r in app.gw.readings]


def test_connects_bonds_with_the_passkey_and_delivers_live_readings():
    peer = Peer()
    peer.measure(600, 120)   # measured before the gateway was up

    async def scenario(app):
        await _until(lambda: peer.conn is not None and peer.conn.meas and peer.conn.meas.subscribed)
        await _until(lambda: len(app.gw.readings) == 1)   # the newest stored record, at once
        peer.measure(605, 118)
        peer.measure(610, 116)
        await _until(lambda: len(app.gw.readings) == 3)
        assert app.sup.checkins > 0
    app = _run(scenario, peer)
    assert _seqs(app) == [(600, False), (605, False), (610, False)]
    assert [r.mgdl for r in app.gw.readings] == [120, 118, 116]
    assert app.board.ble.core.passkeys[0][1:] == (2, 123456)
    assert peer.racp[0] == b"\x01\x06"              # "report the last record"
    assert ("connected", None) in app.states()
    log = app.board.ble.log
    assert log[:2] == ["scan", "connect"]           # the scan window ended before connecting
    assert app.board.ble.scan_args[1:] == (100000, 30000, False)  # 30 % duty, passive: Wi-Fi keeps 70 %


def test_out_of_range_then_back_backfills_the_gap_in_order():
    peer = Peer()
    peer.measure(600, 120)

    async def scenario(app):
        await _until(lambda: len(app.gw.readings) == 1)
        peer.leave()
        await _until(lambda: ("disconnected", "session") in app.states())
        for off, v in ((605, 100), (610, 80), (615, 65), (620, 70)):
            peer.measure(off, v)
        app.clock.skip(21 * MIN)
        peer.in_range = True
        await _until(lambda: len(app.gw.readings) == 5)
        await _until(lambda: app.receiver.gaps == [] and app.receiver.requested is None)
    app = _run(scenario, peer)
    # the newest one is a minute old: it counts as live (it may alarm); the others never alarm
    assert _seqs(app) == [(600, False), (605, True), (610, True), (615, True), (620, False)]
    assert peer.racp[-1] == cgms.racp_report_since(601)
    # backfilled readings carry the time the sensor measured them
    walls = [r.wall_ms for r in app.gw.readings]
    assert [b - a for a, b in zip(walls[:4], walls[1:4])] == [5 * MIN] * 3


@pytest.mark.parametrize("expose_queue", [True, False], ids=["deep-queue", "aioble-internals-changed"])
def test_a_notification_lost_during_a_backfill_is_asked_for_again(expose_queue):
    peer = Peer(expose_queue=expose_queue)
    peer.measure(600, 120)

    async def scenario(app):
        await _until(lambda: len(app.gw.readings) == 1)
        peer.leave()
        await _until(lambda: ("disconnected", "session") in app.states())
        for off in range(605, 650, 5):
            peer.measure(off, 100 + off - 600)
        app.clock.skip(46 * MIN)
        peer.lose = {615, 630}   # arrive on top of the next record: only the newer one survives
        peer.in_range = True
        await _until(lambda: len(app.gw.readings) == 10)
        await _until(lambda: app.receiver.gaps == [] and app.receiver.requested is None)
    app = _run(scenario, peer)
    seqs = [s for s, _ in _seqs(app)]
    assert sorted(seqs) == list(range(600, 650, 5)) and len(set(seqs)) == len(seqs)
    if expose_queue:
        # the deeper queue kept both: one RACP round
        assert seqs == list(range(600, 650, 5))
        assert len(peer.racp) == 2
    else:
        # aioble's deque of 1 lost them; the tracker saw the holes and asked again
        assert len(peer.racp) >= 3
        assert app.receiver.lost == 0


def test_wrong_passkey_times_out_pairing_and_backs_off_capped():
    peer = Peer(passkey=222222)

    async def scenario(app):
        await _until(lambda: len([s for s in app.states() if s[0] == "failed"]) >= 7, real_s=8)
    app = _run(scenario, peer, passkey=111111)
    fails = [w for s, w in app.states() if s == "failed"]
    assert fails and set(fails) == {"pair: timeout"}
    assert app.gw.readings == []
    # the wait after each failure (slept in pieces of at most 5 s, to keep checking in)
    marks = [e["_sleeps"] for e in app.board.events if e["event"] == "cgms" and e["state"] == "failed"]
    backoffs = [sum(app.clock.sleeps[a:b]) for a, b in zip(marks, marks[1:])]
    assert backoffs[:6] == [2000, 4000, 8000, 16000, 32000, 60000], backoffs
    assert max(app.clock.sleeps) <= 5000
    assert "disconnect" in app.board.ble.log   # a failed session never leaves the link half open


def test_bad_crc_record_is_a_reject_and_the_rest_still_arrives():
    peer = Peer()
    peer.measure(600, 120)

    async def scenario(app):
        await _until(lambda: len(app.gw.readings) == 1)
        peer.measure(605, 118, bad_crc=True)
        peer.measure(610, 116)
        await _until(lambda: len(app.gw.readings) == 3)
    app = _run(scenario, peer)
    assert app.gw.rejects == ["crc"]
    # the refused record left a gap after 600: the RACP brought the sensor's stored copy back
    assert _seqs(app) == [(600, False), (610, False), (605, True)]


def test_feature_with_a_bad_crc_refuses_the_sensor_loudly():
    peer = Peer()
    peer.bad_feature = True

    async def scenario(app):
        await _until(lambda: any(s == "failed" for s, _ in app.states()))
    app = _run(scenario, peer)
    assert "crc" in app.gw.rejects
    assert ("failed", "feature: CGM Feature crc") in app.states()


def test_parse_feature():
    assert cgms_central.parse_feature(feature_value(True)) is True
    assert cgms_central.parse_feature(feature_value(False)) is False
    with pytest.raises(cgms.CgmsError):
        cgms_central.parse_feature(b"\x00\x10")


# ---- the tracker with lost notifications (firmware/sensor/cgms.py) -------------------------------

def _rec(off, v=100):
    return cgms.CgmRecord(off, float(v), None, None, None, 0)


def test_tracker_live_record_during_the_report_does_not_end_the_backfill():
    t = cgms.CgmsTracker(ADDR)
    t.on_records([_rec(600)], 0)
    t.connected(31 * MIN)
    assert t.want_racp() == 601
    now = 31 * MIN
    out = t.on_records([_rec(605), _rec(610)], now)
    out += t.on_records([_rec(631)], now)          # the live one, sent in the middle of the report
    out += t.on_records([_rec(615), _rec(620), _rec(625)], now)
    assert [(r.seq, r.backfilled) for r in out] == [
        (605, True), (610, True), (631, False), (615, True), (620, True), (625, True)]


def test_tracker_hole_inside_a_backfill_is_asked_once_more_then_given_up_when_empty():
    t = cgms.CgmsTracker(ADDR)
    t.on_records([_rec(600)], 0)
    t.connected(60 * MIN)
    assert t.want_racp() == 601
    t.on_records([_rec(605), _rec(620), _rec(625)], 60 * MIN)   # 610 and 615 lost on the way
    t.racp_done("success")
    assert t.want_racp() == 606                               # asked again from the hole
    back = t.on_records([_rec(610), _rec(615), _rec(620)], 60 * MIN)
    assert [(r.seq, r.backfilled) for r in back] == [(610, True), (615, True)]
    t.racp_done("success")
    assert t.gaps == [] and t.want_racp() is None
    # a real hole (the sensor has nothing there) costs exactly one more request
    t2 = cgms.CgmsTracker(ADDR)
    t2.on_records([_rec(600)], 0)
    t2.connected(60 * MIN)
    t2.want_racp()
    t2.on_records([_rec(630)], 60 * MIN)
    t2.racp_done("success")
    assert t2.want_racp() == 601
    t2.on_records([_rec(630)], 60 * MIN)
    t2.racp_done("success")
    assert t2.want_racp() is None and t2.gaps == []


def test_no_wifi_setting_starves_the_radio():
    # Wi-Fi/BLE coexistence on the ESP32 needs Wi-Fi modem sleep: nothing may switch it off.
    for path in ("firmware/hal/esp32.py", "firmware/shell/radio.py", "firmware/shell/cgms_central.py"):
        with open(os.path.join(ROOT, path)) as f:
            text = f.read()
        assert "PM_NONE" not in text.replace("never PM_NONE", "").replace("no `PM_NONE`", ""), path


def test_a_wake_flag_left_set_on_an_empty_queue_does_not_end_the_session():
    # aioble's notified() pops from an empty queue (IndexError) when its flag was set for a value
    # that was taken another way; the central must keep serving, not die with the radio task.
    peer = Peer()
    peer.measure(600, 120)

    async def scenario(app):
        await _until(lambda: len(app.gw.readings) == 1)
        peer.conn.meas._notify_event.set()
        await asyncio.sleep(0.02)
        peer.measure(605, 118)
        await _until(lambda: len(app.gw.readings) == 2)
    app = _run(scenario, peer)
    assert _seqs(app) == [(600, False), (605, False)]
    assert [s for s, _ in app.states()].count("connected") == 1


def test_a_peer_that_stalls_discovery_is_named_and_the_next_attempt_connects():
    peer = Peer()
    peer.stall = 1

    async def scenario(app):
        await _until(lambda: ("connected", None) in [(s, w) for s, w in app.states()])
        peer.measure(700, 120)
        await _until(lambda: app.gw.readings)
    app = _run(scenario, peer)
    states = app.states()
    failed = [w for s, w in states if s == "failed"]
    assert failed and failed[0].startswith("discover: peer_stalled"), states
    assert app.gw.rejects[:1] == ["peer_stalled"], app.gw.rejects
    # named after one bounded step (4 s), well before the stack's 30 s ATT timeout or the supervisor's
    # 30 s stall limit; the link is dropped and the next attempt works
    t = dict((e["state"], e["_t"]) for e in reversed(app.board.events) if e["event"] == "cgms")
    assert t["failed"] - t["searching"] < 10000, t
    assert app.board.ble.log.count("disconnect") >= 1 and app.board.ble.log.count("connect") == 2
