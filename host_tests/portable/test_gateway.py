# The gateway core as the shell sees it: inputs in, effects out, with time passed in.
from firmware.core import config, ticks
from firmware.core.gateway import Gateway
from firmware.core.reading import Reading

_MIN = 60000


def _gw(now=0):
    gw = Gateway(config.build({"sensor": {"allow_plain": True}}), now)
    gw.drain()
    return gw


def _kinds(effects, kind):
    return [e for e in effects if e[0] == kind]


def _events(effects, name):
    return [e[1] for e in effects if e[0] == "event" and e[1]["event"] == name]


def _publishes(effects, suffix):
    return [e for e in effects if e[0] == "publish" and e[1] == suffix]


def test_a_reading_is_logged_published_and_updates_state():
    gw = _gw()
    r = Reading(7, 1, 120, -0.4)
    r.wall_ms = 1700000000000
    assert gw.on_reading(1000, r)
    out = gw.drain()
    ev = _events(out, "reading")[0]
    assert (ev["seq"], ev["mgdl"], ev["trend"], ev["source"]) == (1, 120, -0.4, "broadcast")
    topic, payload, qos, retain = _publishes(out, "reading")[0][1:]
    assert qos == 1 and not retain
    assert payload["sgv"] == 120 and payload["direction"] == "Flat" and payload["date"] == 1700000000000
    assert payload["device"] == "nightstand/bedroom" and payload["replayed"] is False
    state = _publishes(out, "state")[-1]
    assert state[3:] == (1, True) and state[2]["last_sgv"] == 120 and state[2]["sensor"] == "ok"


def test_no_date_before_the_clock_is_known():
    gw = _gw()
    gw.on_reading(1000, Reading(7, 1, 120))
    payload = _publishes(gw.drain(), "reading")[0][2]
    assert "date" not in payload


def test_duplicate_or_older_seq_is_rejected_and_changes_nothing():
    gw = _gw()
    gw.on_reading(1000, Reading(7, 5, 120))
    gw.drain()
    assert not gw.on_reading(2000, Reading(7, 5, 50))
    out = gw.drain()
    assert _events(out, "reject")[0]["reason"] == "duplicate"
    assert not _publishes(out, "reading") and gw.pattern != "urgent_low"


def test_a_low_reading_changes_the_pattern_once():
    gw = _gw()
    gw.tick(5000)
    gw.drain()
    gw.on_reading(6000, Reading(7, 1, 50))
    out = gw.drain()
    pats = _kinds(out, "pattern")
    assert pats == [("pattern", "urgent_low", "on")]
    assert _events(out, "pattern")[0] == {"event": "pattern", "name": "urgent_low", "sound": True,
                                          "mode": "on"}
    gw.tick(7000)
    assert not _kinds(gw.drain(), "pattern")


def test_sensor_silence_after_eleven_minutes_even_across_the_ticks_wrap():
    start = ticks.PERIOD - 3 * _MIN  # the wrap falls inside the gap
    gw = _gw(start)
    gw.on_reading(start, Reading(7, 1, 120))
    for minute in (5, 10):
        now = ticks.add(start, minute * _MIN)
        gw.on_cloud_ok(now)
        gw.tick(now)
    assert gw.pattern == "ok"  # one missed reading (minute 5) is not silence
    gw.drain()
    now = ticks.add(start, 11 * _MIN + 1000)
    gw.on_cloud_ok(now)
    gw.tick(now)
    out = gw.drain()
    assert _events(out, "link") == [{"event": "link", "name": "sensor", "up": False}]
    assert gw.pattern == "sensor_silent" and gw.sound != "off"
    assert _publishes(out, "state")[-1][2]["sensor"] == "silent"


def test_a_glucose_alarm_outranks_cloud_silence():
    gw = _gw()
    gw.tick(61000)  # no round trip since boot: cloud silent
    assert gw.pattern == "cloud_silent"
    gw.on_reading(62000, Reading(7, 1, 50))
    assert gw.pattern == "urgent_low"


def test_a_fault_shows_only_when_nothing_outranks_it_and_clears():
    gw = _gw()
    gw.on_cloud_ok(2000)
    gw.tick(2000)
    gw.set_fault(2000, "config", "config key alarms.low: must be a number")
    assert gw.pattern == "fault"
    gw.set_fault(3000, "config", None)
    assert gw.pattern == "ok"
