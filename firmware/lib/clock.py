# The one clock every shell task uses for "now" and for sleeping.
# Board: real ticks. Host: a scaled clock (firmware/hal/host.py's ScaledClock, host-only so a board
# never loads it) that runs `speed` times faster than real time, so a night plays in a minute.
# Network timeouts never go through this clock (sockets keep real time).
import time

import asyncio

# A scaled clock never sleeps less than this much real time: real sleeps below ~2 ms cost more in
# wake-ups than they buy in precision; at speed 600 the floor is 1.2 simulated seconds, far below the
# 5-minute reading period the judgements use. (A board's clock runs at speed 1 and never floors.)
SCALED_FLOOR_MS = 2


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
        real_ms = max(SCALED_FLOOR_MS, real_ms)
    try:
        await asyncio.wait_for_ms(event.wait(), real_ms)
        return True
    except asyncio.TimeoutError:
        return False
