# Central for a Dexcom G6 transmitter, read directly as its second receiver (source kind `dexcom_g6`,
# docs/sensors.md, ../shared/DEXCOM_G6.md), on the aioble surface. Readings to the core, nothing else: the
# network is never on this path.
#
# The transmitter is visible for about 15 s every 5 minutes. One window = one short session:
#   wait     sleep until shortly before the next expected window (no scanning between windows: the 2.4 GHz
#            radio is Wi-Fi's then); without a known rhythm, scan at 30 % duty until heard
#   scan     "Dexcom" + the id's last two characters, advertising service FEBC
#   session  connect, auth on the configured slot (token/challenge, AES with the id's key), bond once
#            (keep-alive + bond request + pairing) or re-encrypt with the stored bond, Control
#            indications, time (24), glucose (4E), battery every 12 h (22), backfill (50) after missed
#            windows (at most the last 3 h), then 09; every step has a timeout
#   rhythm   the next window is 5 min after this one opened: the glucose timestamp against the
#            transmitter's clock says when (no scan latency in it); a missed window moves it 5 min on,
#            after three the scan widens, and once an hour a whole period is searched
# Faults the family must fix are named on the box and in the state topic (Gateway.set_fault):
#   g6_auth   the transmitter's token hash does not match the configured id (a mistyped id)
#   g6_slot   the id is right but the transmitter refused us: the slot is taken by another receiver
#   g6_sensor the sensor gives no glucose: warmup, stopped, expired, failed... (by name)
# Every session step that fails is a `g6` event with the step and why; the sensor state is a `source`
# event (name, state, age_s) on every change.
import asyncio

from micropython import const

from firmware.core import ticks
from firmware.core.reading import Reading
from firmware.sensor import dexcom_g6 as g6
from firmware.shell.heard import Heard

_SVC_CGM = "f8083532-849e-531c-c594-30f1f86a4ea5"
_CHR_CONTROL = "f8083534-849e-531c-c594-30f1f86a4ea5"
_CHR_AUTH = "f8083535-849e-531c-c594-30f1f86a4ea5"
_CHR_BACKFILL = "f8083536-849e-531c-c594-30f1f86a4ea5"

_PERIOD_MS = const(300000)      # the transmitter wakes every 5 min (xDrip DEXCOM_PERIOD)
_WINDOW_MS = const(15000)       # and is visible for about 15 s (measured with a scanner app, not a spec)
_LEAD_MS = const(15000)         # scan from 15 s before the expected window (xDrip does the same)
_TAIL_MS = const(10000)         # and on 10 s past its end: a late wake-up is still caught
# The transmitter keeps its 5-minute rhythm while it is out of range, so a missed window does not lose
# it. After 3 misses (15 min: "down") the scan widens to 45 s each side of the window at 30 % duty (the
# box's clock may have drifted); every 12 misses (an hour) one whole period is searched, in case the
# rhythm moved (a restarted transmitter).
_MISSES_WIDE = const(3)
_MISSES_SEARCH = const(12)
_WIDE_MS = const(45000)
# Inside the expected window the scan is passive at 60 % duty (60 ms of every 100 ms): the advertising
# interval inside the window is undocumented, so most of the radio time goes to hearing it, for 40 s
# in 5 min. Searching (no rhythm yet) uses the broadcast scan's 30 % (radio.py) in 10 s pieces.
_WIN_INTERVAL_US = const(100000)
_WIN_WINDOW_US = const(60000)
_SEARCH_INTERVAL_US = const(100000)
_SEARCH_WINDOW_US = const(30000)
_SEARCH_MS = const(10000)
_CONNECT_MS = const(4000)       # the window is 15 s; a connect that takes longer lost it anyway
_OP_MS = const(2000)            # one GATT operation; each step took tens of ms in the ESP32 log
_AUTH_IND_MS = const(1500)      # firefly indicates the auth answers; 1.x is read after this wait
_PAIR_MS = const(10000)         # bonding must finish while the transmitter is awake (CGMBLEKit: 15 s)
_BACKFILL_MS = const(8000)      # a 3-hour backfill is 17 frames; the ESP32 reader waits 2 s after 51
_FRAME_MS = const(300)
_KEEP_ALIVE_S = const(25)       # CGMBLEKit and the ESP32 reader
_BACKFILL_MAX_S = const(10800)  # at most the last 3 h (xDrip MAX_BACKFILL_PERIOD_MS on G6)
_GAP_S = const(450)             # 1.5 periods between two readings: a window was missed
_BATTERY_MS = const(43200000)   # battery every 12 h, as xDrip polls it
_ALIVE_MS = const(5000)         # longest sleep between supervisor check-ins
_READ = const(0x02)             # aioble characteristic property bit
_IO_NO_INPUT_OUTPUT = const(3)  # the transmitter has no display or keys: "just works" LE pairing
# aioble's bond store, in the board's data folder: the bond must survive a reboot (DEXCOM_G6.md §4)
_SECRETS = "/ble_secrets.json"
_ST_BATTERY_LOW = const(8)      # Reading.status bit 3


def _uuid_cls(ble):
    u = getattr(ble, "UUID", None)
    if u is None:
        from bluetooth import UUID as u  # the ESP32: aioble uses bluetooth.UUID
    return u


def _urandom8():
    try:
        from os import urandom
        return urandom(8)
    except ImportError:
        import random
        return bytes(random.getrandbits(8) for _ in range(8))


class G6Memory:
    """What must outlive a crashed-and-restarted radio task: the rhythm and what was delivered."""

    def __init__(self, tx_id):
        self.tx_id = tx_id
        self.window_at = None     # ticks when the newest window opened, or None: rhythm unknown
        self.misses = 0
        self.last_ts = None       # transmitter seconds of the newest glucose delivered
        self.battery_at = None    # ticks of the last battery reading
        self.state = None         # the source state last said
        self.last_rx = None       # ticks of the last usable reading
        self.gap_from = None      # transmitter seconds from which a backfill is still owed
        self.seen = []            # timestamps delivered in the last 3 h (at most 40): nothing twice


class _Fail(Exception):
    pass


class _Refused(_Fail):
    pass


class G6Central:
    def __init__(self, app, mem):
        self.app = app
        self.ble = app.board.ble
        self.clock = app.clock
        self.gw = app.gw
        s = app.cfg["sensor"]
        self.tx_id = s["transmitter_id"]
        self.slot = g6.SLOT_PHONE if s.get("slot") == "phone" else g6.SLOT_ALTERNATE
        self.allow_0e = bool(s.get("allow_0e"))
        self.key = g6.auth_key(self.tx_id)
        self.name = g6.advert_name(self.tx_id)
        self.mem = mem
        self.step = None
        self.sessions = 0
        self.scan_ms = 0          # board ms spent scanning (the duty cycle figure)
        self.others = None        # another "DexcomXX" heard while ours was not: a hint the id is wrong
        U = _uuid_cls(self.ble)
        self._U = U
        self._checkin = getattr(getattr(app, "sup", None), "checkin", None)

    # ---- helpers ---------------------------------------------------------------------------------
    def _alive(self):
        if self._checkin is not None:
            self._checkin("radio")

    def _emit(self, state, why=None, **extra):
        ev = {"event": "g6", "state": state}
        if why is not None:
            ev["why"] = why
        ev.update(extra)
        self.app.board.emit(ev)

    def _source(self, state):
        m = self.mem
        if state == m.state:
            return
        m.state = state
        now = self.clock.ticks_ms()
        self.app.board.emit({"event": "source", "name": "dexcom_g6", "state": state,
                             "age_s": ticks.age_s(now, m.last_rx)})

    def _fault(self, name, why):
        self.gw.set_fault(self.clock.ticks_ms(), name, why)
        self.app.flush()

    async def _sleep(self, ms):
        while ms > 0:   # in pieces: the task stays visibly alive while it waits
            self._alive()
            piece = ms if ms < _ALIVE_MS else _ALIVE_MS
            await self.clock.sleep_ms(piece)
            ms -= piece

    # ---- the loop ----------------------------------------------------------------------------------
    async def run(self):
        _load_bonds(self.ble, getattr(self.app.board, "data_dir", "data") + _SECRETS)
        while True:
            m = self.mem
            if m.window_at is None:
                dev = await self._search(0)
                nxt = None
            else:
                nxt = ticks.add(m.window_at, _PERIOD_MS)
                now = self.clock.ticks_ms()
                while ticks.diff(ticks.add(nxt, _WINDOW_MS + _TAIL_MS), now) < 0:
                    nxt = ticks.add(nxt, _PERIOD_MS)   # windows that passed while we were busy
                if m.misses >= _MISSES_SEARCH and m.misses % _MISSES_SEARCH == 0:
                    # An hour unheard: one whole period at search duty, in case the rhythm moved.
                    dev = await self._search(_PERIOD_MS + _WINDOW_MS)
                else:
                    wide = m.misses >= _MISSES_WIDE
                    lead = _WIDE_MS if wide else _LEAD_MS
                    wait = ticks.diff(nxt, self.clock.ticks_ms()) - lead
                    if wait > 0:
                        await self._sleep(wait)
                    end = ticks.add(nxt, _WINDOW_MS + (_WIDE_MS if wide else _TAIL_MS))
                    left = ticks.diff(end, self.clock.ticks_ms())
                    if wide:
                        dev = await self._scan(left if left > 1000 else 1000, _SEARCH_INTERVAL_US, _SEARCH_WINDOW_US)
                    else:
                        dev = await self._scan(left if left > 1000 else 1000, _WIN_INTERVAL_US, _WIN_WINDOW_US)
                if dev is None:
                    self._missed(nxt)
                    continue
            heard = self.clock.ticks_ms()
            opened = await self._session(dev)
            # The window opened when the glucose was measured (transmitter clock); without a glucose,
            # the expected one if there was one, else when we heard it (later by at most the scan
            # latency: the lead covers that).
            if opened is not None:
                m.window_at = opened
            elif nxt is not None and ticks.diff(heard, nxt) < _PERIOD_MS // 2:
                m.window_at = nxt
            else:
                m.window_at = heard
            m.misses = 0

    def _missed(self, nxt):
        m = self.mem
        m.misses += 1
        self._emit("missed", "no advert in the expected window", misses=m.misses)
        if m.misses == _MISSES_WIDE:
            self._source("down")
        m.window_at = nxt

    async def _search(self, limit_ms):
        """Finite scan pieces at 30 % duty until the transmitter is heard, or limit_ms (0: no limit)."""
        self._emit("searching", looking_for=self.name)
        told = None
        t0 = self.clock.ticks_ms()
        while True:
            dev = await self._scan(_SEARCH_MS, _SEARCH_INTERVAL_US, _SEARCH_WINDOW_US)
            if dev is not None:
                return dev
            if self.others is not None and self.others != told:
                # Only a hint (a neighbour's G6 looks the same): the last two id characters may be wrong.
                told = self.others
                self._emit("searching", "heard %s, not %s: check the transmitter id" % (told, self.name))
            if limit_ms and ticks.diff(self.clock.ticks_ms(), t0) >= limit_ms:
                return None

    async def _scan(self, ms, interval_us, window_us):
        found = None
        t0 = self.clock.ticks_ms()
        self._alive()
        try:
            async with self.ble.scan(ms, interval_us=interval_us, window_us=window_us, active=False) as scanner:
                # Heard, not aioble's iterator: that one keeps a ScanResult for every address it hears
                # for the scan's whole length, and a crowded sky of rotating addresses ran a 96 KiB
                # frozen gateway out of heap in every window (tools/soak.py --sensor dexcom_g6 --speed 20)
                async for addr_type, addr, _, _, adv in Heard(scanner):
                    g = g6.heard(adv)
                    if g is None:
                        continue
                    if g[0] == self.name and g[1]:
                        found = self.ble.Device(addr_type, addr)
                        break   # leaving the block stops the scan before connecting
                    self.others = g[0]
        finally:
            self.scan_ms += ticks.diff(self.clock.ticks_ms(), t0)
        return found

    # ---- one session -------------------------------------------------------------------------------
    async def _session(self, device):
        """One window's session. Returns the ticks when this window opened (from the glucose), or None."""
        ble = self.ble
        conn = None
        opened = None
        self.step = "connect"
        try:
            conn = await device.connect(timeout_ms=_CONNECT_MS)
            self.sessions += 1
            self._alive()
            self.step = "discover"
            U = self._U
            svc = await conn.service(U(_SVC_CGM), _OP_MS)
            if svc is None:
                raise _Fail("no CGM service")
            auth = await svc.characteristic(U(_CHR_AUTH), _OP_MS)
            control = await svc.characteristic(U(_CHR_CONTROL), _OP_MS)
            backfill = await svc.characteristic(U(_CHR_BACKFILL), _OP_MS)
            if auth is None or control is None or backfill is None:
                raise _Fail("CGM service lacks auth, control or backfill")
            await self._authenticate(conn, auth)
            self.step = "subscribe"
            await control.subscribe(notify=False, indicate=True)
            self.step = "time"
            _, now_tx, start = await self._ask(control, g6.request(g6.OP_TIME), g6.parse_time)
            at = self.clock.ticks_ms()
            self.step = "glucose"
            try:
                g = await self._ask(control, g6.request(g6.OP_GLUCOSE_G6), g6.parse_glucose)
            except _Refused:
                # 4E is what every G6 answers in the sources, and firefly needs it; should an early
                # 1.x refuse it, the G5-era 30 carries the same glucose.
                g = await self._ask(control, g6.request(g6.OP_GLUCOSE_G5), g6.parse_glucose)
            ago_ms = g6.measured_ago_s(now_tx, g.timestamp) * 1000
            if ago_ms < _PERIOD_MS:
                opened = ticks.add(at, -ago_ms)
            prev = self.mem.last_ts
            self._deliver(g, now_tx, start, at)
            m = self.mem
            if m.battery_at is None or ticks.diff(at, m.battery_at) >= _BATTERY_MS:
                self.step = "battery"
                b = await self._ask(control, g6.request(g6.OP_BATTERY), g6.parse_battery)
                m.battery_at = at
                self._emit("battery", status=g6.status_name(b[0]), volt_a=b[1], volt_b=b[2],
                           runtime_days=b[4])
            if prev is not None and g.timestamp - prev > _GAP_S and m.gap_from is None:
                m.gap_from = prev + 1
            if m.gap_from is not None:
                # Owed until a backfill succeeds: a failed one is asked again next window.
                self.step = "backfill"
                first = g.timestamp - _BACKFILL_MAX_S
                first = m.gap_from if m.gap_from > first else first
                await self._backfill(control, backfill, first, g.timestamp - 1, now_tx, start, at)
                m.gap_from = None
            self.step = "disconnect"
            try:
                # With response like every write here (Control declares write, not write-without-
                # response); the transmitter may drop the link before answering: that is the goodbye.
                await control.write(g6.DISCONNECT, True, _OP_MS)
            except Exception:
                pass    # the disconnect below cleans up either way
            self._emit("done", scan_ms=self.scan_ms)   # board ms scanned so far: make bench's duty cycle
        except ble.DeviceDisconnectedError:
            self._emit("failed", self.step + ": disconnected")
        except asyncio.TimeoutError:
            self._emit("failed", self.step + ": timeout")
        except ble.GattError as e:
            self._emit("failed", "%s: GATT error %s" % (self.step, getattr(e, "_status", e)))
        except g6.G6Error as e:
            self.gw.on_reject(self.clock.ticks_ms(), "g6_" + e.reason)
            self.app.flush()
            self._emit("failed", "%s: %s" % (self.step, e.reason))
        except _Fail as e:
            self._emit("failed", "%s: %s" % (self.step, e.args[0]))
        except (OSError, ValueError) as e:  # the stack refused (busy, not active, unsupported op)
            self._emit("failed", "%s: %r" % (self.step, e))
        finally:
            if conn is not None and conn.is_connected():
                try:
                    await conn.disconnect()
                except Exception:
                    pass  # already gone: the next window starts clean either way
        return opened

    async def _auth_answer(self, auth, parse):
        """Firefly indicates the answer; 1.x lets it be read. A read that returns our own request
        (firefly) is not the answer: then the indication is waited for. aioble refuses to read a
        characteristic without the read property (firefly's auth: "INDICATE / WRITE" only)."""
        try:
            return parse(await auth.indicated(_AUTH_IND_MS))
        except asyncio.TimeoutError:
            if not getattr(auth, "properties", _READ) & _READ:
                return parse(await auth.indicated(_OP_MS))
        try:
            return parse(await auth.read(timeout_ms=_OP_MS))
        except g6.G6Error:
            return parse(await auth.indicated(_OP_MS))

    async def _authenticate(self, conn, auth):
        self.step = "auth"
        await auth.subscribe(notify=False, indicate=True)
        token = _urandom8()
        await auth.write(g6.auth_request(token, self.slot), True)
        token_hash, challenge = await self._auth_answer(auth, g6.parse_auth_challenge)
        if token_hash != g6.hash8(self.key, token):
            # The transmitter hashed our token with another key: it is not the id we were given.
            self._fault("g6_auth", "transmitter %s does not answer to this id: check the id" % self.name)
            self._source("auth_failed")
            raise _Fail("token hash mismatch (wrong transmitter id)")
        await auth.write(g6.challenge_reply(self.key, challenge), True)
        ok, bonded = await self._auth_answer(auth, g6.parse_auth_status)
        self._fault("g6_auth", None)
        if not ok:
            self._fault("g6_slot", "%s slot refused: another receiver holds it" %
                        ("alternate" if self.slot == g6.SLOT_ALTERNATE else "phone"))
            self._source("slot_taken")
            raise _Fail("refused on this slot (taken by another receiver?)")
        self._fault("g6_slot", None)
        self.step = "bond"
        self._alive()
        # The security settings before anything can start pairing: after 07 the transmitter sends its
        # own security request, which the stack may answer by itself, and the bond must be kept then.
        cfg = getattr(self.ble, "config", None)
        if cfg is not None:
            cfg(bond=True, le_secure=True, mitm=False, io=_IO_NO_INPUT_OUTPUT)
        if not bonded:
            self._emit("bonding")
            await auth.write(g6.keep_alive(_KEEP_ALIVE_S), True)
            await auth.write(g6.BOND_REQUEST, True)
        # Bonded or not, the link must be encrypted before Control answers (GATT error 8 otherwise):
        # with a stored bond pairing only re-encrypts with it.
        try:
            await conn.pair(bond=True, le_secure=True, mitm=False, io=_IO_NO_INPUT_OUTPUT, timeout_ms=_PAIR_MS)
        except OSError:
            # "already in progress": the stack answered the transmitter's security request itself.
            # aioble still records the outcome on the connection; wait for it, bounded.
            left = _PAIR_MS
            while not getattr(conn, "encrypted", False):
                if left <= 0:
                    raise asyncio.TimeoutError
                await self.clock.sleep_ms(100)
                left -= 100

    async def _ask(self, control, req, parse):
        """Write a Control request; its reply, skipping firefly's D0 and refusing FF (invalid)."""
        self._alive()   # a slow session (pairing, backfill) stays inside the supervisor's 30 s
        await control.write(req, True)
        end = ticks.add(self.clock.ticks_ms(), _OP_MS)
        while True:
            left = ticks.diff(end, self.clock.ticks_ms())
            if left <= 0:
                raise asyncio.TimeoutError
            data = await control.indicated(left)
            if g6.is_interlude(data):
                continue
            if g6.parse_invalid(data) is not None:
                raise _Refused("transmitter refused %02x" % req[0])
            return parse(data)

    def _deliver(self, g, now_tx, start, at, backfilled=False):
        """A glucose or a backfill record to the core, when it may alarm; its state to the source."""
        m = self.mem
        why = g.usable(self.allow_0e)
        if why is not None:
            if not backfilled:
                state = why[6:] if why.startswith("state_") else None
                if state is not None:
                    self._fault("g6_sensor", "sensor " + state)
                    self._source(state)
                else:
                    self._emit("withheld", why)   # display-only or a special code: never alarms
            return False
        if g.timestamp in m.seen or (not backfilled and m.last_ts is not None and g.timestamp <= m.last_ts):
            return False          # already delivered: the same measurement as last window
        m.seen.append(g.timestamp)
        if len(m.seen) > 40:
            m.seen.pop(0)
        status = _ST_BATTERY_LOW if g.status == g6.STATUS_LOW_BATTERY else 0
        minutes = None if start is None else (g.timestamp - start) // 60
        r = Reading(self.tx_id, g.timestamp, g.mgdl, g.trend_mgdl_min(), minutes, status,
                    "dexcom_g6", backfilled)
        now = self.clock.ticks_ms()
        # measured (currentTime - timestamp) s before the time reply: dedup against the phone source
        # compares measurement times (docs/sensors.md); a backfilled record is hours old, and taken as
        # measured now the merge published it a second time beside the phone's copy (test_sim_g6.py)
        ago = ticks.diff(now, at) + g6.measured_ago_s(now_tx, g.timestamp) * 1000
        wall = self.clock.wall_ms()
        if wall is not None:
            r.wall_ms = wall - ago
        self.gw.on_reading(now, r, ticks.add(now, -ago))
        self.app.flush()
        if not backfilled:
            m.last_ts = g.timestamp
            m.last_rx = self.clock.ticks_ms()
            self._fault("g6_sensor", None)
            self._source("low_battery" if status else "up")
        return True

    async def _backfill(self, control, bfc, first, last, now_tx, start, at):
        """Ask for [first, last]; deliver the usable records not yet delivered, oldest first."""
        await bfc.subscribe(notify=True)    # before the request: frames can come before the 51 reply
        _deepen(bfc)
        bf = g6.Backfill()
        self._rx51 = None
        task = asyncio.create_task(self._answer51(control))
        try:
            await control.write(g6.backfill_request(first, last), True)
            end = ticks.add(self.clock.ticks_ms(), _BACKFILL_MS)
            while True:
                self._alive()
                try:
                    fr = await bfc.notified(_FRAME_MS)
                except asyncio.TimeoutError:
                    fr = _stranded(bfc)
                except IndexError:
                    fr = None   # aioble's flag set for a value already taken: nothing to read
                if fr is not None:
                    bf.add(fr)
                    continue
                rx = self._rx51
                if rx is not None and (bf.length >= rx[5] or bf.bad is not None):
                    break
                if ticks.diff(end, self.clock.ticks_ms()) <= 0:
                    raise asyncio.TimeoutError
        finally:
            if self._rx51 is None:
                task.cancel()
        if self._rx51 == "failed":
            raise _Fail("no backfill reply")
        got = 0
        for rec in bf.finish(self._rx51):   # G6Error: counted as a reject by the session
            if first <= rec.timestamp <= last and self._deliver(rec, now_tx, start, at, True):
                got += 1
        self._emit("backfilled", records=got)

    async def _answer51(self, control):
        try:
            while True:
                data = await control.indicated(_BACKFILL_MS)
                if g6.is_interlude(data):
                    continue
                if g6.parse_invalid(data) is not None:
                    self._rx51 = "failed"
                    return
                self._rx51 = g6.parse_backfill_rx(data)
                return
        except Exception:
            self._rx51 = "failed"


def _deepen(ch):
    """aioble keeps one notification; backfill frames come back to back: room for 24 (a 3-hour
    backfill is 17 frames). Without aioble's private queue, lost frames fail the CRC check and the
    next window asks again."""
    q = getattr(ch, "_notify_queue", None)
    if q is None or getattr(ch, "_g6_deep", False):
        return
    try:
        from collections import deque
        d = deque((), 24)
    except (ImportError, TypeError, ValueError):
        return
    while len(q):
        d.append(q.popleft())
    ch._notify_queue = d
    ch._g6_deep = True


def _stranded(ch):
    """A frame left in a deepened queue whose wake-up flag was already cleared (see cgms_central)."""
    q = getattr(ch, "_notify_queue", None)
    if q is None or not len(q):
        return None
    data = q.popleft()
    if not len(q):
        ev = getattr(ch, "_notify_event", None)
        if ev is not None:
            ev.clear()
    return data


def _load_bonds(ble, path):
    """Bond keys live in aioble's secrets store (a JSON file): loaded once so a reboot keeps the bond
    and the transmitter is not asked to bond again (it answers 05 01 01 to a bonded central)."""
    sec = getattr(ble, "security", None)
    if sec is None:
        try:
            from aioble import security as sec
        except ImportError:
            return
    try:
        sec.load_secrets(path)
    except Exception:
        pass   # no store yet: the first session bonds and aioble writes it


async def central_task(app):
    """The radio task for sensor.kind == "dexcom_g6"."""
    await G6Central(app, app.receiver).run()
