# Bluetooth SIG Continuous Glucose Monitoring Service 0x181F (docs/sensors.md). Pure decoders
# for CGM Measurement (0x2AA7) and the Record Access Control Point (0x2A52), and CgmsTracker, which
# turns records into Readings, drops duplicates, notices gaps and says what to ask the RACP for.
from micropython import const

from firmware.core import ticks
from firmware.core.reading import Reading


class CgmsError(ValueError):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason      # "crc" or "malformed": the `reject` event's reason


# --- CRC-16/MCRF4XX (E2E-CRC): reflected poly 0x8408, init 0xFFFF, no final xor ---

def crc16_mcrf4xx(data, start=0, end=None):
    if end is None:
        end = len(data)
    crc = 0xFFFF
    for i in range(start, end):
        crc ^= data[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0x8408
            else:
                crc >>= 1
    return crc


# --- SFLOAT (IEEE 11073 16-bit): 4-bit signed exponent, 12-bit signed mantissa ---

_SPECIAL = {0x07FF: "NaN", 0x0800: "NRes", 0x07FE: "+INF", 0x0802: "-INF", 0x0801: "reserved"}


def sfloat_special(raw):
    """Name of a special SFLOAT value, or None for an ordinary number."""
    return _SPECIAL.get(raw)


def sfloat(raw):
    """Value of an SFLOAT, or None for any special value (NaN, NRes, +/-INF, reserved)."""
    if raw in _SPECIAL:
        return None
    m = raw & 0x0FFF
    if m >= 0x0800:
        m -= 0x1000
    e = raw >> 12
    if e >= 8:
        e -= 16
    if e < 0:
        return m / (10 ** -e)     # divide: 1234 / 100 gives 12.34 exactly rounded, 1234 * 0.01 not
    return float(m * 10 ** e)


# --- CGM Measurement records ---

_F_TREND = const(0x01)
_F_QUALITY = const(0x02)
_F_RFU = const(0x1C)       # bits 2..4: a record using them has fields we cannot place
_F_WARNING = const(0x20)
_F_CALTEMP = const(0x40)
_F_STATUS = const(0x80)
_MIN_SIZE = const(6)       # size, flags, glucose (2), time offset (2)

# Annunciation as one 24-bit number laid out like the CGM Status characteristic:
# bits 0-7 Status octet, 8-15 Cal/Temp octet, 16-23 Warning octet.
_A_SESSION_STOPPED = const(0x000001)
_A_BATTERY_LOW = const(0x000002)
_A_WRONG_SENSOR = const(0x000004)
_A_MALFUNCTION = const(0x000008)
_A_DEVICE_FAULT = const(0x000020)
_A_CAL_RECOMMENDED = const(0x000400)
_A_CAL_REQUIRED = const(0x000800)
_A_TEMP_HIGH = const(0x001000)
_A_TEMP_LOW = const(0x002000)
_SENSOR_ERROR = (_A_SESSION_STOPPED | _A_WRONG_SENSOR | _A_MALFUNCTION | _A_DEVICE_FAULT
                 | _A_TEMP_HIGH | _A_TEMP_LOW)   # the value cannot be trusted
_CALIBRATION = _A_CAL_RECOMMENDED | _A_CAL_REQUIRED

# Reading.status bits (same as the open broadcast's status byte)
ST_WARMUP = const(0x01)
ST_SENSOR_ERROR = const(0x02)
ST_CALIBRATION = const(0x04)
ST_BATTERY_LOW = const(0x08)


def status_bits(annunciation):
    s = 0
    if annunciation & _SENSOR_ERROR:
        s |= ST_SENSOR_ERROR
    if annunciation & _CALIBRATION:
        s |= ST_CALIBRATION
    if annunciation & _A_BATTERY_LOW:
        s |= ST_BATTERY_LOW
    return s


class CgmRecord:
    def __init__(self, offset, glucose, special, trend, quality, annunciation):
        self.offset = offset              # minutes since session start
        self.glucose = glucose            # mg/dL float, or None for a special value
        self.special = special            # "NaN", "NRes", "+INF", "-INF", "reserved" or None
        self.trend = trend                # mg/dL/min, or None when absent or special
        self.quality = quality            # percent, or None
        self.annunciation = annunciation  # 24 bits, see above

    def __repr__(self):
        return "CgmRecord(offset=%r, glucose=%r, trend=%r)" % (self.offset, self.glucose, self.trend)


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def decode_measurements(payload, e2e_crc_required):
    """All records of one CGM Measurement notification, in order. Raises CgmsError("malformed")
    for bytes that do not parse and CgmsError("crc") for a failed E2E-CRC; one bad record
    refuses the whole notification (its other records come back through the RACP)."""
    n = len(payload)
    if n == 0:
        raise CgmsError("malformed")
    out = []
    i = 0
    while i < n:
        size = payload[i]
        if size < _MIN_SIZE or i + size > n:
            raise CgmsError("malformed")
        flags = payload[i + 1]
        if flags & _F_RFU:
            raise CgmsError("malformed")
        need = _MIN_SIZE
        for bit in (_F_WARNING, _F_CALTEMP, _F_STATUS):
            if flags & bit:
                need += 1
        if flags & _F_TREND:
            need += 2
        if flags & _F_QUALITY:
            need += 2
        if e2e_crc_required:
            need += 2
        if size < need:
            raise CgmsError("malformed")
        end = i + size
        if e2e_crc_required and crc16_mcrf4xx(payload, i, end - 2) != _u16(payload, end - 2):
            raise CgmsError("crc")
        raw = _u16(payload, i + 2)
        offset = _u16(payload, i + 4)
        j = i + 6
        ann = 0
        # Octets travel Warning, Cal/Temp, Status (the order of the flag bits 5, 6, 7).
        if flags & _F_WARNING:
            ann |= payload[j] << 16
            j += 1
        if flags & _F_CALTEMP:
            ann |= payload[j] << 8
            j += 1
        if flags & _F_STATUS:
            ann |= payload[j]
            j += 1
        trend = quality = None
        if flags & _F_TREND:
            trend = sfloat(_u16(payload, j))
            j += 2
        if flags & _F_QUALITY:
            quality = sfloat(_u16(payload, j))
        out.append(CgmRecord(offset, sfloat(raw), sfloat_special(raw), trend, quality, ann))
        i = end
    return out


# --- Record Access Control Point ---

_RACP_REPORT = const(0x01)
_RACP_GE = const(0x03)          # operator "greater than or equal to"
_RACP_FILTER_OFFSET = const(0x01)
_RACP_RESPONSE = const(0x06)
_RACP_CODES = {1: "success", 2: "op_code_not_supported", 3: "invalid_operator",
               4: "operator_not_supported", 5: "invalid_operand", 6: "no_records",
               7: "abort_unsuccessful", 8: "procedure_not_completed", 9: "operand_not_supported"}


def racp_report_since(offset):
    """Ask for every stored record with time offset >= offset (minutes)."""
    if offset < 0 or offset > 0xFFFF:
        raise ValueError("time offset out of range")
    return bytes((_RACP_REPORT, _RACP_GE, _RACP_FILTER_OFFSET, offset & 0xFF, offset >> 8))


def parse_racp_response(b):
    """"success", "no_records", another RACP response name, or "malformed"."""
    if len(b) != 4 or b[0] != _RACP_RESPONSE or b[1] != 0:
        return "malformed"
    return _RACP_CODES.get(b[3], "unknown_%d" % b[3])


# --- Tracker: records -> Readings, dedup, gaps, backfill ---

_GAP_MIN = const(5)            # the usual CGM measurement interval: a bigger step means lost records
_NEW_SESSION_BACK = const(60)  # an offset this far behind what we hold = the sensor restarted
_FRESH_MS = const(120000)      # a backfilled record newer than this is as good as live: it may alarm
_MAX_GAPS = const(4)           # bounded state; older gaps merge into one wider gap
_MAX_TRIES = const(3)          # RACP failures before a gap is given up (and counted in `lost`)
_MGDL_MIN = const(20)          # same plausibility range as the open broadcast
_MGDL_MAX = const(600)
_MAX_REJECTS = const(16)       # bounded until the shell drains them


class CgmsTracker:
    """Feed it every decoded record; it returns Readings to hand to the core, in offset order.

    Live records are delivered at once, even past an open gap (the alarm must not wait for a
    backfill); the gap's records then follow, ascending, with backfilled=True. So a backfilled
    Reading can have a lower seq than a live one delivered before it."""

    def __init__(self, sensor_id, gap_min=_GAP_MIN):
        self.sensor_id = sensor_id
        self.gap_min = gap_min
        self.held = None          # highest time offset delivered
        self.gaps = []            # [lo, hi, requested, tries]: offsets lo..hi-1 not yet delivered
        self.requested = None     # offset of the RACP request in flight, or None
        self.lost = 0             # gaps given up after repeated RACP failures
        self._rejects = []        # reasons for the shell's `reject` events (take_rejects)
        self._anchor = None       # (offset, now_ms) of the newest live record: dates a backfill

    def connected(self, now_ms):
        """Call after every (re)connection: anything since the last record held may be missing."""
        if self.held is not None:
            for g in self.gaps:
                if g[1] is None:
                    return    # still open from an earlier connection
            self._add_gap(self.held + 1, None)

    def _add_gap(self, lo, hi):
        self.gaps.append([lo, hi, False, 0])
        if len(self.gaps) > _MAX_GAPS:
            a, b = self.gaps[0], self.gaps.pop(1)
            a[1] = b[1]
            a[2] = a[2] and b[2]

    def want_racp(self):
        """Offset to ask the RACP for (racp_report_since) now, or None. Marks it requested."""
        if self.requested is not None:
            return None
        lo = None
        for g in self.gaps:
            if not g[2] and (lo is None or g[0] < lo):
                lo = g[0]
        if lo is None:
            return None
        for g in self.gaps:
            if g[0] >= lo:
                g[2] = True   # "report records >= lo" covers every later gap too
        self.requested = lo
        return lo

    def racp_done(self, result):
        """The RACP's answer (parse_racp_response). Gaps it covered close; on failure they stay
        for another try, up to _MAX_TRIES."""
        self.requested = None
        keep = []
        for g in self.gaps:
            if g[2]:
                if result in ("success", "no_records"):
                    continue
                g[2] = False
                g[3] += 1
                if g[3] >= _MAX_TRIES:
                    self.lost += 1
                    continue
            keep.append(g)
        self.gaps = keep

    def _take_from_gaps(self, off, fresh):
        """True when off falls in a gap; every gap holding it then moves past it (RACP reports
        ascending, so anything below is done or a repeat). Two exceptions, both because aioble
        keeps only the newest notification and the RACP's records share the live characteristic:
        - a fresh record in a gap still open at the top is the sensor's live one, maybe sent in the
          middle of the RACP's report: it closes the gap there and the report fills in below it;
        - a step of gap_min or more inside a requested gap means the records between were lost
          on the way (or the sensor never had them): that stretch is asked for once more."""
        hit = False
        keep = []
        for g in self.gaps:
            if off >= g[0] and (g[1] is None or off < g[1]):
                hit = True
                skipped = g[2] and off - g[0] >= self.gap_min
                if g[1] is None and fresh:
                    g[1] = off
                    if skipped:
                        g[2] = False
                else:
                    if skipped:
                        # tries carried over: a real hole in the sensor's memory ends after _MAX_TRIES
                        keep.append([g[0], off, False, g[3]])
                    g[0] = off + 1
                if g[1] is not None and g[0] >= g[1]:
                    continue
            keep.append(g)
        self.gaps = keep
        while len(keep) > _MAX_GAPS:
            a, b = keep[0], keep.pop(1)
            a[1] = b[1]
            a[2] = a[2] and b[2]
        return hit

    def on_records(self, records, now_ms):
        out = []
        for r in records:
            rd = self._one(r, now_ms)
            if rd is not None:
                out.append(rd)
        return out

    def _one(self, r, now_ms):
        off = r.offset
        held = self.held
        fresh = self._fresh(off, now_ms)
        if self._take_from_gaps(off, fresh):
            if held is None or off > held:
                self.held = off
            if fresh:
                self._anchor = (off, now_ms)
                return self._reading(r, False)
            return self._reading(r, True)
        if held is not None and off <= held:
            if held - off < _NEW_SESSION_BACK:
                return None    # already delivered: a repeat
            self.gaps = []     # a new sensor session: its offsets start again near 0
            self.requested = None
            held = None
        if held is not None and off - held > self.gap_min:
            self._add_gap(held + 1, off)
        self.held = off
        self._anchor = (off, now_ms)
        return self._reading(r, False)

    def _fresh(self, off, now_ms):
        a = self._anchor
        if a is None:
            return False
        est_now = a[0] + ticks.diff(now_ms, a[1]) // 60000   # sensor clock, estimated in minutes
        return (est_now - off) * 60000 < _FRESH_MS

    def _reading(self, r, backfilled):
        mgdl = r.glucose
        if mgdl is not None:
            mgdl = int(mgdl + 0.5)
        status = status_bits(r.annunciation)
        if mgdl is not None and (mgdl < _MGDL_MIN or mgdl > _MGDL_MAX):
            # Still delivered, without a value: the link is alive, the number is not usable.
            if len(self._rejects) < _MAX_REJECTS:
                self._rejects.append("implausible")
            mgdl = None
            status |= ST_SENSOR_ERROR
        return Reading(self.sensor_id, r.offset, mgdl, r.trend, r.offset, status, "cgms",
                       backfilled)

    def take_rejects(self):
        """Reasons ("implausible") noted since the last call, for `reject` events."""
        out = self._rejects
        self._rejects = []
        return out
