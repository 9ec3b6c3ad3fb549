# Simulator trace (docs/simulator.md): CSV with header minute,mgdl,event; rows in time order.
import csv

EVENTS = ("broker_down", "broker_hang", "broker_up", "wifi_down", "wifi_up", "button", "button_long",
          "sensor_off", "sensor_on")


# A month: the longest scenario anyone runs is the seven-day soak; a minute beyond this is a typo (1e12
# minutes ran "practically forever without a word", issue 17).
MAX_MINUTE = 30 * 24 * 60


class TraceError(ValueError):
    pass


class Row:
    def __init__(self, minute, mgdl, event):
        self.minute = minute
        self.mgdl = mgdl
        self.event = event

    def __repr__(self):
        return "Row(%r, %r, %r)" % (self.minute, self.mgdl, self.event)


def parse(lines, name="trace"):
    """Rows from CSV lines; TraceError with a one-line reason naming the line on anything bad."""
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise TraceError("%s: empty file (expected header minute,mgdl,event)" % name)
    if header[:2] != ["minute", "mgdl"] or header[2:] not in ([], ["event"]):
        raise TraceError("%s line 1: header must be minute,mgdl,event (got %s)" % (name, ",".join(header)))
    rows = []
    last = None
    for lineno, cells in enumerate(reader, start=2):
        cells = [c.strip() for c in cells]
        if not cells or cells == [""]:
            continue
        if len(cells) > 3:
            raise TraceError("%s line %d: expected at most 3 columns, got %d" % (name, lineno, len(cells)))
        cells += [""] * (3 - len(cells))
        try:
            minute = float(cells[0])
        except ValueError:
            raise TraceError("%s line %d: minute %r is not a number" % (name, lineno, cells[0]))
        if minute != minute or minute < 0 or minute == float("inf"):
            raise TraceError("%s line %d: minute must be a finite number >= 0" % (name, lineno))
        if minute > MAX_MINUTE:
            raise TraceError("%s line %d: minute %g is beyond the limit of %d (30 days)"
                             % (name, lineno, minute, MAX_MINUTE))
        if last is not None and minute < last:
            raise TraceError("%s line %d: minute %g comes before %g (rows must be in time order)"
                             % (name, lineno, minute, last))
        last = minute
        mgdl = None
        if cells[1]:
            try:
                mgdl = int(cells[1])
            except ValueError:
                raise TraceError("%s line %d: mgdl %r is not a whole number" % (name, lineno, cells[1]))
            if not 20 <= mgdl <= 600:
                raise TraceError("%s line %d: mgdl %d is outside 20..600" % (name, lineno, mgdl))
        event = cells[2] or None
        if event is not None and event not in EVENTS:
            raise TraceError("%s line %d: unknown event %r (known: %s)" % (name, lineno, event, ", ".join(EVENTS)))
        rows.append(Row(minute, mgdl, event))
    if not rows:
        raise TraceError("%s: no rows after the header" % name)
    return rows


def load(path):
    try:
        # utf-8-sig: a CSV saved by a spreadsheet starts with a byte-order mark; it is not part of `minute`
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise TraceError("%s: %s" % (path, e.strerror or e))
    except UnicodeDecodeError:
        raise TraceError("%s: not a text CSV file (not UTF-8)" % path)
    if "\0" in text:
        raise TraceError("%s: not a text CSV file (it holds NUL bytes)" % path)
    try:
        return parse(text.splitlines(), path)
    except csv.Error as e:
        raise TraceError("%s: not a CSV file (%s)" % (path, e))
