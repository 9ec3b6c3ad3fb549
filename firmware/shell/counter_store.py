# Replay counters of the Open CGM broadcast, kept across reboots (shell: it writes flash; the decoder in
# firmware/sensor/open_broadcast.py only calls get/put on whichever store it is given).
#
# Write policy: a counter is written to flash when it has moved `every` (default 10) past the value
# last written, and always the first time after boot. With a bridge sending one frame a minute that
# is at most 144 small writes a day (one every 10 minutes), which LittleFS's wear levelling spreads
# over the whole partition: decades of flash life.
# Trade-off: after a power cut or crash, the stored value may be up to every-1 frames behind the
# last accepted one. Until the sensor's next genuine frame arrives, someone who recorded those few
# frames could replay them once; they are real readings at most ~every minutes old, so a replay can
# show a slightly old value but never a made-up one. flush() (called by the shell before an orderly
# reset) writes the newest value and closes that window.
#
# Writes are atomic (firmware/shell/files.py): the new content goes to <path>.tmp, then a rename, so a
# power cut leaves either the old or the new file, never a torn one. A failure is never silent:
# `error` holds the problem (an unreadable file at boot, a failed write) until a write works again; the
# supervisor shows it as the `counters` fault. The radio path goes on either way.
import json

from micropython import const

from firmware.shell.files import write_atomic

_EVERY = const(10)
_MAX_IDS = const(4)  # one configured sensor, plus a few past ones (a sensor swap) at most


class MemoryCounterStore:
    """Dict-backed store for tests and for boards without a filesystem."""

    def __init__(self):
        self._c = {}
        self.error = None

    def get(self, sensor_id):
        return self._c.get(sensor_id)

    def put(self, sensor_id, counter):
        self._c[sensor_id] = counter

    def flush(self):
        pass


class FileCounterStore:
    def __init__(self, path, every=_EVERY):
        self.path = path
        self.every = every
        self.error = None
        self.writes = 0
        self._c = {}        # sensor id -> newest accepted counter
        self._saved = {}    # sensor id -> counter as last written to flash
        self._load()

    def _load(self):
        for p in (self.path, self.path + ".tmp"):
            try:
                with open(p) as f:
                    data = json.load(f)
            except OSError:
                continue          # missing: try the temp file a cut rename may have left
            except ValueError:
                self.error = "counter file %s unreadable" % p
                continue
            if type(data) is not dict:
                self.error = "counter file %s unreadable" % p
                continue
            for k, v in data.items():
                try:
                    self._c[int(k)] = int(v)
                except ValueError:
                    self.error = "counter file %s has a bad entry" % p
            self._saved = dict(self._c)
            return

    def get(self, sensor_id):
        return self._c.get(sensor_id)

    def put(self, sensor_id, counter):
        self._c[sensor_id] = counter
        saved = self._saved.get(sensor_id)
        if saved is None or counter - saved >= self.every or counter < saved:
            self._write()

    def flush(self):
        if self._c != self._saved:
            self._write()

    def _write(self):
        c = self._c
        while len(c) > _MAX_IDS:
            # keep the ids with the highest counters; an old sensor's entry goes first
            low = None
            for k in c:
                if low is None or c[k] < c[low]:
                    low = k
            del c[low]
        try:
            # on FAT a cut between the two renames leaves <path>.tmp alone: _load reads it then
            write_atomic(self.path, json.dumps(dict((str(k), v) for k, v in c.items())))
        except OSError as e:
            self.error = "counter file write failed: %r" % (e,)
            return
        self._saved = dict(c)
        self.writes += 1
        self.error = None   # the file on flash is good again
