# Open CGM broadcast v1 receiver (frame format: docs/sensors.md). Pure: bytes in, Reading or reason out.
#
# Frame after the AD header `len FF FF FF` (type 0xFF, company id 0xFFFF little-endian):
#   header(1) | sensor id u32 LE (4) | counter u32 LE (4) | payload (6) | MIC (4, encrypted only)
#   payload: glucose u16 LE, trend i8 (0.1 mg/dL/min), minutes u16 LE, status u8 = 6 bytes.
#
# Every advert the radio hears passes through accept(), so the irrelevant ones (iBeacons, phones,
# headphones...) leave after one substring search done in C. Only adverts holding the bytes
# FF FF FF anywhere get the AD-structure walk in Python.
from binascii import unhexlify

from micropython import const

from firmware.core.reading import Reading
from firmware.sensor.ccm import Ccm

_MAGIC = b"\xff\xff\xff"          # AD type 0xFF + company id 0xFFFF
_COMPANY = b"\xff\xff"
_IRRELEVANT = (None, None)        # preallocated: the fast path allocates nothing
_PLAIN_LEN = const(15)            # header 1 + id 4 + counter 4 + payload 6
_ENC_LEN = const(19)              # plus the 4-byte MIC
_VERSION = const(1)
_ENCRYPTED = const(0x10)
_RESERVED_BITS = const(0xE0)
_NO_VALUE = const(0xFFFF)
_TREND_UNKNOWN = const(-128)
_MGDL_MIN = const(20)             # below any sensor's reporting floor (most stop at 39-40)
_MGDL_MAX = const(600)            # above any sensor's ceiling (most stop at 400-500)
_TREND_MAX = const(100)           # 10 mg/dL/min in 0.1 units: about twice the fastest human change
_MINUTES_BACK = const(2)          # clock jitter a bridge may show between frames
_NEW_SESSION = const(180)         # minutes below this after a big step back = a new sensor session
                                  # (warm-up is 30 min to 2 h, so a fresh session starts below it)
# Replay window (docs/sensors.md, Open CGM broadcast): a frame up to 32 counters behind the newest one is
# accepted once if it was not accepted before. A BLE stack may hand over a burst newest first
# (micropython-lib aioble pops its scan queue from the end), so a genuine frame can arrive after a newer
# one. Flags for the counters of the window live in a ring indexed by counter & 63 (64 > 32 + 1, so
# the newest and the whole window never share a slot); only the newest counter is persisted.
_WINDOW = const(32)
_RING_MASK = const(63)

REASONS = ("malformed", "version", "unknown_sensor", "plain_refused", "mic", "replay", "implausible")


def _find_frame(adv):
    """Walk the AD structures. Returns (start, end) of the bytes after the company id of the first
    FF/FFFF manufacturer structure, -1 when that structure is cut short, None when there is none."""
    n = len(adv)
    i = 0
    while i < n:
        ln = adv[i]
        if ln == 0:
            return None           # a zero length ends the significant part; the rest is padding
        end = i + 1 + ln
        ours = i + 3 < n and adv[i + 1] == 0xFF and adv[i + 2] == 0xFF and adv[i + 3] == 0xFF
        if end > n:
            return -1 if ours else None
        if ours and ln >= 3:
            return (i + 4, end)
        i = end
    return None


def _u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


class BroadcastReceiver:
    def __init__(self, sensor_cfg, counters):
        self.sensor_id = sensor_cfg["id"]
        key = sensor_cfg.get("bind_key") or ""
        self._ccm = Ccm(unhexlify(key)) if key else None
        self.allow_plain = bool(sensor_cfg.get("allow_plain"))
        self.counters = counters
        self._nonce = bytearray(13)
        self._last_payload = None   # plaintext of the last accepted frame: repeats are dropped
        self._last_minutes = None
        self.duplicates = 0         # repeats of an accepted frame (bridges send each one a few times)
        self.late = 0               # genuine frames accepted inside the replay window
        self._seen = bytearray(_RING_MASK + 1)   # 1 = that counter of the window was accepted
        self._base = None           # the newest counter _seen describes (None: not built yet)

    def accept(self, adv, _magic=_MAGIC, _none=_IRRELEVANT):
        """(Reading, None) accepted; (None, reason) refused; (None, None) not ours or a repeat.
        adv is bytes or bytearray (aioble's adv_data); anything else is a caller bug: TypeError.
        No try/except here: on the unix port a try block made this path ~10x slower."""
        if _magic not in adv:
            return _none
        return self._accept(adv)

    def _accept(self, adv):
        where = _find_frame(adv)
        if where is None:
            return _IRRELEVANT
        if where == -1:
            return None, "malformed"
        start, end = where
        if end - start < 1:
            return None, "malformed"
        hdr = adv[start]
        if hdr & 0x0F != _VERSION:
            return None, "version"
        if hdr & _RESERVED_BITS:
            return None, "malformed"
        enc = hdr & _ENCRYPTED
        if end - start != (_ENC_LEN if enc else _PLAIN_LEN):
            return None, "malformed"
        sid = _u32(adv, start + 1)
        if sid != self.sensor_id:
            return None, "unknown_sensor"
        counter = _u32(adv, start + 5)
        if enc:
            if self._ccm is None:
                return None, "mic"  # no bind key configured: it cannot be authenticated
            nonce = self._nonce
            nonce[0:4] = adv[start + 1:start + 5]
            nonce[4] = 0
            nonce[5] = 0
            nonce[6:8] = _COMPANY
            nonce[8] = hdr
            nonce[9:13] = adv[start + 5:start + 9]
            payload = self._ccm.decrypt(nonce, adv[start + 9:end])
            if payload is None:
                return None, "mic"
        else:
            if not self.allow_plain:
                return None, "plain_refused"
            payload = bytes(adv[start + 9:end])
        last = self.counters.get(sid)
        late = False
        if last is not None and counter <= last:
            seen = self._window(last)
            accepted = last - counter > _WINDOW or seen[counter & _RING_MASK]
            if accepted:
                # A repeat of the newest frame is not an attack: bridges send each frame a few times,
                # an encrypted frame with a good MIC can only come from the key holder, and a plain one
                # must match byte for byte. An older counter accepted before is a replay.
                if counter == last and (enc or payload == self._last_payload):
                    self.duplicates += 1
                    return _IRRELEVANT
                return None, "replay"
            late = True
        g = payload[0] | (payload[1] << 8)
        t = payload[2]
        if t > 127:
            t -= 256
        minutes = payload[3] | (payload[4] << 8)
        status = payload[5]
        if g == _NO_VALUE:
            mgdl = None
        elif g < _MGDL_MIN or g > _MGDL_MAX:
            return None, "implausible"
        else:
            mgdl = g
        if t == _TREND_UNKNOWN or t > _TREND_MAX or t < -_TREND_MAX:
            # An implausible trend makes the trend unknown, never the glucose: dropping the reading
            # would hide exactly the fast fall a parent most needs to hear about.
            trend = None
        else:
            trend = t / 10
        if late:
            # Older than the newest by its counter, so older by its minutes too: the step-back check
            # below is for frames that claim to be the newest.
            self._seen[counter & _RING_MASK] = 1
            self.late += 1
            return Reading(sid, counter, mgdl, trend, minutes, status, "broadcast"), None
        lm = self._last_minutes
        if lm is not None and minutes + _MINUTES_BACK < lm and minutes >= _NEW_SESSION:
            return None, "implausible"
        self._advance(last, counter)
        self.counters.put(sid, counter)
        self._last_payload = payload
        self._last_minutes = minutes
        return Reading(sid, counter, mgdl, trend, minutes, status, "broadcast"), None

    def _window(self, newest):
        """The ring for `newest`. Built the first time (after a reboot: from the persisted newest
        counter alone), every counter of the window counts as accepted: what was accepted before the
        reboot is not known, and refusing a late frame is safer than accepting a replay."""
        if self._base != newest:
            seen = self._seen
            for i in range(_RING_MASK + 1):
                seen[i] = 1
            self._base = newest
        return self._seen

    def _advance(self, last, counter):
        """counter is the new newest: slots of the counters skipped since `last` become free."""
        seen = self._seen
        if last is None or self._base != last or counter - last > _RING_MASK:
            for i in range(_RING_MASK + 1):
                seen[i] = 0
        else:
            c = last + 1
            while c < counter:
                seen[c & _RING_MASK] = 0
                c += 1
        seen[counter & _RING_MASK] = 1
        self._base = counter


def encode_frame(sensor_id, counter, mgdl, trend, minutes, status, bind_key=None):
    """The whole advertising payload (flags AD + manufacturer AD) of one frame, as a bridge sends
    it. bind_key: 16 bytes or 32 hex digits to encrypt, None/"" for a plain frame."""
    g = _NO_VALUE if mgdl is None else int(mgdl)
    if trend is None:
        t = _TREND_UNKNOWN
    else:
        t = int(round(trend * 10))
        t = 127 if t > 127 else (-127 if t < -127 else t)
    payload = bytes((g & 0xFF, g >> 8 & 0xFF, t & 0xFF, minutes & 0xFF, minutes >> 8 & 0xFF,
                     status & 0xFF))
    sid = bytes((sensor_id & 0xFF, sensor_id >> 8 & 0xFF, sensor_id >> 16 & 0xFF,
                 sensor_id >> 24 & 0xFF))
    ctr = bytes((counter & 0xFF, counter >> 8 & 0xFF, counter >> 16 & 0xFF, counter >> 24 & 0xFF))
    if bind_key:
        if type(bind_key) is str:
            bind_key = unhexlify(bind_key)
        hdr = _VERSION | _ENCRYPTED
        nonce = sid + b"\x00\x00" + _COMPANY + bytes((hdr,)) + ctr
        body = Ccm(bind_key).encrypt(nonce, payload)
    else:
        hdr = _VERSION
        body = payload
    frame = b"\xff" + _COMPANY + bytes((hdr,)) + sid + ctr + body
    return b"\x02\x01\x06" + bytes((len(frame),)) + frame
