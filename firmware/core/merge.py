# Merge of glucose sources (pure, docs/sources.md): every source feeds one stream into the alarm engine.
#
# Each reading comes with the tick at which the sensor measured it (the box's radio: when it heard it;
# a network source: when it was polled minus the reading's age from the answer's own Date header).
# A reading two sources deliver (measured within ±150 s and the same mg/dL ±1, or the same sensor
# and sequence number) goes on once, from whichever came first. One measured before the newest
# accepted reading, or longer ago than silence.sensor_after_s, goes on as `backfilled`: published,
# never alarmed as news. Each source keeps its own state and the age of its newest reading.
from firmware.core import ticks

from micropython import const

LIVE = const(0)
BACKFILL = const(1)
DUP = const(2)

# Two deliveries of one measurement: the phone's reading time is the app's (rounded to the second by
# Juggluco, thinned to ~4 min by xDrip+'s brief_mode), ours is the radio's; a CGM reads every 1-5 min,
# so ±150 s (half the 5-minute period) never merges two real readings of one sensor with the same value
# by accident more often than it would drop a repeat of a steady value, which loses nothing.
_SAME_MS = const(150000)
_SAME_MGDL = const(1)
# Recently accepted readings kept for dedup: a phone answers its last 3 (count=3), ~15 min of 5-minute
# readings; 16 covers over an hour of 5-minute readings and 16 min of 1-minute ones, at 16 small tuples.
_KEEP = const(16)
# A source's newest reading older than this is `stale`: one 5-minute CGM period, plus the 60 s poll,
# plus a minute of slack. (sensor_silent for the box as a whole waits silence.sensor_after_s.)
_STALE_MS = const(420000)
# Polled answers that are a state of their own until the next answer (the others: up/stale/no_data).
OUTCOME_STATES = ("down", "hung", "auth_failed", "bad", "heap")
_RADIO = ("broadcast", "cgms", "dexcom_g6")
_LAN_SUFFIXES = (".local", ".lan", ".home", ".home.arpa", ".internal", ".localdomain")


def _private_host(host):
    h = host.lower()
    if h in ("localhost", "::1") or "." not in h and ":" not in h:
        return True  # a bare name only the home's own resolver knows
    for s in _LAN_SUFFIXES:
        if h.endswith(s):
            return True
    p = h.split(".")
    if len(p) == 4 and all(x.isdigit() for x in p):
        a, b = int(p[0]), int(p[1])
        return a in (10, 127) or (a == 172 and 16 <= b <= 31) or (a, b) in ((192, 168), (169, 254))
    return h.startswith("fe80:") or h.startswith("fc") or h.startswith("fd")


def path_of(src):
    """"radio" (the box's own radio), "lan" (the home network) or "cloud" (over the internet)."""
    kind = src["kind"]
    if kind in _RADIO:
        return "radio"
    if kind == "nightscout":
        host = src["url"].split("://", 1)[1].split("/", 1)[0]
        if host.startswith("["):
            host = host[1:].split("]")[0]
        elif host.count(":") == 1:
            host = host.split(":")[0]
        return "lan" if _private_host(host) else "cloud"
    return "lan"


def _dup(recent, sensor_id, seq, mgdl, measured_ms):
    """True when recent holds this reading already (another delivery of it); a first twin from another
    source is recorded."""
    for i in range(len(recent)):
        m, v, sid, sq, twins = recent[i]
        # one sensor's own sequence numbers tell its readings apart; time and value only match
        # readings across sources (whose sequence numbers mean different things), one to one: a
        # reading stands for at most one reading of each other sensor (and its repeats)
        if sid == sensor_id:
            if sq == seq:
                return True
            continue
        if twins is None:
            if (mgdl is not None and v is not None and abs(mgdl - v) <= _SAME_MGDL
                    and abs(ticks.diff(measured_ms, m)) <= _SAME_MS):
                # the twins list only for a reading another source delivered too
                recent[i] = (m, v, sid, sq, [(sensor_id, seq)])
                return True
            continue
        if (sensor_id, seq) in twins:
            return True
        if (mgdl is not None and v is not None and abs(mgdl - v) <= _SAME_MGDL
                and abs(ticks.diff(measured_ms, m)) <= _SAME_MS):
            for t in twins:
                if t[0] == sensor_id:
                    break
            else:
                twins.append((sensor_id, seq))
                return True
    return False


class _Src:
    def __init__(self, src, now_ms):
        self.name = src["name"]
        self.kind = src["kind"]
        self.path = path_of(src)
        self.newest = None       # tick the newest reading it delivered was measured
        self.outcome = None      # the last poll's answer (network sources)
        self.why = None          # ... and its reason in words (refused, timed out, HTTP 403, ...)
        self.since = now_ms      # boot: a source gets its grace before it is judged silent
        self.state = "starting"


class Merge:
    def __init__(self, sources, sensor_after_s, now_ms):
        self.sensor_after_ms = sensor_after_s * 1000
        self.stale_ms = min(_STALE_MS, self.sensor_after_ms)
        self.src = [_Src(s, now_ms) for s in sources]
        # (measured tick, mgdl, sensor_id, seq, twins), oldest first; twins: None, or the (sensor_id,
        # seq) other sources delivered it as. None when the only source is one broadcast sensor: no
        # other source can deliver its readings again, it never backfills, and the gateway drops its
        # repeats by sequence number (gateway.last_seq). That saves ~1.1 KiB of a 32-bit heap (16
        # entries) on the default config (tools/heap_profile.py).
        self.recent = None if len(sources) == 1 and sources[0]["kind"] == "broadcast" else []
        self.newest = None       # measured tick of the newest accepted reading, any source
        self.dups = 0            # deliveries merged away (another source had it first)

    def get(self, name):
        for s in self.src:
            if s.name == name:
                return s
        return None

    def offer(self, now_ms, name, sensor_id, seq, mgdl, measured_ms):
        """LIVE, BACKFILL or DUP for a reading; a LIVE or BACKFILL one is remembered as accepted."""
        s = self.get(name)
        if s is not None and (s.newest is None or ticks.diff(measured_ms, s.newest) > 0):
            s.newest = measured_ms  # the source delivered it, even if another source was first
        recent = self.recent
        if recent is not None:
            if _dup(recent, sensor_id, seq, mgdl, measured_ms):
                self.dups += 1
                return DUP
            recent.append((measured_ms, mgdl, sensor_id, seq, None))
            if len(recent) > _KEEP:
                recent.pop(0)
        if self.newest is not None and ticks.diff(measured_ms, self.newest) < 0:
            return BACKFILL
        self.newest = measured_ms
        if ticks.diff(now_ms, measured_ms) >= self.sensor_after_ms:
            return BACKFILL  # news to us, but too old to be live: published, never alarmed
        return LIVE

    def outcome(self, name, what, why=None):
        """A network source's poll ended: "ok", "no_data", "down", "hung", "auth_failed", "bad" or "heap"."""
        s = self.get(name)
        if s is not None:
            s.outcome = what
            s.why = why

    def _state(self, s, now_ms):
        if s.outcome in OUTCOME_STATES:
            return s.outcome
        if s.newest is None:
            if s.outcome == "no_data":
                return "no_data"
            if ticks.diff(now_ms, s.since) < self.stale_ms:
                return "starting"
            return "silent" if s.path == "radio" else "no_data"
        if s.outcome == "no_data" and ticks.diff(now_ms, s.newest) >= self.stale_ms:
            return "no_data"
        if ticks.diff(now_ms, s.newest) < self.stale_ms:
            return "up"
        # the radio hears nothing old: no fresh reading means it hears nothing (out of range, dead)
        return "silent" if s.path == "radio" else "stale"

    def age_s(self, s, now_ms):
        return None if s.newest is None else max(0, ticks.diff(now_ms, s.newest)) // 1000

    def judge(self, now_ms):
        """The sources whose state changed: () when none did (every tick: nothing allocated then)."""
        out = ()
        for s in self.src:
            st = self._state(s, now_ms)
            if st != s.state:
                s.state = st
                out = out + (s,)
        return out

    def snapshot(self, now_ms):
        """Every source's name, state, age of its newest reading and path, for the state topic."""
        return [{"name": s.name, "state": s.state, "age_s": self.age_s(s, now_ms), "path": s.path}
                for s in self.src]

    def best_path(self):
        """The most local path that is up ("radio", then "lan", then "cloud"), or None."""
        for p in ("radio", "lan", "cloud"):
            for s in self.src:
                if s.path == p and s.state == "up":
                    return p
        return None
