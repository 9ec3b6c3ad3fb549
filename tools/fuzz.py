#!/usr/bin/env python3
"""Fuzz every decoder and parser of the firmware on CPython (issue 8).

    python tools/fuzz.py [--n 1000000] [--only NAME[,NAME]] [--seed S] [--jobs J] [--json FILE]

Targets and what each must do with any input (the contract a test checks, too):
  open_broadcast  BroadcastReceiver.accept(adv): (Reading, None), (None, reason in REASONS) or (None, None);
                  a Reading's mg/dL is None or 20..600 and its counter is above every one accepted before
  cgms_records    cgms.decode_measurements(data, crc): records, or CgmsError with reason crc/malformed;
                  the records then go through a CgmsTracker, which must not raise either
  cgms_racp       cgms.parse_racp_response(b): a response name, "unknown_N" or "malformed"; never raises
  commands        CommandVerifier.verify(name, payload): (cmd, None) or (None, reason in REASONS); a
                  command counter is accepted at most once, and only under the right secret
  config          json text -> config.build(layer): a config or ConfigError naming a dotted key
  trace           simlib.trace.parse(lines): rows, or TraceError with a one-line reason
  outage_queue    OutageQueue over any bytes on flash: opens, peeks, pops and appends without raising
  g6_replies      every Dexcom G6 reply parser (auth challenge/status, time, glucose 31/4F, battery, backfill
                  51, invalid, D0): values, or G6Error("malformed"/"crc"); a glucose that usable() lets
                  through is 14..4095 mg/dL, not display-only, in state 06/07 (0E only when allowed)
  g6_backfill     a G6 backfill stream (a 51 reply then frames, each length-prefixed) through Backfill:
                  records in time order spanning exactly the 51's start..end, or G6Error with a known reason
  lan_entries     lan_entries.parse(answer bytes) for a phone and a Nightscout: an Answer whose kind is
                  ok/no_data/not_modified/auth_failed/reject (reject with a one-line reason); an ok
                  Answer's entries are 20..600 mg/dL, aged -0..1 day, oldest first; never raises
Inputs: seeded mutations (bit flips, byte sets, cuts, inserts, splices) of valid seeds, and random bytes.
Prints one line per target (inputs, seconds, inputs/s, distinct refusal reasons) and exits 1 on the first
contract violation, printing the input (hex) to reproduce it.
"""
import argparse
import io
import json
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tools"), os.path.join(ROOT, "tools", "shims")):
    if p not in sys.path:
        sys.path.insert(0, p)

from firmware.core import commands as cmd_mod  # noqa: E402
from firmware.core import config as config_mod  # noqa: E402
from firmware.sensor import cgms  # noqa: E402
from firmware.sensor import dexcom_g6 as g6  # noqa: E402
from firmware.sensor import open_broadcast as ob  # noqa: E402
from firmware.shell.counter_store import MemoryCounterStore  # noqa: E402
from firmware.sensor import lan_entries  # noqa: E402
from firmware.shell.outage_queue import OutageQueue  # noqa: E402
from simlib import trace as trace_mod  # noqa: E402

KEY = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f"
SENSOR = 200133374
SECRET = bytes(range(32))
NOW = 1718000000


class Violation(AssertionError):
    pass


def _vectors(name):
    with open(os.path.join(ROOT, "host_tests", "vectors", name)) as f:
        return json.load(f)


# ---- mutator ---------------------------------------------------------------------------------------
def mutate(rng, data, seeds=None):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op == 2 and b:
            del b[rng.randrange(len(b)):]
        elif op == 3:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        elif op == 4 and b:
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 4)]
        elif op == 5 and seeds:
            other = rng.choice(seeds)
            i = rng.randrange(len(b) + 1)
            j = rng.randrange(len(other) + 1)
            b[i:] = other[j:]
        elif op == 6 and b:
            i = rng.randrange(len(b))
            b[i:i] = b[i:i + rng.randint(1, 8)]
        else:
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
    return bytes(b)


def inputs(rng, seeds, n, max_random=40, make=None):
    for i in range(n):
        k = i % 8
        if make is not None and k >= 4:
            yield make(rng, seeds)
        elif k == 0:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randrange(max_random)))
        elif k == 1:
            yield rng.choice(seeds)
        else:
            yield mutate(rng, rng.choice(seeds), seeds)


# ---- targets: seeds() and a checker object with check(data) -> reason or None ----------------------
class OpenBroadcast:
    name = "open_broadcast"

    def __init__(self):
        self.rx = [ob.BroadcastReceiver({"id": SENSOR, "bind_key": KEY, "allow_plain": False},
                                        MemoryCounterStore()),
                   ob.BroadcastReceiver({"id": SENSOR, "bind_key": KEY, "allow_plain": True},
                                        MemoryCounterStore())]
        self.taken = [set(), set()]   # counters each receiver accepted (the fuzzer's own record)
        self.n = 0

    @staticmethod
    def seeds():
        out = [bytes.fromhex(c["adv_hex"]) for c in _vectors("open_broadcast_v1.json")["cases"]]
        for c, (g, t) in enumerate(((120, 0.0), (45, -2.5), (None, None), (600, 12.7), (20, -12.7)), 1):
            out.append(ob.encode_frame(SENSOR, c * 1000, g, t, 700 + c, c & 0xF, KEY))
            out.append(ob.encode_frame(SENSOR, c * 1000 + 1, g, t, 700 + c, 0, None))
        return out

    def check(self, adv):
        self.n += 1
        rx, taken = self.rx[self.n & 1], self.taken[self.n & 1]
        if self.n % 4096 < 2:   # a fresh receiver now and then, so counters do not saturate
            self.rx[self.n & 1] = rx = ob.BroadcastReceiver(
                {"id": SENSOR, "bind_key": KEY, "allow_plain": bool(self.n & 1)}, MemoryCounterStore())
            taken.clear()
        before = rx.counters.get(SENSOR)
        got, why = rx.accept(adv)
        if got is None:
            if why is not None and why not in ob.REASONS:
                raise Violation("unclean reason %r" % (why,))
            return why
        if why is not None:
            raise Violation("a reading and a reason at once")
        if got.mgdl is not None and not 20 <= got.mgdl <= 600:
            raise Violation("implausible glucose accepted: %r" % got.mgdl)
        # Replay protection (docs/sensors.md): a counter is accepted once, and a late one only within the
        # window of 32 behind the newest accepted.
        if got.seq in taken:
            raise Violation("counter %d accepted twice" % got.seq)
        if before is not None and before - got.seq > 32:
            raise Violation("counter %d accepted after %d, outside the replay window" % (got.seq, before))
        taken.add(got.seq)
        return "accepted"


class CgmsRecords:
    name = "cgms_records"

    def __init__(self):
        self.tracker = cgms.CgmsTracker("aa:bb:cc:dd:ee:ff")
        self.n = 0

    @staticmethod
    def seeds():
        v = _vectors("cgms_measurement.json")
        recs = [bytes.fromhex(c["hex"]) for c in v["records"]]
        return recs + [a + b for a in recs[:4] for b in recs[:4]]

    def check(self, data):
        self.n += 1
        crc = bool(self.n & 1)
        try:
            recs = cgms.decode_measurements(data, crc)
        except cgms.CgmsError as e:
            if e.reason not in ("crc", "malformed"):
                raise Violation("unclean CGMS reason %r" % (e.reason,))
            return e.reason
        for r in recs:
            if not 0 <= r.offset <= 0xFFFF:
                raise Violation("time offset %r" % r.offset)
        if self.n % 2048 == 0:
            self.tracker = cgms.CgmsTracker("aa:bb:cc:dd:ee:ff")
            self.tracker.connected(self.n)
        for rd in self.tracker.on_records(recs, self.n * 1000):
            if rd.mgdl is not None and not 20 <= rd.mgdl <= 600:
                raise Violation("tracker passed glucose %r" % rd.mgdl)
        self.tracker.take_rejects()
        return "decoded"


class CgmsRacp:
    name = "cgms_racp"

    @staticmethod
    def seeds():
        return [bytes.fromhex(x) for x in ("06000101", "06000106", "06000102", "06000104", "0600010f")]

    def check(self, b):
        r = cgms.parse_racp_response(b)
        if type(r) is not str or not r:
            raise Violation("RACP answer %r" % (r,))
        return r if r in ("malformed", "success", "no_records") else "other"


class Commands:
    name = "commands"

    def __init__(self):
        self.v = cmd_mod.CommandVerifier(SECRET, last_counter=0)
        self.accepted_n = set()

    @staticmethod
    def seeds():
        out = []
        for i, (name, args) in enumerate((("snooze", {"minutes": 30}), ("ack", {"level": "low"}),
                                          ("selftest", None), ("snooze", {"minutes": 120}))):
            out.append(name.encode() + b"\x00" + cmd_mod.sign(SECRET, name, NOW * 1000 + i, NOW, args))
            out.append(name.encode() + b"\x00" + cmd_mod.sign(b"x" * 32, name, NOW * 1000 + 9, NOW, args))
        return out

    def check(self, data):
        name, _, payload = bytes(data).partition(b"\x00")
        try:
            name = name.decode()
        except UnicodeDecodeError:
            name = repr(name)
        got, why = self.v.verify(name, payload, NOW)
        if got is None:
            if why not in cmd_mod.REASONS:
                raise Violation("unclean command reason %r" % (why,))
            return why
        if got["n"] in self.accepted_n:
            raise Violation("counter %r accepted twice" % got["n"])
        self.accepted_n.add(got["n"])
        if self.v.last_counter > NOW * 1000 + 100:   # fresh verifier so the signed seeds stay new
            self.v = cmd_mod.CommandVerifier(SECRET, last_counter=0)
            self.accepted_n = set()
        return "accepted"


class Config:
    name = "config"

    @staticmethod
    def seeds():
        return [json.dumps(x).encode() for x in (
            {"gateway_id": "bedroom", "sensor": {"kind": "broadcast", "id": 200133374, "bind_key": KEY}},
            {"sensor": {"bind_key": KEY}, "alarms": {"low": 80, "high": 240, "units": "mgdl"}},
            {"sensor": {"bind_key": KEY}, "alarms": {"units": "mmol", "low": 4.0, "urgent_low": 3.0}},
            {"sensor": {"kind": "cgms", "address": "c4:7a:01:22:33:44"}, "mqtt": {"port": 8883, "tls": True}},
            {"sensor": {"allow_plain": True}, "silence": {"sensor_after_s": 660, "cloud_after_s": 60}},
            {"sensor": {"bind_key": KEY}, "commands": {"secret": "ab" * 16}, "night": {"utc_offset_min": 60}},
            {"sources": [{"kind": "broadcast", "bind_key": KEY}, {"kind": "phone", "host": "192.168.1.23",
                                                                   "secret": "Abc", "poll_s": 60}]},
            {"sources": [{"kind": "nightscout", "name": "ns", "url": "https://ns.example.org/", "token": "t",
                          "ca": "ca.pem"}, {"kind": "cgms", "address": "c4:7a:01:22:33:44"}]},
        )]

    @staticmethod
    def make(rng, seeds):
        """Structure-aware: a seed's JSON tree with a leaf retyped, a key added, moved or removed."""
        tree = json.loads(rng.choice(seeds))
        values = (None, True, False, 0, -1, 1 << 40, 3.5, float("1e308"), "", "x" * 70, "ab" * 16,
                  [], [1, "a"], {}, {"z": 1}, 55, 300, 660, "mmol", "cgms", "broadcast", "phone",
                  "nightscout", "http://10.0.0.2:1337", "192.168.1.2", 17580, [{"kind": "phone"}])
        for _ in range(rng.randint(1, 3)):
            node = tree
            while True:
                keys = list(node)
                if not keys:
                    break
                k = rng.choice(keys)
                if type(node[k]) is dict and rng.random() < 0.6:
                    node = node[k]
                    continue
                if (type(node[k]) is list and node[k] and all(type(x) is dict for x in node[k])
                        and rng.random() < 0.6):
                    node = rng.choice(node[k])  # into one source of the sources list
                    continue
                op = rng.randrange(4)
                if op == 0:
                    node[k] = json.loads(json.dumps(rng.choice(values)))
                elif op == 1:
                    del node[k]
                elif op == 2:
                    node[k + rng.choice(("_", "s", ""))] = json.loads(json.dumps(rng.choice(values)))
                else:
                    node[rng.choice(("alarms", "mqtt", "sensor", "silence", "night"))] = node.pop(k)
                break
        return json.dumps(tree).encode()

    def check(self, text):
        try:
            layer = json.loads(text.decode("utf-8"))
        except ValueError:   # UnicodeDecodeError is one too: config_store says "is not valid JSON"
            return "json"
        try:
            cfg = config_mod.build(layer)
        except config_mod.ConfigError as e:
            # (a literal "" key is named as "": the message reads `config key : unknown key`)
            if type(e.key) is not str or not e.why or not str(e).startswith("config key "):
                raise Violation("unclean config refusal %r" % (e,))
            return "refused"
        if type(cfg) is not dict or "mqtt" not in cfg:
            raise Violation("config %r" % (cfg,))
        return "built"


class Trace:
    name = "trace"

    @staticmethod
    def seeds():
        return [b"minute,mgdl,event\n0,112,\n5,108,\n10,,\n15,96,broker_down\n20,88,\n25,83,broker_up\n",
                b"minute,mgdl\n0,120\n5,118\n7.5,60\n",
                b"minute,mgdl,event\n0,,wifi_down\n1,,wifi_up\n2,40,button\n3,600,sensor_off\n"]

    def check(self, data):
        text = data.decode("utf-8", "replace")
        try:
            rows = trace_mod.parse(text.splitlines(), "fuzz")
        except trace_mod.TraceError as e:
            msg = str(e)
            if not msg.startswith("fuzz") or "\n" in msg:
                raise Violation("unclean trace refusal %r" % msg)
            return "refused"
        last = -1
        for r in rows:
            if r.minute < last or (r.mgdl is not None and not 20 <= r.mgdl <= 600):
                raise Violation("bad row accepted %r" % (r,))
            last = r.minute
        return "parsed"


class _MemFlash:
    """An in-memory file for OutageQueue's opener: the fuzz input is the flash content."""

    def __init__(self):
        self.data = b""

    def open(self, path, mode):
        f = io.BytesIO(b"" if "w" in mode else self.data)
        flash = self
        close = f.close

        def keep():
            flash.data = f.getvalue()
            close()
        f.close = keep
        f.flush = lambda: setattr(flash, "data", f.getvalue())
        return f


class Queue:
    name = "outage_queue"

    @staticmethod
    def seeds():
        mem = _MemFlash()
        q = OutageQueue("q", 1024, mem.open)
        for i in range(12):
            q.append(json.dumps({"type": "sgv", "sgv": 100 + i, "seq": i + 1, "direction": "Flat"}).encode())
            if i % 3 == 0:
                q.pop()
        q.close()
        return [mem.data, mem.data[:700], mem.data[32:] + mem.data[:32]]

    def check(self, data):
        mem = _MemFlash()
        mem.data = data
        q = OutageQueue("q", 1024, mem.open)
        n, lost0, sent = len(q), q.dropped, 0
        if n < 0:
            raise Violation("negative length")
        # Every record the scan counted is sent or counted as dropped: none vanishes silently. (On
        # arbitrary corruption peek() may find a counted record bad and drop it, counting it.)
        while len(q) and sent <= n:
            p = q.peek()
            if p is None:
                break
            if not isinstance(p, (bytes, bytearray)):
                raise Violation("peek gave %r" % (p,))
            q.pop()
            sent += 1
        if sent + len(q) + q.dropped - lost0 != n:
            raise Violation("%d counted, %d sent, %d left, %d dropped" % (n, sent, len(q), q.dropped - lost0))
        q.append(b'{"seq":1}')
        if q.peek() is None:
            raise Violation("append then peek gave nothing")
        q.close()
        return "empty" if n == 0 else "records"


class LanEntries:
    name = "lan_entries"
    WALL = 1764540000000

    @staticmethod
    def seeds():
        date = lan_entries.http_date(LanEntries.WALL).encode()
        body = (b'[{"date":%d,"sgv":98,"delta":-2.5,"direction":"FortyFiveDown","noise":1,"units_hint":"mgdl"},'
                b'{"date":%d,"sgv":104,"delta":0,"direction":"","noise":1}]'
                % (LanEntries.WALL - 40000, LanEntries.WALL - 340000))
        ns = (b'[{"_id":"x","type":"sgv","date":%d,"sgv":140.0,"dateString":"2026-01-01T00:00:00.000Z",'
              b'"direction":"Flat","utcOffset":0}]' % (LanEntries.WALL - 5000))

        def ans(b, status=b"200 OK", extra=b""):
            return (b"HTTP/1.0 " + status + b"\r\nDate: " + date + b"\r\n" + extra
                    + b"Content-Length: %d\r\n\r\n" % len(b) + b)
        return [ans(body), ans(ns, extra=b"Last-Modified: " + date + b"\r\n"), ans(b"{}"), ans(b"Error"),
                ans(b"Authentication failed", b"403 Forbidden"), b"HTTP/1.0 500 Internal Server Error\r\n",
                ans(b'{"status":304}', b"304 Not Modified")]

    def check(self, data):
        out = None
        for source in ("phone", "nightscout"):
            for eof in (True, False):
                a = lan_entries.parse(data, eof, source, None if eof else self.WALL)
                if a.kind not in ("ok", "no_data", "not_modified", "auth_failed", "reject"):
                    raise Violation("unknown answer kind %r" % a.kind)
                if a.kind == "reject" and (not isinstance(a.reason, str) or "\n" in a.reason or not a.reason):
                    raise Violation("unclean refusal %r" % (a.reason,))
                last = None
                for e in a.entries:
                    date, mgdl, trend, age = e
                    if not (20 <= mgdl <= 600 and 0 <= age <= 86400000 and (last is None or date >= last)):
                        raise Violation("bad entry accepted %r" % (e,))
                    if trend is not None and not isinstance(trend, float):
                        raise Violation("bad trend %r" % (trend,))
                    last = date
                if a.kind == "ok" and not a.entries:
                    raise Violation("ok without entries")
                out = out if out == "ok" else a.kind
        return out


def _g6_vectors(prefix):
    return [bytes.fromhex(v["hex"]) for v in _vectors("dexcom_g6.json") if v["message"].startswith(prefix)]


def _g6_frame(body):
    c = g6.crc16(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))


class G6Replies:
    name = "g6_replies"
    _PARSERS = (g6.parse_auth_challenge, g6.parse_auth_status, g6.parse_time, g6.parse_glucose,
                g6.parse_battery, g6.parse_backfill_rx)

    def __init__(self):
        self.n = 0

    @staticmethod
    def seeds():
        out = []
        for p in ("GlucoseRx(0x31)", "TransmitterTimeRx", "BatteryStatusRx", "BackfillRx", "AuthStatusRx",
                  "InvalidRx"):
            out += _g6_vectors(p)
        out.append(b"\x03" + bytes(range(16)))                       # a challenge
        for state in (2, 6, 7, 0x0E, 0x18):                          # 4F in every kind of state
            out.append(_g6_frame(bytes((0x4F, 0, 1, 0, 0, 0, 0x10, 0, 0, 0, 90, 0, state, 0xFE, 90, 0))))
        out.append(_g6_frame(bytes((0x23, 0, 0x3C, 1, 0x2F, 1, 0x1F, 0x24))))   # firefly battery
        return out

    def check(self, data):
        self.n += 1
        if g6.parse_invalid(data) is not None:
            return "invalid"
        if g6.is_interlude(data):
            return "interlude"
        outcome = None
        for parse in self._PARSERS:
            try:
                got = parse(data)
            except g6.G6Error as e:
                if e.reason not in ("malformed", "crc"):
                    raise Violation("unclean G6 reason %r from %s" % (e.reason, parse.__name__))
                outcome = outcome or e.reason
                continue
            if parse is g6.parse_glucose:
                allow = bool(self.n & 1)
                why = got.usable(allow)
                if why is None:
                    if got.display_only or not 14 <= got.mgdl <= 4095:
                        raise Violation("glucose %r (display-only %r) let through" % (got.mgdl, got.display_only))
                    if got.state not in (6, 7) and not (allow and got.state == 0x0E):
                        raise Violation("state %02x let through" % got.state)
                    if got.trend_mgdl_min() is not None and not -12.8 <= got.trend_mgdl_min() <= 12.6:
                        raise Violation("trend %r" % got.trend_mgdl_min())
                    return "glucose"
                return "withheld"
            return parse.__name__[6:]
        return outcome


class G6Backfill:
    """Input: a length-prefixed list whose first item is the 51 reply and the rest backfill frames."""
    name = "g6_backfill"
    REASONS = ("crc", "malformed", "sequence", "not_glucose", "too_long")

    @staticmethod
    def pack(items):
        return b"".join(bytes((len(i),)) + i for i in items)

    @staticmethod
    def seeds():
        vs = _vectors("dexcom_g6.json")
        rx = {v["source"]: bytes.fromhex(v["hex"]) for v in vs if v["message"].startswith("BackfillRx")}
        out = []
        for v in vs:
            if v["message"].startswith("BackfillFrames(char") and v["source"] in rx and len(v["hex"]) < 2000:
                out.append(G6Backfill.pack([rx[v["source"]]] + [bytes.fromhex(h) for h in v["hex"].split()]))
        return out

    def check(self, data):
        items, i = [], 0
        while i < len(data):
            n = data[i]
            items.append(data[i + 1:i + 1 + n])
            i += 1 + n
        if not items:
            return "empty"
        try:
            rx = g6.parse_backfill_rx(items[0])
        except g6.G6Error as e:
            return "rx_" + e.reason
        bf = g6.Backfill()
        for fr in items[1:]:
            bf.add(fr)
        try:
            recs = bf.finish(rx)
        except g6.G6Error as e:
            if e.reason not in self.REASONS:
                raise Violation("unclean backfill reason %r" % (e.reason,))
            return e.reason
        if len(bf.payload) > 2048:
            raise Violation("kept %d bytes of payload" % len(bf.payload))
        if recs:
            ts = [r.timestamp for r in recs]
            if ts[0] != rx[3] or ts[-1] != rx[4] or ts != sorted(set(ts)):
                raise Violation("records %r do not span %d..%d in order" % (ts, rx[3], rx[4]))
        return "records" if recs else "no_records"


TARGETS = {t.name: t for t in (OpenBroadcast, CgmsRecords, CgmsRacp, Commands, Config, Trace, Queue, G6Replies,
                               G6Backfill, LanEntries)}
MAX_RANDOM = {"config": 120, "trace": 120, "commands": 200, "outage_queue": 1200, "g6_backfill": 120,
              "lan_entries": 600}


def run_target(name, n, seed):
    cls = TARGETS[name]
    target = cls()
    seeds = cls.seeds()
    rng = random.Random("%s-%d" % (name, seed))
    reasons = {}
    t0 = time.perf_counter()
    for data in inputs(rng, seeds, n, MAX_RANDOM.get(name, 40), getattr(cls, "make", None)):
        try:
            why = target.check(data)
        except Violation as e:
            return {"target": name, "ok": False, "error": str(e), "input_hex": data.hex()}
        except Exception as e:  # anything escaping the parser is a failure of its contract
            return {"target": name, "ok": False, "error": "escaped: %r" % (e,), "input_hex": data.hex()}
        reasons[why] = reasons.get(why, 0) + 1
    dt = time.perf_counter() - t0
    return {"target": name, "ok": True, "inputs": n, "seconds": round(dt, 2), "per_s": int(n / dt),
            "outcomes": reasons}


def _job(a):
    return run_target(*a)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--n", type=int, default=1000000, help="inputs per target (default 1 000 000)")
    ap.add_argument("--only", help="comma-separated targets (default all): " + ", ".join(TARGETS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(TARGETS)
    for n in names:
        if n not in TARGETS:
            ap.error("unknown target %r" % n)
    # Split each target into chunks with their own seeds, so both cores work; each chunk is reproducible.
    chunks = max(1, args.jobs)
    work = [(n, args.n // chunks + (1 if i < args.n % chunks else 0), args.seed * 1000 + i)
            for n in names for i in range(chunks)]
    t0 = time.perf_counter()
    if args.jobs > 1:
        from multiprocessing import Pool
        with Pool(args.jobs) as pool:
            parts = pool.map(_job, work, chunksize=1)
    else:
        parts = [_job(w) for w in work]
    results, bad = {}, []
    for p in parts:
        if not p["ok"]:
            bad.append(p)
            continue
        r = results.setdefault(p["target"], {"inputs": 0, "cpu_s": 0.0, "outcomes": {}})
        r["inputs"] += p["inputs"]
        r["cpu_s"] += p["seconds"]
        for k, v in p["outcomes"].items():
            r["outcomes"][str(k)] = r["outcomes"].get(str(k), 0) + v
    for name in names:
        r = results.get(name)
        if r:
            print("fuzz %-15s %8d inputs  %6.1f cpu s  %7d/s  outcomes: %s" % (
                name, r["inputs"], r["cpu_s"], r["inputs"] / max(r["cpu_s"], 1e-9),
                ", ".join("%s %d" % kv for kv in sorted(r["outcomes"].items()))))
    for p in bad:
        print("FAIL %s: %s\n  input: %s" % (p["target"], p["error"], p["input_hex"]))
    print("fuzz total %.1f s wall, %d targets, %s" % (time.perf_counter() - t0, len(names),
                                                     "FAILED" if bad else "no contract violation"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"targets": results, "failures": bad}, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
