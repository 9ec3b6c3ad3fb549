# Alarm and night-mode settings (pure): schema additions, defaults, and mmol/L -> mg/dL conversion.
# config.SCHEMA merges ALARM_SCHEMA_EXTRA; the engine reads through effective() so it also works
# with a partial or older config dict.
# mg/dL per mmol/L for glucose: its molar mass is 180.16 g/mol, so 1 mmol/L = 18.016 mg/dL.
MGDL_PER_MMOL = 18.016

# Keys that hold a glucose value or a glucose difference, and so change with alarms.units.
_GLUCOSE_KEYS = ("urgent_low", "low", "high", "urgent_high", "dead_band")
# fast_rate is a glucose change per minute: it converts too.
_RATE_KEYS = ("fast_rate",)

# mg/dL ranges a threshold may take (the same bounds config.SCHEMA uses for mg/dL).
_RANGES = {
    "urgent_low": (40, 80),
    "low": (50, 150),
    "high": (120, 400),
    "urgent_high": (150, 450),
    "dead_band": (0, 40),
    "fast_rate": (1, 10),
}


# The same error as config.ConfigError (key + why): the caller reports the dotted key.
from firmware.core.checks import ConfigError as AlarmConfigError, bool_ as _bool, int_range as _int  # noqa: E402


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


def parse_hhmm(v):
    """Minutes since midnight from "HH:MM", or None when it is not a valid time."""
    if type(v) is not str or len(v) != 5 or v[2] != ":":
        return None
    h, m = v[:2], v[3:]
    if not (h.isdigit() and m.isdigit()):
        return None
    h, m = int(h), int(m)
    if h > 23 or m > 59:
        return None
    return h * 60 + m


# Leaves in config.SCHEMA's (default, checker) format. Thresholds replace the mg/dL-only checkers.
ALARM_SCHEMA_EXTRA = {
    "alarms": {
        "units": ("mgdl", _units),
        "urgent_low": (55, _glucose("urgent_low")),
        "low": (70, _glucose("low")),
        "high": (250, _glucose("high")),
        "urgent_high": (300, _glucose("urgent_high")),
        "dead_band": (10, _glucose("dead_band")),
        # Persistence: raise when `need` of the last `of` readings are past the threshold.
        "low_need": (1, _int(1, 6)),
        "low_of": (1, _int(1, 6)),
        "high_need": (2, _int(1, 6)),      # 2 of 3: one noisy reading never raises a high
        "high_of": (3, _int(1, 6)),
        # urgent_low_soon: predicted to reach urgent_low within this many minutes (0 = off).
        "soon_min": (20, _int(0, 60)),
        "falling_fast": (False, _bool),
        "rising_fast": (False, _bool),
        "fast_rate": (3, _glucose("fast_rate")),     # mg/dL per minute (or mmol/L per minute)
        "fast_readings": (3, _int(3, 6)),
        "snooze_low_min": (15, _int(5, 120)),
        "snooze_high_min": (60, _int(5, 240)),
        "urgent_recheck_min": (30, _int(5, 60)),     # re-raise urgent low this long after an ack
        "escalate_s": (300, _int(60, 1800)),
        # The last alarm of a side ends only after the recovery held this long (0 = at the first
        # reading past the dead-band). 15: on simulated patients, 10 still let 2 of 22 hypo episodes
        # raise twice, 15 one (a sensor reading 90 for 25 min while true BG stayed 60); see README.
        "rearm_min": (15, _int(0, 60)),
    },
    "night": {
        "enabled": (False, _bool),
        "start": ("21:00", _hhmm),
        "end": ("07:00", _hhmm),
        "led_percent": (10, _int(1, 100)),
    },
}


def _leaf_defaults(section):
    out = {}
    for k, spec in ALARM_SCHEMA_EXTRA[section].items():
        out[k] = spec[0]
    return out


def effective(section, cfg):
    """Defaults for `section` ("alarms" or "night") overlaid with the keys cfg has."""
    out = _leaf_defaults(section)
    if cfg:
        for k in cfg:
            out[k] = cfg[k]
    return out


def _in_mmol(k, v, mmol_units):
    """Whether value v of key k is in mmol/L. The mg/dL and mmol/L ranges of a threshold do not
    overlap (40..450 against 2.2..25), so a value is read in the only unit it makes sense in;
    alarms.units decides the overlap (small dead-bands and rates). This keeps the mg/dL
    defaults right when a family sets units to mmol and only some thresholds."""
    lo, hi = _RANGES[k]
    in_mg = lo <= v <= hi
    in_mmol = lo / MGDL_PER_MMOL <= v <= hi / MGDL_PER_MMOL
    return in_mmol and (mmol_units or not in_mg)


def to_mgdl(alarms):
    """A copy of an alarms dict with every glucose value in mg/dL (thresholds rounded to whole
    mg/dL, as readings are whole mg/dL). units stays: it also says how the why text is shown."""
    out = dict(alarms)
    mmol = alarms.get("units", "mgdl") == "mmol"
    for k in _GLUCOSE_KEYS:
        if k in out and type(out[k]) in (int, float) and _in_mmol(k, out[k], mmol):
            out[k] = int(out[k] * MGDL_PER_MMOL + 0.5)
    for k in _RATE_KEYS:
        if k in out and type(out[k]) in (int, float) and _in_mmol(k, out[k], mmol):
            out[k] = out[k] * MGDL_PER_MMOL
    return out


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
