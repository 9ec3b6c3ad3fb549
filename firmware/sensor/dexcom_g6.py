# Dexcom G6 transmitter messages (../shared/DEXCOM_G6.md, cited there): pure encoders and decoders for
# every message the box sends or reads as the transmitter's second receiver. No radio, no files; time is
# passed in. Runs on CPython (tests) and MicroPython (cryptolib's AES-ECB, as ccm.py uses it).
#
# Every decoder either returns its values or raises G6Error(reason) with a short reason the central
# counts as a reject: "malformed" (length/opcode), "crc", "not_glucose" (a backfill stream that is not
# glucose records), "sequence" (a backfill frame missing or out of order), "too_long".
from micropython import const

from cryptolib import aes

_ECB = const(1)                 # cryptolib mode 1 = ECB
# The advert (DEXCOM_G6.md §1, §2): name "Dexcom" + the id's last two characters, 16-bit service FEBC
ADV_SERVICE = const(0xFEBC)
_AD_UUID16_SOME = const(0x02)   # AD types (Bluetooth Core Specification Supplement, part A §1)
_AD_UUID16_ALL = const(0x03)
_AD_NAME_SHORT = const(0x08)
_AD_NAME = const(0x09)
# Auth opcodes (Authentication characteristic; no CRC on any of them, DEXCOM_G6.md §3, §5)
OP_AUTH_REQUEST = const(0x01)
OP_AUTH_CHALLENGE = const(0x03)
OP_CHALLENGE_REPLY = const(0x04)
OP_AUTH_STATUS = const(0x05)
OP_KEEP_ALIVE = const(0x06)
OP_BOND_REQUEST = const(0x07)
OP_DISCONNECT = const(0x09)
# Control opcodes (request, reply = request + 1; CRC-16/XMODEM appended low byte first)
OP_BATTERY = const(0x22)
OP_TIME = const(0x24)
OP_GLUCOSE_G5 = const(0x30)     # G5 and G6 1.x
OP_GLUCOSE_G6 = const(0x4E)     # G6 incl. firefly 2.x (required from 2.18.2.88 on: xdrip-js #87)
OP_BACKFILL = const(0x50)
OP_INVALID = const(0xFF)        # "FF op len": the transmitter refused the previous message
OP_F2D = const(0xD0)            # firefly sometimes indicates this first; the real reply follows

SLOT_ALTERNATE = const(0x01)    # the receiver/t:slim slot (xDrip endByteAlt, ESP32R)
SLOT_PHONE = const(0x02)        # the phone app's slot
NO_TIME = const(0xFFFFFFFF)     # "none" in every u32 time field
TREND_NONE = const(127)         # trend byte meaning "no trend"
_SPECIAL_MAX = const(13)        # glucose values 0..13 are codes, not mg/dL (xDrip GlucoseRxMessage)
_DISPLAY_ONLY = const(0xF000)   # any of the top 4 bits of the glucose u16 set = display-only
_FRAME_MAX = const(20)          # backfill frames are at most one 20-byte ATT notification
# A 3-hour backfill (the most the central asks for: 36 records of 8 bytes + a 4-byte header) fits in
# 17 frames; 2 KiB of payload is seven times that and still small on a 56 KiB heap. Longer streams
# are counted (length and CRC) but their payload is not kept.
_PAYLOAD_MAX = const(2048)
_REC = const(8)                 # one backfill record: ts u32, glucose u16, state u8, trend i8

# Sensor (calibration) states, glucose byte 12 / backfill record byte 6 (DEXCOM_G6.md §7).
ST_STOPPED = const(0x01)
ST_WARMUP = const(0x02)
ST_OK = const(0x06)
ST_NEEDS_CAL = const(0x07)
ST_INSUFFICIENT_CAL = const(0x0E)
# Status byte (byte 1 of most replies)
STATUS_OK = const(0x00)
STATUS_LOW_BATTERY = const(0x81)
STATUS_EXPIRED = const(0x83)


class G6Error(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# ---- CRC-16/XMODEM (poly 0x1021, init 0, no reflection), table-driven ----------------------------
# The table is 256 u16 in one 512-byte bytearray, built on first use: half a KiB buys a 1.7 KB backfill
# stream checked 8x faster than bit by bit.
_table = None


def _crc_table():
    global _table
    if _table is None:
        t = bytearray(512)
        for i in range(256):
            c = i << 8
            for _ in range(8):
                c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
            c &= 0xFFFF
            t[2 * i] = c >> 8
            t[2 * i + 1] = c & 0xFF
        _table = t
    return _table


def crc16(buf, start=0, end=None, crc=0):
    """CRC-16/XMODEM of buf[start:end], continuing from crc (0 for a new one)."""
    t = _crc_table()
    if end is None:
        end = len(buf)
    for i in range(start, end):
        j = ((crc >> 8) ^ buf[i]) << 1
        crc = (((crc << 8) & 0xFF00) ^ (t[j] << 8) ^ t[j + 1])
    return crc


def _with_crc(body):
    c = crc16(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))


def crc_ok(b):
    """True when b ends in the CRC-16/XMODEM (low byte first) of everything before it."""
    n = len(b) - 2
    return n > 0 and crc16(b, 0, n) == b[n] | (b[n + 1] << 8)


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


def _i8(v):
    return v - 256 if v > 127 else v


def _le32(v):
    return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, (v >> 24) & 0xFF))


def _control_reply(b, opcode, sizes):
    """Checks a Control reply's opcode, length (one of sizes) and CRC."""
    if len(b) < 3 or b[0] != opcode or len(b) not in sizes:
        raise G6Error("malformed")
    if not crc_ok(b):
        raise G6Error("crc")


# ---- authentication ------------------------------------------------------------------------------
def check_id(tx_id):
    """The reason a transmitter id is unusable, or None. G6 ids are 6 characters, digits and capital
    letters (1.x "80xxxx"/"81xxxx", firefly "8Gxxxx"...); 4-character ids are G7/ONE+, another protocol."""
    if type(tx_id) is not str or len(tx_id) != 6:
        return "must be the 6 characters printed on the transmitter"
    for c in tx_id:
        if not ("0" <= c <= "9" or "A" <= c <= "Z"):
            return "must be digits and capital letters only"
    return None


def advert_name(tx_id):
    """The name the transmitter advertises: "Dexcom" + the id's last two characters."""
    return "Dexcom" + tx_id[-2:]


def heard(adv, _dexcom=b"Dexcom"):
    """(name, lists ADV_SERVICE) of an advert naming a Dexcom, else None. Every advert a G6 search
    hears passes through here, so the others (iBeacons, phones...) leave after one substring search
    done in C. name is str; a name that is not UTF-8 is no Dexcom's: None."""
    if _dexcom not in adv:
        return None
    name, ours = None, False
    i, n = 0, len(adv)
    while i + 1 < n:
        ln, kind = adv[i], adv[i + 1]
        end = i + 1 + ln
        if ln == 0 or end > n:
            break   # a truncated structure ends the advert: what came before it still counts
        if kind == _AD_NAME_SHORT or kind == _AD_NAME:
            try:
                name = bytes(adv[i + 2:end]).decode()
            except UnicodeError:
                return None
        elif kind == _AD_UUID16_SOME or kind == _AD_UUID16_ALL:
            for j in range(i + 2, end - 1, 2):
                if adv[j] | adv[j + 1] << 8 == ADV_SERVICE:
                    ours = True
        i = end
    if name is None or not name.startswith("Dexcom"):
        return None
    return name, ours


def auth_key(tx_id):
    """The AES-128 key: ASCII "00" + id + "00" + id (xDrip getCryptKey, CGMBLEKit TransmitterID)."""
    k = ("00" + tx_id + "00" + tx_id).encode()
    if len(k) != 16:
        raise ValueError("transmitter id must be 6 characters")
    return k


def hash8(key, x):
    """First 8 bytes of AES-128-ECB(key, x || x): the token and challenge hash (DEXCOM_G6.md §3)."""
    if len(x) != 8:
        raise ValueError("hash input must be 8 bytes")
    return bytes(aes(key, _ECB).encrypt(bytes(x) + bytes(x)))[:8]


def auth_request(token, slot=SLOT_ALTERNATE):
    """AuthRequestTx, 10 bytes: 01 | token[8] | slot (0x01 alternate, 0x02 phone)."""
    if len(token) != 8 or slot not in (SLOT_ALTERNATE, SLOT_PHONE):
        raise ValueError("token must be 8 bytes, slot 1 or 2")
    return bytes((OP_AUTH_REQUEST,)) + bytes(token) + bytes((slot,))


def parse_auth_challenge(b):
    """AuthChallengeRx, 17 bytes: 03 | tokenHash[8] | challenge[8] -> (token_hash, challenge).
    A firefly read back returns our own request (01...): malformed, the challenge comes by indication."""
    if len(b) != 17 or b[0] != OP_AUTH_CHALLENGE:
        raise G6Error("malformed")
    return bytes(b[1:9]), bytes(b[9:17])


def challenge_reply(key, challenge):
    """ChallengeTx, 9 bytes: 04 | hash(challenge)."""
    return bytes((OP_CHALLENGE_REPLY,)) + hash8(key, challenge)


def parse_auth_status(b):
    """AuthStatusRx, 3 bytes: 05 | authenticated | bonded -> (authenticated, bonded). Bonded is 1 when the
    transmitter holds our bond; 2 means "not bonded": keep-alive and bond request next."""
    if len(b) != 3 or b[0] != OP_AUTH_STATUS:
        raise G6Error("malformed")
    return b[1] == 1, b[2] == 1


def keep_alive(seconds):
    """KeepAliveTx: 06 | seconds (25 in CGMBLEKit and ESP32R, 60 in xDrip)."""
    return bytes((OP_KEEP_ALIVE, seconds & 0xFF))


BOND_REQUEST = b"\x07"
DISCONNECT = b"\x09"            # no CRC, no reply: the transmitter drops the link


# ---- control requests ----------------------------------------------------------------------------
def request(opcode):
    """A one-byte Control request with its CRC: 24 e6 64 (time), 4e 0a a9 (glucose), 22 20 04 (battery)."""
    return _with_crc(bytes((opcode,)))


def backfill_request(start, end):
    """BackfillTx, 20 bytes: 50 05 02 00 | start u32 | end u32 | 6 x 00 | CRC (CGMBLEKit, xDrip)."""
    return _with_crc(b"\x50\x05\x02\x00" + _le32(start) + _le32(end) + bytes(6))


def is_interlude(b):
    """Firefly's D0 message: skip it and wait for the real reply on the next indication."""
    return len(b) > 0 and b[0] == OP_F2D


def parse_invalid(b):
    """FF | refused opcode | byte -> the refused opcode, or None when b is not an InvalidRx."""
    if len(b) == 3 and b[0] == OP_INVALID:
        return b[1]
    return None


def parse_time(b):
    """TransmitterTimeRx (25), 16 bytes -> (status, current_time_s, session_start_s or None)."""
    _control_reply(b, OP_TIME + 1, (16,))
    start = _u32(b, 6)
    return b[1], _u32(b, 2), None if start == NO_TIME else start


class Glucose:
    """A glucose reply (31 or 4F) or one backfill record. mgdl is the raw low 12 bits; whether it may be
    used is usable()'s decision, never the caller's."""

    def __init__(self, status, sequence, timestamp, raw, state, trend, predicted=None):
        self.status = status
        self.sequence = sequence
        self.timestamp = timestamp      # transmitter seconds when the sensor measured it
        self.mgdl = raw & 0x0FFF
        self.display_only = bool(raw & _DISPLAY_ONLY)
        self.state = state
        self.trend = _i8(trend)         # tenths of mg/dL per minute; 127 = none
        self.predicted = predicted

    def trend_mgdl_min(self):
        return None if self.trend == TREND_NONE else self.trend / 10

    def usable(self, allow_0e=False):
        """The reason this value must not reach the alarm engine, or None when it is a glucose."""
        if not state_usable(self.state, allow_0e):
            return "state_" + state_name(self.state)
        if self.display_only:
            return "display_only"
        if self.mgdl <= _SPECIAL_MAX:
            return "special_code"
        return None


def parse_glucose(b):
    """GlucoseRx (31, 16 bytes, G5/G6 1.x) or EGlucoseRx (4F, 18 bytes, G6 incl. firefly)."""
    if len(b) and b[0] == OP_GLUCOSE_G6 + 1:
        _control_reply(b, OP_GLUCOSE_G6 + 1, (18,))
        pred = _u16(b, 14) & 0x03FF
    else:
        _control_reply(b, OP_GLUCOSE_G5 + 1, (16,))
        pred = None
    return Glucose(b[1], _u32(b, 2), _u32(b, 6), _u16(b, 10), b[12], b[13], pred)


def parse_battery(b):
    """BatteryRx (23): 12 bytes on 1.x (with resistance), 10 on firefly ->
    (status, volt_a, volt_b, resistance or None, runtime_days, temperature_c)."""
    _control_reply(b, OP_BATTERY + 1, (10, 12))
    if len(b) == 12:
        return b[1], _u16(b, 2), _u16(b, 4), _u16(b, 6), b[8], _i8(b[9])
    return b[1], _u16(b, 2), _u16(b, 4), None, b[6], _i8(b[7])


def parse_backfill_rx(b):
    """BackfillRx (51), 20 bytes -> (status, backfill_status, identifier, start, end, length, buffer_crc)."""
    _control_reply(b, OP_BACKFILL + 1, (20,))
    return b[1], b[2], b[3], _u32(b, 4), _u32(b, 8), _u32(b, 12), _u16(b, 16)


def measured_ago_s(current_time, timestamp):
    """How long ago the transmitter measured a value: its clock now minus the value's timestamp."""
    ago = current_time - timestamp
    return ago if ago >= 0 else 0


# ---- sensor states ---------------------------------------------------------------------------------
def state_usable(code, allow_0e=False):
    """06 OK and 07 NeedsCalibration carry a glucose (xDrip usableGlucose); 0E only when allowed."""
    return code == ST_OK or code == ST_NEEDS_CAL or (allow_0e and code == ST_INSUFFICIENT_CAL)


def state_name(code):
    """A short name for a sensor state, by group (DEXCOM_G6.md §7): what the source event says."""
    if code == ST_OK:
        return "ok"
    if code == ST_NEEDS_CAL:
        return "needs_calibration"
    if code == ST_WARMUP:
        return "warmup"
    if code in (ST_STOPPED, 0x0F, 0x1A, 0xC2):   # Stopped, Ended, Stopped2, SensorStopped
        return "stopped"
    if code == 0x18:
        return "expired"
    if code in (0x0B, 0x0C, 0x10, 0x16, 0x17) or 0x13 <= code <= 0x15 or code == 0x19 or 0x1B <= code <= 0x1E:
        return "failed"
    if code == 0x11:
        return "transmitter_problem"
    if 0x03 <= code <= 0x0E:       # noise, needs first/second/different cal, confused, insufficient
        return "calibration"
    return "unknown"


def status_name(status):
    """The transmitter status byte: 00 ok, 81 low battery, 83 expired (xDrip: above 81 = bricked)."""
    if status == STATUS_OK:
        return "ok"
    if status == STATUS_LOW_BATTERY:
        return "low_battery"
    if status == STATUS_EXPIRED:
        return "expired"
    return "bricked" if status > STATUS_LOW_BATTERY else "unknown"


# ---- backfill stream (characteristic F8083536) ---------------------------------------------------
class Backfill:
    """Reassembles one backfill stream: frames "seq | id | payload", seq 1, 2, 3... Length and CRC are
    counted over the whole frames (what the 51 reply states); payloads are kept up to _PAYLOAD_MAX."""

    def __init__(self):
        self.frames = 0
        self.length = 0
        self.crc = 0
        self.payload = bytearray()
        self.bad = None          # the first reason the stream is broken, or None

    def add(self, frame):
        if self.bad is not None:
            return
        if len(frame) < 2 or len(frame) > _FRAME_MAX:
            self.bad = "malformed"
            return
        if frame[0] != (self.frames + 1) & 0xFF:
            self.bad = "sequence"
            return
        self.frames += 1
        self.length += len(frame)
        self.crc = crc16(frame, 0, len(frame), self.crc)
        if len(self.payload) + len(frame) - 2 <= _PAYLOAD_MAX:
            self.payload.extend(memoryview(frame)[2:])
        else:
            self.bad = "too_long"

    def finish(self, rx):
        """rx: parse_backfill_rx()'s tuple. The glucose records in time order, or G6Error."""
        if self.bad is not None:
            raise G6Error(self.bad)
        length, bcrc = rx[5], rx[6]
        if length != self.length or bcrc != self.crc:
            raise G6Error("crc")
        recs = records(self.payload)
        if not recs:
            return recs
        # A glucose stream covers exactly the asked span, in time order (CGMBLEKit's test streams that
        # pass length and CRC but are other data fail this; xDrip calls them "non backfill").
        if recs[0].timestamp != rx[3] or recs[-1].timestamp != rx[4]:
            raise G6Error("not_glucose")
        for i in range(1, len(recs)):
            if recs[i].timestamp <= recs[i - 1].timestamp:
                raise G6Error("not_glucose")
        return recs


def records(payload):
    """The whole 8-byte records after the stream's 4-byte header; a short tail is dropped."""
    out = []
    i = 4
    while i + _REC <= len(payload):
        out.append(Glucose(0, 0, _u32(payload, i), _u16(payload, i + 4), payload[i + 6], payload[i + 7]))
        i += _REC
    return out
