# The one clock every shell task uses for "now" and for sleeping.
# Board: real ticks. Host: a scaled clock that runs `speed` times faster than real time, so a night
# plays in a minute. Network timeouts never go through this clock (sockets keep real time).
import time

import asyncio

from micropython import const

_MASK = const(0x3FFFFFFF)  # ticks_ms period 2**30, as on the ESP32


class Clock:
    speed = 1

    def __init__(self):
        self._wall_offset = None  # epoch ms minus ticks, once wall time is known

    def ticks_ms(self):
        return time.ticks_ms()

    def sleep_ms(self, ms):
        # `await clock.sleep_ms(ms)`: asyncio's own awaitable, handed back rather than awaited in an
        # `async def`, which would keep one more coroutine frame (64 B of a 32-bit heap) alive for every
        # task asleep, and nearly every task is asleep nearly always. Await it at once (it is asyncio's
        # shared sleep object), never make a task of it.
        return asyncio.sleep_ms(ms)

    def sleep_blocking_ms(self, ms):
        """For the uplink thread only; never call from an asyncio task."""
        time.sleep_ms(ms)

    def set_wall_ms(self, epoch_ms):
        self._wall_offset = epoch_ms - self.ticks_ms()

    def mark_synced(self):
        """NTP has set the wall time (the ESP32 clock then reads its RTC); here set_wall_ms() did it."""

    def wall_ms(self):
        if self._wall_offset is None:
            return None
        return self._wall_offset + self.ticks_ms()

    def scenario_s(self):
        """Seconds for the `t` field of events (the board: seconds of ticks)."""
        return self.ticks_ms() / 1000


class ScaledClock(Clock):
    # Real sleeps below ~2 ms cost more in wake-ups than they buy in precision; at speed 600 the
    # floor is 1.2 simulated seconds, far below the 5-minute reading period the judgements use.
    FLOOR_MS = 2

    def __init__(self, speed=1, ticks0=0):
        Clock.__init__(self)
        self.speed = speed
        self.ticks0 = ticks0 & _MASK  # lets tests start just before the 2**30 wrap
        self._real0 = time.time_ns()
        self._wall0 = None

    def start(self, speed=None, wall0_ms=None, ticks0=None, real0_ns=None):
        """Scenario time 0 is now, or at real0_ns on the system clock (the simulator's instant)."""
        if speed:
            self.speed = speed
        if ticks0 is not None:
            self.ticks0 = ticks0 & _MASK
        self._wall0 = wall0_ms
        self._real0 = real0_ns or time.time_ns()

    def sim_ms(self):
        return int((time.time_ns() - self._real0) * self.speed) // 1000000

    def ticks_ms(self):
        return (self.ticks0 + self.sim_ms()) & _MASK

    def sleep_ms(self, ms):
        return asyncio.sleep_ms(max(self.FLOOR_MS, int(ms / self.speed)))   # see Clock.sleep_ms

    def sleep_blocking_ms(self, ms):
        time.sleep_ms(max(1, int(ms / self.speed)))

    def set_wall_ms(self, epoch_ms):
        self._wall0 = epoch_ms - self.sim_ms()

    def wall_ms(self):
        if self._wall0 is None:
            return None
        return self._wall0 + self.sim_ms()

    def scenario_s(self):
        return self.sim_ms() / 1000


# A hang is judged in scenario time, but on the host at speed s a 10 ms pause of the machine (its GC,
# another process) is 30 s at speed 3000. Hang judgements (the supervisor's, the host watchdog's) also
# wait this much real time; on a board (speed 1) their own bound is the larger and this changes nothing.
HANG_REAL_MS = 500


def hang_bound_ms(clock, ms):
    """ms of scenario time, but never less than HANG_REAL_MS of real time at the clock's speed."""
    return max(ms, int(HANG_REAL_MS * getattr(clock, "speed", 1)))


async def wait_event(clock, event, ms):
    """Wait for event or ms of clock time, whichever first. True when the event fired."""
    real_ms = int(ms / clock.speed)
    if clock.speed != 1:
        real_ms = max(ScaledClock.FLOOR_MS, real_ms)
    try:
        await asyncio.wait_for_ms(event.wait(), real_ms)
        return True
    except asyncio.TimeoutError:
        return False
