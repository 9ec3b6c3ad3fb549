# Alarm engine rules, one scenario each, with synthetic readings and time passed in.
# Runs under pytest and under `micropython host_tests/mp_runner.py test_alarms`.
from firmware.core import ticks
from firmware.core.alarms import AlarmEngine
from firmware.core.reading import Reading

MIN = 60000


class Feed:
    """Plays readings into an engine every `every` minutes, ticking every 30 s in between
    (the gateway ticks every second; 30 s keeps the tests fast and still inside every limit)."""

    def __init__(self, alarms=None, night=None, start=1000):
        self.e = AlarmEngine(alarms if alarms is not None else {}, night)
        self.t = start
        self.seq = 0
        self.minute = None

    def read(self, *values, every=5):
        out = []
        for v in values:
            self.seq += 1
            r = Reading(1, self.seq, v)
            out += self.e.on_reading(self.t, r)
            out += self.wait(every)
        return out

    def wait(self, minutes):
        out = []
        for _ in range(int(minutes * 2)):
            self.t = ticks.add(self.t, 30000)
            out += self.e.tick(self.t, self.minute)
        return out


def states(evs, level=None, state=None):
    return [(e["level"], e["state"]) for e in evs
            if (level is None or e["level"] == level) and (state is None or e["state"] == state)]


def test_low_raises_on_the_first_reading_below_70_and_says_why():
    f = Feed()
    evs = f.read(78, 75, 73, 68, every=1)
    assert states(evs, "low") == [("low", "raised")]
    why = [e["why"] for e in evs if e["level"] == "low"][0]
    assert why == "1 reading below 70: 68"
    assert f.e.state()[0] == "low"


def test_why_lists_the_readings_that_made_a_persistent_low():
    f = Feed({"low_need": 3, "low_of": 3})
    evs = f.read(75, 68, 66)
    assert states(evs, "low") == []
    evs = f.read(63)
    assert [e["why"] for e in evs if e["level"] == "low"] == ["3 readings below 70: 68, 66, 63"]


def test_jitter_around_70_raises_once_and_clears_only_past_the_dead_band():
    f = Feed()
    evs = f.read(74, 69, 72, 68, 71, 69, 73, 70, 78, 67, 79)
    assert states(evs, "low", "raised") == [("low", "raised")]
    assert states(evs, "low", "cleared") == []
    evs = f.read(81, 84, 82)                # past the dead-band, but only for 10 minutes
    assert states(evs, "low") == []
    evs = f.read(83)                        # the recovery has held 15 minutes
    assert states(evs, "low") == [("low", "cleared")]
    assert f.e.state() == (None, "off")
    # Re-armed only now: the next dip is a new episode.
    evs = f.read(69)
    assert states(evs, "low", "raised") == [("low", "raised")]


def test_a_dip_right_after_a_short_recovery_is_the_same_alarm_not_a_second_one():
    f = Feed()
    f.read(75, 68)
    evs = f.read(82, 84, 76, 66)            # 10 min just past 80, then down again
    assert states(evs, "low") == []         # the buzzer never stopped: no second raise
    assert f.e.state() == ("low", "escalated")


def test_a_recovery_well_into_range_clears_at_once():
    f = Feed()
    f.read(75, 68)
    evs = f.read(95)                        # past 70 + 2 dead-bands: the low is over
    assert states(evs, "low") == [("low", "cleared")]
    assert f.e.state() == (None, "off")


def test_rearm_min_0_clears_at_the_first_reading_past_the_dead_band():
    f = Feed({"rearm_min": 0})
    f.read(75, 68)
    evs = f.read(81)
    assert states(evs, "low") == [("low", "cleared")]
    evs = f.read(69)
    assert states(evs, "low", "raised") == [("low", "raised")]


def test_urgent_low_soon_that_levels_off_near_70_hands_on_to_the_low_as_one_alarm():
    f = Feed()
    evs = f.read(110, 101, 92, 84, 79, 78, 78, 79, 78, 78, 77, 74, 68)
    # the fall levelled off at 78 for half an hour: no longer heading for 55, but still within the
    # low's dead-band, so the warning holds until the low takes over; the buzzer never stopped
    assert states(evs, state="raised") == [("urgent_low_soon", "raised"), ("low", "raised")]
    assert states(evs, state="cleared") == []
    assert f.e.state()[1] == "escalated"
    # once the low holds the alarm, a warning the flat values no longer support lets go
    evs = f.read(68, 69, 68, 69)
    assert states(evs) == [("urgent_low_soon", "cleared")]
    assert f.e.state() == ("low", "escalated")


def test_nightscout_style_flapping_does_not_happen_at_the_high_threshold():
    f = Feed()
    evs = f.read(255, 262, 248, 251, 246, 253, 244, 252)
    assert states(evs, "high", "raised") == [("high", "raised")]
    evs = f.read(239, 236, 238)
    assert states(evs, "high") == []        # back under 240 for only 10 minutes
    evs = f.read(235)
    assert states(evs, "high") == [("high", "cleared")]


def test_high_needs_two_of_the_last_three_readings():
    f = Feed()
    evs = f.read(230, 262, 238, 245)
    assert states(evs, "high") == []   # one noisy 262 is not a high
    evs = f.read(256)
    assert states(evs, "high") == []   # last three 238, 245, 256: still only one above 250
    evs = f.read(251)
    assert [e["why"] for e in evs if e["state"] == "raised"] == ["2 readings above 250: 256, 251"]


def test_urgent_low_is_never_delayed_by_persistence():
    f = Feed({"low_need": 3, "low_of": 3})
    evs = f.read(90, 53)
    assert states(evs, "urgent_low", "raised") == [("urgent_low", "raised")]
    why = [e["why"] for e in evs if e["level"] == "urgent_low"][0]
    assert why == "1 reading below 55: 53"
    assert f.e.state()[0] == "urgent_low"


def test_urgent_low_at_exactly_55_raises_and_says_at_or_below():
    f = Feed()
    evs = f.read(60, 55)
    assert [e["why"] for e in evs if e["level"] == "urgent_low"] == ["1 reading at or below 55: 55"]


def test_no_snooze_can_silence_urgent_low():
    f = Feed()
    f.read(62, 52, every=1)
    for source in ("button", "remote"):
        evs = f.e.snooze(f.t, source)
        assert states(evs) == [("urgent_low", "refused")]
        assert f.e.state() == ("urgent_low", "on")
    evs = f.e.ack(f.t, "remote")
    assert states(evs) == [("urgent_low", "refused")]
    assert "remotely" in evs[0]["why"]
    assert f.e.state() == ("urgent_low", "on")


def test_button_press_acknowledges_urgent_low_and_it_raises_again_30_min_later_without_recovery():
    f = Feed()
    f.read(58, 52, every=1)
    evs = f.e.press(f.t)
    assert states(evs) == [("urgent_low", "acked")]
    assert f.e.state() == ("urgent_low", "off")
    evs = f.read(51, 50, 52, 50, 49, every=5)       # 25 min, still urgent
    evs += f.wait(4.5)                               # 29.5 min after the ack
    assert states(evs, state="raised") == []
    evs = f.wait(0.5)                                # 30 min after the ack
    assert states(evs) == [("urgent_low", "raised")]
    assert "still below 55" in evs[0]["why"]
    assert f.e.state() == ("urgent_low", "on")


def test_urgent_low_does_not_raise_again_when_above_55_after_the_ack():
    f = Feed()
    f.read(58, 50, every=1)
    f.e.press(f.t)
    evs = f.read(52, 54, 57, 60, 62, 64, every=5)   # 30 min: recovering, above 55
    evs += f.wait(1)
    assert states(evs, "urgent_low", "raised") == []
    # Still below 70 after the ack period: the low (a different, truthful alarm) sounds.
    assert f.e.state()[0] == "low"


def test_night_mode_never_mutes_urgent_low_but_softens_low():
    night = {"enabled": True, "start": "22:00", "end": "06:30"}
    f = Feed(night=night)
    f.minute = 23 * 60
    f.read(75, 68, every=1)
    assert f.e.state() == ("low", "soft")
    assert f.e.is_night()
    assert f.e.led_percent() == 10           # the default night.led_percent, for the player
    f.read(52, every=1)
    assert f.e.state() == ("urgent_low", "on")
    f.minute = 12 * 60
    f.wait(0.5)
    assert not f.e.is_night()
    assert f.e.led_percent() == 100


def test_night_mode_never_softens_urgent_low_soon():
    f = Feed(night={"enabled": True, "start": "21:00", "end": "07:00"})
    f.minute = 2 * 60
    f.read(120, 110, 100, 90, 80)
    assert f.e.state() == ("urgent_low_soon", "escalated") or f.e.state() == ("urgent_low_soon", "on")
    assert f.e.state()[1] != "soft"


def test_snooze_silences_low_for_15_minutes_then_it_sounds_again_if_still_low():
    f = Feed()
    f.read(72, 66, every=1)
    evs = f.e.press(f.t)
    assert states(evs) == [("low", "snoozed")]
    assert f.e.state() == ("low", "off")
    evs = f.read(65, 66, every=5)
    evs += f.wait(4.5)                      # 14.5 min
    assert states(evs, state="raised") == []
    evs = f.wait(0.5)                       # 15 min
    assert states(evs) == [("low", "raised")]
    assert f.e.state() == ("low", "on")


def test_snoozed_low_that_recovers_and_dips_again_stays_quiet_unless_it_turns_urgent():
    f = Feed()
    f.read(72, 66, every=1)
    f.e.snooze(f.t, "remote")
    evs = f.read(84, 69, every=3)           # recovered past 80, dipped again inside the snooze
    assert [e for e in evs if e["state"] == "raised"] == []  # not yet re-armed: same low, quiet
    assert f.e.state() == ("low", "off")
    evs = f.read(72, every=1)
    f.e.snooze(f.t, "remote")
    f.read(95, every=1)                     # well back in range: re-armed
    evs = f.read(69, every=1)               # dips again inside the snooze: a new raise, quiet
    raised = [e for e in evs if e["state"] == "raised"]
    assert len(raised) == 1 and raised[0].get("quiet") is True
    assert f.e.state() == ("low", "off")
    evs = f.read(54, every=1)               # turns urgent: breaks the snooze
    assert states(evs, "urgent_low") == [("urgent_low", "raised")]
    assert f.e.state() == ("urgent_low", "on")


def test_a_more_severe_level_breaks_a_snooze():
    f = Feed()
    f.read(262, 258, every=5)
    f.e.press(f.t)
    assert f.e.state() == ("high", "off")
    evs = f.read(304, 310, every=1)
    assert states(evs, "urgent_high", "raised") == [("urgent_high", "raised")]
    assert f.e.state() == ("urgent_high", "on")


def test_an_alarm_in_the_other_direction_always_sounds():
    f = Feed()
    f.read(262, 258, every=5)
    f.e.snooze(f.t, "button")               # high snoozed for 60 min
    evs = f.read(150, 90, 68, every=5)      # a fast correction into a low, 15 min later
    assert states(evs, "high", "cleared") == [("high", "cleared")]
    assert states(evs, "low", "raised") == [("low", "raised")]
    assert [e for e in evs if e.get("quiet")] == []
    level, sound = f.e.state()              # the steep fall also predicts urgent low soon
    assert level in ("low", "urgent_low_soon") and sound in ("on", "escalated")


def test_an_unacknowledged_alarm_escalates_after_5_minutes():
    f = Feed()
    f.read(72, every=0)
    evs = f.e.on_reading(f.t, Reading(1, 99, 66))
    assert states(evs) == [("low", "raised")]
    t0 = f.t
    assert f.e.tick(ticks.add(t0, 299000)) == []
    evs = f.e.tick(ticks.add(t0, 300000))
    assert states(evs) == [("low", "escalated")]
    assert f.e.state() == ("low", "escalated")
    assert f.e.tick(ticks.add(t0, 301000)) == []   # once


def test_an_acknowledged_alarm_does_not_escalate():
    f = Feed()
    f.read(66, every=0)
    f.wait(2)
    f.e.press(f.t)
    evs = f.wait(10)
    assert states(evs, state="escalated") == []


def test_stale_data_hands_over_to_sensor_silent_at_least_as_loud():
    f = Feed()
    f.read(75, 66, every=6)                 # low raised, escalated after 5 min
    assert f.e.state() == ("low", "escalated")
    evs = f.e.stale(f.t)
    assert states(evs) == [("low", "cleared")]
    assert evs[0]["handover"] == "sensor_silent" and evs[0]["sound"] == "escalated"
    assert f.e.loudness_before_stale() == "escalated"
    assert f.e.state() == (None, "off")
    assert f.e.stale(f.t) == []             # once
    assert states(f.wait(60), state="raised") == []   # nothing raises from stale data
    evs = f.read(64)                        # fresh data: a new, honest raise
    assert states(evs, "low", "raised") == [("low", "raised")]
    assert f.e.loudness_before_stale() is None


def test_stale_with_no_alarm_reports_no_loudness():
    f = Feed()
    f.read(120, 118)
    assert f.e.stale(f.t) == []
    assert f.e.loudness_before_stale() is None


def test_backfilled_and_empty_readings_never_raise():
    e = AlarmEngine({})
    r = Reading(1, 1, 45, backfilled=True)
    assert e.on_reading(0, r) == []
    assert e.on_reading(1000, Reading(1, 2, None)) == []
    assert e.state() == (None, "off")


def test_press_with_nothing_sounding_does_nothing():
    f = Feed()
    f.read(120)
    assert f.e.press(f.t) == []
    assert f.e.snooze(f.t, "remote") == []
    assert f.e.ack(f.t, "remote") == []


def test_alarms_across_the_ticks_wrap():
    f = Feed(start=ticks.PERIOD - 3 * MIN)
    f.read(60, 52, every=1)                 # urgent low raised 2 min before the wrap
    raised_at = ticks.add(f.t, -MIN)
    assert f.e.state()[0] == "urgent_low"
    evs = f.wait(4)                          # crosses the wrap: escalates 5 min after raise
    assert states(evs) == [("urgent_low", "escalated")]
    assert ticks.diff(f.t, raised_at) == 5 * MIN and f.t < ticks.PERIOD // 2
    f.e.press(f.t)
    evs = f.read(50, 51, 49, 50, 48, 50, every=5)
    assert states(evs, "urgent_low", "raised") == [("urgent_low", "raised")]


def test_a_snooze_that_ends_above_the_threshold_stays_quiet_until_the_next_low_reading():
    f = Feed()
    f.read(72, 66, every=1)
    f.e.press(f.t)                           # snoozed 15 min
    evs = f.read(70, 74, 76, 75, every=5)    # 20 min: recovering but not yet past 80
    assert states(evs, state="raised") == []
    assert f.e.state() == ("low", "off")
    evs = f.read(69, every=1)                # low again: sounds now
    assert states(evs) == [("low", "raised")]
    assert f.e.state() == ("low", "on")


def test_ack_of_a_high_quiets_it_for_the_high_snooze_time():
    f = Feed()
    f.read(262, 258, every=1)
    evs = f.e.ack(f.t, "remote")
    assert states(evs) == [("high", "acked")]
    evs = f.read(265, 270, 262, 268, 266, 264, 262, 260, 258, 262, 266, every=5)   # 55 min
    assert states(evs, state="raised") == []
    evs = f.read(265, every=5)               # 60 min
    assert states(evs) == [("high", "raised")]


def test_one_raise_for_a_noisy_slow_low_episode():
    # A night low as a sensor shows it: noise of a few mg/dL around a slow dip and recovery.
    f = Feed()
    trace = [92, 88, 85, 81, 79, 75, 73, 69, 72, 68, 70, 66, 69, 65, 67, 64, 66, 68, 65, 69,
             71, 68, 72, 70, 74, 71, 76, 79, 77, 82, 85, 88, 87]
    evs = f.read(*trace)
    low_side = ("low", "urgent_low", "urgent_low_soon")
    raised = [e for e in evs if e["state"] == "raised" and e["level"] in low_side]
    assert len(raised) == 1
    assert states(evs, "low", "cleared") == [("low", "cleared")]
    assert f.e.state() == (None, "off")


def test_a_hand_over_inside_one_reading_keeps_sounding_and_the_escalation_clock():
    f = Feed({"falling_fast": True, "soon_min": 0})
    evs = f.read(83, 77, 71, every=2)       # -3/min twice: falling_fast raised at minute 4
    assert states(evs, "falling_fast") == [("falling_fast", "raised")]
    evs = f.read(70, every=0)               # minute 6: fall slows (clears), low raises
    assert states(evs) == [("low", "raised"), ("falling_fast", "cleared")]
    assert f.e.state() == ("low", "on")
    evs = f.wait(2.5)                       # minute 8.5: 4.5 min after the first raise
    assert states(evs) == []
    evs = f.wait(0.5)                       # minute 9: 5 min after the first raise, not after low's
    assert states(evs) == [("low", "escalated")]
