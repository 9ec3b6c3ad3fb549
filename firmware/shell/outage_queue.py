# Outage queue: readings made while the cloud is silent, kept in an append-only ring in flash.
#
# The uplink appends a compact JSON reading when it cannot publish, and on reconnect replays them
# oldest first: peek() -> publish (QoS 1) -> pop() once the broker acknowledged it. Nothing is
# written to flash unless append() or pop() is called, so a healthy cloud costs no flash wear.
#
# On-flash format (all integers little-endian). The file never grows past `capacity` bytes.
#
#   offset 0   pop slot A (16 bytes)    the two slots are written in turn: a pop always writes the
#   offset 16  pop slot B (16 bytes)    slot that does NOT hold the newest good state, so a torn slot
#                                       write leaves the other one, at most one pop behind
#     slot: b"NQ", version u8 (=1), 0 u8, popped u32 (every seq <= popped was sent or dropped),
#           dropped u32 (records lost so far, counted when the slot was written), crc32 u32 of the
#           first 12 bytes
#   offset 32 .. capacity: records, written back to back; a record that would run past
#   `capacity` is written at offset 32 instead (the ring wraps) and the bytes after the previous
#   record are left as they are.
#     record: magic u8 (0xA7), kind u8 (1 = payload as given, 2 = packed, below),
#             n u8 (stored payload bytes, 1..255), seq u32 (1, 2, 3 ... never reused),
#             stored payload (n bytes), crc32 u32 over everything before it
#
# There is no index that could be torn: open() scans the records (resyncing on the magic byte and
# trusting only a matching CRC) and derives the queue from sequence numbers. The queue is the
# longest run of consecutive seqs that ends at the newest record and stays above `popped`; a
# record outside that run is older than a record already lost, so keeping it would break the
# oldest-dropped-first order. `dropped` after a reboot is the slot's count plus the seqs missing
# between `popped` and the run, which is exactly what was lost since the last pop.
#
# A power cut in the middle of a record write leaves a record whose CRC fails: it is ignored and
# the next append writes over it (the write position is the end of the newest good record). Records
# the torn write partly overwrote were the oldest ones and were being dropped anyway; the complete
# ones around it are found again by the scan.
#
# Packed payloads: 288 readings (24 h at 5 min) must fit in 16 KiB, about 56 bytes each with the
# 11 bytes of framing, while a Nightscout-shaped JSON reading is 60-110 bytes. A payload made only
# of printable ASCII (compact JSON always is) is stored with common JSON fragments as one byte and
# digit pairs as one byte; any other payload is stored as given. The mapping below is part of the
# format: change it only together with a new record kind.

import binascii
import struct

from micropython import const

_HDR = const(32)         # two 16-byte pop slots
_SLOT = const(16)
_MAGIC = const(0xA7)     # any value works (the CRC decides); this one is rare in ASCII JSON
_RAW = const(1)
_PACKED = const(2)
_FRAME = const(11)       # magic + kind + n + seq(4) + crc(4)
_MAX_STORED = const(255)  # n is one byte
MAX_PAYLOAD = const(240)  # 2x the largest reading we send; keeps every record <= 251 bytes
_MAX_REC = const(266)    # _FRAME + _MAX_STORED: the most a scan has to see at once
_WIN = const(512)        # scan read size: holds any record, small enough for a tight heap
_PAIR0 = const(0x80)     # codes 0x80..0xE3 are the digit pairs "00".."99"

_MAGIC_B = b"\xa7"
_SLOT_MAGIC = b"NQ\x01\x00"

# JSON fragments stored as one byte each (codes 0x00..0x1F, then 0x7F, then 0xE4..0xFF).
_WORDS = (
    b'{"type":"sgv"', b',"sgv":', b'"sgv":', b',"direction":"', b'"direction":"',
    b',"date":', b'"date":', b',"seq":', b'"seq":', b',"trend":', b'"trend":',
    b',"device":"', b'"device":"', b',"replayed":', b'"replayed":', b',"mgdl":', b'"mgdl":',
    b',"source":"', b',"status":', b',"minutes":', b',"backfilled":', b',"type":"',
    b'"type":"', b'Flat"', b'FortyFiveUp"', b'FortyFiveDown"', b'SingleUp"', b'SingleDown"',
    b'DoubleUp"', b'DoubleDown"', b'NOT COMPUTABLE"', b'NONE"', b'null', b'true', b'false',
    b'nightstand/', b'broadcast"', b'cgms"', b'sgv"', b',"noise":', b',"delta":',
    b',"sensor":', b',"rssi":', b',"utcOffset":', b',"sysTime":"', b',"dateString":"',
    b',"t":', b'"t":',
)


def _code(i):
    if i < 32:
        return i
    if i == 32:
        return 0x7F
    return 0xE4 + i - 33


# first byte -> [(fragment, code)], longest first, so packing tries few candidates per byte
_BY_FIRST = {}
for _i, _w in enumerate(_WORDS):
    _BY_FIRST.setdefault(_w[0], []).append((_w, _code(_i)))
for _l in _BY_FIRST.values():
    _l.sort(key=lambda e: -len(e[0]))


def _crc32_py(data):
    # Fallback for builds without binascii.crc32 (same polynomial and result).
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


_crc32 = getattr(binascii, "crc32", _crc32_py)


def pack(payload):
    """(kind, stored bytes) for a payload; packed when it is printable ASCII."""
    for b in payload:
        if b < 0x20 or b > 0x7E:
            return _RAW, bytes(payload)
    out = bytearray()
    i, n = 0, len(payload)
    while i < n:
        b = payload[i]
        if 0x30 <= b <= 0x39 and i + 1 < n and 0x30 <= payload[i + 1] <= 0x39:
            out.append(_PAIR0 + (b - 0x30) * 10 + payload[i + 1] - 0x30)
            i += 2
            continue
        for w, code in _BY_FIRST.get(b, ()):
            if payload[i:i + len(w)] == w:
                out.append(code)
                i += len(w)
                break
        else:
            out.append(b)
            i += 1
    return _PACKED, bytes(out)


def unpack(kind, stored):
    if kind == _RAW:
        return bytes(stored)
    out = bytearray()
    for b in stored:
        if 0x20 <= b <= 0x7E:
            out.append(b)
        elif _PAIR0 <= b < _PAIR0 + 100:
            v = b - _PAIR0
            out.append(0x30 + v // 10)
            out.append(0x30 + v % 10)
        else:
            i = b if b < 32 else (32 if b == 0x7F else b - 0xE4 + 33)
            out.extend(_WORDS[i])
    return bytes(out)


def _parse(buf, i):
    """(seq, record length) when a whole good record starts at buf[i], else None."""
    if i + _FRAME > len(buf) or buf[i] != _MAGIC:
        return None
    kind, n = buf[i + 1], buf[i + 2]
    end = i + _FRAME + n
    if (kind != _RAW and kind != _PACKED) or n == 0 or end > len(buf):
        return None
    if _crc32(memoryview(buf)[i:end - 4]) != struct.unpack_from("<I", buf, end - 4)[0]:
        return None
    seq = struct.unpack_from("<I", buf, i + 3)[0]
    if seq == 0:
        return None
    return seq, _FRAME + n


def _slot(buf):
    """(popped, dropped) from a good 16-byte pop slot, else None."""
    if len(buf) < _SLOT or buf[:4] != _SLOT_MAGIC:
        return None
    if _crc32(memoryview(buf)[:12]) != struct.unpack_from("<I", buf, 12)[0]:
        return None
    return struct.unpack_from("<II", buf, 4)


class OutageQueue:
    def __init__(self, path, capacity=16384, opener=open):
        # opener: how files are opened (tests pass one that cuts the power mid-write)
        if capacity < _HDR + _MAX_REC:
            raise ValueError("outage queue capacity must be at least %d bytes" % (_HDR + _MAX_REC))
        self.path = path
        self.capacity = capacity
        self._open = opener
        try:
            self._f = opener(path, "r+b")
        except OSError:
            self._f = None      # created by the first append or pop, never by opening
        self._closed = False
        self._load()

    # --- public API ---

    def __len__(self):
        return self._count

    def append(self, payload):
        """Queue one reading; drops the oldest ones when the ring is full."""
        self._check_open()
        if not isinstance(payload, (bytes, bytearray)):
            raise TypeError("outage queue payload must be bytes")
        if not 0 < len(payload) <= MAX_PAYLOAD:
            raise ValueError("outage queue payload is %d bytes; it must be 1..%d"
                             % (len(payload), MAX_PAYLOAD))
        kind, stored = pack(payload)
        ln = _FRAME + len(stored)
        old_w = self._w
        w = old_w
        wrapped = w + ln > self.capacity
        if wrapped:
            w = _HDR
        seq = self._next
        rec = bytearray(struct.pack("<BBBI", _MAGIC, kind, len(stored), seq))
        rec.extend(stored)
        rec.extend(struct.pack("<I", _crc32(rec)))
        # Which queued records this write destroys: the oldest ones, in order.
        head = (self._hpos, self._hlen, self._hseq, self._count)
        drops = 0
        while head[3] and ((wrapped and head[0] >= old_w) or w <= head[0] < w + ln):
            nxt = self._after(head)
            drops += head[3] - nxt[3]
            head = nxt
        self._write(w, rec)
        if head[3]:
            self._hpos, self._hlen, self._hseq, self._count = head[0], head[1], head[2], head[3] + 1
        else:
            self._hpos, self._hlen, self._hseq, self._count = w, ln, seq, 1
        self.dropped += drops
        self._w = w + ln
        self._next = seq + 1

    def peek(self):
        """The oldest queued payload (bytes), or None when the queue is empty."""
        self._check_open()
        while self._count:
            got = self._read(self._hpos, self._hseq)
            if got is not None:
                return unpack(got[0], got[1])
            # The record went bad in flash since it was checked: count it lost, never hide it.
            self._drop_head()
        return None

    def pop(self):
        """Mark the oldest queued record as sent; persisted before it is forgotten here."""
        self._check_open()
        if not self._count:
            raise IndexError("pop from an empty outage queue")
        self._write_slot(self._hseq, self.dropped)
        self._popped = self._hseq
        nxt = self._after((self._hpos, self._hlen, self._hseq, self._count))
        self.dropped += self._count - 1 - nxt[3]
        self._hpos, self._hlen, self._hseq, self._count = nxt

    def close(self):
        if self._f is not None:
            self._f.close()
        self._f = None
        self._closed = True

    # --- internals ---

    def _check_open(self):
        if self._closed:
            raise ValueError("outage queue is closed")

    def _drop_head(self):
        nxt = self._after((self._hpos, self._hlen, self._hseq, self._count))
        self.dropped += self._count - nxt[3]
        self._hpos, self._hlen, self._hseq, self._count = nxt

    def _after(self, head):
        """The queue head after its first record goes: (pos, len, seq, count)."""
        pos, ln, seq, count = head
        if count > 1:
            for p in (pos + ln, _HDR):
                got = self._read(p, seq + 1)
                if got is not None:
                    return p, _FRAME + len(got[1]), seq + 1, count - 1
        # Empty, or the chain is broken (flash corrupted under us): the rest is lost and the
        # caller counts it in `dropped`.
        return 0, 0, 0, 0

    def _read(self, pos, seq):
        """(kind, stored payload) of the good record `seq` at pos, else None."""
        if self._f is None or pos + _FRAME > self._end():
            return None
        self._f.seek(pos)
        buf = self._f.read(min(_MAX_REC, self._end() - pos))
        r = _parse(buf, 0)
        if r is None or r[0] != seq:
            return None
        return buf[1], buf[7:r[1] - 4]

    def _end(self):
        return min(self._size, self.capacity)

    def _create(self):
        f = self._open(self.path, "wb")
        try:
            f.write(bytes(_HDR))     # two empty (invalid) pop slots
        finally:
            f.close()
        self._f = self._open(self.path, "r+b")
        self._size = _HDR

    def _write(self, pos, data):
        try:
            if self._f is None or self._size < _HDR:
                self._create()
            self._f.seek(pos)
            self._f.write(data)
            self._f.flush()
        except Exception:
            # The flash now holds something we did not plan: believe only what a scan finds.
            self._reload()
            raise
        if pos + len(data) > self._size:
            self._size = pos + len(data)

    def _write_slot(self, popped, dropped):
        buf = bytearray(_SLOT_MAGIC + struct.pack("<II", popped, dropped))
        buf.extend(struct.pack("<I", _crc32(buf)))
        target = 1 - self._slot if self._slot is not None else 0
        self._write(target * _SLOT, buf)
        self._slot = target

    def _reload(self):
        try:
            if self._f is not None:
                self._f.close()
        except Exception:
            pass
        try:
            self._f = self._open(self.path, "r+b")
        except OSError:
            self._f = None
        self._load()

    def _load(self):
        """Derive the whole queue state from what is on flash. Reads only."""
        self._popped, pop_dropped, self._slot = 0, 0, None
        self._size = 0
        self._hpos = self._hlen = self._hseq = self._count = 0
        self._w = _HDR
        f = self._f
        if f is not None:
            self._size = f.seek(0, 2)
            f.seek(0)
            hdr = f.read(_HDR)
            for i in (0, 1):
                s = _slot(hdr[i * _SLOT:(i + 1) * _SLOT])
                if s is not None and (self._slot is None or s[0] > self._popped):
                    self._popped, pop_dropped = s
                    self._slot = i
        seqs, where = self._scan()
        newest = 0
        for i in range(len(seqs)):
            if seqs[i] > newest:
                newest = seqs[i]
                self._w = where[i] + self._rec_len(where[i])
        # The run of consecutive seqs that ends at the newest record, above `popped`: mark which
        # of the last len(seqs) seqs exist (one byte each, not a sorted copy of every seq).
        first = newest
        if newest > self._popped:
            n = len(seqs)
            have = bytearray(n + 1)
            for s in seqs:
                if newest - s <= n:
                    have[newest - s] = 1
            d = 1
            while d <= n and have[d] and newest - d > self._popped:
                first -= 1
                d += 1
            have = None
            for i in range(n):
                if seqs[i] == first:
                    self._hpos = where[i]
                    break
            self._hseq = first
            self._count = newest - first + 1
            self._hlen = self._rec_len(self._hpos)
        self.dropped = pop_dropped
        if self._count and first > self._popped + 1:
            self.dropped += first - self._popped - 1
        self._next = max(newest, self._popped) + 1

    def _rec_len(self, pos):
        self._f.seek(pos + 2)
        return _FRAME + self._f.read(1)[0]

    def _scan(self):
        """Every good record in the data area: (seqs, positions), in position order."""
        import array
        seqs, where = array.array("I"), array.array("I")   # 4 bytes each on every port
        f, end, p = self._f, self._end(), _HDR
        while f is not None and p + _FRAME < end:
            f.seek(p)
            buf = f.read(min(_WIN, end - p))
            nb = len(buf)
            if not nb:
                break
            last = p + nb >= end
            i = 0
            while True:
                i = buf.find(_MAGIC_B, i)
                if i < 0:
                    i = nb
                    break
                if i + 3 <= nb and i + _FRAME + buf[i + 2] <= nb:
                    r = _parse(buf, i)
                    if r is not None:
                        seqs.append(r[0])
                        where.append(p + i)
                        i += r[1]
                        continue
                elif not last:
                    break               # may be a record running past this window: re-read at i
                i += 1
            p += i if i else 1
        return seqs, where
