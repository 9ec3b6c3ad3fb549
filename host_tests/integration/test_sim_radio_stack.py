# The radio as a board runs it: open_ble() (firmware/hal/ble.py), the real aioble (micropython-lib 0.6.2,
# tools/install_deps.py) over the virtual BLE controller (tools/virtual_hw/bluetooth.py), with the
# simulator playing the sensor on the air. Each test is a behaviour aioble's own habits would break:
# a burst handed over newest first, an ADV_SCAN_IND advert re-yielded only on an RSSI change, GATT
# discovery without a time limit, and a notification stranded behind aioble's wake flag.
import json
import os

from host_tests.simrun import Follower, first, run_sim, trace

HERE = os.path.dirname(os.path.abspath(__file__))
SID = 0x0BEDCAFE
KEY = "00112233445566778899aabbccddeeff"


def _broadcast_config(tmp_path, gateway):
    cfg = tmp_path / "sensor_config.json"
    cfg.write_text(json.dumps({"gateway_id": gateway["id"],
                               "sensor": {"kind": "broadcast", "id": SID, "bind_key": KEY}}))
    return str(cfg)


def _frame(counter, mgdl, minutes):
    from firmware.sensor.open_broadcast import encode_frame
    return encode_frame(SID, counter, mgdl, 0.0, minutes, 0, KEY).hex()


def _readings(evs):
    return [(e["seq"], e["mgdl"]) for e in evs if e["event"] == "reading"]


def test_a_burst_of_three_frames_in_one_scan_batch_gives_three_readings_in_order(tmp_path, mosquitto, gateway):
    # A bridge that buffered three readings sends them together: one batch of scan IRQs, which aioble's
    # queue would hand over newest first (5, 4, 3).
    lines = [{"minute": 1, "addr": "c4:7a:01:22:33:44", "rssi": -61, "adv_hex": _frame(2, 150, 700)}]
    for c, g in ((3, 120), (4, 90), (5, 60)):
        lines.append({"minute": 6, "addr": "c4:7a:01:22:33:44", "rssi": -61, "adv_hex": _frame(c, g, 700 + c)})
    adverts = tmp_path / "burst.jsonl"
    adverts.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rc, evs, err = run_sim(tmp_path, trace([(0, None), (10, None)]), mosquitto.port, "--config",
                           _broadcast_config(tmp_path, gateway), "--adverts", str(adverts), "--drain-s", "2",
                           speed=300)
    assert rc == 0, err
    assert _readings(evs) == [(2, 150), (3, 120), (4, 90), (5, 60)], _readings(evs)
    assert not [e for e in evs if e["event"] == "reject"], [e for e in evs if e["event"] == "reject"]


def test_an_adv_scan_ind_sensor_at_constant_rssi_gives_every_reading(tmp_path, mosquitto, gateway):
    # ADV_SCAN_IND without a scan response (a passive scan never asks for one), always at -61 dBm:
    # aioble's ScanResult re-yields such a device only when its RSSI changes.
    rows = [(m, 130 - m) for m in range(0, 40, 5)]
    f = Follower(mosquitto.port, gateway["prefix"])
    try:
        rc, evs, err = run_sim(tmp_path, trace(rows), mosquitto.port, "--config", gateway["config"],
                               "--adv-type", "scan", speed=300)
    finally:
        f.stop()
    assert rc == 0, err
    got = _readings(evs)
    assert [g for _, g in got] == [v for _, v in rows], got
    # each within an advertising interval of being sent (the sim repeats its newest frame every 2 s):
    # nothing waits for the next frame or an RSSI change
    # (the first frame goes out while the gateway still boots; it is heard when the first scan starts)
    sent_at = [m * 60 for m, _ in rows]
    late = [(s, e["t"]) for s, e in zip(sent_at, [e for e in evs if e["event"] == "reading"])
            if s > 0 and e["t"] - s > 10]
    assert not late, late


def test_a_cgms_peer_that_stalls_discovery_is_named_within_10_s_and_the_radio_recovers(tmp_path, mosquitto,
                                                                                         gateway):
    rows = [(m, 120 + m) for m in range(0, 11, 5)]
    rc, evs, err = run_sim(tmp_path, trace(rows), mosquitto.port, "--sensor", "cgms", "--config",
                           gateway["config"], "--cgms-stall", "1", "--drain-s", "5", speed=20)
    assert rc == 0, err
    cg = [e for e in evs if e["event"] == "cgms"]
    failed = first(evs, event="cgms", state="failed")
    assert failed is not None and failed["why"].startswith("discover: peer_stalled"), cg
    searching = first(evs, event="cgms", state="searching")
    assert failed["t"] - searching["t"] <= 10, (searching, failed)
    assert first(evs, event="reject", reason="peer_stalled") is not None
    # the next attempt connects and readings flow
    connected = [e for e in cg if e["state"] == "connected"]
    assert connected and connected[0]["t"] > failed["t"], cg
    assert [s for s, _ in _readings(evs)] == [600 + m for m, _ in rows], _readings(evs)
    # never a radio stall (the supervisor's 30 s limit), never the 30 s ATT timeout
    assert not [e for e in evs if e["event"] == "fault" and "stall" in json.dumps(e)], evs
    assert failed["t"] - searching["t"] < 30


def test_a_backfill_of_30_records_arrives_with_no_poll_tail(tmp_path, mosquitto, gateway):
    # One record a minute; the sensor is out of range for 30 of them, then back: one RACP report of 30
    # records, two per notification. A notification stranded behind aioble's wake flag would wait for
    # the session loop's 1 s poll; the RACP answer likewise.
    rows = [(0, 120), (1, 120), (2, 120, "sensor_off")]
    rows += [(m, 120 - (m - 2)) for m in range(3, 32)]
    rows += [(32, 90, "sensor_on"), (33, 90), (34, 90), (35, 91)]
    rc, evs, err = run_sim(tmp_path, trace(rows), mosquitto.port, "--sensor", "cgms", "--config",
                           gateway["config"], "--drain-s", "5", speed=30)
    assert rc == 0, err
    gap = [600 + m for m in range(2, 32)]
    got = [e for e in evs if e["event"] == "reading" and e["seq"] in gap]
    assert [e["seq"] for e in got] == gap, [e["seq"] for e in got]
    # (the tracker counts the report's newest record, a minute old, as live; the rest are backfilled)
    assert all(e["backfilled"] for e in got[:-1]), got
    ts = [e["t"] for e in got]
    steps = [round(b - a, 3) for a, b in zip(ts, ts[1:])]
    # The records stream in one report, a notification every few ms of real time (the core handles
    # each): no step between two of them is the session loop's 1 s poll. 0.9 s leaves room for a GC
    # pause of this loaded machine at speed 30 (10 ms real = 0.3 s) without hiding a poll.
    assert max(steps) < 0.9, steps
