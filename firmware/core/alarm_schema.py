# Validation of the alarms.* and night.* config keys (pure): each key's checker, and the rules that span
# keys. Only the config loader needs it; the app drops it with the loader once the config is loaded, so
# the engine keeps just alarm_config.py (defaults and unit conversion).
from firmware.core.alarm_config import DEFAULTS, MGDL_PER_MMOL, _RANGES, effective, parse_hhmm, to_mgdl
# The same error as config.ConfigError (key + why): the caller reports the dotted key.
from firmware.core.checks import ConfigError as AlarmConfigError, bool_ as _bool, int_range as _int


def _glucose(name):
    # Accepts the mg/dL range or its mmol/L equivalent; check() decides which one applies.
    lo, hi = _RANGES[name]

    def check(v):
        if type(v) not in (int, float):
            return "must be a number"
        if lo <= v <= hi or lo / MGDL_PER_MMOL <= v <= hi / MGDL_PER_MMOL:
            return None
        return "must be between %s and %s mg/dL (or the same in mmol/L)" % (lo, hi)
    return check


def _units(v):
    if v not in ("mgdl", "mmol"):
        return "must be one of mgdl, mmol"


def _hhmm(v):
    if parse_hhmm(v) is None:
        return "must be a time \"HH:MM\" (24 h)"


_CHECKERS = {
    "alarms": {
        "units": _units,
        "urgent_low": _glucose("urgent_low"),
        "low": _glucose("low"),
        "high": _glucose("high"),
        "urgent_high": _glucose("urgent_high"),
        "dead_band": _glucose("dead_band"),
        "low_need": _int(1, 6),
        "low_of": _int(1, 6),
        "high_need": _int(1, 6),
        "high_of": _int(1, 6),
        "soon_min": _int(0, 60),
        "falling_fast": _bool,
        "rising_fast": _bool,
        "fast_rate": _glucose("fast_rate"),
        "fast_readings": _int(3, 6),
        "snooze_low_min": _int(5, 120),
        "snooze_high_min": _int(5, 240),
        "urgent_recheck_min": _int(5, 60),
        "escalate_s": _int(60, 1800),
        "rearm_min": _int(0, 60),
    },
    "night": {
        "enabled": _bool,
        "start": _hhmm,
        "end": _hhmm,
        "led_percent": _int(1, 100),
        "utc_offset_min": _int(-720, 840),
    },
}

# The alarms and night sections of the config, in the schema idiom of checks.py ((default, checker)
# leaves); config.py puts them in its SCHEMA. A key with a default and no checker (or the other way
# round) fails here, at the first config load, and in the tests.
SCHEMA = {}
for _section in DEFAULTS:
    SCHEMA[_section] = {}
    for _k in DEFAULTS[_section]:
        SCHEMA[_section][_k] = (DEFAULTS[_section][_k], _CHECKERS[_section][_k])
    if len(_CHECKERS[_section]) != len(DEFAULTS[_section]):
        raise KeyError("%s: checkers and defaults name different keys" % _section)


def check(alarms):
    """Cross-key checks after unit conversion; raises AlarmConfigError naming the key to fix."""
    a = to_mgdl(effective("alarms", alarms))
    for k in _RANGES:
        lo, hi = _RANGES[k]
        if type(a[k]) not in (int, float) or not lo <= a[k] <= hi:
            return _fail("alarms." + k, "must be between %s and %s mg/dL (%.2f..%.1f mmol/L)" % (
                lo, hi, lo / MGDL_PER_MMOL, hi / MGDL_PER_MMOL))
    if not a["urgent_low"] < a["low"] < a["high"] < a["urgent_high"]:
        return _fail("alarms", "need urgent_low < low < high < urgent_high")
    if a["low_need"] > a["low_of"]:
        return _fail("alarms.low_need", "must not exceed alarms.low_of")
    if a["high_need"] > a["high_of"]:
        return _fail("alarms.high_need", "must not exceed alarms.high_of")


def _fail(key, why):
    raise AlarmConfigError(key, why)
