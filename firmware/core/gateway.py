# The gateway core (pure): readings, button presses and link news in; effects out.
# Effects are tuples the shell carries out, in order:
#   ("event", dict)                                 one event-log entry (docs/simulator.md)
#   ("pattern", name, sound)                        what the LED/buzzer show now; sound is a mode:
#                                                   "off", "soft", "on" or "escalated"
#   ("publish", suffix, payload, qos, retain)       an MQTT message under <prefix>/ (payload: dict or str)
from firmware.core import ticks, payloads
from firmware.core.alarms import AlarmEngine
from firmware.core.links import LinkWatch
from firmware.core import merge as merge_mod
from firmware.core import patterns


class Gateway:
    def __init__(self, cfg, now_ms):
        self.cfg = cfg
        self.device = "nightstand/" + cfg["gateway_id"]
        self.alarms = AlarmEngine(cfg["alarms"], cfg.get("night"))
        self.links = LinkWatch(cfg["silence"], now_ms)
        sources = cfg.get("sources") or [{"name": cfg["sensor"]["kind"], "kind": cfg["sensor"]["kind"]}]
        self.merge = merge_mod.Merge(sources, cfg["silence"]["sensor_after_s"], now_ms)
        # the name under which readings from the box's own radio arrive (None: no radio source)
        self.radio_name = None
        for s in sources:
            if merge_mod.path_of(s) == "radio":
                self.radio_name = s["name"]
        self.last = None           # last accepted live Reading
        self.last_seq = {}         # sensor id -> highest seq accepted (dedup across sources)
        self.faults = {}           # fault name -> short reason; any entry shows `fault`
        self.pattern = None
        self.sound = None
        self.show_name = "booting"  # a gateway starts by showing that it boots
        self.show_until = ticks.add(now_ms, 1000)  # ticks until which booting/selftest holds
        self.rejects = 0
        self.silent_sound = "on"   # sensor_silent sounds at least as loudly as an alarm it replaced
        self.out = []
        self._refresh(now_ms)

    # ---- inputs -------------------------------------------------------------------------------
    def on_reading(self, now_ms, r, measured_ms=None, source=None):
        """An authenticated reading from a sensor driver (the box's radio) or a network source
        (source: its name; measured_ms: the tick the sensor measured it). Returns True when accepted.
        Every source goes through the merge: a reading another source delivered first is dropped
        (counted in merge.dups), one older than the newest accepted is published as backfilled."""
        if measured_ms is None:
            measured_ms = now_ms
            prev = self.last_seq.get(r.sensor_id)
            if prev is not None and r.seq <= prev and not r.backfilled:
                self.on_reject(now_ms, "duplicate")
                return False
        verdict = self.merge.offer(now_ms, source or self.radio_name, r.sensor_id, r.seq, r.mgdl,
                                   measured_ms)
        if verdict == merge_mod.DUP:
            self._judge_links(now_ms)
            return False
        if verdict == merge_mod.BACKFILL:
            r.backfilled = True
        if not r.backfilled:
            self.last_seq[r.sensor_id] = r.seq
            r.rx_ms = measured_ms  # last_age_s is the reading's age, whoever carried it
            self.last = r
            self.links.saw_sensor(measured_ms)
        self._emit({"event": "reading", "seq": r.seq, "mgdl": r.mgdl, "trend": r.trend,
                    "source": r.source, "backfilled": r.backfilled})
        self.out.append(("publish", "reading", payloads.reading(r, self.device), 1, False))
        self._alarm_events(self.alarms.on_reading(now_ms, r))
        self._judge_links(now_ms)
        self._refresh(now_ms, publish_state=True)
        return True

    def on_reject(self, now_ms, reason, source=None):
        self.rejects += 1
        ev = {"event": "reject", "reason": reason}
        if source is not None:
            ev["source"] = source  # a network source's answer; the radio's frames name no source
        self._emit(ev)

    def on_source(self, now_ms, name, outcome, why=None):
        """A network source's poll ended (firmware/shell/http_source.py): "ok", "no_data", "down",
        "hung", "auth_failed", "bad" or "heap". auth_failed is a fault naming the source (the box shows
        `fault`, never a silent stop); any other answer clears it."""
        self.merge.outcome(name, outcome, why)
        self.set_fault(now_ms, "auth_failed:" + name,
                       ("%s refused our credentials (%s)" % (name, why or "HTTP 403"))
                       if outcome == "auth_failed" else None)
        self._judge_links(now_ms)
        self._refresh(now_ms)

    def on_press(self, now_ms, kind):
        if kind == "long":
            self.selftest(now_ms)
        else:
            self._alarm_events(self.alarms.press(now_ms))
        self._refresh(now_ms)

    def on_command(self, now_ms, cmd):
        """An authenticated remote command (firmware.core.commands verified it). Returns its outcome
        in words, for the audit topic. The alarm engine, not this method, refuses to silence an urgent
        low from a remote source; an ack naming another level than the one shown changes nothing."""
        name, args = cmd["name"], cmd.get("args") or {}
        if name == "selftest":
            self.selftest(now_ms)
            return "selftest started"
        level = self.alarms.state()[0]
        if name == "ack" and args.get("level") not in (None, level):
            return "refused: %s is not the alarm shown (%s)" % (args["level"], level)
        if name == "snooze":  # minutes: 5..120, checked by the verifier; absent = the level's time
            evs = self.alarms.snooze(now_ms, "remote", args.get("minutes"))
        else:
            evs = self.alarms.ack(now_ms, "remote")
        self._alarm_events(evs)
        self._refresh(now_ms, publish_state=True)
        if not evs:
            return "nothing to silence"
        return "%s: %s" % (evs[-1]["state"], evs[-1]["why"])

    def on_cloud_ok(self, now_ms):
        """An acknowledged MQTT round trip (CONNACK, PUBACK, PINGRESP)."""
        self.links.cloud_ok(now_ms)

    def on_wifi(self, now_ms, up):
        self.links.set_wifi(up, now_ms)
        self._judge_links(now_ms)
        self._refresh(now_ms)

    def set_fault(self, now_ms, name, why=None):
        """why=None clears the fault. A change emits a `fault` event and updates the retained state."""
        if self.faults.get(name) == why:
            return  # no news: judged again every few seconds, said only on a change
        if why is None:
            self.faults.pop(name, None)
        else:
            self.faults[name] = why
        self._emit({"event": "fault", "name": name, "why": why, "active": why is not None})
        self._refresh(now_ms, publish_state=True)

    def selftest(self, now_ms, duration_ms=3000):
        self.show_name = "selftest"
        self.show_until = ticks.add(now_ms, duration_ms)
        self._refresh(now_ms)

    def booting(self, now_ms, duration_ms):
        self.show_name = "booting"
        self.show_until = ticks.add(now_ms, duration_ms)
        self._refresh(now_ms)

    def tick(self, now_ms, wall_ms=None):
        """wall_ms: epoch ms once the clock is set; night mode needs the local minute of the day."""
        local_minute = None
        if wall_ms is not None:
            offset = self.cfg.get("night", {}).get("utc_offset_min", 0)
            local_minute = (wall_ms // 60000 + offset) % 1440
        self._alarm_events(self.alarms.tick(now_ms, local_minute))
        self._judge_links(now_ms)
        self._refresh(now_ms)

    def drain(self):
        out, self.out = self.out, []
        return out

    # ---- internals ----------------------------------------------------------------------------
    def _emit(self, ev):
        self.out.append(("event", ev))

    def _alarm_events(self, evs):
        for ev in evs:
            self._emit(ev)
            if ev["state"] == "escalated":
                self.out.append(("publish", "alarm", ev, 1, False))

    def _judge_links(self, now_ms):
        moved = self.merge.judge(now_ms)
        for src in moved:
            ev = {"event": "source", "name": src.name, "state": src.state,
                  "age_s": self.merge.age_s(src, now_ms), "path": src.path}
            if src.state in merge_mod.OUTCOME_STATES and src.why:
                ev["why"] = src.why  # e.g. "[Errno 111] ECONNREFUSED", "no answer within 500 ms"
            self._emit(ev)
        changed = self.links.tick(now_ms)
        for name, up in changed:
            self._emit({"event": "link", "name": name, "up": up})
            if name == "sensor" and not up:
                # Stale data: a glucose alarm hands over to sensor_silent, never back to ok.
                evs = self.alarms.stale(now_ms)
                loud = self.alarms.loudness_before_stale()
                self.silent_sound = "escalated" if loud == "escalated" else "on"
                self._alarm_events(evs)
        if changed or moved:
            self._publish_state(now_ms)

    def _refresh(self, now_ms, publish_state=False):
        level, sound = self.alarms.state()
        if self.show_until is not None and ticks.diff(self.show_until, now_ms) <= 0:
            self.show_until = None
        if self.show_until is not None and level is None:
            name, snd = self.show_name, "on" if self.show_name == "selftest" else "off"
        else:
            up = self.links.up
            name, snd = patterns.choose(level, sound, up["sensor"], up["cloud"], self.faults,
                                        self.silent_sound,
                                        "soft" if self.cfg["silence"].get("cloud_chirp") else "off")
        if name != self.pattern or snd != self.sound:
            self.pattern, self.sound = name, snd
            self.out.append(("pattern", name, snd))
            self._emit({"event": "pattern", "name": name, "sound": snd != "off", "mode": snd})
            publish_state = True
        if publish_state:
            self._publish_state(now_ms)

    def _publish_state(self, now_ms):
        up = self.links.up
        st = payloads.state(now_ms, self.pattern, self.alarms.state()[0], up["sensor"], up["cloud"], self.last)
        names = sorted(self.faults)
        st["fault"] = names[0] if names else None  # what `fault` on the box means right now
        st["faults"] = names
        # every source's state and the age of its newest reading; sensor_path says which kind of path
        # carries the night now: "radio", "lan", or "cloud" when only an internet Nightscout is up
        st["sources"] = self.merge.snapshot(now_ms)
        st["sensor_path"] = self.merge.best_path()
        self.out.append(("publish", "state", st, 1, True))
