# Both sensor kinds through the simulator (real firmware on the MicroPython unix port) against a real
# mosquitto: readings from the open broadcast and from the CGM Service, rejects from replayed captured
# frames, the CGMS backfill after the sensor was out of range, and a flat heap under advert noise.
import json
import os

import pytest

from host_tests.paths import VECTORS
from host_tests.simrun import Follower, first, patterns, run_sim, trace



def _config(tmp_path, gateway, **sensor):
    cfg = tmp_path / "sensor_config.json"
    cfg.write_text(json.dumps({"gateway_id": gateway["id"], "sensor": sensor}))
    return str(cfg)


def _speed(kind):
    # A CGMS connection is a dozen GATT round trips over the simulator link (the real aioble over the
    # virtual controller), each a few real ms on a loaded machine: at speed 600 that is a minute of
    # scenario time before the first reading, which would blur the 5-minute steps the tests check.
    return 600 if kind == "broadcast" else 80


def _run_followed(tmp_path, gateway, mosquitto, rows, *args, speed=600):
    f = Follower(mosquitto.port, gateway["prefix"])
    try:
        rc, evs, err = run_sim(tmp_path, trace(rows), mosquitto.port, *args, speed=speed)
        import time
        time.sleep(0.5)
        return rc, evs, err, f.readings(), f
    finally:
        f.stop()


@pytest.mark.parametrize("kind", ["broadcast", "cgms"])
def test_readings_from_each_sensor_kind_reach_the_broker(tmp_path, mosquitto, gateway, kind):
    rows = [(m, 120 - m) for m in range(0, 35, 5)]
    rc, evs, err, got, _ = _run_followed(tmp_path, gateway, mosquitto, rows, "--sensor", kind,
                                         "--config", gateway["config"], speed=_speed(kind))
    assert rc == 0, err
    accepted = [e for e in evs if e["event"] == "reading"]
    assert [e["mgdl"] for e in accepted] == [v for _, v in rows], accepted
    assert all(e["source"] == kind and not e["backfilled"] for e in accepted)
    assert [r["sgv"] for r in got] == [v for _, v in rows]
    assert not [e for e in evs if e["event"] == "reject"]
    if kind == "cgms":
        # seq is the sensor's time offset in minutes; the sim starts its session at 600
        assert [e["seq"] for e in accepted] == [600 + m for m, _ in rows]
        assert first(evs, event="cgms", state="connected") is not None


def test_cgms_gap_is_backfilled_in_order_and_never_alarms(tmp_path, mosquitto, gateway):
    # In range at 120, out of range from minute 15 to 45 while the glucose dips to 62 (the sensor
    # keeps measuring and storing), back in range at 110.
    rows = [(0, 120), (5, 120), (10, 118), (15, 90, "sensor_off"), (20, 70), (25, 62), (30, 64),
            (35, 80), (40, 100), (45, 110, "sensor_on"), (50, 112), (55, 114)]
    rc, evs, err, got, _ = _run_followed(tmp_path, gateway, mosquitto, rows, "--sensor", "cgms",
                                         "--config", gateway["config"], speed=_speed("cgms"))
    assert rc == 0, err
    gap = [600 + m for m in range(15, 45, 5)]
    by_seq = {}
    for r in got:
        by_seq.setdefault(r["seq"], r)
    # every reading of the gap reached the broker, marked backfilled, with its own value
    assert all(s in by_seq for s in gap), sorted(by_seq)
    assert [by_seq[s]["sgv"] for s in gap] == [90, 70, 62, 64, 80, 100]
    assert all(by_seq[s].get("backfilled") is True for s in gap)
    # ... in order, and here (backfill done before the next measurement) the whole stream is in order
    seqs = [r["seq"] for r in got]
    arrived = [s for i, s in enumerate(seqs) if i == 0 or s != seqs[i - 1]]
    assert arrived == sorted(set(seqs)) == [600 + m for m, *_ in rows], seqs
    # dated when the sensor measured them, not when they were fetched: 5 minutes apart
    dates = [by_seq[s]["date"] for s in [600 + m for m, *_ in rows]]
    steps = [b - a for a, b in zip(dates, dates[1:])]
    assert all(abs(d - 300000) < 30000 for d in steps), steps
    # the dip to 62 happened while nobody could hear it: published, but no low alarm now
    assert not [e for e in evs if e["event"] == "alarm"], [e for e in evs if e["event"] == "alarm"]
    assert "low" not in [n for _, n in patterns(evs)]
    # the outage itself was not silent: link dropped, sensor_silent shown, then reconnected
    assert first(evs, event="cgms", state="disconnected") is not None
    assert "sensor_silent" in [n for _, n in patterns(evs)]
    reconnect = [e for e in evs if e["event"] == "cgms" and e["state"] == "connected"]
    assert len(reconnect) == 2 and abs(reconnect[1]["t"] - 45 * 60) < 60


def _vector_adverts(tmp_path):
    with open(os.path.join(VECTORS, "open_broadcast_v1.json")) as f:
        v = json.load(f)
    path = tmp_path / "capture.jsonl"
    with open(path, "w") as out:
        for i, case in enumerate(v["cases"]):
            out.write(json.dumps({"minute": 1 + 2 * i, "addr": "c4:7a:01:22:33:44", "rssi": -61,
                                  "adv_hex": case["adv_hex"]}) + "\n")
    return v, str(path)


def test_replayed_capture_gives_readings_and_rejects(tmp_path, mosquitto, gateway):
    v, adverts = _vector_adverts(tmp_path)
    cfg = _config(tmp_path, gateway, kind="broadcast", id=v["allowlisted_sensor_id"],
                  bind_key=v["bind_key_hex"], allow_plain=True)
    rows = [(m, None) for m in range(0, 20, 5)]
    rc, evs, err = run_sim(tmp_path, trace(rows), mosquitto.port, "--config", cfg, "--adverts", adverts,
                           "--drain-s", "1")
    assert rc == 0, err
    readings = [(e["seq"], e["mgdl"], e["trend"]) for e in evs if e["event"] == "reading"]
    assert readings == [(1, 112, 0.0), (2, 54, -2.1), (3, None, None), (4, 250, 3.5)], readings
    rejects = [e["reason"] for e in evs if e["event"] == "reject"]
    assert rejects == ["mic", "replay", "unknown_sensor"], rejects


def test_replayed_plain_frame_is_refused_without_allow_plain(tmp_path, mosquitto, gateway):
    v, adverts = _vector_adverts(tmp_path)
    cfg = _config(tmp_path, gateway, kind="broadcast", id=v["allowlisted_sensor_id"],
                  bind_key=v["bind_key_hex"], allow_plain=False)
    rc, evs, err = run_sim(tmp_path, trace([(0, None), (15, None)]), mosquitto.port, "--config", cfg,
                           "--adverts", adverts, "--drain-s", "1")
    assert rc == 0, err
    assert [e["reason"] for e in evs if e["event"] == "reject"][0] == "plain_refused"
    assert [e["seq"] for e in evs if e["event"] == "reading"] == [2, 3, 4]


def test_a_day_of_advert_noise_leaves_the_heap_flat(tmp_path, mosquitto, gateway):
    # 200 neighbours with rotating addresses (the simulator caps them at 2000 adverts per real second:
    # ~80 000 irrelevant adverts over the run) around one CGM broadcasting every 5 minutes for a day.
    rows = [(m, 100 + (m // 5) % 40) for m in range(0, 24 * 60 + 1, 5)]
    rc, evs, err, got, f = _run_followed(tmp_path, gateway, mosquitto, rows, "--noise", "200",
                                         "--config", gateway["config"], speed=2400)
    assert rc == 0, err
    assert len([e for e in evs if e["event"] == "reading"]) == len(rows)
    health = [json.loads(p) for p in f.payloads("health")]
    heap = [(h["uptime_s"], h["heap_free"]) for h in health if h.get("heap_free")]
    early = [b for s, b in heap if 3600 <= s < 3 * 3600]
    late = [b for s, b in heap if s >= 21 * 3600]
    assert len(early) > 10 and len(late) > 10, heap
    # heap_free is measured after gc.collect(): the best of each window is the live data. A leak of
    # one 16-byte block per advert would cost > 1 MB here; per reading, > 4 KB.
    assert max(late) >= max(early) - 4096, (max(early), max(late))
