# urgent_low_soon prediction, falling/rising fast, mmol/L config, schema additions and night
# schedule. Runs under pytest and under `micropython host_tests/mp_runner.py test_alarms_predict`.
from firmware.core import alarm_config, alarm_schema, predict
from firmware.core.alarms import AlarmEngine
from firmware.core.night import Night, soften
from firmware.core.reading import Reading

MIN = 60000


def play(engine, values, every=5, start=0):
    """values: mgdl or None (a missed reading). Returns (all events, state after each reading)."""
    evs, seen = [], []
    t = start
    for i, v in enumerate(values):
        if v is not None:
            evs += engine.on_reading(t, Reading(1, i + 1, v))
        seen.append(engine.state()[0])
        t += every * MIN
    return evs, seen


def raised(evs, level):
    return [e for e in evs if e["level"] == level and e["state"] == "raised"]


def test_urgent_low_soon_raises_on_a_steady_fall_before_the_low():
    e = AlarmEngine({})
    evs, seen = play(e, [130, 121, 110, 101, 92, 83])   # about -2 mg/dL/min
    r = raised(evs, "urgent_low_soon")
    assert len(r) == 1
    assert r[0]["why"].startswith("55 expected in ")
    assert "low" not in seen                             # warned while still above 70


def test_urgent_low_soon_ignores_one_noisy_reading():
    e = AlarmEngine({})
    # Flat around 95 with one reading 25 below: a two-point delta would call that -5 mg/dL/min.
    evs, _ = play(e, [96, 94, 97, 95, 70, 96, 93, 95])
    assert raised(evs, "urgent_low_soon") == []


def test_urgent_low_soon_still_works_with_a_missing_reading():
    e = AlarmEngine({})
    evs, seen = play(e, [130, 121, None, 101, 92, 83])
    assert len(raised(evs, "urgent_low_soon")) == 1
    assert "low" not in seen


def test_urgent_low_soon_clears_when_the_fall_turns():
    e = AlarmEngine({})
    evs, _ = play(e, [130, 121, 110, 101, 92, 83, 80, 82, 86, 91, 97])
    assert len(raised(evs, "urgent_low_soon")) == 1
    assert [x["state"] for x in evs if x["level"] == "urgent_low_soon"][-1] == "cleared"
    assert e.state() == (None, "off")


def test_urgent_low_soon_can_be_turned_off():
    e = AlarmEngine({"soon_min": 0})
    evs, _ = play(e, [130, 121, 110, 101, 92, 83])
    assert raised(evs, "urgent_low_soon") == []


def test_fit_is_time_based_not_reading_based():
    # Readings every minute (a Libre 3) falling 1 mg/dL/min: the slope is per minute.
    h = [(i * MIN, 100 - i) for i in range(15)]
    level, slope = predict.fit(h)
    assert abs(slope + 1.0) < 0.01 and abs(level - 86) < 0.01
    assert abs(predict.minutes_to(h, 55) - 31) < 0.1
    assert predict.fit(h[:2]) is None   # two points are just a noisy delta


def test_fast_alarms_are_off_by_default():
    e = AlarmEngine({})
    evs, _ = play(e, [200, 180, 160, 140])                # -4 mg/dL/min
    assert raised(evs, "falling_fast") == []


def test_falling_fast_needs_the_rate_sustained_over_three_readings():
    e = AlarmEngine({"falling_fast": True, "soon_min": 0})
    evs, _ = play(e, [200, 195, 180])                    # -1, then -3: not sustained
    assert raised(evs, "falling_fast") == []
    evs, _ = play(e, [165], start=15 * MIN)              # -3, -3
    r = raised(evs, "falling_fast")
    assert len(r) == 1 and r[0]["why"] == "falling -3.0/min over 3 readings: 195, 180, 165"
    evs, _ = play(e, [160, 158], start=20 * MIN)         # slowed to -1, -0.4
    assert [x["state"] for x in evs if x["level"] == "falling_fast"] == ["cleared"]


def test_rising_fast_when_enabled():
    e = AlarmEngine({"rising_fast": True})
    evs, _ = play(e, [100, 117, 135, 152])
    assert len(raised(evs, "rising_fast")) == 1
    assert e.state()[0] == "rising_fast"


def test_mmol_config_converts_to_mgdl():
    a = alarm_config.to_mgdl({"units": "mmol", "urgent_low": 3.0, "low": 3.9, "high": 13.9,
                              "urgent_high": 16.7, "dead_band": 0.6, "fast_rate": 0.17})
    assert (a["urgent_low"], a["low"], a["high"], a["urgent_high"], a["dead_band"]) == (
        54, 70, 250, 301, 11)
    assert abs(a["fast_rate"] - 3.06) < 0.01
    same = alarm_config.to_mgdl({"low": 72})
    assert same["low"] == 72
    # units mmol with the mg/dL defaults left in place (a partial config): defaults stay mg/dL.
    mixed = alarm_config.to_mgdl({"units": "mmol", "low": 4.2, "urgent_low": 55, "dead_band": 10})
    assert (mixed["low"], mixed["urgent_low"], mixed["dead_band"]) == (76, 55, 10)
    # A small dead-band is read in the configured unit.
    assert alarm_config.to_mgdl({"units": "mmol", "dead_band": 1})["dead_band"] == 18
    assert alarm_config.to_mgdl({"dead_band": 1})["dead_band"] == 1


def test_mmol_engine_raises_in_mgdl_and_explains_in_mmol():
    e = AlarmEngine({"units": "mmol", "low": 4.0})     # 72 mg/dL; the rest stay at defaults
    evs, _ = play(e, [76, 74, 71])
    r = raised(evs, "low")
    assert len(r) == 1 and r[0]["why"] == "1 reading below 4.0: 3.9"
    assert e.state() == ("low", "on")                 # not urgent: urgent_low stayed 55 mg/dL
    evs, _ = play(e, [60, 54], start=15 * MIN)
    assert [x["why"] for x in raised(evs, "urgent_low")] == ["1 reading below 3.1: 3.0"]


def test_config_check_names_the_key_after_unit_conversion():
    def key(a):
        try:
            alarm_schema.check(a)
        except alarm_schema.AlarmConfigError as err:
            return err.key
        return None
    assert key({"units": "mmol", "urgent_low": 3.0, "low": 3.9, "high": 13.9, "urgent_high": 16.7,
                "dead_band": 0.6, "fast_rate": 0.17}) is None
    assert key({"low": 20}) == "alarms.low"          # neither a mg/dL nor a mmol/L low
    assert key({"units": "mmol", "high": 3.9}) == "alarms.high"   # 70 mg/dL is no high
    assert key({"units": "mmol", "low": 7.0, "high": 6.8}) == "alarms"
    assert key({"low_need": 3, "low_of": 2}) == "alarms.low_need"
    assert key({"low": 60, "urgent_low": 62}) == "alarms"


def test_rearm_min_is_validated_by_the_gateway_config():
    from firmware.core import config
    plain = {"sensor": {"allow_plain": True}}
    assert config.build(plain, {"alarms": {"rearm_min": 0}})["alarms"]["rearm_min"] == 0
    for bad in (61, -1, 7.5, "15"):
        try:
            config.build(plain, {"alarms": {"rearm_min": bad}})
        except config.ConfigError as err:
            assert err.key == "alarms.rearm_min"
        else:
            assert False, bad


def test_schema_extra_defaults_pass_their_own_checkers():
    for section in ("alarms", "night"):
        assert sorted(alarm_schema.SCHEMA[section]) == sorted(alarm_config.DEFAULTS[section])
        for k, spec in alarm_schema.SCHEMA[section].items():
            assert spec[1](spec[0]) is None, section + "." + k
    c = alarm_schema.SCHEMA
    assert c["alarms"]["units"][1]("mg") is not None
    assert c["alarms"]["low"][1](3.9) is None and c["alarms"]["low"][1](20) is not None
    assert c["night"]["start"][1]("25:00") is not None
    assert c["alarms"]["high_need"][1](2.5) is not None


def test_night_schedule_across_midnight():
    n = Night({"enabled": True, "start": "21:30", "end": "06:45"})
    assert n.active(21 * 60 + 30) and n.active(0) and n.active(6 * 60 + 44)
    assert not n.active(6 * 60 + 45) and not n.active(12 * 60)
    assert not n.active(None)                 # wall time unknown: never night
    assert n.led_percent_at(23 * 60) == 10 and n.led_percent_at(9 * 60) == 100
    assert not Night({}).active(23 * 60)      # off unless the family turns it on
    day = Night({"enabled": True, "start": "13:00", "end": "15:00"})
    assert day.active(14 * 60) and not day.active(16 * 60)


def test_night_softens_only_non_urgent_sounds():
    assert soften("low", "on", True) == "soft"
    assert soften("high", "on", True) == "soft"
    assert soften("low", "on", False) == "on"
    for name in ("urgent_low", "urgent_low_soon", "sensor_silent", "sensor_and_cloud_silent"):
        assert soften(name, "on", True) == "on"
    assert soften("low", "escalated", True) == "escalated"


def test_night_spares_patterns_that_exist_and_softens_every_other_alarm_level():
    from firmware.core.alarms import LEVELS
    from firmware.core.night import NEVER_SOFTENED, dim
    from firmware.core.patterns import TABLE
    for name in NEVER_SOFTENED:
        assert name in TABLE, name           # a typo here would let night dim an urgent pattern
        assert dim((255, 0, 0), name, 10) == (255, 0, 0)
    soft = [level for level in LEVELS if soften(level, "on", True) == "soft"]
    assert soft == ["low", "high", "urgent_high", "falling_fast", "rising_fast"]
    assert dim((0, 160, 0), "ok", 10) == (0, 16, 0)
