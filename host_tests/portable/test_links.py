# Link watch: silence judged from injected ticks, the same on both sides of the 2**30 ms wrap.
from firmware.core import ticks
from firmware.core.links import LinkWatch

SILENCE = {"sensor_after_s": 660, "cloud_after_s": 60}
MIN = 60000
# Starts a few minutes before the wrap, so every scenario below crosses it.
NEAR_WRAP = ticks.PERIOD - 3 * MIN


def _run(watch, start, until_ms, step_ms=1000, on_step=None, only=None):
    """Tick every step_ms from start to start+until_ms; returns [(ms since start, name, up)] for the
    link named `only` (all links when None)."""
    seen = []
    t = 0
    while t <= until_ms:
        now = ticks.add(start, t)
        if on_step is not None:
            on_step(watch, t, now)
        for name, up in watch.tick(now):
            if only is None or name == only:
                seen.append((t, name, up))
        t += step_ms
    return seen


def _sensor_gap(start):
    # readings every 5 minutes until minute 20, one missed at 25, then a reading at minute 30, then
    # nothing: silent 11 minutes after minute 30, never after the single missed one.
    def feed(w, t, now):
        if t % (5 * MIN) == 0 and t <= 30 * MIN and t != 25 * MIN:
            w.saw_sensor(now)
    w = LinkWatch(SILENCE, start)
    return _run(w, start, 60 * MIN, on_step=feed, only="sensor")


def test_sensor_silent_eleven_minutes_after_the_last_reading_not_after_one_missed():
    seen = _sensor_gap(1000)
    assert seen == [(41 * MIN, "sensor", False)], seen


def test_sensor_gap_is_the_same_across_the_wrap():
    assert _sensor_gap(NEAR_WRAP) == _sensor_gap(1000)
    assert _sensor_gap(ticks.PERIOD - 31 * MIN) == _sensor_gap(1000)  # wrap exactly at the reading


def test_one_reading_brings_the_sensor_back():
    start = NEAR_WRAP
    w = LinkWatch(SILENCE, start)
    assert _run(w, start, 12 * MIN, only="sensor") == [(11 * MIN, "sensor", False)]
    now = ticks.add(start, 13 * MIN)
    w.saw_sensor(now)
    assert w.tick(now) == [("sensor", True)]


def test_cloud_silent_after_sixty_seconds_without_a_round_trip_across_the_wrap():
    # a PINGRESP every 20 s until 2 minutes in, then the broker goes away
    last = [None]

    def feed(w, t, now):
        if t % 20000 == 0 and t <= 2 * MIN:
            last[0] = now
        if last[0] is not None:
            w.cloud_ok(last[0])  # the shell reports the last rx every tick, even when unchanged

    for start in (0, NEAR_WRAP, ticks.PERIOD - 2 * MIN - 30000):
        last[0] = None
        w = LinkWatch(SILENCE, start)
        seen = _run(w, start, 5 * MIN, on_step=feed, only="cloud")
        assert seen == [(3 * MIN, "cloud", False)], (start, seen)


def test_wifi_down_at_once():
    w = LinkWatch(SILENCE, NEAR_WRAP)
    w.set_wifi(False, NEAR_WRAP)
    assert w.tick(NEAR_WRAP) == [("wifi", False)]
    w.set_wifi(True, NEAR_WRAP)
    assert w.tick(NEAR_WRAP) == [("wifi", True)]


def test_cloud_not_judged_while_not_wanted_then_full_grace():
    start = NEAR_WRAP
    w = LinkWatch(SILENCE, start, want_cloud=False)
    assert _run(w, start, 10 * MIN, only="cloud") == []  # ten minutes with no broker and nobody asked for one
    now = ticks.add(start, 10 * MIN)
    w.set_want_cloud(True, now)
    seen = _run(w, now, 2 * MIN, only="cloud")
    assert seen == [(60000, "cloud", False)], seen


def test_a_week_of_silence_stays_silent_although_the_age_wraps():
    # 2**29 ms is 6.2 days: past that a plain ticks.diff age turns negative and would look fresh.
    start = 5000
    w = LinkWatch(SILENCE, start)
    rx = start  # the last round trip, reported unchanged every judgement
    seen = []
    for hour in range(0, 24 * 14):
        now = ticks.add(start, hour * 3600 * 1000)
        w.cloud_ok(rx)
        seen += w.tick(now)
    assert ("sensor", True) not in seen and ("cloud", True) not in seen, seen
    assert w.up["sensor"] is False and w.up["cloud"] is False
