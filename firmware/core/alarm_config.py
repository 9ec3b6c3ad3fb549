# Alarm and night-mode settings (pure): defaults and mmol/L -> mg/dL conversion, what the engine needs
# while it runs. It reads through effective(), so a partial or older config dict also works.
# Validation (checkers, cross-key rules) lives in alarm_schema.py, loaded only while the config loads
# (about 9 KiB of the 64-bit unix port's heap that a running gateway no longer keeps).
# mg/dL per mmol/L for glucose: its molar mass is 180.16 g/mol, so 1 mmol/L = 18.016 mg/dL.
MGDL_PER_MMOL = 18.016

# Keys that hold a glucose value or a glucose difference, and so change with alarms.units.
_GLUCOSE_KEYS = ("urgent_low", "low", "high", "urgent_high", "dead_band")
# fast_rate is a glucose change per minute: it converts too.
_RATE_KEYS = ("fast_rate",)

# mg/dL ranges a threshold may take (the same bounds alarm_schema.py checks for mg/dL).
_RANGES = {
    "urgent_low": (40, 80),
    "low": (50, 150),
    "high": (120, 400),
    "urgent_high": (150, 450),
    "dead_band": (0, 40),
    "fast_rate": (1, 10),
}


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


# Defaults of every alarms.* and night.* key (alarm_schema.py pairs each with its checker).
DEFAULTS = {
    "alarms": {
        "units": "mgdl",
        "urgent_low": 55,
        "low": 70,
        "high": 250,
        "urgent_high": 300,
        "dead_band": 10,
        # Persistence: raise when `need` of the last `of` readings are past the threshold.
        "low_need": 1,
        "low_of": 1,
        "high_need": 2,      # 2 of 3: one noisy reading never raises a high
        "high_of": 3,
        # urgent_low_soon: predicted to reach urgent_low within this many minutes (0 = off).
        "soon_min": 20,
        "falling_fast": False,
        "rising_fast": False,
        "fast_rate": 3,      # mg/dL per minute (or mmol/L per minute)
        "fast_readings": 3,
        "snooze_low_min": 15,
        "snooze_high_min": 60,
        "urgent_recheck_min": 30,     # re-raise urgent low this long after an ack
        "escalate_s": 300,
        # The last alarm of a side ends only after the recovery held this long (0 = at the first
        # reading past the dead-band). 15: on simulated patients, 10 still let 2 of 22 hypo episodes
        # raise twice, 15 one (a sensor reading 90 for 25 min while true BG stayed 60); docs/alarms.md.
        "rearm_min": 15,
    },
    "night": {
        "enabled": False,
        "start": "21:00",
        "end": "07:00",
        "led_percent": 10,
        # Night mode needs local time: the board's NTP clock is UTC, so the family gives their offset.
        "utc_offset_min": 0,
    },
}


def effective(section, cfg):
    """Defaults for `section` ("alarms" or "night") overlaid with the keys cfg has."""
    out = dict(DEFAULTS[section])
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
