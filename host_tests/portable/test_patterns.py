# Pattern table and arbiter: every pattern can be told apart on a plain LED alone and on the buzzer
# alone, `ok` is never dark, and the priority is the documented one.
from firmware.core import patterns
from firmware.core.patterns import TABLE, buzz_rhythm, choose, led_phase

CONTRACT_NAMES = ("ok", "urgent_low", "low", "urgent_low_soon", "high", "urgent_high", "falling_fast",
                  "rising_fast", "sensor_silent", "cloud_silent", "sensor_and_cloud_silent", "fault",
                  "selftest", "booting")
# Two rhythms whose every phase differs by less than this factor are the same to a parent woken at
# night, who compares what they hear with what they remember of the table on the wall.
TOLERANCE = 1.5

DARK, DIM, BRIGHT = 0, 1, 2


def _level(rgb):
    if rgb is None or not max(rgb):
        return DARK
    return BRIGHT if max(rgb) >= 128 else DIM


def _canonical(phases):
    """[(level, ms)] of one cycle -> the same cycle with neighbouring equal levels merged (also
    across the repeat) and cut to its shortest repeating unit."""
    out = []
    for lv, ms in phases:
        if out and out[-1][0] == lv:
            out[-1][1] += ms
        else:
            out.append([lv, ms])
    if len(out) > 1 and out[0][0] == out[-1][0]:
        out[0][1] += out.pop()[1]
    n = len(out)
    for p in range(1, n + 1):
        if n % p == 0 and all(out[i] == out[i % p] for i in range(n)):
            return [tuple(x) for x in out[:p]]


def _same(a, b):
    if len(a) != len(b):
        return False
    for r in range(len(b)):
        rb = b[r:] + b[:r]
        if all(x[0] == y[0] and max(x[1], y[1]) < TOLERANCE * min(x[1], y[1]) for x, y in zip(a, rb)):
            return True
    return False


def plain_led(name, can_dim=True):
    """What a single plain LED shows of a pattern: levels and durations of one cycle."""
    led = TABLE[name][1]
    n = len(led) * (len(patterns.SWEEP) * 2 if name == "selftest" else 1)
    return _canonical([(_level(led_phase(name, i, can_dim)), led[i % len(led)]) for i in range(n)])


def buzzer(name, mode):
    buzz = buzz_rhythm(name, mode)
    return _canonical([(1 if i % 2 == 0 else 0, d) for i, d in enumerate(buzz)]) if buzz else None


def _pairs(items):
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            yield items[i], items[j]


def test_table_has_exactly_the_contract_names():
    assert sorted(TABLE) == sorted(CONTRACT_NAMES)
    assert all(p in TABLE for p in patterns.ALARM_PATTERNS)


def test_tolerance_check_itself_catches_a_near_copy():
    # the checker must be able to fail: a rhythm 20 % slower, or rotated, is the same rhythm
    a = _canonical([(BRIGHT, 1000), (DIM, 300), (BRIGHT, 200), (DIM, 300)])
    b = _canonical([(BRIGHT, 240), (DIM, 360), (BRIGHT, 1200), (DIM, 360)])
    assert _same(a, b)
    assert _canonical([(BRIGHT, 100), (DARK, 100), (BRIGHT, 100), (DARK, 100)]) == [(BRIGHT, 100), (DARK, 100)]
    assert not _same(a, _canonical([(BRIGHT, 1000), (DIM, 300)]))


def test_no_two_patterns_share_a_plain_led_rhythm():
    names = sorted(TABLE)
    for a, b in _pairs(names):
        assert not _same(plain_led(a), plain_led(b)), (a, b, plain_led(a), plain_led(b))


def test_on_a_switched_plain_led_the_alarms_and_silences_stay_apart():
    # An LED without PWM cannot glow dimly, so dimmed phases go dark: the patterns that matter at
    # night must still differ (booting and selftest only show for seconds after power-on).
    names = [n for n in sorted(TABLE) if n not in ("booting", "selftest")]
    for a, b in _pairs(names):
        assert not _same(plain_led(a, False), plain_led(b, False)), (a, b)


def _playing_modes(name):
    """The sound modes each pattern can actually play in (see choose() and the alarm engine)."""
    if name in patterns.ALARM_PATTERNS or name in ("sensor_silent", "sensor_and_cloud_silent"):
        return ("on", "escalated")
    if name in ("fault", "cloud_silent"):
        return ("soft",)
    return ("on",)


def test_no_two_sounding_patterns_share_a_buzzer_rhythm():
    sounds = []
    for name in sorted(TABLE):
        for mode in _playing_modes(name):
            r = buzzer(name, mode)
            if r is not None:
                sounds.append((name, mode, r))
    assert len(set(s[0] for s in sounds)) >= 11, sounds  # everything but ok and booting can sound
    for a, b in _pairs(sounds):
        if a[0] != b[0]:
            assert not _same(a[2], b[2]), (a, b)


def test_ok_is_never_dark_and_silent():
    for i in range(8):
        rgb = led_phase("ok", i)
        assert rgb is not None and max(rgb) > 0, (i, rgb)
        assert patterns.dim(rgb) != (0, 0, 0)
    assert buzz_rhythm("ok", "on") == ()
    # a switched LED dips dark only briefly: lit at least 90 % of the heartbeat
    cycle = plain_led("ok", False)
    lit = sum(ms for lv, ms in cycle if lv != DARK)
    assert lit * 10 >= sum(ms for _, ms in cycle) * 9, cycle


def test_every_pattern_lights_its_colour_and_the_selftest_sweeps_every_channel():
    for name in TABLE:
        assert _level(led_phase(name, 0)) == BRIGHT, name
    seen = set(led_phase("selftest", i) for i in range(0, 16, 2))
    assert {(255, 0, 0), (0, 255, 0), (0, 0, 255)} <= seen
    assert buzz_rhythm("selftest", "on"), "the self-test must chirp so a family hears the buzzer"


def test_arbiter_priority():
    assert choose("low", "on", False, False, {"x": 1}) == ("low", "on")  # alarms outrank silence
    assert choose("urgent_low", "escalated", True, True) == ("urgent_low", "escalated")
    assert choose(None, None, False, False, {"x": 1}) == ("sensor_and_cloud_silent", "on")
    assert choose(None, None, False, True, {"x": 1}) == ("sensor_silent", "on")
    assert choose(None, None, True, False, {"x": 1}) == ("cloud_silent", "off")
    assert choose(None, None, True, True, {"x": 1}) == ("fault", "soft")
    assert choose(None, None, True, True, {}) == ("ok", "off")
    assert choose(None, None, False, True, None, "escalated") == ("sensor_silent", "escalated")


def test_cloud_silent_chirps_gently_at_most():
    assert choose(None, None, True, False, None, cloud_sound="soft") == ("cloud_silent", "soft")
    assert choose(None, None, True, False, None, cloud_sound="on") == ("cloud_silent", "soft")
    soft = buzz_rhythm("cloud_silent", "soft")
    assert soft and soft[0] <= 100 and sum(soft) >= 60000, soft  # a short chirp, at most once a minute
    assert buzz_rhythm("cloud_silent", "off") == ()


def test_escalated_and_soft_rhythms():
    assert buzz_rhythm("low", "escalated") == (400, 1300)
    assert buzz_rhythm("fault", "soft") == (150, 29700)
    assert buzz_rhythm("low", "off") == ()


def test_cloud_chirp_is_a_valid_config_leaf():
    from firmware.core import config
    default, check = config.SCHEMA["silence"]["cloud_chirp"]
    assert default is False and check(False) is None and check(True) is None
    assert check("yes")
