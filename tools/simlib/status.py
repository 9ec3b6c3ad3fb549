# The live status line and the end-of-run summary, both built from the event log.
import sys

_ARROWS = {"DoubleUp": "⇈", "SingleUp": "↑", "FortyFiveUp": "↗", "Flat": "→", "FortyFiveDown": "↘",
           "SingleDown": "↓", "DoubleDown": "⇊"}


def arrow(trend):
    if trend is None:
        return "?"
    for limit, name in ((3, "DoubleUp"), (2, "SingleUp"), (1, "FortyFiveUp"), (-1, "Flat"),
                        (-2, "FortyFiveDown"), (-3, "SingleDown")):
        if (trend > limit) if limit > 0 else (trend >= limit):
            return _ARROWS[name]
    return _ARROWS["DoubleDown"]


def clock(t):
    t = int(t)
    return "%02d:%02d:%02d" % (t // 3600, t // 60 % 60, t % 60)


class Status:
    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.live = stream.isatty()
        self.pattern = "booting"
        self.sound = False
        self.reading = None      # (t, mgdl, trend)
        self.links = {"sensor": True, "wifi": True, "cloud": True}
        self.timeline = []       # (t, pattern, sound)
        self.alarms = []         # (t, level, state, why)
        self.readings = 0
        self.rejects = {}
        self.events = 0
        self._last_line = ""

    def feed(self, ev):
        self.events += 1
        kind = ev.get("event")
        t = ev.get("t", 0.0)
        if kind == "pattern":
            self.pattern, self.sound = ev["name"], ev["sound"]
            self.timeline.append((t, ev["name"], ev["sound"]))
            if not self.live:
                self._print_line(self.line(t))
        elif kind == "reading":
            self.readings += 1
            if not ev.get("backfilled"):
                self.reading = (t, ev["mgdl"], ev.get("trend"))
        elif kind == "link":
            self.links[ev["name"]] = ev["up"]
        elif kind == "alarm":
            self.alarms.append((t, ev["level"], ev["state"], ev.get("why", "")))
        elif kind == "reject":
            self.rejects[ev["reason"]] = self.rejects.get(ev["reason"], 0) + 1

    def line(self, now_s):
        if self.reading:
            t, mgdl, trend = self.reading
            glucose = "%s mg/dL %s %dm ago" % ("---" if mgdl is None else mgdl, arrow(trend), (now_s - t) // 60)
        else:
            glucose = "no reading yet"
        links = " ".join("%s:%s" % (n, "up" if self.links[n] else "DOWN") for n in ("sensor", "wifi", "cloud"))
        return "[%s] %-24s buzzer:%-3s | %s | %s" % (
            clock(now_s), self.pattern, "ON" if self.sound else "off", glucose, links)

    def _print_line(self, text):
        self.stream.write(text + "\n")
        self.stream.flush()

    def redraw(self, now_s):
        if not self.live:
            return
        text = self.line(now_s)
        pad = max(0, len(self._last_line) - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._last_line = text

    def finish_line(self):
        if self.live and self._last_line:
            self.stream.write("\n")

    def summary(self, sent, delivered, seqs_in_order, duration_s, real_s):
        out = ["", "Nightstand simulation summary",
               "  simulated %s in %.1f s real" % (clock(duration_s), real_s),
               "  readings: %d sent by the CGM, %d accepted by the gateway, %s at the broker%s" % (
                   sent, self.readings, "?" if delivered is None else delivered,
                   "" if seqs_in_order in (None, True) else " (OUT OF ORDER)")]
        if self.rejects:
            out.append("  rejected frames: " + ", ".join("%s %d" % kv for kv in sorted(self.rejects.items())))
        out.append("  patterns shown:")
        for t, name, sound in self.timeline:
            out.append("    %s  %-24s%s" % (clock(t), name, " (sounding)" if sound else ""))
        if self.alarms:
            out.append("  alarms:")
            for t, level, state, why in self.alarms:
                out.append("    %s  %-16s %-9s %s" % (clock(t), level, state, why))
        return "\n".join(out)
