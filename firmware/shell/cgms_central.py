# Central for the Bluetooth SIG CGM Service 0x181F (docs/sensors.md), on aioble (the same micropython-lib
# aioble on the ESP32 and on the host, where it runs over tools/virtual_hw/bluetooth.py). Records in, readings to
# the core (CgmsTracker decides live vs backfilled), nothing else: the network is never on this path.
#
# A small state machine, one step at a time (aioble itself lets a connect cancel a running scan):
#   scan     finite scan windows until the configured address advertises (learns its address type)
#   connect  device.connect(), pair/bond (passkey from the config), discover, read CGM Feature,
#            subscribe to CGM Measurement (notify) and the RACP (indicate)
#   session  notifications -> records -> readings; after every gap a RACP "report records >= offset"
#   backoff  after a failed attempt: 2 s doubling to 60 s, then scan again
# Every step that fails is a `cgms` event with the step and the reason, so no failure is silent, and
# the core's sensor-silence alarm sounds if the link stays down.
import asyncio

from micropython import const

from firmware.core import ticks
from firmware.sensor import cgms
from firmware.shell.heard import Heard

_SVC_CGMS = const(0x181F)
_CHR_MEASUREMENT = const(0x2AA7)
_CHR_FEATURE = const(0x2AA8)
_CHR_RACP = const(0x2A52)
_FEATURE_E2E_CRC = const(1 << 12)    # CGM Feature bit 12: records carry an E2E-CRC

# Scan windows while looking for the sensor: a free CGMS sensor advertises at least once a second,
# so 5 s windows find it in one window and keep aioble's per-scan result set small.
_FIND_MS = const(5000)
# Same duty cycle as the broadcast scan (firmware/shell/heard.py): 30 ms of every 100 ms, so the
# shared 2.4 GHz radio is Wi-Fi's 70 % of the time (Wi-Fi keeps its default modem sleep; never PM_NONE).
_SCAN_INTERVAL_US = const(100000)
_SCAN_WINDOW_US = const(30000)
_CONNECT_MS = const(10000)         # aioble's default: the controller tries this long, then gives up
_PAIR_MS = const(20000)            # aioble's default for pair(); a wrong passkey ends here
_OP_MS = const(3000)               # one GATT read/write: a few connection events, generously
# One discovery step (service, each characteristic, a CCCD search): a few connection events on a
# healthy peer. aioble ignores the timeout_ms of service()/characteristic()/descriptor(), so without
# `with conn.timeout()` a peer that never answers holds the radio task for the stack's 30 s ATT
# timeout: the supervisor's stall limit. 4 s names a stalled peer well within 10 s of connecting.
_DISCOVER_MS = const(4000)
_POLL_MS = const(1000)             # longest wait for a notification before the loop looks around
_RACP_MS = const(60000)            # a whole RACP report: a day of records (288) at ~10 ms each is 3 s
_QUIET_MS = const(900000)          # 3 measurement periods (5 min) with no record on a live link: reconnect
_BACKOFF_MIN_MS = const(2000)
_BACKOFF_MAX_MS = const(60000)     # the core shows sensor_silent at 11 min; a retry each minute at worst
_ALIVE_MS = const(5000)            # longest wait between supervisor check-ins outside connect/pair
# aioble keeps only the newest notification (deque of 1). A RACP report arrives back to back, faster
# than the core handles readings on an ESP32, so when the characteristic has aioble's private
# _notify_queue it gets room for 16; without it, lost records are asked for again (CgmsTracker).
_NOTIFY_DEPTH = const(16)
_RACP_LAST = b"\x01\x06"           # RACP: report stored records, operator "last record"
_IRQ_PASSKEY_ACTION = const(31)
_PASSKEY_ACTION_INPUT = const(2)
_IO_KEYBOARD_ONLY = const(2)       # we type the passkey the sensor was provisioned with
_IO_NO_INPUT_OUTPUT = const(3)

_passkey = [None]      # read by the IRQ handler; one handler per process (aioble has no unregister)
_hooked = []


def _uuid_cls(ble):
    u = getattr(ble, "UUID", None)
    if u is None:
        from bluetooth import UUID as u  # the ESP32: aioble uses bluetooth.UUID
    return u


def _hook_passkey(ble, passkey):
    """Answer the stack's passkey request with the configured passkey (aioble leaves it a TODO)."""
    _passkey[0] = passkey
    core = getattr(ble, "core", None)
    if core is None or core in _hooked:
        return

    def irq(event, data):
        if event == _IRQ_PASSKEY_ACTION and data[1] == _PASSKEY_ACTION_INPUT and _passkey[0] is not None:
            core.ble.gap_passkey(data[0], _PASSKEY_ACTION_INPUT, _passkey[0])
        return None   # let aioble's own handlers see every event

    try:
        core.register_irq_handler(irq, None)   # aioble since 2022: (irq, shutdown)
    except TypeError:
        core.register_irq_handler(irq)         # older aioble: (irq)
    _hooked.append(core)


def _addr_bytes(text):
    return bytes(int(p, 16) for p in text.split(":"))


def parse_feature(b):
    """E2E-CRC required? from the CGM Feature value (features u24, type/location u8, CRC u16).
    Raises CgmsError("malformed"/"crc"): without a trustworthy feature value no record can be."""
    if len(b) < 6:
        raise cgms.CgmsError("malformed")
    feats = b[0] | (b[1] << 8) | (b[2] << 16)
    if feats & _FEATURE_E2E_CRC:
        if cgms.crc16_mcrf4xx(b, 0, 4) != b[4] | (b[5] << 8):
            raise cgms.CgmsError("crc")
        return True
    return False


class _Fail(Exception):
    pass


class _Stalled(Exception):
    pass


class CgmsCentral:
    def __init__(self, app, tracker):
        self.app = app
        self.ble = app.board.ble
        self.clock = app.clock
        self.gw = app.gw
        s = app.cfg["sensor"]
        self.addr = _addr_bytes(s["address"])
        self.passkey = s["passkey"] or None   # 0 = none configured: "just works" bonding
        self.tracker = tracker
        self.state = "scan"
        self.step = None
        self.backoff = _BACKOFF_MIN_MS
        self.crc = False
        self.sessions = 0
        self.records = 0          # measurement notifications handled this session
        self._anchor = None       # (sensor offset, wall ms) of the newest live reading: dates backfill
        self._racp_result = None
        self._UUID = _uuid_cls(self.ble)
        # The supervisor's watchdog judges the radio task hung after 30 s without a check-in; scans
        # check in through its wrapped ble, a connected central must do it itself.
        self._checkin = getattr(getattr(app, "sup", None), "checkin", None)

    def _alive(self):
        if self._checkin is not None:
            self._checkin("radio")

    def _emit(self, state, why=None, **extra):
        ev = {"event": "cgms", "state": state}
        if why is not None:
            ev["why"] = why
        ev.update(extra)
        self.app.board.emit(ev)

    async def run(self):
        _hook_passkey(self.ble, self.passkey)
        searching = False
        while True:
            self.state = "scan"
            if not searching:
                self._emit("searching")
                searching = True
            dev = await self._find()
            if dev is None:
                continue
            searching = False
            healthy = await self._session(dev)
            if healthy:
                self.backoff = _BACKOFF_MIN_MS
                continue
            self.state = "backoff"
            left = self.backoff
            while left > 0:   # in pieces: the task stays visibly alive while it waits
                self._alive()
                await self.clock.sleep_ms(min(left, _ALIVE_MS))
                left -= _ALIVE_MS
            self.backoff = min(self.backoff * 2, _BACKOFF_MAX_MS)

    async def _find(self):
        """One finite scan window; the sensor's Device when it advertised, else None."""
        found = None
        async with self.ble.scan(_FIND_MS, interval_us=_SCAN_INTERVAL_US, window_us=_SCAN_WINDOW_US,
                                 active=False) as scanner:
            # Heard, not aioble's iterator, which keeps a ScanResult per address heard for the whole scan
            # (firmware/shell/heard.py): a crowded sky's rotating addresses would grow that without bound
            async for addr_type, addr, _, _, _ in Heard(scanner):
                if addr == self.addr:
                    found = self.ble.Device(addr_type, addr)
                    break   # leaving the block stops the scan before connecting
        return found

    async def _session(self, device):
        """Connect and serve until the link drops. True when records flowed (backoff resets)."""
        ble = self.ble
        conn = None
        self.records = 0
        self.state = "connect"
        try:
            self.step = "connect"
            conn = await device.connect(timeout_ms=_CONNECT_MS)
            self.step = "pair"
            self._alive()
            if self.passkey is None:
                await conn.pair(bond=True, le_secure=True, mitm=False, io=_IO_NO_INPUT_OUTPUT,
                                timeout_ms=_PAIR_MS)
            else:
                await conn.pair(bond=True, le_secure=True, mitm=True, io=_IO_KEYBOARD_ONLY,
                                timeout_ms=_PAIR_MS)
            self.step = "discover"
            self._alive()
            U = self._UUID
            svc = await self._bounded(conn, conn.service(U(_SVC_CGMS)))
            if svc is None:
                raise _Fail("no CGM service")
            meas = await self._bounded(conn, svc.characteristic(U(_CHR_MEASUREMENT)))
            feat = await self._bounded(conn, svc.characteristic(U(_CHR_FEATURE)))
            racp = await self._bounded(conn, svc.characteristic(U(_CHR_RACP)))
            if meas is None or feat is None or racp is None:
                raise _Fail("CGM service lacks measurement, feature or RACP")
            self.step = "feature"
            try:
                self.crc = parse_feature(await feat.read(timeout_ms=_OP_MS))
            except cgms.CgmsError as e:
                self._reject(e.reason)
                raise _Fail("CGM Feature " + e.reason)
            self.step = "subscribe"
            _deepen(meas)
            # subscribe() searches the descriptors for the CCCD first: a discovery like the others.
            await self._bounded(conn, meas.subscribe(notify=True))
            await self._bounded(conn, racp.subscribe(notify=False, indicate=True))
            self.sessions += 1
            self.state = "session"
            self.step = "session"
            self._emit("connected", e2e_crc=self.crc)
            self.tracker.connected(self.clock.ticks_ms())
            await self._serve(meas, racp)
        except ble.DeviceDisconnectedError:
            self._emit("disconnected", self.step)
        except _Stalled:
            # Connected and paired, then silence: the peer's GATT server is stuck, not absent. Said as
            # such (a `peer_stalled` reject and the step), and the link is dropped below so the next
            # attempt starts from a clean stack.
            self._reject("peer_stalled")
            self._emit("failed", "%s: peer_stalled (no answer in %d ms)" % (self.step, _DISCOVER_MS))
        except asyncio.TimeoutError:
            self._emit("failed", self.step + ": timeout")
        except ble.GattError as e:
            self._emit("failed", "%s: GATT error %s" % (self.step, getattr(e, "_status", e)))
        except _Fail as e:
            self._emit("failed", "%s: %s" % (self.step, e.args[0]))
        except (OSError, ValueError) as e:  # the stack refused (busy, not active, unsupported op)
            self._emit("failed", "%s: %r" % (self.step, e))
        finally:
            if self.tracker.requested is not None:
                self.tracker.racp_done("procedure_not_completed")   # counted: gaps do not retry forever
            if conn is not None and conn.is_connected():
                try:
                    await conn.disconnect()
                except Exception:
                    pass  # already gone: the next session starts clean either way
        return self.records > 0

    async def _bounded(self, conn, op):
        """One discovery step under `with conn.timeout()`: _Stalled when the peer does not answer."""
        self._alive()
        try:
            with conn.timeout(_DISCOVER_MS):
                return await op
        except asyncio.TimeoutError:
            raise _Stalled()

    async def _serve(self, meas, racp):
        clock = self.clock
        last_rx = clock.ticks_ms()
        racp_task = None
        # Nothing held yet (first connection since boot): ask for the sensor's newest record, so
        # the bedside knows the glucose now instead of at the next measurement, up to 5 min later.
        newest = self.tracker.held is None
        try:
            while True:
                self._alive()
                if racp_task is None:
                    cmd = None
                    if newest:
                        cmd = _RACP_LAST
                        newest = False
                    else:
                        off = self.tracker.want_racp()
                        if off is not None:
                            cmd = cgms.racp_report_since(off)
                    if cmd is not None:
                        self._racp_result = None
                        # listen before asking: the answer can come right after the write
                        racp_task = asyncio.create_task(self._racp_answer(racp, meas))
                        await racp.write(cmd, True, _OP_MS)
                data = _queued(meas)
                try:
                    if data is None:
                        data = await meas.notified(_POLL_MS)
                except asyncio.TimeoutError:
                    data = None
                except IndexError:
                    # aioble's flag was set but its queue is empty (a value taken by _queued
                    # raced the flag): nothing to read, and the wait has cleared the flag.
                    data = None
                now = clock.ticks_ms()
                if data is not None:
                    last_rx = now
                    self.records += 1
                    self._handle(data, now)
                    continue
                # Only with no notification pending: the report's records come before its answer.
                if racp_task is not None and self._racp_result is not None:
                    result = self._racp_result
                    racp_task = None
                    if self.tracker.requested is not None:
                        self.tracker.racp_done(result)
                    if result not in ("success", "no_records"):
                        self._emit("racp", result)
                if ticks.diff(now, last_rx) > _QUIET_MS:
                    raise _Fail("no record for %d min" % (_QUIET_MS // 60000))
        finally:
            if racp_task is not None and self._racp_result is None:
                racp_task.cancel()

    async def _racp_answer(self, racp, meas):
        try:
            self._racp_result = cgms.parse_racp_response(await racp.indicated(_RACP_MS))
        except asyncio.TimeoutError:
            self._racp_result = "timeout"
        except Exception:
            self._racp_result = "disconnected"   # the session loop sees the link drop itself
        # The session loop may be waiting for a notification: wake it, so the answer (which comes after
        # the report's last record) ends the backfill now, not at the end of a poll.
        ev = getattr(meas, "_notify_event", None)
        if ev is not None:
            ev.set()

    def _reject(self, reason):
        self.gw.on_reject(self.clock.ticks_ms(), reason)
        self.app.flush()

    def _handle(self, data, now):
        try:
            records = cgms.decode_measurements(data, self.crc)
        except cgms.CgmsError as e:
            self._reject(e.reason)   # the whole notification; its records come back through the RACP
            return
        wall = self.clock.wall_ms()
        for r in self.tracker.on_records(records, now):
            if not r.backfilled:
                r.wall_ms = wall
                if wall is not None:
                    self._anchor = (r.minutes, wall)
            elif self._anchor is not None:
                # When the sensor measured it: its time offset against the newest live reading's.
                r.wall_ms = self._anchor[1] + (r.minutes - self._anchor[0]) * 60000
            self.gw.on_reading(now, r)
        for reason in self.tracker.take_rejects():
            self.gw.on_reject(now, reason)
        self.app.flush()


def _queued(ch):
    """A notification already in the (deepened) queue, or None: taken without waiting.
    aioble's IRQ handler sets the characteristic's flag only when its queue goes from empty to one
    item, and the wait clears the flag: a second value arriving before the woken task runs sits in the
    queue with the flag clear, and notified() would wait a whole poll for a flag nobody sets (the 1 s
    tail of a backfill). So whatever is queued is taken first. The flag is left as it is: a flag left
    set on an empty queue makes the next notified() raise IndexError, which the loop treats as
    "nothing yet" (clearing it here could race an IRQ on a board and strand a value)."""
    q = getattr(ch, "_notify_queue", None)
    if q is None or not len(q):
        return None
    return q.popleft()


def _deepen(ch):
    q = getattr(ch, "_notify_queue", None)
    if q is None:
        return
    try:
        from collections import deque
        d = deque((), _NOTIFY_DEPTH)   # MicroPython's deque takes only () as its initial items
    except (ImportError, TypeError, ValueError):
        return  # keep aioble's own: the tracker re-asks for what gets lost
    while len(q):
        d.append(q.popleft())
    ch._notify_queue = d


async def central_task(app):
    """The radio task for sensor.kind == "cgms"."""
    await CgmsCentral(app, app.receiver).run()
