# Crash log: tracebacks of crashed tasks (and why the watchdog was starved) in a small rotating log in
# the data dir, so a maker can read them with mpremote after the fact, and so each entry is published
# once (<prefix>/log) when the cloud is back, even after a reset in between.
#
#   data/crash.log     newest entries; entries start with a line "## <n> <what>"
#   data/crash.log.1   the previous file (rotated when crash.log would pass MAX_BYTES)
#   data/crash.sent    the highest entry number already handed to the uplink
#
# Never raises: a full or failing flash must not turn a logged crash into another crash.
import os

from micropython import const

# 2 files x 4 KB: about a dozen tracebacks of a few frames each, small next to the ESP32's ~1.4 MB
# filesystem and the outage queue; reading them back takes a line at a time.
MAX_BYTES = const(4096)
FILES = const(2)


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class CrashLog:
    def __init__(self, data_dir, max_bytes=MAX_BYTES, files=FILES):
        self.path = data_dir + "/crash.log"
        self.sent_path = data_dir + "/crash.sent"
        self.max_bytes = max_bytes
        self.files = files
        self.n = 0
        for n, _what, _text in self.entries():
            self.n = max(self.n, n)
        try:
            self.sent = int(_read(self.sent_path).strip() or 0)
        except ValueError:
            self.sent = 0
        if self.sent > self.n:
            self.sent = self.n  # the log was cleared by hand: numbering restarted below the mark

    def _paths(self):
        """Oldest first."""
        return [self.path + "." + str(i) for i in range(self.files - 1, 0, -1)] + [self.path]

    def entries(self):
        """[(n, what, text)] of every entry still in the files, oldest first."""
        out = []
        for p in self._paths():
            try:
                f = open(p)
            except OSError:
                continue
            cur = None
            with f:
                # A line at a time: reading a 4 KB file whole needs 4 KB in one piece, which a long-run
                # heap may not have (the small-heap soak hit exactly that), and a list of its lines.
                for line in f:
                    cur = self._line(out, cur, line.rstrip("\n"))
        return [(e[0], e[1], "\n".join(e[2])) for e in out]

    @staticmethod
    def _line(out, cur, line):
        """Adds one log line to out; returns the entry it belongs to (None: before the first head)."""
        if line.startswith("## "):
            head = line[3:].split(" ", 1)
            try:
                cur = [int(head[0]), head[1] if len(head) > 1 else "", []]
            except ValueError:
                return None
            out.append(cur)
        elif cur is not None and line:
            cur[2].append(line)
        return cur

    def write(self, what, text):
        """Append one entry; returns its number, or None when the flash refused it."""
        n = self.n + 1
        head = "## %d %s\n" % (n, what.replace("\n", " "))
        room = self.max_bytes - len(head) - 1
        if len(text) > room:
            # Keep the end: the innermost frames and the exception itself are the useful part.
            text = "..." + text[len(text) - room + 3:]
        entry = head + text + "\n"
        try:
            if _size(self.path) + len(entry) > self.max_bytes:
                self._rotate()
            with open(self.path, "a") as f:
                f.write(entry)
        except OSError:
            return None
        self.n = n
        return n

    def _rotate(self):
        paths = self._paths()
        try:
            os.remove(paths[0])
        except OSError:
            pass
        for i in range(len(paths) - 1):
            try:
                os.rename(paths[i + 1], paths[i])
            except OSError:
                pass

    def unsent(self):
        return [e for e in self.entries() if e[0] > self.sent]

    def mark_sent(self, n):
        if n <= self.sent:
            return
        self.sent = n
        try:
            with open(self.sent_path, "w") as f:
                f.write(str(n))
        except OSError:
            pass  # worst case: published once more after a reset
