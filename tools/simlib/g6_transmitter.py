# A virtual Dexcom G6 transmitter for the simulator and the host tests: a pure state machine (time in
# seconds is passed in) with its OWN message encoder, written from ../shared/DEXCOM_G6.md and not from
# firmware/sensor/dexcom_g6.py, so a bug in the firmware's codec is not mirrored here. Its bytes are
# checked against the shared vectors (host_tests/unit/test_g6_transmitter.py).
#
# What it models (each from the facts file; modelling choices marked "model"):
#   - advertising: name "Dexcom" + last two id chars, service FEBC, for WINDOW_S (~15 s) every PERIOD_S
#     (5 min); one glucose measurement at the start of each window (§2);
#   - auth on the Authentication characteristic: 01 token slot -> 03 tokenHash challenge -> 04 hash ->
#     05 authenticated bonded, hash = AES-128-ECB with "00"+id+"00"+id (§3). The transmitter hashes with
#     ITS id: a central configured with another id sees a token hash it cannot reproduce, and its
#     challenge answer is refused (05 00 02);
#   - two slots (alternate 0x01, phone 0x02): a slot held by another receiver refuses auth (05 00 02)
#     and records a `g6_slot_taken` event (model: the facts say only one device per slot, §2);
#   - bonding: 06 keep-alive + 07 bond request, then the central pairs; Control/Backfill writes and
#     their CCCDs need the encrypted link, else ATT error 8 / 5 (§4);
#   - generations: "1.x" answers auth by read (model: no auth indications), 12-byte battery, raw 2E,
#     glucose 30 and 4E; "firefly" answers auth by indication only (a read returns the request, xdrip-js
#     #124), 10-byte battery, no raw, refuses 30 with FF 30 01 (model), may send a D0 first (§5, §9);
#   - sensor states: warm-up 2 h after a session start, then OK, expired (0x18) after SESSION_DAYS,
#     stopped (01) without a session; the transmitter status byte 0x81/0x83 by setting;
#   - backfill: 50 start end -> frames "seq | identifier<<6 | payload" on F8083536 (4-byte header,
#     8-byte records), then 51 with the frames' total length and CRC (§8).
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PERIOD_S = 300
WINDOW_S = 15
WARMUP_S = 2 * 3600
SESSION_DAYS = 10
ALTERNATE, PHONE = 1, 2
AUTH, CONTROL, BACKFILL = "auth", "control", "backfill"
ATT_INSUFFICIENT_AUTHENTICATION = 5
ATT_INSUFFICIENT_ENCRYPTION = 8
_FRAME_PAYLOAD = 18


# ---- the simulator's own encoder -------------------------------------------------------------------
def crc_xmodem(data):
    """CRC-16/XMODEM bit by bit (poly 0x1021, init 0): deliberately not the firmware's table."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def framed(body):
    return bytes(body) + struct.pack("<H", crc_xmodem(body))


def crypt_key(tx_id):
    return ("00%s00%s" % (tx_id, tx_id)).encode("ascii")


def auth_hash(tx_id, data):
    enc = Cipher(algorithms.AES(crypt_key(tx_id)), modes.ECB()).encryptor()
    return (enc.update(bytes(data) * 2) + enc.finalize())[:8]


def enc_time(status, now, session_start):
    start = 0xFFFFFFFF if session_start is None else session_start
    return framed(struct.pack("<BBIII", 0x25, status, now, start, 1))


def enc_glucose_31(status, seq, ts, mgdl, state, trend, display_only=False):
    g = (mgdl & 0xFFF) | (0x4000 if display_only else 0)   # CGMBLEKit testDisplayOnly sets 0x4000
    return framed(struct.pack("<BBIIHBb", 0x31, status, seq, ts, g, state, trend))


def enc_glucose_4f(status, seq, ts, mgdl, state, trend, predicted, display_only=False):
    g = (mgdl & 0xFFF) | (0x4000 if display_only else 0)
    return framed(struct.pack("<BBIIHBbH", 0x4F, status, seq, ts, g, state, trend, predicted & 0x3FF))


def enc_battery(status, volt_a, volt_b, resistance, runtime, temp):
    if resistance is None:       # firefly: 10 bytes
        return framed(struct.pack("<BBHHBB", 0x23, status, volt_a, volt_b, runtime, temp))
    return framed(struct.pack("<BBHHHBB", 0x23, status, volt_a, volt_b, resistance, runtime, temp))


def enc_backfill_rx(status, bstatus, ident, start, end, length, bcrc):
    return framed(struct.pack("<BBBBIIIH", 0x51, status, bstatus, ident, start, end, length, bcrc))


def enc_backfill_frames(header, records, ident):
    """records: (ts, mgdl, state, trend). Frames of at most 20 bytes: seq | ident<<6 | payload."""
    stream = bytes(header) + b"".join(struct.pack("<IHBb", ts, g & 0xFFF, st, tr) for ts, g, st, tr in records)
    frames = []
    for i in range(0, len(stream), _FRAME_PAYLOAD):
        frames.append(bytes((len(frames) + 1, (ident << 6) & 0xFF)) + stream[i:i + _FRAME_PAYLOAD])
    return frames


def enc_request(opcode):
    return framed(bytes((opcode,)))


def enc_backfill_request(start, end):
    return framed(struct.pack("<BBBBII", 0x50, 5, 2, 0, start, end) + bytes(6))


class AttError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


# ---- the transmitter ---------------------------------------------------------------------------------
class G6Transmitter:
    def __init__(self, tx_id="8G1234", generation="firefly", activated_at=0.0, phase_s=0.0,
                 glucose=None, d0_first=False):
        assert generation in ("1.x", "firefly")
        self.tx_id = tx_id
        self.generation = generation
        self.activated_at = activated_at   # sim seconds when the transmitter's clock was 0
        self.phase_s = phase_s             # sim seconds of the first window
        self.glucose = glucose or (lambda t: 110)   # the trace: mg/dL at sim time t
        self.d0_first = d0_first
        self.session_start = None          # transmitter seconds, or None: no sensor session
        self.state_override = None         # a sensor state code forced by the scenario
        self.status = 0                    # 0x81 low battery, 0x83 expired
        self.records = []                  # (ts, mgdl, state, trend), one per window
        self.slots = {ALTERNATE: None, PHONE: None}   # who holds each slot
        self.bonds = set()                 # centrals that hold our bond
        self.link = None
        self.in_range = True
        self.events = []                   # trace events: dicts with "event"
        self._last_window = None
        self._ident = 0
        self._seq = 0

    # -- clock and sensor ------------------------------------------------------------------------
    def clock(self, t):
        return int(t - self.activated_at)

    def start_session(self, t):
        self.session_start = self.clock(t)

    def sensor_state(self, t):
        if self.state_override is not None:
            return self.state_override
        if self.session_start is None:
            return 0x01
        age = self.clock(t) - self.session_start
        if age < WARMUP_S:
            return 0x02
        if age >= SESSION_DAYS * 86400:
            return 0x18
        return 0x06

    def window_start(self, t):
        """Sim time of the window that contains or last preceded t."""
        k = (t - self.phase_s) // PERIOD_S
        return self.phase_s + k * PERIOD_S

    def next_window(self, t):
        w = self.window_start(t)
        return w if w >= t else w + PERIOD_S

    def tick(self, t):
        """Take the measurement of each window that has begun by t."""
        w = self.window_start(t)
        if t < self.phase_s or w == self._last_window:
            return
        self._last_window = w
        prev = self.records[-1] if self.records else None
        mgdl = int(round(self.glucose(w)))
        trend = 0 if prev is None else max(-127, min(126, int(round((mgdl - prev[1]) * 10 / 5))))
        self._seq += 1
        self.records.append((self.clock(w), mgdl, self.sensor_state(w), trend))
        self.records = self.records[-288:]   # a day, like the transmitter's own store (~12.5 h+)

    def advertising(self, t):
        if not self.in_range or self.link is not None or t < self.phase_s:
            return False
        return t - self.window_start(t) < WINDOW_S

    def advert(self):
        """(name, 16-bit services, manufacturer data) as a scanner sees them."""
        return "Dexcom" + self.tx_id[-2:], [0xFEBC], bytes.fromhex("d000f203")

    # -- a connection ----------------------------------------------------------------------------
    def connect(self, t, central):
        self.tick(t)
        if not self.advertising(t):
            return None
        self.link = Link(self, central, t)
        return self.link

    def take_slot(self, slot, who="receiver"):
        self.slots[slot] = who


class Link:
    """One connection from `central` (any hashable name). write()/read() return what the transmitter
    sends back: a list of (characteristic, "indicate"|"notify", bytes) for the subscribed ones."""

    def __init__(self, tx, central, t):
        self.tx, self.central, self.t = tx, central, t
        self.subs = {}             # char -> "indicate" / "notify"
        self.encrypted = False
        self.authenticated = False
        self.bond_requested = False
        self.token = None
        self.challenge = None
        self.slot = None
        self.last_auth = b""       # what a read of the auth characteristic returns
        self.open = True
        self.writes = []           # (char, bytes) as received

    def _need_encryption(self, char):
        if char in (CONTROL, BACKFILL) and not self.encrypted:
            raise AttError(ATT_INSUFFICIENT_ENCRYPTION)

    def subscribe(self, char, kind):
        self._need_encryption(char)
        self.subs[char] = kind

    def _out(self, char, kind, data):
        if self.subs.get(char) == kind:
            return [(char, kind, data)]
        return []

    def _auth_reply(self, data):
        if self.tx.generation == "firefly":
            return self._out(AUTH, "indicate", data)   # a read still returns the request
        self.last_auth = data
        return []              # model: 1.x is read back

    def read(self, char):
        if char != AUTH:
            raise AttError(2)  # read not permitted
        return self.last_auth

    def pair(self):
        """The central's pairing/encryption request: True when the link is encrypted."""
        tx = self.tx
        if self.central in tx.bonds or (self.bond_requested and self.authenticated):
            tx.bonds.add(self.central)
            self.encrypted = True
            return True
        return False

    def write(self, char, data, t=None):
        if not self.open:
            raise AttError(0x0E)
        data = bytes(data)
        self.writes.append((char, data))
        if t is not None:
            self.t = t
        if char == AUTH:
            return self._write_auth(data)
        self._need_encryption(char)
        if char == CONTROL:
            return self._write_control(data)
        raise AttError(3)      # write not permitted

    def _write_auth(self, data):
        tx = self.tx
        op = data[0] if data else None
        if op == 0x01 and len(data) == 10:
            self.token = data[1:9]
            self.slot = data[9]
            self.last_auth = data          # a firefly read now returns the request itself
            self.challenge = os.urandom(8)
            return self._auth_reply(b"\x03" + auth_hash(tx.tx_id, self.token) + self.challenge)
        if op == 0x04 and len(data) == 9 and self.challenge is not None:
            ok = data[1:] == auth_hash(tx.tx_id, self.challenge)
            owner = tx.slots.get(self.slot, "invalid")
            if ok and owner not in (None, self.central):
                tx.events.append({"event": "g6_slot_taken", "slot": self.slot, "by": owner})
                ok = False
            if ok:
                tx.slots[self.slot] = self.central
            self.authenticated = ok
            bonded = 1 if self.central in tx.bonds else 2
            return self._auth_reply(bytes((0x05, 1 if ok else 0, bonded)))
        if op == 0x06 and len(data) == 2 and self.authenticated:
            return self._auth_reply(b"\xff\x06\x01")     # the ESP32R capture: "invalid", harmless
        if op == 0x07 and len(data) == 1 and self.authenticated:
            self.bond_requested = True
            return []
        if op == 0x09:
            self.close()
            return []
        return self._auth_reply(bytes((0xFF, op or 0, 1)))

    def _write_control(self, data):
        tx = self.tx
        if data == b"\x09":
            self.close()
            return []
        if len(data) < 3 or crc_xmodem(data[:-2]) != struct.unpack("<H", data[-2:])[0]:
            return self._out(CONTROL, "indicate", bytes((0xFF, data[0] if data else 0, 2)))
        op = data[0]
        now = tx.clock(self.t)
        out = []
        if tx.d0_first and tx.generation == "firefly":
            out += self._out(CONTROL, "indicate", b"\xd0\x01")
        if op == 0x24:
            out += self._out(CONTROL, "indicate", enc_time(tx.status, now, tx.session_start))
        elif op in (0x30, 0x4E):
            if op == 0x30 and tx.generation == "firefly":
                return out + self._out(CONTROL, "indicate", b"\xff\x30\x01")
            tx.tick(self.t)
            if tx.records:
                ts, mgdl, state, trend = tx.records[-1]
            else:
                ts, mgdl, state, trend = now, 1, tx.sensor_state(self.t), 127
            seq = tx._seq
            usable = state in (6, 7)
            if not usable:
                mgdl, trend = 1, 127                     # the real capture of a stopped sensor
            if op == 0x30:
                out += self._out(CONTROL, "indicate", enc_glucose_31(tx.status, seq, ts, mgdl, state, trend))
            else:
                out += self._out(CONTROL, "indicate", enc_glucose_4f(tx.status, seq, ts, mgdl, state, trend, mgdl))
        elif op == 0x22:
            res = None if tx.generation == "firefly" else 717
            out += self._out(CONTROL, "indicate", enc_battery(tx.status, 316, 303, res, 31, 36))
        elif op == 0x50 and len(data) == 20:
            start, end = struct.unpack("<II", data[4:12])
            recs = [r for r in tx.records if start <= r[0] <= end]
            ident = tx._ident
            tx._ident = (tx._ident + 1) & 3
            frames = enc_backfill_frames(struct.pack("<HH", len(recs), 0), recs, ident) if recs else []
            whole = b"".join(frames)
            for fr in frames:
                out += self._out(BACKFILL, "notify", fr)
            first = recs[0][0] if recs else start
            last = recs[-1][0] if recs else end
            out += self._out(CONTROL, "indicate",
                             enc_backfill_rx(tx.status, 1, ident, first, last, len(whole), crc_xmodem(whole)))
        else:
            out += self._out(CONTROL, "indicate", bytes((0xFF, op, 1)))
        return out

    def close(self):
        self.open = False
        if self.tx.link is self:
            self.tx.link = None
