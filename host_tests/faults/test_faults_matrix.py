# Fault matrix (issue 8): the real firmware under the MicroPython unix port, driven by tools/sim.py, against a
# real mosquitto on loopback, with a follower recording everything. Every case checks three things a family
# would notice: no reading lost (every accepted seq reaches the follower, in order, after recovery), no alarm
# missed (every urgent low shows urgent_low, every low a low pattern, within one reading), and the right
# pattern while the fault lasts (never a plain `ok` that hides it).
#
# `make test` runs the CI subset (marked CI below, about two minutes); NIGHTSTAND_FAULTS=all runs the whole
# matrix (`make test-faults`). The outage queue's power cut at every byte offset is
# host_tests/faults/test_outage_powercut.py; the crash hook and its timing are issue 4's (test_sim_faults.py):
# here a crash is one more fault in the middle of an outage and a low.
import json
import os
import subprocess
import sys
import time

import pytest

from host_tests.simrun import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
from simlib import faults

MIN = 60
SPEED = 200
FULL = os.environ.get("NIGHTSTAND_FAULTS") == "all"
# Judgements run once a simulated second; a host hiccup at speed 200 costs a few simulated seconds more.
SLACK_S = 30


def full_only(f):
    return pytest.mark.skipif(not FULL, reason="full fault matrix only: make test-faults")(f)


def scenario(on_min, on_ev, off_min, off_ev, end=70, lows=(25, 30, 35)):
    """A reading every 5 minutes at 120 mg/dL, a fault from on_min to off_min, and a low that turns
    urgent inside it (60, 50, 52 mg/dL at the `lows` minutes), so alarms are checked during the fault."""
    lowv = dict(zip(lows, (60, 50, 52)))
    rows = []
    for m in range(0, end, 5):
        ev = on_ev if m == on_min else (off_ev if m == off_min else "")
        rows.append((m, lowv.get(m, 120 if m < lows[0] else 110), ev))
    return rows


def settle(rec, evs, timeout=10):
    """Wait until the follower has every accepted reading (or give up): delivery is asynchronous."""
    want = set(faults.accepted(evs))
    faults.wait_until(lambda: want <= set(rec.seqs()), timeout)
    time.sleep(0.3)


def three_checks(evs, rec, fault_t0, fault_t1, during, recovered="ok"):
    """The three checks, plus: the fault's pattern was on display while it lasted, `ok` never hid it,
    and after the fault the box went back to `recovered`."""
    problems = faults.lost_readings(evs, rec.seqs())
    missed = faults.missed_alarms(evs)
    assert not problems, problems
    assert not missed, ("alarms missed (seq, mg/dL, t)", missed, pats(evs))
    shown = faults.shown_between(evs, fault_t0, fault_t1)
    assert shown & set(during), ("during the fault expected one of", during, "shown", shown, pats(evs))
    detected = faults.first_after(evs, fault_t0, event="pattern", name=during[0])
    assert detected is not None, pats(evs)
    hidden = faults.shown_between(evs, detected["t"] + 1, fault_t1 - 1)
    assert "ok" not in hidden, ("`ok` showed while the fault lasted", pats(evs))
    if recovered:
        back = faults.first_after(evs, fault_t1, event="pattern", name=recovered)
        assert back is not None, ("never back to", recovered, pats(evs))


def back_online(rec):
    """After recovery the retained availability said `online` again (the run ends with the gateway's
    last will, `offline`, when the simulator stops it)."""
    a = rec.payloads("availability")
    return len(a) >= 3 and a[-1] == b"offline" and a[-2] == b"online" and a.count(b"online") >= 2


def pats(evs):
    return [(e["t"], e["name"]) for e in evs if e.get("event") == "pattern"]


def cloud_link(evs):
    return [(e["t"], e["up"]) for e in evs if e.get("event") == "link" and e.get("name") == "cloud"]


def sim(tmp_path, rows, port, gateway, *extra, env=None, name="sim", speed=SPEED):
    rc, evs, err = faults.run(tmp_path, rows, port, "--config", gateway["config"], *extra, speed=speed,
                              env=env, name=name)
    assert rc == 0, err
    return evs


@pytest.fixture
def rec(mosquitto, gateway):
    r = faults.Recorder(mosquitto.port, gateway["prefix"], client_id="rec-" + gateway["id"])
    yield r
    r.stop()


# ---- the cloud side ------------------------------------------------------------------------------------
def test_ci_broker_hung_after_accepting_tcp(tmp_path, mosquitto, gateway, rec):
    evs = sim(tmp_path, scenario(15, "broker_hang", 40, "broker_up"), mosquitto.port, gateway)
    settle(rec, evs)
    three_checks(evs, rec, 15 * MIN, 40 * MIN, ("cloud_silent",))
    down = [t for t, up in cloud_link(evs) if not up]
    assert down and down[0] - 15 * MIN <= 60 + SLACK_S, cloud_link(evs)  # silent within cloud_after_s
    assert back_online(rec)


def test_ci_half_open_connection_is_noticed_and_replaced(tmp_path, mosquitto, gateway, rec):
    evs = sim(tmp_path, scenario(15, "broker_halfopen", 40, "broker_up"), mosquitto.port, gateway)
    settle(rec, evs)
    three_checks(evs, rec, 15 * MIN, 40 * MIN, ("cloud_silent",))
    assert back_online(rec)


def test_ci_wifi_drop(tmp_path, mosquitto, gateway, rec):
    evs = sim(tmp_path, scenario(15, "wifi_down", 40, "wifi_up"), mosquitto.port, gateway)
    settle(rec, evs)
    three_checks(evs, rec, 15 * MIN, 40 * MIN, ("cloud_silent",))
    wifi = faults.first_after(evs, 15 * MIN, event="link", name="wifi", up=False)
    assert wifi and wifi["t"] - 15 * MIN <= SLACK_S, evs  # Wi-Fi is judged down at once


@full_only
def test_dns_failure_keeps_the_cloud_away_until_names_resolve(tmp_path, mosquitto, gateway, rec):
    # The router reboots: Wi-Fi drops with DNS, Wi-Fi comes back at 20 but names resolve only from 40.
    rows = scenario(15, "wifi_down", 40, "dns_up")
    rows.insert(3, (15, None, "dns_down"))
    rows[5] = (20, rows[5][1], "wifi_up")
    evs = sim(tmp_path, rows, mosquitto.port, gateway)
    settle(rec, evs)
    three_checks(evs, rec, 15 * MIN, 40 * MIN, ("cloud_silent",))
    # the DNS failure alone held the cloud away between Wi-Fi's return and names resolving again
    assert not [t for t, up in cloud_link(evs) if up and 20 * MIN < t < 40 * MIN], cloud_link(evs)
    assert [t for t, up in cloud_link(evs) if up and t >= 40 * MIN], cloud_link(evs)


@full_only
def test_broker_killed_and_restarted_on_the_same_port(tmp_path, gateway):
    """kill -9 the real mosquitto, start a new one on the same port; the follower has a persistent
    session, so what the gateway publishes after the restart reaches it even if it reconnects later."""
    store = tmp_path / "mosq"
    store.mkdir()
    broker = faults.start_mosquitto(persist_dir=str(store))
    r = faults.Recorder(broker.port, gateway["prefix"], client_id="rec-" + gateway["id"])
    time.sleep(1.5)  # the follower's session is on disk (autosave every second)
    try:
        run = faults.SimRun(tmp_path, scenario(15, "", 40, ""), broker.port, "--config", gateway["config"],
                            speed=120)
        evs = run.wait_for(lambda e: any(x.get("event") == "reading" and x["t"] >= 15 * MIN for x in e))
        killed_t = max(x["t"] for x in evs)
        # A broker asked to persist proves it did: its database is on disk before the kill (as root,
        # mosquitto used to drop to its own user, could not write the folder, and kept nothing).
        db = store / "mosquitto.db"
        faults.wait_until(db.exists, 5)
        assert db.exists() and db.stat().st_size > 0, sorted(os.listdir(str(store)))
        faults.kill_broker(broker)
        evs = run.wait_for(lambda e: any(x.get("event") == "reading" and x["t"] >= 40 * MIN for x in e))
        restarted_t = max(x["t"] for x in evs)
        broker = faults.start_mosquitto(port=broker.port, persist_dir=str(store))
        rc, evs, err = run.wait(240)
        assert rc == 0, err
        settle(r, evs)
        three_checks(evs, r, killed_t, restarted_t, ("cloud_silent",))
        assert back_online(r)
    finally:
        r.stop()
        broker.stop()


# ---- the sensor side ------------------------------------------------------------------------------------
@full_only
def test_sensor_silent_then_back_with_an_urgent_low(tmp_path, mosquitto, gateway, rec):
    rows = [(m, 120) for m in range(0, 15, 5)] + [(m, None) for m in range(15, 45, 5)]
    rows += [(45, 50), (50, 52), (55, 90), (60, 110), (65, 115)]
    evs = sim(tmp_path, rows, mosquitto.port, gateway)
    settle(rec, evs)
    # last reading at 10: silent at 21 (11 minutes), back with the reading at 45
    three_checks(evs, rec, 10 * MIN, 45 * MIN, ("sensor_silent",), recovered=None)
    silent = faults.first_after(evs, 0, event="pattern", name="sensor_silent")
    assert abs(silent["t"] - 21 * MIN) <= SLACK_S + 60, pats(evs)
    assert faults.first_after(evs, 45 * MIN, event="pattern", name="urgent_low")["t"] - 45 * MIN <= SLACK_S


def _frame(counter, mgdl, minute, trend=0.0, key=faults.DEMO_KEY, sensor=faults.SENSOR_ID):
    from firmware.sensor.open_broadcast import encode_frame
    return encode_frame(sensor, counter, mgdl, trend, 600 + int(minute), 0, key)


def _adverts(tmp_path, items):
    """items: (minute, advert bytes) -> the --adverts file (JSON lines)."""
    p = tmp_path / "adverts.jsonl"
    p.write_text("".join(json.dumps({"minute": m, "addr": "c4:7a:01:22:33:44", "rssi": -60,
                                     "adv_hex": a.hex()}) + "\n" for m, a in items))
    return str(p)


def _quiet_trace(end):
    return [(m, None) for m in range(0, end + 1, 5)]


def test_ci_duplicate_out_of_order_and_bursty_readings(tmp_path, mosquitto, gateway, rec):
    items, c = [], 0
    for m in range(0, 25, 5):                   # every frame three times, as a bridge repeats it
        c += 1
        for k in range(3):
            items.append((m + 0.1 * k, _frame(c, 118, m)))
    old = items[3][1]                           # counter 2, captured earlier
    items.append((26, old))                     # out of order: an older frame after newer ones
    for i in range(10):                         # a burst: a bridge flushing ten buffered readings in a second
        c += 1
        items.append((30 + i * 0.001, _frame(c, (110, 90, 70, 60, 50, 52, 58, 66, 75, 85)[i], 26 + i)))
    items.append((30.5, old))                   # and the old frame again
    for m in range(35, 55, 5):
        c += 1
        items.append((m, _frame(c, 95, 40 + m)))
    evs = sim(tmp_path, _quiet_trace(55), mosquitto.port, gateway, "--adverts", _adverts(tmp_path, items),
              "--tail-s", "120")
    settle(rec, evs)
    acc = faults.accepted(evs)
    assert acc == list(range(1, c + 1)), acc     # each frame once, in counter order, none of the burst lost
    rejects = [e["reason"] for e in evs if e.get("event") == "reject"]
    assert rejects == ["replay", "replay"], rejects  # the two out-of-order frames, and nothing else
    assert not faults.lost_readings(evs, rec.seqs()), faults.lost_readings(evs, rec.seqs())
    assert faults.missed_alarms(evs, within_s=60) == []   # the burst's urgent low sounded at once
    assert "urgent_low" in faults.shown_between(evs, 30 * MIN, 31 * MIN)


@full_only
def test_corrupt_advertisements_are_refused_and_never_alarm(tmp_path, mosquitto, gateway, rec):
    import random
    rng = random.Random(8)
    items, c, corrupt = [], 0, 0
    for m in range(0, 50, 5):
        c += 1
        good = _frame(c, 120 - m // 5, m)
        bad = bytearray(_frame(c + 1, 40, m))   # a forged urgent low: ciphertext bit flipped
        bad[rng.randrange(16, len(bad))] ^= 1 << rng.randrange(8)
        forged = [bytes(bad),
                  _frame(c + 1, 40, m, key=None),                   # plain frame, plain not allowed
                  _frame(c + 1, 40, m, sensor=faults.SENSOR_ID + 1),  # someone else's sensor
                  _frame(c + 1, 40, m)[:-3],                         # cut short
                  _frame(c + 1, 40, m, key="00" * 16)]               # the wrong bind key
        for i, f in enumerate(forged):
            items.append((m + 0.2 + 0.1 * i, f))
            corrupt += 1
        items.append((m + 1, good))
    evs = sim(tmp_path, _quiet_trace(50), mosquitto.port, gateway, "--adverts", _adverts(tmp_path, items),
              "--tail-s", "120")
    settle(rec, evs)
    assert faults.accepted(evs) == list(range(1, c + 1))
    rejects = [e["reason"] for e in evs if e.get("event") == "reject"]
    assert len(rejects) == corrupt, rejects                # every corrupt frame is refused out loud
    assert set(rejects) <= {"mic", "plain_refused", "unknown_sensor", "malformed"}, set(rejects)
    assert not faults.lost_readings(evs, rec.seqs())
    assert not {"urgent_low", "low", "urgent_low_soon"} & faults.shown_between(evs, 0, 50 * MIN), pats(evs)


# ---- the gateway itself -------------------------------------------------------------------------------
def _good_run(tmp_path, mosquitto, gateway, data, proxy_port):
    cfg = json.loads(open(gateway["config"]).read())
    cfg["alarms"] = {"low": 90}   # the family's own low: only this config alarms at 85
    good = tmp_path / "good.json"
    good.write_text(json.dumps(cfg))
    # no readings: the simulated CGM's counter starts at 1 again in the next run
    evs = sim(tmp_path, [(0, None), (5, None)], mosquitto.port, {"config": str(good)}, "--data", data,
              "--proxy-port", proxy_port, name="good")
    assert not [e for e in evs if e.get("event") == "fault"], evs
    assert os.path.exists(os.path.join(data, "config.last_good.json"))
    return str(good)


# missing: config.json gone, so only the defaults are left; they have no bind key, which the validator refuses
# (sensor.bind_key named), so the last good config runs the box and `fault` is shown.
@pytest.mark.parametrize("kind", ["corrupt_json", "bad_value", "missing"])
def test_bad_config_keeps_the_last_good_one_and_shows_fault(tmp_path, mosquitto, gateway, rec, kind):
    from simlib.brokers import free_port
    data, port = str(tmp_path / "data"), free_port()
    good = _good_run(tmp_path, mosquitto, gateway, data, port)
    bad = tmp_path / "bad.json"
    if kind == "corrupt_json":
        bad.write_text('{"gateway_id": "%s", "alarms": {"low": 9' % gateway["id"])
    elif kind == "bad_value":
        bad.write_text(json.dumps({"gateway_id": gateway["id"], "alarms": {"low": "seventy"}}))
    rows = [(m, 120) for m in range(10, 30, 5)] + [(30, 85), (35, 84), (40, 110), (45, 120)]
    evs = sim(tmp_path, rows, mosquitto.port, {"config": good}, "--data", data, "--proxy-port", port,
              "--fw-config", "-" if kind == "missing" else str(bad), name="bad")
    settle(rec, evs)
    fault = faults.first_after(evs, 0, event="fault", name="config")
    assert fault is not None, [e for e in evs if e.get("event") not in ("pattern", "reading")]
    if kind == "bad_value":
        assert "alarms.low" in json.dumps(fault)            # the key is named
    # the last good config runs the box: its bind key (readings accepted), its broker, its own low of 90
    assert len(faults.accepted(evs)) == len(rows)
    assert not faults.lost_readings(evs, rec.seqs())
    assert set(faults.accepted(evs)) <= set(rec.seqs())
    assert faults.shown_between(evs, 30 * MIN, 35 * MIN) & {"low", "urgent_low_soon"}, pats(evs)
    assert "fault" in faults.shown_between(evs, 5, 30 * MIN), pats(evs)  # and the box says it is not right
    assert "ok" not in faults.shown_between(evs, 10, 29 * MIN), pats(evs)


@full_only
def test_flash_full_during_an_outage(tmp_path, mosquitto, gateway, rec):
    rows = scenario(15, "broker_down", 40, "broker_up")
    rows.insert(1, (1, None, "flash_full"))
    evs = sim(tmp_path, rows, mosquitto.port, gateway)
    settle(rec, evs)
    three_checks(evs, rec, 15 * MIN, 40 * MIN, ("cloud_silent",), recovered="fault")
    assert "fault" in faults.shown_between(evs, 15 * MIN, 70 * MIN)


@full_only
def test_power_cut_in_an_outage_loses_nothing_on_flash(tmp_path, mosquitto, gateway, rec):
    """kill -9 the firmware (a power cut) while readings of an outage sit in the flash queue; at power-on
    with the same data dir they are replayed in order. The cut at every byte offset of a queue write is
    host_tests/faults/test_outage_powercut.py (CPython, the same module)."""
    from simlib.brokers import free_port
    data, port = str(tmp_path / "data"), free_port()
    rows = [(m, 120 - m // 5) for m in range(0, 40, 5)]
    rows[3] = (15, rows[3][1], "broker_down")
    run = faults.SimRun(tmp_path, rows, mosquitto.port, "--config", gateway["config"], "--data", data,
                        "--proxy-port", port, speed=SPEED, name="before")
    run.wait_for(lambda e: len(faults.accepted(e)) >= 7)   # 15, 20, 25, 30 are in the flash queue
    time.sleep(0.05)
    faults.kill_firmware(run)
    run.wait(30)
    before = faults.accepted(run.events())
    assert len(before) >= 7
    # power on again: the same data dir and broker path, the sensor away (its counter is on flash too)
    sim(tmp_path, [(m, None) for m in range(0, 15, 5)], mosquitto.port, gateway, "--data", data,
        "--proxy-port", port, "--tail-s", "60", name="after")
    faults.wait_until(lambda: set(before) <= set(rec.seqs()), 15)
    got = rec.seqs()
    assert set(before) <= set(got), ("lost in the power cut", sorted(set(before) - set(got)), got)
    dedup = [s for i, s in enumerate(got) if i == 0 or s != got[i - 1]]
    assert dedup == sorted(set(dedup)), got
    by_seq = {r["seq"]: r for r in rec.readings()}
    outage = [s for s in before if s >= 4]             # minutes 15, 20, ...: made while the broker was down
    assert outage and all(by_seq[s].get("replayed") for s in outage), rec.readings()


@full_only
def test_crashing_tasks_in_an_outage_during_a_low(tmp_path, mosquitto, gateway, rec):
    rows = scenario(15, "broker_down", 45, "broker_up")
    rows.insert(5, (22, None, "crash_tick"))
    rows.insert(8, (32, None, "crash_radio"))
    rows.insert(10, (37, None, "crash_player"))
    evs = sim(tmp_path, rows, mosquitto.port, gateway)
    settle(rec, evs)
    three_checks(evs, rec, 15 * MIN, 45 * MIN, ("cloud_silent", "urgent_low", "low", "urgent_low_soon"))
    crashed = {e["name"] for e in evs if e.get("event") == "fault" and e.get("active")}
    assert {"task:tick", "task:radio", "task:player"} <= crashed, crashed
    # the urgent low outranks the fault and the silence for as long as it lasts
    assert faults.pattern_at(evs, 33 * MIN) == "urgent_low", pats(evs)


# ---- a hostile client on cmd/# (issue 17) ---------------------------------------------------------------
FLOOD_SECRET = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f00112233445566778899aabbccddeeff"
# The small-heap run of the memory issue on this 64-bit port, with the commands code loaded at boot (a
# secret is set). With the real aioble over the host's virtual BLE controller (issue 12) and the sources
# and G6 code, 128wK and 160wK no longer boot (MemoryError building the receiver: this run compiles the
# firmware from source at boot, where the soak's day at 144wK runs .mpy files), 192wK does. The board's
# own figure is the 32-bit frozen build's (tools/bench_memory.py).
SMALL_HEAP = "192wK"
# "Back within 1 KiB" is a board's 1 KiB: this port's objects are twice a 32-bit board's size.
HEAP_BACK_BYTES = 2 * 1024


def _health(rec):
    out = []
    for t, p in rec.timed("health"):
        try:
            out.append((t, json.loads(p)))
        except ValueError:
            pass
    return out


@full_only
@pytest.mark.parametrize("heap", [None, SMALL_HEAP])
def test_a_command_flood_and_oversized_messages_during_a_low(tmp_path, mosquitto, gateway, rec, heap):
    """10 000 unsigned commands and 20 oversized ones (one retained) on cmd/# while a low turns urgent:
    the alarm is on time, every reading reaches the follower in order, the uplink stays up (at most one
    reconnect), the health topic counts what was dropped, and the heap comes back within 1 KiB."""
    import paho.mqtt.client as mqtt
    cfg = tmp_path / "flood.json"
    cfg.write_text(json.dumps({"gateway_id": gateway["id"], "commands": {"secret": FLOOD_SECRET}}))
    extra = ["--heapsize", heap] if heap else []
    run = faults.SimRun(tmp_path, scenario(20, "", 50, "", end=75), mosquitto.port, "--config", str(cfg),
                        *extra, speed=SPEED)
    prefix = gateway["prefix"]
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hostile-" + gateway["id"])
    c.max_queued_messages_set(0)
    try:
        run.wait_for(lambda e: any(x.get("event") == "reading" and x["t"] >= 15 * MIN for x in e))
        faults.wait_until(lambda: len(_health(rec)) >= 3, 20)
        before = _health(rec)[-1][1]
        c.connect("127.0.0.1", mosquitto.port, 30)
        c.loop_start()
        flood_t0 = max(x["t"] for x in run.events())
        infos = [c.publish(prefix + "/cmd/snooze", b"x" * 100000, qos=1, retain=(i == 0)) for i in range(20)]
        infos += [c.publish(prefix + "/cmd/snooze", b'{"n": %d, "ts": 1, "mac": "00"}' % i) for i in range(10000)]
        for info in infos:
            info.wait_for_publish(30)
        flood_t1 = max(x["t"] for x in run.events())
        rc, evs, err = run.wait(300)
    finally:
        if c.is_connected():
            c.publish(prefix + "/cmd/snooze", b"", retain=True).wait_for_publish(5)   # no retained leftover
            c.disconnect()
        c.loop_stop()
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, err
    settle(rec, evs)
    assert not faults.lost_readings(evs, rec.seqs()), faults.lost_readings(evs, rec.seqs())
    assert not faults.missed_alarms(evs), ("alarms missed", faults.missed_alarms(evs), pats(evs))
    assert faults.pattern_at(evs, 36 * MIN) == "urgent_low", pats(evs)
    downs = [e for e in evs if e.get("event") == "uplink" and e.get("what") == "down" and e["t"] >= flood_t0]
    assert len(downs) <= 1, downs                       # up all along, or back within one reconnect
    crashed = [e for e in evs if e.get("event") == "fault" and e.get("active")]
    assert not crashed, (crashed, err[-3000:])         # no task (tick, uplink...) crashed on the flood
    floods = [e for e in evs if e.get("event") == "uplink" and e.get("what") == "cmd_flood"]
    # said once per burst, not once per message: a burst ends after 10 s without a drop, which at speed
    # 200 is 50 ms of the host's time, so a busy host splits the flood into a few bursts
    assert 1 <= len(floods) <= 20, floods
    health = _health(rec)
    last = health[-1][1]
    # What reached the gateway was dropped unread (the 20 big ones, and the flood beyond the slots and the
    # rate limit, counted on the health topic) or judged and audited (refused). The rate limit is in clock
    # time: at speed 200 its one command per 2 s lets ~1 % through; on a board, one in a thousand. A few
    # percent never reach the gateway: mosquitto drops QoS 0 messages it cannot queue for a busy client.
    audits = [json.loads(p) for p in rec.payloads("audit")]
    assert not any(a["accepted"] for a in audits), audits
    assert last["cmd_oversized"] >= 20, last
    assert last["cmd_dropped"] + len(audits) >= 9000, (last, len(audits))
    assert len(audits) <= 0.05 * last["cmd_dropped"], (last, len(audits))
    # the heap after the flood (gc'd, on the health topic) is back within a board's 1 KiB of before it
    after = [h for _, h in health if h["cmd_dropped"] == last["cmd_dropped"]]
    best = max(h["heap_free"] for h in after)
    assert best >= before["heap_free"] - HEAP_BACK_BYTES, (before["heap_free"], [h["heap_free"] for h in after])
    print("flood: heap_free before %d, after %d (best of %d), dropped %d, oversized %d, audits %d, sim %d..%d s"
          % (before["heap_free"], best, len(after), last["cmd_dropped"], last["cmd_oversized"], len(audits),
             flood_t0, flood_t1))


# ---- the broker's access list as a family deploys it (tools/mosquitto/, docs/mosquitto-acl.md) -----------
def _acl_broker(gid, passwords):
    """mosquitto with the shipped conf and acl, the example's gateway id `bedroom` replaced by gid."""
    import tempfile
    from simlib import brokers
    d = tempfile.mkdtemp(prefix="nightstand-acl-")
    with open(os.path.join(ROOT, "tools", "mosquitto", "acl")) as f:
        acl = f.read().replace("bedroom", gid)
    with open(os.path.join(d, "acl"), "w") as f:
        f.write(acl)
    passwd = os.path.join(d, "passwd")
    for i, (user, pw) in enumerate(sorted(passwords.items())):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [passwd, user, pw],
                       check=True, capture_output=True)
    conf = []
    with open(os.path.join(ROOT, "tools", "mosquitto", "mosquitto.conf")) as f:
        for line in f:
            if line.split()[:1] in (["listener"], ["persistence"], ["persistence_location"], ["autosave_interval"]):
                continue  # the test's own listener on loopback, no persistence
            conf.append(line.replace("/etc/mosquitto/nightstand.passwd", passwd)
                        .replace("/etc/mosquitto/nightstand.acl", os.path.join(d, "acl")))
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)
    os.chmod(d, 0o755)
    return brokers.start_mosquitto(extra_conf="".join(conf), allow_anonymous=False), d


def _client(port, user, pw, name):
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    if user:
        c.username_pw_set(user, pw)
    return c


@full_only
def test_broker_access_list_only_family_users_send_commands(tmp_path, gateway):
    import shutil
    from firmware.core import commands
    gid, prefix = gateway["id"], gateway["prefix"]
    pw = {"nightstand-" + gid: "gw-pass-1", "mum": "mum-pass-1", "homeassistant": "ha-pass-1",
          "guest": "guest-pass-1"}
    broker, d = _acl_broker(gid, pw)
    cfg = tmp_path / "acl.json"
    # max_age_s 3600: at speed 200 the gateway's clock runs 200 times faster than this test's
    cfg.write_text(json.dumps({"gateway_id": gid, "mqtt": {"user": "nightstand-" + gid},
                               "commands": {"secret": FLOOD_SECRET, "max_age_s": 3600}}))
    sec = tmp_path / "acl-secrets.json"
    sec.write_text(json.dumps({"mqtt": {"password": pw["nightstand-" + gid]}}))
    got = []
    ha = _client(broker.port, "homeassistant", pw["homeassistant"], "ha-" + gid)
    ha.on_message = lambda c, u, m: got.append((m.topic[len(prefix) + 1:], m.payload))
    ha.on_connect = lambda c, u, f, rc, p=None: c.subscribe(prefix + "/#", 1)
    try:
        ha.connect("127.0.0.1", broker.port, 30)
        ha.loop_start()
        run = faults.SimRun(tmp_path, scenario(15, "", 40, "", end=55), broker.port, "--config", cfg,
                            "--secrets", sec, speed=SPEED,
                            env={"NIGHTSTAND_SIM_MQTT_USER": "homeassistant",
                                 "NIGHTSTAND_SIM_MQTT_PASSWORD": pw["homeassistant"]})
        run.wait_for(lambda e: any(x.get("event") == "reading" and x["t"] >= 10 * MIN for x in e))
        secret = bytes.fromhex(FLOOD_SECRET)
        faults.wait_until(lambda: any(t == "reading" for t, _ in got), 10)
        now = max(json.loads(p).get("date") or 0 for t, p in got if t == "reading") // 1000  # its clock
        sent = {}
        for user, name in (("guest", "snooze"), ("mum", "selftest")):
            c = _client(broker.port, user, pw[user], "%s-%s" % (user, gid))
            c.connect("127.0.0.1", broker.port, 30)
            c.loop_start()
            # a properly signed command: only the access list can keep the guest's from the gateway
            c.publish(prefix + "/cmd/" + name, commands.sign(secret, name, now * 1000 + len(sent), now),
                      qos=1).wait_for_publish(10)
            if user == "guest":
                c.publish(prefix + "/reading", b'{"seq": 999999, "sgv": 40}', qos=1).wait_for_publish(10)
            c.loop_stop()
            c.disconnect()
            sent[user] = name
        anon = _client(broker.port, None, None, "anon-" + gid)
        refused = []
        anon.on_connect = lambda c, u, f, rc, p=None: refused.append(rc.is_failure)
        anon.connect("127.0.0.1", broker.port, 30)
        anon.loop_start()
        faults.wait_until(lambda: refused, 5)
        anon.loop_stop()
        assert refused and refused[0] and not anon.is_connected(), refused   # CONNACK: not authorised
        rc, evs, err = run.wait(300)
        # the simulator's own follower (homeassistant) got every reading, or it would exit 3
        assert rc == 0, err
        faults.wait_until(lambda: any(t == "audit" for t, _ in got), 10)
        time.sleep(0.5)
        audits = [json.loads(p) for t, p in got if t == "audit"]
        assert [(a["cmd"], a["accepted"]) for a in audits] == [("selftest", True)], audits
        assert not [p for t, p in got if t == "reading" and b"999999" in p]   # no forged reading
        assert not faults.missed_alarms(evs), faults.missed_alarms(evs)
        assert set(faults.accepted(evs)) <= {json.loads(p).get("seq") for t, p in got if t == "reading"}
    finally:
        ha.loop_stop()
        broker.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---- TLS certificate mismatch (issue 6's test broker: CA, server certificate and password made at test time)
from host_tests.tls_broker import gateway_files  # noqa: E402  (the tls_broker fixture is in conftest.py)


@full_only
def test_tls_wrong_ca_alarms_locally_queues_and_delivers_once_the_ca_is_fixed(tmp_path, tls_broker, gateway):
    """A wrong CA: the gateway refuses the broker (cloud_silent), still sounds the urgent low and keeps every
    reading on flash; the family fixes the CA and power-cycles it: every reading arrives, in order."""
    from simlib.brokers import free_port
    data, port = str(tmp_path / "data"), free_port()
    r = faults.Recorder(tls_broker["plain_port"], gateway["prefix"], client_id="rec-" + gateway["id"])
    try:
        wrong, sec = gateway_files(tmp_path, gateway, tls_broker["dir"] / "wrong-ca.pem")
        rows = [(0, 120), (5, 118), (10, 60), (15, 50), (20, 52), (25, 90), (30, 110)]
        rc, evs, err = faults.run(tmp_path, rows, tls_broker["tls_port"], "--config", wrong, "--secrets", sec,
                                  "--data", data, "--proxy-port", port, "--drain-s", "0", "--tail-s", "120",
                                  speed=SPEED, name="wrongca")   # minutes pass before the fix
        assert rc == 0, err
        assert faults.first_after(evs, 0, event="pattern", name="cloud_silent")["t"] <= 62 + SLACK_S, pats(evs)
        assert not faults.missed_alarms(evs), pats(evs)
        assert r.payloads("reading") == [] and r.payloads("availability") == []
        before = faults.accepted(evs)
        assert len(before) == len(rows)
        right = tmp_path / "right.json"
        cfg = json.loads(open(str(wrong)).read())
        cfg["mqtt"]["ca"] = str(tls_broker["dir"] / "ca.pem")
        right.write_text(json.dumps(cfg))
        rc, evs2, err = faults.run(tmp_path, [(m, None) for m in range(0, 15, 5)], tls_broker["tls_port"],
                                   "--config", str(right), "--secrets", sec, "--data", data, "--proxy-port", port,
                                   "--tail-s", "60", speed=SPEED, name="rightca")
        assert rc == 0, err
        faults.wait_until(lambda: set(before) <= set(r.seqs()), 15)
        got = r.seqs()
        assert set(before) <= set(got), (before, got)
        dedup = [s for i, s in enumerate(got) if i == 0 or s != got[i - 1]]
        assert dedup == sorted(set(dedup)), got
        assert all(x.get("replayed") for x in r.readings())
    finally:
        r.stop()
