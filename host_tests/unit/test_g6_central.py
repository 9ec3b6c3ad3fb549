# The Dexcom G6 central (firmware/shell/g6_central.py) against a fake aioble whose peripheral is the
# simulator's virtual transmitter (tools/simlib/g6_transmitter.py, its own encoder). Time is virtual: it
# jumps to the next timer whenever every task waits, so a simulated night runs in a second, the same way
# every run. The fake copies the aioble behaviour the central relies on (micropython-lib aioble
# client.py, device.py, security.py): one queued notification and one queued indication per
# characteristic (deque of 1, `_notify_queue`), operations on a dropped link raise
# DeviceDisconnectedError, a failed pairing only times out, GATT errors carry `_status`.
import asyncio
import heapq
import itertools
import os
import sys
from collections import deque

import pytest

from host_tests.paths import ROOT
from host_tests.aioble_fakes import UUID, DeviceDisconnectedError, GattError, LinkState

sys.path.insert(0, os.path.join(ROOT, "tools"))

from firmware.shell import g6_central
from simlib import g6_transmitter as g6t

TX_ID = "8G1234"
WALL0 = 1700000000000
MIN = 60000
CHARS = {"f8083534": g6t.CONTROL, "f8083535": g6t.AUTH, "f8083536": g6t.BACKFILL}


class VClock:
    def __init__(self):
        self.now = 0
        self._timers = []
        self._n = itertools.count()
        self.sleeps = []

    def ticks_ms(self):
        return self.now & 0x3FFFFFFF

    def wall_ms(self):
        return WALL0 + self.now

    def at(self, t):
        fut = asyncio.get_event_loop().create_future()
        heapq.heappush(self._timers, (t, next(self._n), fut))
        return fut

    async def sleep_ms(self, ms):
        self.sleeps.append(ms)
        await self.at(self.now + ms)

    async def wait(self, aw, timeout_ms):
        """aw, or asyncio.TimeoutError after timeout_ms of virtual time."""
        task = asyncio.ensure_future(aw)
        if timeout_ms is None:
            return await task
        timer = self.at(self.now + timeout_ms)
        done, _ = await asyncio.wait([task, timer], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            timer.cancel()
            return task.result()
        task.cancel()
        raise asyncio.TimeoutError

    async def run_until(self, pred, limit_ms):
        while not pred():
            for _ in range(40):
                await asyncio.sleep(0)
            if pred():
                return
            while self._timers and self._timers[0][2].cancelled():
                heapq.heappop(self._timers)
            assert self._timers, "nothing left to wait for"
            t, _, fut = heapq.heappop(self._timers)
            assert t <= limit_ms, "not reached by %d ms of virtual time" % limit_ms
            self.now = max(self.now, t)
            fut.set_result(None)


class Security:
    def __init__(self):
        self.loaded = []

    def load_secrets(self, path):
        self.loaded.append(path)


class Char:
    def __init__(self, conn, name):
        self.conn, self.name = conn, name
        # aioble property bits as the transmitter declares them: firefly's auth is "INDICATE / WRITE" only
        readable = name == g6t.AUTH and conn.link.tx.generation == "1.x"
        self.properties = 0x28 | (0x02 if readable else 0) | (0x10 if name == g6t.BACKFILL else 0)
        self._notify_queue = deque((), 1)
        self._notify_event = asyncio.Event()
        self._iq = deque((), 1)
        self._iev = asyncio.Event()

    def arrive(self, kind, data):
        q, ev = (self._iq, self._iev) if kind == "indicate" else (self._notify_queue, self._notify_event)
        wake = len(q) == 0
        q.append(data)
        if wake:
            ev.set()

    async def _take(self, q, ev, timeout_ms):
        if len(q) <= 1:
            await self.conn.wait(ev.wait(), timeout_ms)
            ev.clear()
        return q.popleft()

    async def notified(self, timeout_ms=None):
        return await self._take(self._notify_queue, self._notify_event, timeout_ms)

    async def indicated(self, timeout_ms=None):
        return await self._take(self._iq, self._iev, timeout_ms)

    def _gatt(self, fn, *a):
        self.conn.check()
        try:
            return fn(*a)
        except g6t.AttError as e:
            raise GattError(e.code)

    async def subscribe(self, notify=True, indicate=False):
        self._gatt(self.conn.link.subscribe, self.name, "indicate" if indicate else "notify")

    async def read(self, timeout_ms=1000):
        if not self.properties & 0x02:
            raise ValueError("Unsupported")          # aioble's _check(_FLAG_READ)
        return self._gatt(self.conn.link.read, self.name)

    async def write(self, data, response=False, timeout_ms=1000):
        ble = self.conn.ble
        ble.writes.append((self.name, bytes(data)))
        if ble.mute and bytes(data)[:1] == ble.mute:
            return                                   # the transmitter never answers this one
        if ble.refuse and bytes(data)[:1] == ble.refuse:
            self.conn.chars[g6t.CONTROL].arrive("indicate", b"\xff" + ble.refuse + b"\x01")
            return
        out = self._gatt(self.conn.link.write, self.name, data, self.conn.ble.clock.now / 1000)
        for char, kind, d in out:
            if char == g6t.BACKFILL and ble.damage:
                ble.damage -= 1      # damaged on the air: the transmitter's CRC no longer matches
                d = d[:5] + bytes((d[5] ^ 0x40,)) + d[6:]
            self.conn.chars[char].arrive(kind, d)
        if not self.conn.link.open:
            self.conn.drop()


class Service:
    def __init__(self, conn):
        self.conn = conn

    async def characteristic(self, uuid, timeout_ms=2000):
        name = CHARS.get(uuid.v[:8])
        return None if name is None else self.conn.chars[name]


class Connection(LinkState):
    def __init__(self, ble, link):
        LinkState.__init__(self)
        self.ble, self.link = ble, link
        self.chars = {n: Char(self, n) for n in (g6t.AUTH, g6t.CONTROL, g6t.BACKFILL)}

    def drop(self):
        self.gone.set()
        self.link.close()

    async def wait(self, aw, timeout_ms):
        self.check()
        gone = asyncio.ensure_future(self.gone.wait())
        try:
            await self.ble.clock.wait(asyncio.wait([asyncio.ensure_future(aw), gone],
                                                   return_when=asyncio.FIRST_COMPLETED), timeout_ms)
        finally:
            gone.cancel()
        self.check()

    async def service(self, uuid, timeout_ms=2000):
        self.check()
        return Service(self) if uuid.v == g6_central._SVC_CGM else None

    async def pair(self, bond=True, le_secure=True, mitm=False, io=3, timeout_ms=20000):
        self.ble.pairs.append((bond, le_secure, mitm, io))
        if self.ble.auto_pair and self.link.bond_requested and not self.link.tx.bonds:
            # the stack answered the transmitter's security request itself; aioble's gap_pair then
            # fails with EALREADY, and the encryption update arrives a little later
            async def later():
                await self.ble.clock.sleep_ms(300)
                self.encrypted = self.link.pair()
            asyncio.ensure_future(later())
            raise OSError(114)
        if not self.link.pair():
            await self.wait(asyncio.Event().wait(), timeout_ms)
        self.encrypted = True

    async def disconnect(self, timeout_ms=2000):
        self.ble.log.append("disconnect")
        self.drop()


class Device:
    addr_type, addr = 0, bytes(6)

    def __init__(self, ble):
        self.ble = ble

    async def connect(self, timeout_ms=10000):
        ble = self.ble
        assert ble.scanning == 0, "connect while a scan runs"
        ble.log.append("connect")
        link = ble.tx.connect(ble.clock.now / 1000, "box")
        if link is None:
            await ble.clock.sleep_ms(timeout_ms)
            raise asyncio.TimeoutError
        ble.conn = Connection(ble, link)
        return ble.conn


class Result:
    """What a passive scan hands over: the advert's bytes (flags, complete name, 16-bit services)."""

    def __init__(self, ble, name, services):
        self.device, self.rssi = Device(ble), -60
        n = name.encode()
        self.adv_data = (b"\x02\x01\x06" + bytes((len(n) + 1, 0x09)) + n + bytes((1 + 2 * len(services), 0x03))
                         + b"".join(u.to_bytes(2, "little") for u in services))


class Scan:
    def __init__(self, ble, duration_ms, interval_us, window_us):
        self.ble, self.duration_ms = ble, duration_ms
        self.duty = window_us / interval_us

    async def __aenter__(self):
        ble = self.ble
        ble.scanning += 1
        self.start = ble.clock.now
        self.end = self.start + self.duration_ms
        self.given = False
        return self

    async def __aexit__(self, *exc):
        ble = self.ble
        ble.scanning -= 1
        ble.scans.append((self.start, ble.clock.now, self.duty))

    def __aiter__(self):
        return self

    async def __anext__(self):
        ble, clock = self.ble, self.ble.clock
        while True:
            now_s = clock.now / 1000
            ble.tx.tick(now_s)
            if not self.given and ble.tx.advertising(now_s):
                self.given = True
                name, svcs, _ = ble.tx.advert()
                return Result(ble, name, svcs)
            if ble.neighbour and not self.given:
                self.given = True
                return Result(ble, ble.neighbour, [0xFEBC])
            if clock.now >= self.end:
                raise StopAsyncIteration
            nxt = int(ble.tx.next_window(now_s) * 1000)
            nxt = nxt if nxt > clock.now else clock.now + 1000
            await clock.sleep_ms(int(min(nxt, self.end) - clock.now))


class FakeAioble:
    DeviceDisconnectedError = DeviceDisconnectedError
    GattError = GattError
    UUID = UUID

    def __init__(self, tx, clock):
        self.tx, self.clock = tx, clock
        self.security = Security()
        self.log, self.writes, self.pairs, self.scans = [], [], [], []
        self.scanning = 0
        self.conn = None
        self.mute = None          # first byte of a request the transmitter ignores
        self.refuse = None        # first byte of a request the transmitter answers with FF xx 01
        self.auto_pair = False    # the stack pairs on the transmitter's security request by itself
        self.configs = []
        self.neighbour = None     # another "DexcomXX" name advertising
        self.damage = 0           # backfill frames to damage on the air

    def config(self, **kw):
        self.configs.append(kw)

    def Device(self, addr_type, addr):   # aioble.Device, a class there
        return Device(self)

    def scan(self, duration_ms, interval_us=None, window_us=None, active=False):
        assert not active
        return Scan(self, duration_ms, interval_us, window_us)


class Gw:
    def __init__(self):
        self.readings, self.rejects, self.faults = [], [], {}

    def on_reading(self, now, r, measured_ms=None):
        r.measured_ms = measured_ms   # the tick the transmitter measured it (the merge dedups on it)
        self.readings.append(r)

    def on_reject(self, now, reason):
        self.rejects.append(reason)

    def set_fault(self, now, name, why):
        if why is None:
            self.faults.pop(name, None)
        else:
            self.faults[name] = why


class Board:
    def __init__(self, ble):
        self.ble = ble
        self.events = []
        self.data_dir = "data"

    def emit(self, ev):
        self.events.append(ev)


class App:
    def __init__(self, tx, slot="alternate", tx_id=TX_ID):
        self.clock = VClock()
        self.board = Board(FakeAioble(tx, self.clock))
        self.gw = Gw()
        self.cfg = {"sensor": {"kind": "dexcom_g6", "transmitter_id": tx_id, "slot": slot, "allow_0e": False}}
        self.receiver = g6_central.G6Memory(tx_id)

    def flush(self):
        pass

    def g6(self, state=None):
        return [(e["state"], e.get("why")) for e in self.board.events
                if e["event"] == "g6" and (state is None or e["state"] == state)]

    def sources(self):
        return [e["state"] for e in self.board.events if e["event"] == "source"]


def _tx(gen="firefly", glucose=None, warm=True, **kw):
    # the transmitter's first window 100 s after the box starts; its clock says 1 000 000 s
    tx = g6t.G6Transmitter(TX_ID, gen, activated_at=-1000000, phase_s=100, glucose=glucose, **kw)
    if warm:
        tx.start_session(-3 * 3600)
    return tx


def _run(tx, until, limit_ms, setup=None, **kw):
    async def main():
        app = App(tx, **kw)
        if setup:
            setup(app)
        task = asyncio.ensure_future(g6_central.central_task(app))

        def pred():
            if task.done():
                task.result()          # the radio task died: its exception fails the test
                raise AssertionError("the central returned")
            return until(app)
        try:
            await app.clock.run_until(pred, limit_ms)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return app
    return asyncio.run(main())


@pytest.mark.parametrize("gen", ["firefly", "1.x"])
def test_bonds_once_then_reads_every_window_scanning_only_around_it(gen):
    tx = _tx(gen, glucose=lambda t: 100 + int(t // 300))
    app = _run(tx, lambda a: len(a.gw.readings) >= 6, 40 * MIN)
    rs = app.gw.readings
    # one reading per window, stamped with the transmitter's measurement time and its id
    assert [r.mgdl for r in rs] == [100, 101, 102, 103, 104, 105]
    assert {r.source for r in rs} == {"dexcom_g6"} and {r.sensor_id for r in rs} == {TX_ID}
    assert [r.backfilled for r in rs] == [False] * 6
    assert [r.wall_ms - WALL0 for r in rs] == [100000 + 300000 * i for i in range(6)]
    assert [r.seq for r in rs] == [1000100 + 300 * i for i in range(6)]
    assert rs[0].minutes == (1000100 - tx.session_start) // 60
    w = app.board.ble.writes
    assert (g6t.AUTH, b"\x06\x19") in w and w.count((g6t.AUTH, b"\x07")) == 1   # bonded once
    auths = [d for c, d in w if c == g6t.AUTH and d[0] == 1]
    assert len(auths) == 6 and all(d[-1] == 0x01 for d in auths)             # the alternate slot
    assert len({d[1:9] for d in auths}) == 6                                   # a fresh token each time
    assert [d for c, d in w if c == g6t.CONTROL][:3] == [bytes.fromhex("24e664"), bytes.fromhex("4e0aa9"),
                                                         bytes.fromhex("222004")]
    assert w.count((g6t.CONTROL, b"\x09")) == 6                               # each session ends with 09
    assert app.board.ble.security.loaded == ["data/ble_secrets.json"]   # in the board's data folder
    assert app.sources() == ["up"] and app.gw.faults == {}
    # After the first window the box scans only from 15 s before each window to 25 s after its start:
    # between windows the radio is Wi-Fi's.
    all_scans = app.board.ble.scans
    search = [sc for sc in all_scans if sc[2] == 0.3]
    scans = [sc for sc in all_scans if sc[2] != 0.3]
    assert search and all(e <= 100000 for s, e, _ in search)   # the first search, rhythm unknown: 30 % duty
    assert len(scans) == 5
    for start, end, duty in scans:
        w0 = tx.next_window(start / 1000) * 1000
        assert w0 - 16000 <= start and end <= w0 + 25000, (start, end, w0)
        assert duty == 0.6
    scanned = sum(e - s for s, e, _ in scans)
    assert scanned <= 5 * 16000                  # heard at the window's start: 15 s lead + no latency


def test_phone_slot_is_used_when_configured():
    tx = _tx()
    app = _run(tx, lambda a: len(a.gw.readings) >= 1, 10 * MIN, slot="phone")
    assert [d for c, d in app.board.ble.writes if c == g6t.AUTH][0][-1] == 0x02
    assert tx.slots[g6t.PHONE] == "box" and tx.slots[g6t.ALTERNATE] is None


def test_wrong_transmitter_id_is_a_named_fault_and_each_window_is_tried_again():
    tx = _tx()
    tx.tx_id = "8G9934"           # same last two characters: the advert matches, the key does not
    app = _run(tx, lambda a: a.board.ble.log.count("connect") >= 3, 20 * MIN)
    assert app.gw.readings == []
    assert "check the id" in app.gw.faults["g6_auth"]
    assert ("failed", "auth: token hash mismatch (wrong transmitter id)") in app.g6()
    assert app.sources() == ["auth_failed"]
    # it never answered the challenge, and never left a link open
    assert not [d for c, d in app.board.ble.writes if c == g6t.AUTH and d[0] == 4]
    assert app.board.ble.log.count("disconnect") == app.board.ble.log.count("connect")


def test_mistyped_last_characters_are_hinted_while_searching():
    tx = _tx()
    tx.in_range = False

    def setup(app):
        app.board.ble.neighbour = "Dexcom99"
    app = _run(tx, lambda a: any(w and "check the transmitter id" in w for s, w in a.g6("searching")),
               5 * MIN, setup=setup)
    assert app.board.ble.log == []     # never connected to the other transmitter


def test_slot_taken_by_another_receiver_is_named_then_clears():
    tx = _tx()
    tx.take_slot(g6t.ALTERNATE, "t:slim X2")

    def until(a):
        if len(a.board.ble.log) >= 4 and tx.slots[g6t.ALTERNATE] == "t:slim X2":
            assert "another receiver" in a.gw.faults["g6_slot"]
            tx.slots[g6t.ALTERNATE] = None      # the pump is gone
        return len(a.gw.readings) >= 1
    app = _run(tx, until, 30 * MIN)
    assert tx.events[0]["event"] == "g6_slot_taken"
    assert app.sources() == ["slot_taken", "up"]
    assert "g6_slot" not in app.gw.faults and "g6_auth" not in app.gw.faults


def test_warmup_then_ok_then_expired_are_named_and_never_alarm():
    tx = _tx(warm=False)
    tx.start_session(1000 - 2 * 3600)   # sim seconds: warm-up ends 1000 s after the box starts
    app = _run(tx, lambda a: len(a.gw.readings) >= 2, 30 * MIN)
    assert app.sources()[:2] == ["warmup", "up"]
    assert all(r.mgdl > 13 for r in app.gw.readings)
    # the first reading is the first window after warm-up
    assert app.gw.readings[0].seq >= 1001000
    tx2 = _tx()
    tx2.state_override = 0x18

    def until(a):
        return "expired" in a.sources()
    app2 = _run(tx2, until, 10 * MIN)
    assert app2.gw.readings == [] and app2.gw.faults["g6_sensor"] == "sensor expired"


def test_special_codes_never_become_readings():
    tx = _tx(glucose=lambda t: 5)
    app = _run(tx, lambda a: len(a.g6("withheld")) >= 2, 15 * MIN)
    assert app.gw.readings == []
    assert app.g6("withheld")[0] == ("withheld", "special_code")


def test_a_40_minute_gap_is_backfilled_in_order_after_the_live_reading():
    tx = _tx(glucose=lambda t: 150 - int(t // 300) * 5)

    def until(a):
        n = len(a.gw.readings)
        if n == 2 and not hasattr(a, "gone_at"):
            tx.in_range = False            # away: 8 windows missed
            a.gone_at = a.clock.now
        if not tx.in_range and a.clock.now - a.gone_at >= 40 * MIN:
            tx.in_range = True
        return n >= 12
    app = _run(tx, until, 80 * MIN)
    rs = [(r.seq, r.backfilled) for r in app.gw.readings]
    live = [s for s, b in rs if not b]
    back = [s for s, b in rs if b]
    assert live and max(live) > max(back)   # the newest reading came live, after the gap
    assert back == sorted(back) and len(back) >= 7
    # nothing twice, nothing missing between the first and the last
    seqs = sorted(s for s, _ in rs)
    assert seqs == list(range(seqs[0], seqs[-1] + 1, 300))
    # the live reading came before its backfill, and each backfilled one carries its own time
    i = [s for s, _ in rs].index(back[0])
    assert not rs[i - 1][1] and rs[i - 1][0] > back[-1]
    for r in app.gw.readings:
        assert r.wall_ms - WALL0 == (r.seq - 1000000) * 1000
    # the core gets the same measurement time as a tick (the merge dedups against the phone on it):
    # a backfilled record is as old as its timestamp says, not "now"
    assert len(set(r.wall_ms - r.measured_ms for r in app.gw.readings)) == 1
    assert [e["records"] for e in app.board.events if e.get("state") == "backfilled"] == [len(back)]
    req = [d for c, d in app.board.ble.writes if c == g6t.CONTROL and d[0] == 0x50][0]
    start, end = int.from_bytes(req[4:8], "little"), int.from_bytes(req[8:12], "little")
    assert end - start <= 3 * 3600


def test_missed_windows_widen_the_scan_then_an_hourly_search_and_the_rhythm_is_kept():
    tx = _tx()

    def until(a):
        if len(a.gw.readings) == 1 and not hasattr(a, "gone_at"):
            tx.in_range = False
            a.gone_at = a.clock.now
        if hasattr(a, "gone_at") and not tx.in_range and a.clock.now - a.gone_at >= 90 * MIN:
            tx.in_range = True
        return len(a.gw.readings) >= 2
    app = _run(tx, until, 120 * MIN)
    misses = [e["misses"] for e in app.board.events if e.get("state") == "missed"]
    assert misses[:3] == [1, 2, 3]
    assert "down" in app.sources() and app.sources()[-1] == "up"
    scans = [(s, e, d) for s, e, d in app.board.ble.scans if s > app.gone_at]
    narrow = [sc for sc in scans if sc[2] == 0.6]
    wide = [sc for sc in scans if sc[2] == 0.3 and sc[1] - sc[0] > _SEARCH_PIECE]
    assert len(narrow) >= 2 and all(e - s <= 40000 for s, e, _ in narrow)
    assert wide and all(e - s <= 105000 for s, e, _ in wide)
    # one hourly search (a whole period in 10 s pieces), and otherwise no scanning between windows:
    # while away for 90 min the radio listened (scan time x duty) under 15 % of the time, half of the
    # broadcast scan's flat 30 %
    away = [(max(s, app.gone_at), min(e, app.gone_at + 90 * MIN), d) for s, e, d in scans]
    radio = sum(max(0, e - s) * d for s, e, d in away)
    assert radio < 0.15 * 90 * MIN, radio
    # back in range: the next reading comes in the first window after its return
    back = app.gone_at + 90 * MIN
    assert app.gw.readings[1].wall_ms - WALL0 <= tx.next_window(back / 1000) * 1000 + 1000


_SEARCH_PIECE = 10000


def test_an_unanswered_request_times_out_and_the_next_window_is_tried():
    tx = _tx()

    def setup(app):
        app.board.ble.mute = b"\x4e"     # glucose requests vanish
    app = _run(tx, lambda a: len(a.g6("failed")) >= 2, 15 * MIN, setup=setup)
    assert app.g6("failed")[:2] == [("failed", "glucose: timeout")] * 2
    log = app.board.ble.log
    assert log.count("disconnect") == log.count("connect")


def test_pairing_started_by_the_transmitter_is_waited_for_and_the_bond_kept():
    tx = _tx()

    def setup(app):
        app.board.ble.auto_pair = True
    app = _run(tx, lambda a: len(a.gw.readings) >= 2, 15 * MIN, setup=setup)
    assert app.g6("failed") == []
    assert app.board.ble.configs[0] == {"bond": True, "le_secure": True, "mitm": False, "io": 3}
    assert tx.bonds == {"box"}
    assert [d for c, d in app.board.ble.writes if c == g6t.AUTH].count(b"\x07") == 1


def test_a_1x_that_refuses_4e_is_asked_with_30():
    tx = _tx("1.x")

    def setup(app):
        app.board.ble.refuse = b"\x4e"
    app = _run(tx, lambda a: len(a.gw.readings) >= 2, 15 * MIN, setup=setup)
    ctl = [d.hex() for c, d in app.board.ble.writes if c == g6t.CONTROL]
    assert ctl[1:3] == ["4e0aa9", "305336"]
    assert app.g6("failed") == []


def test_a_corrupt_backfill_is_a_counted_reject_and_live_readings_still_flow():
    tx = _tx()

    def until(a):
        if len(a.gw.readings) == 1 and not hasattr(a, "gone_at"):
            tx.in_range = False
            a.gone_at = a.clock.now
            a.board.ble.damage = 1
        if not tx.in_range and a.clock.now - a.gone_at >= 12 * MIN:
            tx.in_range = True
        return len(a.gw.readings) >= 6
    app = _run(tx, until, 40 * MIN)
    assert app.gw.rejects == ["g6_crc"]
    assert ("failed", "backfill: crc") in app.g6()
    # the live reading of that window was delivered before the backfill; the next window asks again
    rs = [(r.seq, r.backfilled) for r in app.gw.readings]
    assert [b for _, b in rs[:3]] == [False, False, False]
    assert [s for s, b in rs if b] == [1000400, 1000700]
    assert len({s for s, _ in rs}) == len(rs)


def test_with_the_real_core_old_lows_in_a_backfill_never_alarm_and_a_current_low_does():
    from firmware.core import config
    from firmware.core.gateway import Gateway

    def glucose(t):
        k = int(t // 300)
        if k < 2:
            return 120
        if k in (4, 5):
            return 50                    # an urgent low during the gap, over by the time we are back
        return 110 if k < 10 else 65     # back in range, then a current low

    tx = _tx(glucose=glucose)
    cfg = config.build({"sensor": {"kind": "dexcom_g6", "transmitter_id": TX_ID}})
    alarms, back = [], []

    def setup(app):
        app.gw = Gateway(cfg, 0)

    def until(a):
        for eff in a.gw.drain():
            if eff[0] == "event" and eff[1]["event"] == "alarm":
                alarms.append((eff[1]["level"], eff[1]["state"], a.clock.now))
            if eff[0] == "event" and eff[1]["event"] == "reading" and eff[1]["backfilled"]:
                back.append(eff[1]["mgdl"])
        n = len(a.gw.last_seq) and a.gw.last
        if n and a.gw.last.seq >= 1000700 and not hasattr(a, "gone_at"):
            tx.in_range = False
            a.gone_at = a.clock.now
        if hasattr(a, "gone_at") and not tx.in_range and a.clock.now - a.gone_at >= 40 * MIN:
            tx.in_range = True
        return bool(alarms) and bool(back)
    _run(tx, until, 90 * MIN, setup=setup)
    assert back.count(50) == 2 and len(back) >= 7      # the urgent lows were delivered, as history
    # raised by the first live reading after the gap, within its window: no urgent low from the backfill
    level, state, at = alarms[0]
    assert (level, state) == ("low", "raised")
    assert tx.window_start(at / 1000) * 1000 <= at <= tx.window_start(at / 1000) * 1000 + 15000
    assert all(lv != "urgent_low" for lv, _, _ in alarms)


def test_a_night_every_window_caught_and_a_low_raised_in_its_window():
    from firmware.core import config
    from firmware.core.gateway import Gateway

    def glucose(t):                      # 8 hours; a dip to 62 around hour 3, then back up
        k = int(t // 300)
        return 62 if 36 <= k <= 40 else 120
    tx = _tx(glucose=glucose)
    cfg = config.build({"sensor": {"kind": "dexcom_g6", "transmitter_id": TX_ID}})
    raised = []

    def setup(app):
        app.gw = Gateway(cfg, 0)

    def until(a):
        for eff in a.gw.drain():
            if eff[0] == "event" and eff[1]["event"] == "alarm" and eff[1]["state"] == "raised":
                raised.append((eff[1]["level"], a.clock.now))
        return a.gw.last is not None and a.gw.last.seq >= 1000100 + 95 * 300
    app = _run(tx, until, 9 * 60 * MIN, setup=setup)
    seqs = [r for r in app.gw.last_seq.values()]
    assert seqs == [1000100 + 95 * 300]
    # every one of the 96 windows gave its reading, none missed
    assert not app.g6("missed") and not app.g6("failed")
    assert len([e for e in app.board.events if e.get("state") == "done"]) == 96
    # the low raised in the window of the first low measurement (window 36 opens at 100 + 36*300 s)
    level, at = raised[0]
    assert level == "low" and 10900000 <= at <= 10900000 + 15000
