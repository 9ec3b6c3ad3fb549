# Glucose trend maths for the alarm engine (pure). History: list of (t_ms, mgdl), oldest first.
#
# urgent_low_soon method: an ordinary least-squares line through every reading of the last
# _FIT_WINDOW_MIN minutes, extrapolated from the newest reading's time. Why this holds up:
# - noise: a fit over 4-5 readings averages the sensor's few-mg/dL jitter, where a two-point
#   difference (Nightscout's delta) doubles it and turns one noisy reading into a steep "fall";
# - a missing reading: the window is in minutes, not in readings, so a gap just leaves fewer
#   points; the fit needs only _FIT_MIN_POINTS spanning _FIT_MIN_SPAN_MIN, which one dropped
#   reading at a 5-min cadence still gives (4 of 5), and a 1-min sensor gives many;
# - slope cap: the slope is clipped to _MAX_FALL (faster than physiology) so one wild reading
#   cannot predict an instant crash.
from firmware.core import ticks

from micropython import const

_MS_PER_MIN = 60000.0
_FIT_WINDOW_MIN = const(22)   # 5 readings at the usual 5-min cadence: enough to average noise,
                              # short enough to follow a meal-bolus fall. Not 20: a window on the
                              # 5-min grid made the oldest reading count or not by radio jitter
_FIT_MIN_POINTS = const(3)    # a line through 2 points is just the noisy delta
_FIT_MIN_SPAN_MIN = const(9)  # two 5-min intervals (less 1 min of radio jitter)
_MAX_FALL = -5.0              # mg/dL/min: glucose does not fall faster than this in a person
_RATE_MAX_GAP_MIN = const(16)  # a rate across more than 3 missed 5-min readings is not "sustained"


def _recent(history, window_min):
    """[(minutes before the newest reading (<= 0), mgdl)] within window_min, oldest first."""
    if not history:
        return []
    t_last = history[-1][0]
    out = []
    for t, v in history:
        m = ticks.diff(t, t_last) / _MS_PER_MIN
        if m >= -window_min:
            out.append((m, v))
    return out


def fit(history, window_min=_FIT_WINDOW_MIN):
    """(level, slope): the fitted value at the newest reading's time and mg/dL per minute,
    or None when the window holds too few readings to trust a line."""
    pts = _recent(history, window_min)
    n = len(pts)
    if n < _FIT_MIN_POINTS or pts[-1][0] - pts[0][0] < _FIT_MIN_SPAN_MIN:
        return None
    mt = mv = 0.0
    for m, v in pts:
        mt += m
        mv += v
    mt /= n
    mv /= n
    sxx = sxy = 0.0
    for m, v in pts:
        sxx += (m - mt) * (m - mt)
        sxy += (m - mt) * (v - mv)
    slope = sxy / sxx
    if slope < _MAX_FALL:
        slope = _MAX_FALL
    # The line through the mean point, evaluated at the newest reading (minute 0).
    return mv - slope * mt, slope


def predicted(history, horizon_min):
    """Fitted glucose horizon_min after the newest reading, or None (see fit)."""
    f = fit(history)
    if f is None:
        return None
    return f[0] + f[1] * horizon_min


def minutes_to(history, target):
    """Minutes from the newest reading until the fitted line reaches target, or None when it
    is not heading there (or there is too little data)."""
    f = fit(history)
    if f is None:
        return None
    level, slope = f
    if level <= target:
        return 0
    if slope >= 0:
        return None
    return (target - level) / slope


def rates(history, count):
    """mg/dL/min across each of the last count-1 intervals, oldest first; None when there are
    fewer than count readings or an interval is too long to call the change sustained."""
    if len(history) < count:
        return None
    out = []
    for i in range(len(history) - count + 1, len(history)):
        dt = ticks.diff(history[i][0], history[i - 1][0]) / _MS_PER_MIN
        if dt <= 0 or dt > _RATE_MAX_GAP_MIN:
            return None
        out.append((history[i][1] - history[i - 1][1]) / dt)
    return out
