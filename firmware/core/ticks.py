# Wrap-safe tick arithmetic, the same as MicroPython's time.ticks_diff/ticks_add.
# Core code never compares raw ticks: ESP32 ticks_ms wraps at 2**30 ms (~12.4 days),
# so a gateway that runs two weeks would see time jump backwards without these.
from micropython import const

PERIOD = const(0x40000000)  # 2**30: the ticks_ms period on every MicroPython port
_HALF = const(0x20000000)
_MASK = const(0x3FFFFFFF)


def diff(end, start):
    """Signed ms from start to end, correct across one wrap (|result| < 2**29)."""
    return ((end - start + _HALF) & _MASK) - _HALF


def add(t, delta):
    """t + delta ms, wrapped into the ticks period."""
    return (t + delta) & _MASK


def age_s(now, then):
    """Whole seconds since then, or None when then is None."""
    if then is None:
        return None
    return diff(now, then) // 1000
