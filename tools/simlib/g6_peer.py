# A simulated Dexcom G6 transmitter on the air for tools/sim.py --sensor dexcom_g6: the protocol state
# machine of simlib/g6_transmitter.py (its own encoder, written from ../shared/DEXCOM_G6.md and checked
# against the vectors) behind a simlib.peripheral.Peripheral, so the gateway's real aioble scans,
# connects, authenticates, bonds and reads it over the virtual controller as on a board.
#
#   GATT: service F8083532-849E-531C-C594-30F1F86A4EA5 with Control F8083534 (write + indicate),
#         Authentication F8083535 (write + indicate; + read on 1.x, firefly has no read: §1) and
#         Backfill F8083536 (read + write + notify), as the facts file's table lists them.
#   advert: name "Dexcom" + the id's last two characters and service FEBC (§2), connectable, only
#         during its ~15 s window every 5 min (run_windows); the transmitter measures at the window's
#         start (the glucose of the newest trace row at that time), in range or not, so what the box
#         missed can be backfilled.
#   security: the link is unencrypted for auth (secure=False: the auth exchange is application-level);
#         pairing is refused until auth succeeded and the central sent the bond request (07), or it
#         holds our bond; Control/Backfill writes and their CCCDs need the encrypted link (ATT error 8).
#   timing: every reply the state machine produces goes out one connection event (7.5 ms, simulated)
#         after the write's response, as a transmitter answers in the next connection event; backfill
#         frames three per event, then the 51 reply.
# Scenario hooks (trace events, docs/simulator.md): g6_warmup (a new sensor session: 2 h of warm-up),
# g6_ok (a running session), g6_expired (state 0x18 and transmitter status 0x83), g6_slot_taken
# (another receiver holds the slot the box uses: auth is refused), g6_slot_free.
import asyncio

from simlib import g6_transmitter as gtx
from simlib.peripheral import ADV_IND, INDICATE, NOTIFY, READ, WRITE, Char, Peripheral, Service

SVC = "f8083532-849e-531c-c594-30f1f86a4ea5"
CONTROL = "f8083534-849e-531c-c594-30f1f86a4ea5"
AUTH = "f8083535-849e-531c-c594-30f1f86a4ea5"
BACKFILL = "f8083536-849e-531c-c594-30f1f86a4ea5"
CONN_EVENT_S = 0.0075           # one connection event (7.5 ms, the shortest interval), simulated time
PER_EVENT = 3                   # notifications per connection event
ADV_EVERY_MS = 200              # model: the advertising interval inside the window is undocumented
CENTRAL = "box"                 # the gateway, as the state machine names centrals
OK_AGE_S = 3 * 3600             # g6_ok: a session past its 2-hour warm-up


def advert(tx_id):
    name = ("Dexcom" + tx_id[-2:]).encode()
    return (bytes.fromhex("020106") + bytes((len(name) + 1, 0x09)) + name +
            bytes.fromhex("0303bcfe") + bytes.fromhex("05ffd000f203"))


class G6Peer(Peripheral):
    def __init__(self, send, addr, tx_id="8G1234", generation="firefly", glucose=None, clock=None,
                 speed=1.0, phase_s=20.0):
        self.clock = clock or (lambda: 0.0)       # simulated seconds now
        self.speed = speed
        self.tx = gtx.G6Transmitter(tx_id, generation, activated_at=-20 * 86400.0, phase_s=phase_s,
                                    glucose=glucose)
        self.tx.session_start = self.tx.clock(-OK_AGE_S)
        self.auth = Char(AUTH, WRITE | INDICATE | (READ if generation == "1.x" else 0))
        self.control = Char(CONTROL, WRITE | INDICATE)
        self.backfill = Char(BACKFILL, READ | WRITE | NOTIFY)
        Peripheral.__init__(self, send, addr, [Service(SVC, [self.control, self.auth, self.backfill])],
                            advert(tx_id), adv_type=ADV_IND, every_ms=ADV_EVERY_MS, secure=False)
        self.link = None
        self.windows = 0          # windows opened
        self.caught = 0           # windows in which the box read a glucose (a 4E/30 reply went out)
        self.window_log = []      # (opened sim s, glucose reply sim s or None) for the bench
        self.reads = []           # transmitter timestamps of usable records measured (the sim's `sent`)
        self.served = None        # the window in which the box connected (no advert after it)

    # ---- the window rhythm --------------------------------------------------------------------------
    def start(self):
        self._advertise(False)    # silent until its first window

    async def run_windows(self):
        tx = self.tx
        while True:
            t = tx.next_window(self.clock() + 0.001)
            await self._until(t)
            n = len(tx.records)
            tx.tick(self.clock())
            self.windows += 1
            self.window_log.append([t, None])
            if len(tx.records) > n and tx.records[-1][2] in (6, 7):
                self.reads.append(tx.records[-1][0])
            self._advertise(self.in_range and not self.connected)
            await self._until(t + gtx.WINDOW_S)
            self._advertise(False)

    async def _until(self, t):
        # asyncio may wake a hair early: then window_start() would still name the previous window and
        # the transmitter would stay silent for this one.
        while True:
            delay = (t - self.clock()) / self.speed
            if delay <= 0:
                return
            await asyncio.sleep(max(delay, 0.0005))

    def set_in_range(self, on):
        self.in_range = on
        self.tx.in_range = on
        if not on and self.connected:
            self._drop("out_of_range")
            self.send({"evt": {"evt": "disconnect", "addr": self.addr, "reason": "out_of_range"}})
        self._advertise(on and not self.connected and self.tx.advertising(self.clock()))

    def scenario(self, ev):
        """A g6_* trace event; True when it was one."""
        tx, t = self.tx, self.clock()
        if ev == "g6_warmup":
            tx.state_override, tx.status = None, 0
            tx.start_session(t)
        elif ev == "g6_ok":
            tx.state_override, tx.status = None, 0
            tx.session_start = tx.clock(t - OK_AGE_S)
        elif ev == "g6_expired":
            tx.state_override, tx.status = 0x18, 0x83
        elif ev == "g6_slot_taken":
            tx.take_slot(gtx.ALTERNATE, "receiver")
            tx.take_slot(gtx.PHONE, "phone")
        elif ev == "g6_slot_free":
            tx.slots = {gtx.ALTERNATE: None, gtx.PHONE: None}
        else:
            return False
        return True

    def take_events(self):
        out, self.tx.events = self.tx.events, []
        return out

    # ---- the link -------------------------------------------------------------------------------------
    def from_fw(self, req):
        if req.get("op") == "connect" and not self.tx.advertising(self.clock()):
            self.requests.append("connect")
            return self._rsp(req.get("id"), "no_device")   # asleep between windows
        return Peripheral.from_fw(self, req)

    def on_connect(self):
        self.link = self.tx.connect(self.clock(), CENTRAL)
        self.served = self.tx.window_start(self.clock())

    def _advertise(self, on):
        # Only inside its window, and once a session ended the transmitter sleeps until the next one.
        t = self.clock()
        on = on and self.tx.advertising(t) and self.served != self.tx.window_start(t)
        Peripheral._advertise(self, on)

    def on_disconnect(self, why):
        if self.link is not None:
            self.link.close()
            self.link = None

    def _name(self, char):
        return {AUTH: gtx.AUTH, CONTROL: gtx.CONTROL, BACKFILL: gtx.BACKFILL}[char.uuid]

    def on_subscribe(self, char, notify, indicate):
        if self.link is None:
            return 0x0E
        name = self._name(char)
        kind = "notify" if name == gtx.BACKFILL else "indicate"
        on = notify if kind == "notify" else indicate
        try:
            if on:
                self.link.subscribe(name, kind)
            else:
                self.link.subs.pop(name, None)
        except gtx.AttError as e:
            return e.code
        return 0

    def on_pair(self, req):
        link = self.link
        if link is None:
            return gtx.ATT_INSUFFICIENT_AUTHENTICATION
        if req.get("key") and self.bond_key is not None and req["key"] == self.bond_key:
            self.tx.bonds.add(CENTRAL)
        if not link.pair():
            return gtx.ATT_INSUFFICIENT_AUTHENTICATION   # model: "pairing not allowed" before auth + 07
        return 0

    def on_read(self, char):
        try:
            return self.link.read(self._name(char))
        except gtx.AttError as e:
            return e.code

    def on_write(self, char, data):
        link = self.link
        if link is None:
            return 0x0E
        try:
            out = link.write(self._name(char), data, self.clock())
        except gtx.AttError as e:
            return e.code
        for _, kind, body in out:
            if kind == "indicate" and body[:1] in (b"\x4f", b"\x31"):
                log = self.window_log[-1] if self.window_log else None
                if log is not None and log[1] is None and self.clock() - log[0] < gtx.PERIOD_S:
                    log[1] = self.clock()
                    self.caught += 1
        self._later(out, not link.open)
        return 0

    def _later(self, out, then_close):
        """The replies, one connection event after the write's response; then the goodbye."""
        loop = asyncio.get_running_loop()
        ev = CONN_EVENT_S / self.speed
        step = 1
        batch = []
        for name, kind, body in out:
            if kind == "notify":
                batch.append(body)
                if len(batch) == PER_EVENT:
                    loop.call_later(ev * step, self.notify_many, self.backfill, batch)
                    batch, step = [], step + 1
                continue
            if batch:
                loop.call_later(ev * step, self.notify_many, self.backfill, batch)
                batch, step = [], step + 1
            loop.call_later(ev * step, self.indicate, self.auth if name == gtx.AUTH else self.control, body)
            step += 1
        if batch:
            loop.call_later(ev * step, self.notify_many, self.backfill, batch)
            step += 1
        if then_close:
            loop.call_later(ev * step, self._goodbye)

    def _goodbye(self):
        if self.connected:
            self._drop("peer")
            self.send({"evt": {"evt": "disconnect", "addr": self.addr, "reason": "peer"}})
