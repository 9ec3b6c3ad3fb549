# Gateway self-checks (pure): judgements that turn into gateway faults (the `fault` pattern, a `fault`
# event and the `fault` field of the retained state), never into a crash or a reset.
# Each judge() returns a short reason while the fault holds, else None; the shell passes the result to
# Gateway.set_fault(now, name, why), which only speaks on a change.
from firmware.core import ticks

from micropython import const

# Low heap: MicroPython on an ESP32 without PSRAM has ~110 KB of heap. Below 8 KB free after a
# collection, the next MQTT packet, JSON encode or TLS record (up to ~5 KB) may fail with MemoryError;
# the fault clears only above 12 KB so a heap hovering around the line does not flicker the LED.
LOW_HEAP_BYTES = const(8192)
HEAP_OK_BYTES = const(12288)
# Clock: NTP answers within seconds once Wi-Fi is up and the board retries every 5 s; five minutes of
# Wi-Fi without wall time means NTP is blocked or unreachable, and readings go out without a date.
CLOCK_AFTER_MS = const(300000)


class HeapWatch:
    def __init__(self, low=LOW_HEAP_BYTES, ok=HEAP_OK_BYTES):
        self.low = low
        self.ok = ok
        self.faulty = False

    def judge(self, free):
        """free: bytes free after gc, or None when the board cannot say (then nothing changes)."""
        if free is not None:
            if self.faulty and free >= self.ok:
                self.faulty = False
            elif not self.faulty and free < self.low:
                self.faulty = True
        # A fixed reason: the exact byte count changes every check and would be news every time.
        return "under %d bytes of heap free" % self.low if self.faulty else None


class ClockWatch:
    """No wall time after CLOCK_AFTER_MS of continuous Wi-Fi. Without Wi-Fi the clock cannot be set,
    which the wifi/cloud links already show: not a clock fault."""

    def __init__(self, after_ms=CLOCK_AFTER_MS):
        self.after_ms = after_ms
        self.since = None  # ticks when Wi-Fi came up without wall time
        self.faulty = False

    def judge(self, now_ms, wifi_up, wall_known):
        if wall_known or not wifi_up:
            self.since = None
            self.faulty = False
        elif self.since is None:
            self.since = now_ms
        elif not self.faulty and ticks.diff(now_ms, self.since) >= self.after_ms:
            self.faulty = True  # latched until synced or Wi-Fi drops: no revival at the diff wrap
        return "no wall time after %d min of Wi-Fi" % (self.after_ms // 60000) if self.faulty else None
