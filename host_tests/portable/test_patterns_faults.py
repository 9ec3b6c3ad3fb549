# Gateway faults: low heap, unsynchronised clock, a crashed task: visible (pattern, event, retained
# state), below silence in priority, and quiet when nothing changes.
from firmware.core import config, ticks
from firmware.core.faults import ClockWatch, HeapWatch
from firmware.core.gateway import Gateway
from firmware.core.reading import Reading

MIN = 60000
NEAR_WRAP = ticks.PERIOD - 2 * MIN


def _gw(now, **silence):
    cfg = config.defaults()
    cfg["silence"] = dict(cfg["silence"], **silence)
    gw = Gateway(cfg, now)
    gw.booting(now, 0)
    gw.drain()
    return gw


def _kinds(out, kind):
    return [e for e in out if e[0] == kind]


def _events(out, name):
    return [e[1] for e in out if e[0] == "event" and e[1]["event"] == name]


def test_heap_fault_with_hysteresis():
    h = HeapWatch()
    assert h.judge(50000) is None
    assert h.judge(None) is None  # a board that cannot say changes nothing
    why = h.judge(7000)
    assert why and "heap" in why
    assert h.judge(10000) == why  # not yet back above the upper line: no flicker
    assert h.judge(None) == why
    assert h.judge(13000) is None


def test_clock_fault_after_five_minutes_of_wifi_without_wall_time_across_the_wrap():
    c = ClockWatch()
    t = NEAR_WRAP
    assert c.judge(t, False, False) is None  # no Wi-Fi: nothing to sync from, not a clock fault
    for s in range(0, 299):
        assert c.judge(ticks.add(t, s * 1000), True, False) is None
    assert c.judge(ticks.add(t, 300 * 1000), True, False)
    # stays a fault for as long as it lasts, even past the 6-day diff wrap
    assert c.judge(ticks.add(t, 7 * 24 * 3600 * 1000), True, False)
    assert c.judge(ticks.add(t, 7 * 24 * 3600 * 1000 + 1000), True, True) is None  # NTP answered


def test_a_fault_shows_once_with_an_event_and_the_retained_state():
    gw = _gw(1000)
    gw.set_fault(2000, "heap", "under 8192 bytes of heap free")
    out = gw.drain()
    assert ("pattern", "fault", "soft") in out
    ev = _events(out, "fault")
    assert ev == [{"event": "fault", "name": "heap", "why": "under 8192 bytes of heap free", "active": True}]
    st = [e[2] for e in _kinds(out, "publish") if e[1] == "state"]
    assert st and st[-1]["fault"] == "heap" and st[-1]["faults"] == ["heap"] and st[-1]["pattern"] == "fault"
    gw.set_fault(3000, "heap", "under 8192 bytes of heap free")  # judged again: no news
    assert gw.drain() == []
    gw.set_fault(4000, "heap", None)
    out = gw.drain()
    assert ("pattern", "ok", "off") in out
    assert _events(out, "fault")[0]["active"] is False
    assert [e[2] for e in _kinds(out, "publish") if e[1] == "state"][-1]["fault"] is None


def test_silence_outranks_a_fault_and_the_fault_returns_after_it():
    gw = _gw(NEAR_WRAP)
    gw.on_reading(NEAR_WRAP, Reading(1, 1, 120))
    gw.set_fault(NEAR_WRAP, "task:radio", "RuntimeError('x')")
    gw.drain()
    t = ticks.add(NEAR_WRAP, 70000)  # cloud silent after 60 s without a round trip, past the wrap
    gw.tick(t)
    assert gw.pattern == "cloud_silent"
    gw.on_cloud_ok(t)
    gw.tick(ticks.add(t, 1000))
    assert gw.pattern == "fault"


def test_cloud_chirp_config_makes_cloud_silent_chirp_softly():
    for chirp, sound in ((False, "off"), (True, "soft")):
        gw = _gw(0, cloud_chirp=chirp)
        gw.on_reading(0, Reading(1, 1, 120))
        gw.tick(61000)
        assert (gw.pattern, gw.sound) == ("cloud_silent", sound)
