# Pure parser for what a network source answers (docs/sources.md): the phone's `GET /sgv.json`
# (xDrip+, Juggluco, GlucoDataHandler) and Nightscout's `GET /api/v1/entries/sgv.json`.
# Bytes in, an Answer out; no sockets, no clock: the shell passes the bytes it read (at most MAX_BYTES)
# and, when it knows wall time, the box's epoch ms.
#
# A reading's age comes from the answer itself: age = the response's `Date` header - the entry's `date`,
# both from the phone's (or server's) own clock, so it needs no NTP on the box and survives a home with
# no internet. Only if an answer carries no `Date` (docs/sources.md lists none in Juggluco's reply) is
# the box's own wall clock used instead; with neither, the answer is refused ("no Date header").
from micropython import const

import json

# The most bytes read from one answer, head and body. The request asks for count=3: a brief_mode
# phone answer is ~3 x 90 bytes + ~200 bytes of head; a Nightscout answer with every field (_id, device,
# dateString, sysTime, utcOffset, filtered, unfiltered, ...) is ~3 x 350 bytes + ~700 bytes of Express
# headers. 4 KiB holds both twice over and is a transient buffer an ESP32 can always spare; anything
# larger is refused ("oversized"), never buffered, whatever Content-Length it announces.
MAX_BYTES = const(4096)
_MAX_HEAD = const(1536)            # status line + headers; more is not a server we talk to
_FUTURE_MS = const(120000)         # a reading dated > 2 min after the answer: a wrong clock or field
_OLD_MS = const(86400000)          # older than a day: no use at the bedside, most likely a wrong field
_SGV_MIN = const(20)               # mg/dL a CGM can report (Dexcom 39..401, Libre 40..500);
_SGV_MAX = const(600)              #   below 20 are Dexcom error codes, not glucose
_UNKNOWN_DIRECTIONS = ("", "NONE", "NotComputable", "NOT COMPUTABLE", "RateOutOfRange")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Answer:
    """kind: "ok" (entries, oldest first), "no_data", "not_modified", "auth_failed" or "reject"
    (reason says why). entries: (date_ms, mgdl, trend mg/dL/min or None, age_ms). rejected: entries
    dropped from an otherwise good answer (reason names the first)."""

    def __init__(self, kind, reason=None, entries=None, last_modified=None, rejected=0, status=None):
        self.kind = kind
        self.reason = reason
        self.entries = entries or []
        self.last_modified = last_modified
        self.rejected = rejected
        self.status = status

    def __repr__(self):
        return "Answer(%r, %r, %r)" % (self.kind, self.reason, self.entries)


def _days_from_civil(y, m, d):
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm; no time module:
    # MicroPython ports disagree on the epoch of time.mktime)
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def http_date_ms(text):
    """Epoch ms of an RFC 1123 date ("Sun, 06 Nov 1994 08:49:37 GMT"), or None when it is not one."""
    p = text.strip().split()
    if len(p) != 6 or p[5] != "GMT" or p[2] not in _MONTHS:
        return None
    hms = p[4].split(":")
    if len(hms) != 3:
        return None
    try:
        d, y = int(p[1]), int(p[3])
        hh, mm, ss = int(hms[0]), int(hms[1]), int(hms[2])
    except ValueError:
        return None
    if not (1 <= d <= 31 and 2000 <= y <= 2200 and 0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss <= 60):
        return None
    days = _days_from_civil(y, _MONTHS.index(p[2]) + 1, d)
    return ((days * 24 + hh) * 60 + mm) * 60000 + ss * 1000


def http_date(ms):
    """RFC 1123 text of epoch ms (for If-Modified-Since and the simulator's server)."""
    s = ms // 1000
    days, rem = s // 86400, s % 86400
    # civil from days (inverse of the above)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (m <= 2)
    wd = ("Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed")[days % 7]
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (wd, d, _MONTHS[m - 1], y, rem // 3600,
                                                   rem // 60 % 60, rem % 60)


def head_end(data):
    """Index just past the blank line that ends the head, or -1 while it has not arrived."""
    i = data.find(b"\r\n\r\n")
    if i >= 0:
        return i + 4
    i = data.find(b"\n\n")  # a server that ends lines with bare LF
    return i + 2 if i >= 0 else -1


def parse_head(head):
    """(status, {lower-case name: value}) of the head bytes, or (None, reason)."""
    try:
        text = head.decode()
    except UnicodeError:
        return None, "head is not text"
    lines = text.replace("\r\n", "\n").split("\n")
    first = lines[0].split(" ", 2)
    if len(first) < 2 or not first[0].startswith("HTTP/1.") or len(first[1]) != 3 or not first[1].isdigit():
        return None, "not an HTTP answer"
    hdrs = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None, "bad header line"
        name = name.strip().lower()
        if name in ("date", "content-length", "last-modified"):
            hdrs[name] = value.strip()
    return int(first[1]), hdrs


def body_wanted(head):
    """How many body bytes the head announces (Content-Length), None when it does not say, or -1 when
    it announces more than MAX_BYTES can hold: the shell stops reading, the answer is refused."""
    status, hdrs = parse_head(head)
    if status is None or "content-length" not in hdrs:
        return None
    try:
        n = int(hdrs["content-length"])
    except ValueError:
        return None
    if n < 0 or n + len(head) > MAX_BYTES:
        return -1
    return n


def _num(v):
    return type(v) in (int, float) and v == v and v not in (float("inf"), float("-inf"))


def _entry(e, now_ms):
    """(date_ms, mgdl, trend, age_ms) or a reason string."""
    if type(e) is not dict:
        return "entry is not an object"
    t = e.get("type")
    if t is not None and t not in ("sgv", "svg"):  # GlucoDataHandler writes "svg" (sic)
        return None
    date, sgv = e.get("date"), e.get("sgv")
    if not _num(date) or type(date) is bool:
        return "date is not a number"
    if not _num(sgv) or type(sgv) is bool:
        return "sgv is not a number"
    mgdl = int(sgv + 0.5)
    if not _SGV_MIN <= mgdl <= _SGV_MAX:
        return "sgv %d outside %d..%d" % (mgdl, _SGV_MIN, _SGV_MAX)
    date = int(date)
    age = now_ms - date
    if age < -_FUTURE_MS:
        return "date in the future"
    if age > _OLD_MS:
        return "date more than a day old"
    trend = None
    delta, direction = e.get("delta"), e.get("direction")
    # Juggluco sends delta 0 when its rate is unknown, and then a direction of "": trust the direction
    if _num(delta) and type(delta) is not bool and direction not in _UNKNOWN_DIRECTIONS:
        trend = round(delta / 5, 2)  # delta is mg/dL per 5 min; the core wants mg/dL/min
    return (date, mgdl, trend, max(0, age))


def parse(data, eof, source="phone", box_wall_ms=None):
    """The Answer to one request. data: the bytes read (the shell reads at most MAX_BYTES + 1);
    eof: the peer closed the connection (else the shell stopped at Content-Length or the bound)."""
    if len(data) > MAX_BYTES:
        return Answer("reject", "oversized (more than %d bytes)" % MAX_BYTES)
    end = head_end(data)
    if end < 0:
        # xDrip+ answers a null with the bare status line of a 500 and closes
        status, _ = parse_head(data.split(b"\n")[0]) if data.startswith(b"HTTP/") else (None, 0)
        if status == 500 and source == "phone":
            return Answer("no_data", "500", status=500)
        if len(data) > _MAX_HEAD:
            return Answer("reject", "head longer than %d bytes" % _MAX_HEAD)
        return Answer("reject", "truncated head" if data else "empty answer")
    status, hdrs = parse_head(data[:end])
    if status is None:
        return Answer("reject", hdrs)
    if status in (401, 403):
        return Answer("auth_failed", "HTTP %d" % status, status=status)
    if status == 304:
        return Answer("not_modified", status=304)
    if status == 500 and source == "phone":
        return Answer("no_data", "500", status=500)  # a handler with nothing to say (xDrip+)
    if status != 200:
        return Answer("reject", "HTTP %d" % status, status=status)
    body = data[end:]
    if "content-length" in hdrs:
        try:
            n = int(hdrs["content-length"])
        except ValueError:
            return Answer("reject", "bad Content-Length")
        if n + end > MAX_BYTES:
            return Answer("reject", "oversized (Content-Length %d)" % n)
        if len(body) < n:
            return Answer("reject", "truncated body (%d of %d bytes)" % (len(body), n))
        body = body[:n]
    elif not eof:
        return Answer("reject", "truncated body")
    now = http_date_ms(hdrs["date"]) if "date" in hdrs else None
    if "date" in hdrs and now is None:
        return Answer("reject", "bad Date header")
    if now is None:
        now = box_wall_ms
    lm = hdrs.get("last-modified")
    text = body.strip()
    # "no data" in each app's words: xDrip+ [] (or "" with no_empty), Juggluco {}, GDH `Error`
    if text in (b"", b"[]", b"{}", b"\"\"", b"Error"):
        return Answer("no_data", last_modified=lm)
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeError):
        return Answer("reject", "not JSON")
    if type(doc) is not list:
        return Answer("reject", "not a list of entries")
    if now is None:
        return Answer("reject", "no Date header (and the box has no clock yet)")
    out, bad, first_bad = [], 0, None
    for e in doc:
        r = _entry(e, now)
        if type(r) is str:
            bad += 1
            first_bad = first_bad or r
        elif r is not None:
            out.append(r)
    if not out:
        if bad:
            return Answer("reject", first_bad, rejected=bad)
        return Answer("no_data", last_modified=lm)
    out.sort(key=lambda x: x[0])
    return Answer("ok", first_bad, out, lm, bad, 200)
