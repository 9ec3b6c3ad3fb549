# CPython fuzz run: random bytes and mutations of the shared vectors must never make a sensor
# decoder raise anything but its own clean refusal. Seeded, so a failure reproduces.
import json
import os
import random

from firmware.sensor import cgms
from firmware.sensor import dexcom_g6 as g6
from firmware.sensor import open_broadcast as ob
from firmware.shell.counter_store import MemoryCounterStore

from host_tests.paths import VECTORS
_RUNS = 4000


def _load(name):
    with open(os.path.join(VECTORS, name)) as f:
        return json.load(f)


def _mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2 and b:
            del b[rng.randrange(len(b)):]
        elif op == 3:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        else:
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
    return bytes(b)


def _inputs(rng, seeds):
    for i in range(_RUNS):
        if i % 3 == 0:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        elif i % 3 == 1:
            # random bytes behind our own manufacturer header, so the slow path gets exercised
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(24)))
            yield bytes((len(body) + 3,)) + b"\xff\xff\xff" + body
        else:
            yield _mutate(rng, rng.choice(seeds))


def test_fuzz_open_broadcast_accept_never_raises():
    v = _load("open_broadcast_v1.json")
    seeds = [bytes.fromhex(c["adv_hex"]) for c in v["cases"]]
    rng = random.Random(20240505)
    for allow_plain in (False, True):
        rx = ob.BroadcastReceiver({"id": v["allowlisted_sensor_id"], "bind_key": v["bind_key_hex"],
                                   "allow_plain": allow_plain}, MemoryCounterStore())
        seen = set()
        for adv in _inputs(rng, seeds):
            got, why = rx.accept(adv)
            assert why is None or why in ob.REASONS, (adv.hex(), why)
            if got is not None:
                assert why is None
                assert got.mgdl is None or 20 <= got.mgdl <= 600
            seen.add(why)
        # the run reached deep into the decoder, not just the fast path
        assert {"malformed", "unknown_sensor"} <= seen, seen


def test_fuzz_cgms_decode_never_raises_anything_else():
    v = _load("cgms_measurement.json")
    seeds = [bytes.fromhex(c["hex"]) for c in v["records"]]
    rng = random.Random(20240506)
    tracker = cgms.CgmsTracker("aa:bb:cc:dd:ee:ff")
    reasons = set()
    decoded = 0
    for i, data in enumerate(_inputs(rng, seeds)):
        for crc in (False, True):
            try:
                recs = cgms.decode_measurements(data, crc)
            except cgms.CgmsError as e:
                reasons.add(e.reason)
                continue
            decoded += 1
            tracker.on_records(recs, i * 1000)
            tracker.want_racp()
        if i % 50 == 0:
            tracker.racp_done(cgms.parse_racp_response(data[:4]))
        if i % 500 == 0:
            tracker.connected(i * 1000)
    assert reasons == {"crc", "malformed"}
    assert decoded > 100
    assert len(tracker.gaps) <= 4   # bounded state, whatever the input


def test_fuzz_g6_parsers_never_raise_anything_else():
    vs = _load("dexcom_g6.json")
    seeds = [bytes.fromhex(v["hex"]) for v in vs if v["message"].endswith(")") and " " not in v["hex"]
             and "Rx" in v["message"]]
    rng = random.Random(20261130)
    parsers = (g6.parse_time, g6.parse_glucose, g6.parse_battery, g6.parse_backfill_rx,
               g6.parse_auth_challenge, g6.parse_auth_status)
    reasons, decoded = set(), 0
    for data in _inputs(rng, seeds):
        g6.parse_invalid(data)
        g6.is_interlude(data)
        for parse in parsers:
            try:
                got = parse(data)
            except g6.G6Error as e:
                reasons.add(e.reason)
                continue
            decoded += 1
            if parse is g6.parse_glucose and got.usable(True) is None:
                assert 14 <= got.mgdl <= 4095 and not got.display_only, data.hex()
        # and as a backfill frame: never raises, the stream refuses cleanly at the end
        bf = g6.Backfill()
        bf.add(data)
        try:
            bf.finish((0, 1, 0, 0, 0, len(data), 0))
        except g6.G6Error as e:
            assert e.reason in ("crc", "malformed", "sequence", "not_glucose", "too_long"), e.reason
    assert reasons == {"crc", "malformed"}
    assert decoded > 10   # the seeds themselves and mutations that kept the CRC (a changed length)
