# Network sources through the simulator (real firmware on the MicroPython unix port) against a real
# mosquitto: the phone's web service (--source phone) alone and beside the box's own radio, failover
# when either dies, a hung / stale / gone phone named in the event log and the state, a wrong secret.
import json
import time

from host_tests.simrun import Follower, first, patterns, run_sim, trace

_SPEED = 600


def _run(tmp_path, gateway, mosquitto, rows, *args):
    f = Follower(mosquitto.port, gateway["prefix"])
    try:
        rc, evs, err = run_sim(tmp_path, trace(rows), mosquitto.port, "--config", gateway["config"], *args,
                               speed=_SPEED)
        time.sleep(0.5)
        states = [json.loads(p) for p in f.payloads("state")]
        return rc, evs, err, f.readings(), states
    finally:
        f.stop()


def _source_states(evs, name):
    out = []
    for e in evs:
        if e["event"] == "source" and e["name"] == name and (not out or out[-1][1] != e["state"]):
            out.append((e["t"], e["state"]))
    return out


def test_phone_only_night_alarms_a_low_within_one_poll(tmp_path, mosquitto, gateway):
    rows = [(m, v) for m, v in zip(range(0, 50, 5), (130, 120, 110, 100, 90, 80, 66, 60, 64, 72))]
    rc, evs, err, got, states = _run(tmp_path, gateway, mosquitto, rows, "--source", "phone")
    assert rc == 0, err
    assert [e["mgdl"] for e in evs if e["event"] == "reading"] == [v for _, v in rows]
    assert all(e["source"] == "phone" for e in evs if e["event"] == "reading")
    low = first(evs, event="alarm", level="low", state="raised")
    assert low is not None, [e for e in evs if e["event"] == "alarm"]
    # the 66 was measured at minute 30; the phone is polled every 60 s
    assert 30 * 60 <= low["t"] <= 30 * 60 + 60 + 10, low
    assert [r["sgv"] for r in got] == [v for _, v in rows]
    assert "sensor_silent" not in [n for _, n in patterns(evs)]
    assert states[-1]["sources"] == [{"name": "phone", "state": "up", "age_s": states[-1]["sources"][0]["age_s"],
                                      "path": "lan"}]


def test_radio_and_phone_together_publish_every_reading_once_in_order(tmp_path, mosquitto, gateway):
    rows = [(m, 100 + 3 * i) for i, m in enumerate(range(0, 60, 5))]
    rc, evs, err, got, states = _run(tmp_path, gateway, mosquitto, rows, "--sensor", "broadcast",
                                     "--source", "phone")
    assert rc == 0, err
    assert [r["sgv"] for r in got] == [v for _, v in rows], got
    assert not any(r.get("backfilled") for r in got)
    sources = set(e["source"] for e in evs if e["event"] == "reading")
    assert sources <= {"broadcast", "phone"} and "broadcast" in sources
    by = dict((s["name"], s["state"]) for s in states[-1]["sources"])
    assert by == {"broadcast": "up", "phone": "up"} and states[-1]["sensor_path"] == "radio"


def test_radio_off_phone_on_keeps_the_night_going(tmp_path, mosquitto, gateway):
    rows = [(m, 110 + i % 4 * 4) for i, m in enumerate(range(0, 45, 5))]
    rows[2] = (10, rows[2][1], "sensor_off")
    rc, evs, err, got, states = _run(tmp_path, gateway, mosquitto, rows, "--sensor", "broadcast",
                                     "--source", "phone")
    assert rc == 0, err
    assert "sensor_silent" not in [n for _, n in patterns(evs)]
    assert not [e for e in evs if e["event"] == "link" and e["name"] == "sensor"]
    assert [r["sgv"] for r in got] == [v for _, v, *_ in rows]
    late = [e for e in evs if e["event"] == "reading" and e["t"] > 11 * 60]
    assert late and all(e["source"] == "phone" for e in late)
    # the state says only the phone path is up
    by = dict((s["name"], s["state"]) for s in states[-1]["sources"])
    assert by == {"broadcast": "silent", "phone": "up"} and states[-1]["sensor_path"] == "lan", states[-1]
    assert states[-1]["pattern"] == "ok"


def test_phone_hung_then_stale_then_down_with_a_radio_low_on_time(tmp_path, mosquitto, gateway):
    # the phone hangs at 10, answers only with what it had from 20, and is gone from 40; the radio
    # hears a low at 15 and nothing from 25
    rows = [(0, 120), (5, 118), (10, 112, "phone_hang"), (15, 60), (20, 64, "phone_stale"),
            (25, 70, "sensor_off"), (30, 80), (35, 90), (40, 100, "phone_down"), (45, 110), (50, 115),
            (55, 118, "phone_up"), (60, 120), (65, 121)]
    rc, evs, err, got, states = _run(tmp_path, gateway, mosquitto, rows, "--sensor", "broadcast",
                                     "--source", "phone")
    assert rc == 0, err
    # a low heard by the radio while the phone hangs is alarmed on time
    low = first(evs, event="alarm", level="low", state="raised")
    assert low is not None and 15 * 60 <= low["t"] <= 15 * 60 + 10, low
    phone = [s for _, s in _source_states(evs, "phone")]
    assert phone.index("hung") < phone.index("stale") < phone.index("down"), phone
    t_hung = [t for t, s in _source_states(evs, "phone") if s == "hung"][0]
    assert 10 * 60 <= t_hung <= 10 * 60 + 60 + 2 * 5 * 60, t_hung  # a poll, plus its read timeout
    # the last fresh reading was measured at minute 20 (by the radio): sensor_silent 11 minutes later,
    # though the stale phone still answers (with its minute-15 reading)
    silent = [t for t, n in patterns(evs) if n == "sensor_silent"]
    assert silent and abs(silent[0] - (20 * 60 + 660)) <= 30, silent
    down = [st for st in states if dict((s["name"], s["state"]) for s in st["sources"])["phone"] == "down"]
    assert down and down[-1]["sensor"] == "silent", down[-1:]
    # the phone back: its readings carry the night again, and the state says the phone path is up
    last = states[-1]
    by = dict((s["name"], s["state"]) for s in last["sources"])
    assert by == {"broadcast": "silent", "phone": "up"} and last["sensor"] == "ok", last
    assert last["sensor_path"] == "lan" and last["last_sgv"] == 121
    assert phone[-1] == "up" and phone.index("down") < len(phone) - 1


def test_wrong_phone_secret_is_a_fault_that_names_the_phone(tmp_path, mosquitto, gateway):
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"sources": [{"name": "phone", "secret": "not-the-secret"}]}))
    rows = [(m, 120) for m in range(0, 20, 5)]
    rc, evs, err, got, states = _run(tmp_path, gateway, mosquitto, rows, "--sensor", "broadcast",
                                     "--source", "phone", "--phone-secret", "Abc", "--secrets", str(secrets))
    assert rc == 0, err
    fault = first(evs, event="fault", name="auth_failed:phone", active=True)
    assert fault is not None and "phone" in fault["why"], [e for e in evs if e["event"] == "fault"]
    assert "fault" in [n for _, n in patterns(evs)]
    assert "auth_failed:phone" in states[-1]["faults"]
    assert [s for _, s in _source_states(evs, "phone")][-1] == "auth_failed"
    # the radio still carries the night
    assert [r["sgv"] for r in got] == [v for _, v in rows]


def test_right_phone_secret_is_accepted(tmp_path, mosquitto, gateway):
    rows = [(m, 120 - m) for m in range(0, 20, 5)]
    rc, evs, err, got, _ = _run(tmp_path, gateway, mosquitto, rows, "--source", "phone", "--phone-secret", "Abc")
    assert rc == 0, err
    assert [e["mgdl"] for e in evs if e["event"] == "reading"] == [v for _, v in rows]
    assert first(evs, event="fault") is None


def test_nightscout_on_the_lan(tmp_path, mosquitto, gateway):
    rows = [(m, 140 - m) for m in range(0, 40, 5)]
    rows[3] = (15, rows[3][1], "ns_down")
    rows[5] = (25, rows[5][1], "ns_up")
    rc, evs, err, got, states = _run(tmp_path, gateway, mosquitto, rows, "--source", "nightscout",
                                     "--phone-secret", "twelve-chars-at-least")
    assert rc == 0, err
    # the readings measured while it was down come back (backfilled), each once and in order
    assert [e["mgdl"] for e in evs if e["event"] == "reading"] == [v for _, v, *_ in rows]
    assert [r["sgv"] for r in got] == [v for _, v, *_ in rows]
    ns = [s for _, s in _source_states(evs, "nightscout")]
    assert "down" in ns and ns[-1] == "up", ns
    assert states[-1]["sources"][0]["path"] == "lan" and states[-1]["sources"][0]["name"] == "nightscout"
