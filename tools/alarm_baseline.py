# Baseline for tools/bench_alarms.py: Nightscout's documented "simple alarms", reading by reading.
# Each reading decides on its own (no hysteresis, no persistence, no prediction):
#   sgv < BG_LOW (55) urgent low, < BG_TARGET_BOTTOM (80) low,
#   sgv > BG_HIGH (260) urgent high, > BG_TARGET_TOP (180) high.
# Nightscout re-arms as soon as a reading is back in range, so a value jittering around a
# threshold alarms again and again; that is what the benchmark measures against.
# Runs under CPython and the MicroPython unix port (no imports).

BG_LOW = 55
BG_TARGET_BOTTOM = 80
BG_TARGET_TOP = 180
BG_HIGH = 260


def level_for(sgv):
    if sgv < BG_LOW:
        return "urgent_low"
    if sgv < BG_TARGET_BOTTOM:
        return "low"
    if sgv > BG_HIGH:
        return "urgent_high"
    if sgv > BG_TARGET_TOP:
        return "high"
    return None


class NightscoutSimple:
    """Same event shape as firmware.core.alarms.AlarmEngine for the bench: on_reading returns
    alarm event dicts when the level a reading decides differs from the previous one."""

    def __init__(self):
        self.level = None

    def on_reading(self, now_ms, reading):
        if reading.mgdl is None:
            return []
        new = level_for(reading.mgdl)
        out = []
        if new != self.level:
            if self.level is not None:
                out.append({"event": "alarm", "level": self.level, "state": "cleared",
                            "why": "reading %d" % reading.mgdl})
            if new is not None:
                out.append({"event": "alarm", "level": new, "state": "raised",
                            "why": "reading %d" % reading.mgdl})
            self.level = new
        return out

    def tick(self, now_ms, local_minute=None):
        return []

    def stale(self, now_ms):
        return []
