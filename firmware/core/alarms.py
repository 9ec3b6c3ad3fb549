# Glucose alarm engine (pure): levels with hysteresis and persistence, urgent-low rules,
# prediction, rate alarms, snooze/ack, escalation, stale-data handover and night softening.
# Time comes in as ticks (now_ms) and is compared only through ticks.diff. The rules in words are in
# docs/alarms.md; every rule there has a test in host_tests/portable/test_alarms*.py.
#
# Model: each level is a latch. It sets when its raise condition holds on a fresh reading and
# resets only past threshold +/- dead-band, so jitter inside the band cannot raise it twice. The
# last latch of a side resets only once that has held rearm_min (or the value is 2 bands back in
# range), so a short recovery followed by a dip stays one alarm.
# Levels sit on two sides (low, high), least severe first. Each side has one buzzer state: the
# level sounding, since when (escalation), and a quiet record left by a snooze or an ack.
from firmware.core import ticks, predict, alarm_config
from firmware.core.night import Night, soften
from firmware.core.patterns import ALARM_PATTERNS

from micropython import const

_MIN_MS = const(60000)
_HIST_MS = const(1800000)  # 30 min: the 20-min fit window plus persistence across a missed reading
_HIST_MAX = const(36)      # 30 min of a 1-min sensor (Libre 3) plus slack; 36 small tuples
_FAST_BAND = 1.0           # mg/dL/min: a rate alarm clears only below rate - 1 (rate dead-band)

LEVELS = ("urgent_low", "low", "urgent_low_soon", "high", "urgent_high",
          "falling_fast", "rising_fast")
_LOW_SIDE = ("falling_fast", "low", "urgent_low_soon", "urgent_low")  # least severe first
_HIGH_SIDE = ("rising_fast", "high", "urgent_high")
_UL = const(3)             # index of urgent_low in _LOW_SIDE
# Judgements for a level that is off in the config, or cannot be judged on this reading.
_NEVER = (False, False, True, "", "", "")
_KEEP = (False, False, False, "", "", "")


def _event(level, state, why):
    return {"event": "alarm", "level": level, "state": state, "why": why}


class _Side:
    def __init__(self, levels):
        self.levels = levels
        self.latched = [False] * len(levels)
        self.calm = [None] * len(levels)  # ticks since which a latched level's clear condition holds
        self.sound = "off"       # "off" | "on" | "escalated", before night softening
        self.sounding = -1       # index of the level the buzzer is sounding for
        self.since = 0           # ticks when it started sounding (escalation clock)
        self.quiet_until = None  # ticks until which a snooze/ack keeps levels <= quiet_rank quiet
        self.quiet_rank = -1
        self.quiet_urgent = False  # the quiet is an urgent-low acknowledgement

    def top(self):
        for i in range(len(self.levels) - 1, -1, -1):
            if self.latched[i]:
                return i
        return -1

    def quiet(self, now):
        return self.quiet_until is not None and ticks.diff(self.quiet_until, now) > 0

    def silence(self):
        self.sound = "off"
        self.sounding = -1


class AlarmEngine:
    def __init__(self, alarms_cfg, night_cfg=None):
        raw = alarm_config.effective("alarms", alarms_cfg)
        self._mmol = raw["units"] == "mmol"
        self.cfg = alarm_config.to_mgdl(raw)
        self.night = Night(night_cfg)
        self._is_night = False
        self._hist = []          # [(t_ms, mgdl)] fresh readings, oldest first
        self._met = {}           # level -> its threshold is met by the newest reading
        self._still = {}         # level -> "below 70: 66", said when it sounds again after quiet
        self._sides = (_Side(_LOW_SIDE), _Side(_HIGH_SIDE))
        self._stale = False
        self._handover = None    # loudness of the alarm that stale() handed over, or None

    # ---------- formatting ----------
    def _fmt(self, v):
        if self._mmol:
            return "%.1f" % (v / alarm_config.MGDL_PER_MMOL)
        return "%d" % round(v)

    def _list(self, vals):
        return ", ".join([self._fmt(v) for v in vals])

    # ---------- evaluation of one fresh reading ----------
    def _judge(self, v):
        """level -> (raise, met, clear, why raised, why cleared, what "still" means) for the
        newest reading v. met: v itself is past the threshold (used to sound again after a
        snooze/ack); clear: past threshold +/- dead-band."""
        c = self.cfg
        band = c["dead_band"]
        ul, lo, hi, uh = c["urgent_low"], c["low"], c["high"], c["urgent_high"]
        f = self._fmt
        out = {}
        for level, t, need, of in (("urgent_low", ul, 1, 1),
                                   ("low", lo, c["low_need"], c["low_of"])):
            hits = [x for _, x in self._hist[-of:] if x <= t]
            out[level] = (len(hits) >= need and v <= t, v <= t, v > t + band,
                          self._past_why(hits, "below", t),
                          "back above %s: %s" % (f(t + band), f(v)), "below %s: %s" % (f(t), f(v)))
        # urgent_high shares high's persistence: one noisy 300 must not wake the house.
        for level, t in (("high", hi), ("urgent_high", uh)):
            hits = [x for _, x in self._hist[-c["high_of"]:] if x >= t]
            out[level] = (len(hits) >= c["high_need"] and v >= t, v >= t, v < t - band,
                          self._past_why(hits, "above", t),
                          "back below %s: %s" % (f(t - band), f(v)), "above %s: %s" % (f(t), f(v)))
        out["urgent_low_soon"] = self._judge_soon(v)
        out["falling_fast"] = self._judge_fast(-1, c["falling_fast"])
        out["rising_fast"] = self._judge_fast(1, c["rising_fast"])
        return out

    def _past_why(self, vals, word, t):
        n = len(vals)
        if word == "below":
            strict = all([x < t for x in vals])
        else:
            strict = all([x > t for x in vals])
        if not strict:
            word = "at or " + word
        return "%d reading%s %s %s: %s" % (n, "" if n == 1 else "s", word, self._fmt(t),
                                          self._list(vals))

    def _judge_soon(self, v):
        c = self.cfg
        ul, horizon = c["urgent_low"], c["soon_min"]
        if not horizon:
            return _NEVER
        f = predict.fit(self._hist)
        if f is None:  # too few readings in the window: keep the latch as it is (no flapping on a gap)
            return _KEEP
        level, slope = f
        p = level + slope * horizon
        # Falling, not yet urgent (urgent_low itself covers that), and the fitted line reaches
        # urgent_low within the horizon.
        hit = slope < 0 and v > ul and p <= ul
        mins = (ul - level) / slope if slope < 0 else 0
        if mins < 0:
            mins = 0
        last = [x for _, x in self._hist[-3:]]
        why = "%s expected in %d min: %s (%s/min)" % (
            self._fmt(ul), int(mins + 0.5), self._list(last), self._fmt_rate(slope))
        # Until a low has taken over, clears only once the value is also out of the low's dead-band:
        # a fall that levels off at 75 is not over, and letting go there made the low raise as a
        # second alarm minutes later. (_LOW_SIDE[1] is low.)
        clear = p > ul + c["dead_band"] and (v > c["low"] + c["dead_band"] or self._sides[0].latched[1])
        return (hit, hit, clear, why,
                "no longer heading for %s: %s" % (self._fmt(ul), self._fmt(v)),
                "heading for %s: %s" % (self._fmt(ul), self._fmt(v)))

    def _fmt_rate(self, r):
        if self._mmol:
            return "%+.2f" % (r / alarm_config.MGDL_PER_MMOL)
        return "%+.1f" % r

    def _judge_fast(self, sign, enabled):
        c = self.cfg
        if not enabled:
            return _NEVER
        rs = predict.rates(self._hist, c["fast_readings"])
        if rs is None:  # a long gap: not enough to judge either way
            return _KEEP
        rate = c["fast_rate"]
        hit = all([sign * r >= rate for r in rs])
        clear = sign * rs[-1] < rate - _FAST_BAND
        vals = [x for _, x in self._hist[-c["fast_readings"]:]]
        word = "rising" if sign > 0 else "falling"
        now = "%s %s/min" % (word, self._fmt_rate(rs[-1]))
        why = "%s %s/min over %d readings: %s" % (
            word, self._fmt_rate(sum(rs) / len(rs)), len(vals), self._list(vals))
        return (hit, hit, clear, why, "no longer %s fast: %s" % (word, now), "%s fast: %s" % (word, now))

    # ---------- buzzer logic per side ----------
    def _sound_rule(self, now, side, newly, out):
        """Start (or move up) the buzzer for the most severe latched level whose threshold the
        newest reading meets, unless a snooze/ack covers it. Appends the events."""
        k = -1
        for i in range(len(side.levels) - 1, -1, -1):
            if side.latched[i] and self._met.get(side.levels[i]):
                k = i
                break
        if side.sound != "off" and side.sounding >= 0 and not side.latched[side.sounding]:
            side.sounding = side.top()  # the sounding level cleared: the buzzer carries on for the rest
        if k < 0 or (side.sound != "off" and k <= side.sounding):
            return
        level = side.levels[k]
        if side.quiet(now) and k <= side.quiet_rank:
            return
        side.quiet_until = None  # a more severe level breaks a snooze; an expired one is gone
        if side.sound == "off":
            side.sound, side.since = "on", now
        side.sounding = k
        if level not in newly:
            out.append(_event(level, "raised", "still " + self._still.get(level, "active")))

    def on_reading(self, now_ms, reading):
        v = reading.mgdl
        if v is None or reading.backfilled:
            return []  # no value, or an old one recovered after a gap: never a new alarm
        self._stale = False
        self._handover = None
        h = self._hist
        h.append((now_ms, v))
        while len(h) > _HIST_MAX or ticks.diff(now_ms, h[0][0]) > _HIST_MS:
            h.pop(0)
        judged = self._judge(v)
        c = self.cfg
        rearm = c["rearm_min"] * _MIN_MS - _MIN_MS  # less 1 min of radio jitter
        b2 = 2 * c["dead_band"]
        out = []
        for side in self._sides:
            # Well back in range (two dead-bands past low / high): no need to wait for the recovery.
            far = v >= c["low"] + b2 if side.levels is _LOW_SIDE else v <= c["high"] - b2
            newly = []
            # Raises before clears: a hand-over inside one reading (urgent_low_soon clearing as
            # low raises) keeps the buzzer and its escalation clock going; no level can both
            # raise and clear on one reading (past threshold vs past threshold + dead-band).
            for i in range(len(side.levels)):
                level = side.levels[i]
                j = judged[level]
                self._met[level] = j[1]
                self._still[level] = j[5]
                if not side.latched[i] and j[0]:
                    side.latched[i] = True
                    side.calm[i] = None
                    newly.append(level)
                    ev = _event(level, "raised", j[3])
                    if side.quiet(now_ms) and i <= side.quiet_rank:
                        ev["quiet"] = True  # a snoozed alarm that dipped again stays quiet
                    out.append(ev)
            # Most severe first, so the level left waiting for a confirmed recovery is the mildest.
            for i in range(len(side.levels) - 1, -1, -1):
                level = side.levels[i]
                if not side.latched[i] or level in newly:
                    continue
                if not judged[level][2]:
                    side.calm[i] = None
                    continue
                if side.calm[i] is None:
                    side.calm[i] = now_ms
                # The last alarm of a side ends only once the recovery has held rearm_min (or the
                # value is well back in range): a reading or two just past the dead-band is not the
                # end of the episode, and a dip right after would be a second alarm for one low.
                if far or sum(side.latched) > 1 or ticks.diff(now_ms, side.calm[i]) >= rearm:
                    side.latched[i] = False
                    out.append(_event(level, "cleared", judged[level][4]))
            if side.top() < 0:
                side.silence()
                if side.quiet_urgent:  # an urgent-low ack ends with the episode
                    side.quiet_until, side.quiet_urgent = None, False
            self._sound_rule(now_ms, side, newly, out)
        return out

    # ---------- time ----------
    def tick(self, now_ms, local_minute=None):
        self._is_night = self.night.active(local_minute)
        out = []
        esc = self.cfg["escalate_s"] * 1000
        for side in self._sides:
            if side.quiet_until is not None and not side.quiet(now_ms):
                side.quiet_until, side.quiet_urgent = None, False
                if not self._stale:
                    self._sound_rule(now_ms, side, (), out)
            if side.sound == "on" and ticks.diff(now_ms, side.since) >= esc:
                side.sound = "escalated"
                out.append(_event(side.levels[side.sounding], "escalated",
                                  "not acknowledged for %d min" % (esc // _MIN_MS)))
        return out

    # ---------- people ----------
    def _shown(self):
        """(side, index) of the level the box shows: a sounding one first, by pattern priority."""
        best = None
        for sounding in (True, False):
            for side in self._sides:
                if sounding and side.sound == "off":
                    continue
                i = side.sounding if sounding else side.top()
                if i < 0:
                    continue
                p = ALARM_PATTERNS.index(side.levels[i])
                if best is None or p < best[2]:
                    best = (side, i, p)
            if best is not None:
                return best[0], best[1]
        return None, -1

    def press(self, now_ms):
        side, i = self._shown()
        if side is None or side.sound == "off":
            return []
        if side.levels[i] == "urgent_low":
            return self.ack(now_ms, "button")
        return self.snooze(now_ms, "button")

    def _quiet(self, now_ms, side, i, minutes, urgent):
        side.quiet_until = ticks.add(now_ms, minutes * _MIN_MS)
        side.quiet_rank = i
        side.quiet_urgent = urgent
        side.silence()

    def _snooze_min(self, level):
        if level in ("high", "urgent_high", "rising_fast"):
            return self.cfg["snooze_high_min"]
        return self.cfg["snooze_low_min"]

    def snooze(self, now_ms, source="button", minutes=None):
        """Silence the shown non-urgent alarm for `minutes` (the caller bounds it; None: the
        level's snooze time). Urgent low is never snoozed: returns an event with state "refused"
        (and changes nothing)."""
        side, i = self._shown()
        if side is None:
            return []
        level = side.levels[i]
        if level == "urgent_low":
            if source == "button":
                return [_event(level, "refused", "urgent low cannot be snoozed; press to acknowledge")]
            return [_event(level, "refused", "urgent low cannot be silenced remotely")]
        if side.sound == "off":
            return []
        m = minutes or self._snooze_min(level)
        self._quiet(now_ms, side, i, m, False)
        return [_event(level, "snoozed", "quiet for %d min (%s)" % (m, source))]

    def ack(self, now_ms, source="button"):
        """Acknowledge the shown alarm. Urgent low: only at the box (button); quiet for
        urgent_recheck_min, then raises again unless the value is above urgent_low. A remote
        ack of urgent low returns state "refused". Other levels: quiet for their snooze time."""
        side, i = self._shown()
        if side is None:
            return []
        level = side.levels[i]
        if level == "urgent_low" and source != "button":
            return [_event(level, "refused", "urgent low cannot be silenced remotely")]
        if side.sound == "off":
            return []
        if level == "urgent_low":
            m = self.cfg["urgent_recheck_min"]
            self._quiet(now_ms, side, _UL, m, True)
            return [_event(level, "acked", "acknowledged (%s); sounds again in %d min unless above %s"
                           % (source, m, self._fmt(self.cfg["urgent_low"])))]
        m = self._snooze_min(level)
        self._quiet(now_ms, side, i, m, False)
        return [_event(level, "acked", "acknowledged (%s); quiet for %d min" % (source, m))]

    # ---------- stale data ----------
    def stale(self, now_ms):
        """The newest reading is older than the sensor-silent limit. Every latched glucose alarm
        is cleared with "handover": "sensor_silent" and "sound": the loudness the box had, which
        loudness_before_stale() also returns until a fresh reading arrives. Never raises."""
        if self._stale:
            return []
        self._stale = True
        level, sound = self.state()
        self._handover = sound if level is not None else None
        out = []
        for side in self._sides:
            for i in range(len(side.levels)):
                if side.latched[i]:
                    side.latched[i] = False
                    ev = _event(side.levels[i], "cleared", "no fresh reading; sensor_silent takes over")
                    ev["handover"] = "sensor_silent"
                    ev["sound"] = self._handover
                    out.append(ev)
            side.silence()
            if side.quiet_urgent:
                side.quiet_until, side.quiet_urgent = None, False
        self._hist = []
        self._met = {}
        return out

    def loudness_before_stale(self):
        """"off" | "soft" | "on" | "escalated" of the alarm stale() replaced, None when no glucose
        alarm was active then (or a fresh reading has arrived since). sensor_silent must sound at
        least this loudly."""
        return self._handover

    # ---------- output ----------
    def state(self):
        side, i = self._shown()
        if side is None:
            return None, "off"
        level = side.levels[i]
        return level, soften(level, side.sound, self._is_night)

    def is_night(self):
        return self._is_night

    def led_percent(self):
        """The LED brightness night mode asks for now: the schedule's percent at night, 100 by day."""
        return self.night.led_percent if self._is_night else 100
