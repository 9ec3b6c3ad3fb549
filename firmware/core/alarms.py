# Glucose alarm engine (pure). Skeleton: simple thresholds with a dead-band.
# Interface used by firmware.core.gateway (keep it when the engine grows):
#   on_reading(now_ms, reading) / tick(now_ms) / press(now_ms) / snooze(now_ms, source)
#   / ack(now_ms, source) / stale(now_ms)  -> list of alarm event dicts
#   state() -> (level or None, sound) with sound in ("off", "on", "escalated")

LEVELS = ("urgent_low", "low", "high", "urgent_high")


def _event(level, state, why):
    return {"event": "alarm", "level": level, "state": state, "why": why}


class AlarmEngine:
    def __init__(self, cfg):
        self.cfg = cfg
        self.level = None
        self.sound = "off"

    def _level_for(self, mgdl):
        c = self.cfg
        if mgdl <= c["urgent_low"]:
            return "urgent_low"
        if mgdl <= c["low"]:
            return "low"
        if mgdl >= c["urgent_high"]:
            return "urgent_high"
        if mgdl >= c["high"]:
            return "high"
        return None

    def _clears(self, mgdl):
        c, band = self.cfg, self.cfg["dead_band"]
        if self.level in ("urgent_low", "low"):
            return mgdl > c[self.level] + band
        return mgdl < c[self.level] - band

    def on_reading(self, now_ms, r):
        if r.mgdl is None or r.backfilled:
            return []
        out = []
        new = self._level_for(r.mgdl)
        if self.level is not None and new != self.level:
            if new is None and not self._clears(r.mgdl):
                return out
            out.append(_event(self.level, "cleared", "%d mg/dL" % r.mgdl))
            self.level, self.sound = None, "off"
        if new is not None and new != self.level:
            self.level, self.sound = new, "on"
            out.append(_event(new, "raised", "reading %d mg/dL" % r.mgdl))
        return out

    def tick(self, now_ms):
        return []

    def press(self, now_ms):
        return self.ack(now_ms, "button")

    def snooze(self, now_ms, source="button"):
        return self.ack(now_ms, source)

    def ack(self, now_ms, source="button"):
        if self.level is None or self.sound == "off":
            return []
        self.sound = "off"
        return [_event(self.level, "acked", "by " + source)]

    def stale(self, now_ms):
        if self.level is None:
            return []
        out = [_event(self.level, "cleared", "reading is stale")]
        self.level, self.sound = None, "off"
        return out

    def state(self):
        return self.level, self.sound
