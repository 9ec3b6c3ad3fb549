# Pattern player: one asyncio task that steps the LED and buzzer through the current pattern's rhythms.
# It never blocks: every wait is a clock wait that a pattern change cuts short.
import asyncio

from firmware.core.patterns import TABLE
from firmware.shell.clock import wait_event

# Selftest sweeps the LED through red, green, blue, white so a family sees every channel work.
_SWEEP = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))
_IDLE_MS = 60000  # a pattern with nothing left to step sleeps this long (until a change wakes it)


def _dim(rgb):
    return (rgb[0] >> 3, rgb[1] >> 3, rgb[2] >> 3)


def buzz_rhythm(buzz, mode):
    """The buzzer rhythm for a sound mode: escalated halves the pauses, soft halves the tones."""
    if mode == "off" or not buzz:
        return ()
    if mode == "escalated":
        return tuple(d if i % 2 == 0 else max(50, d // 2) for i, d in enumerate(buzz))
    if mode == "soft":
        return tuple(max(50, d // 2) if i % 2 == 0 else d for i, d in enumerate(buzz))
    return buzz


class Player:
    def __init__(self, board, clock):
        self.board = board
        self.clock = clock
        self.name = "booting"
        self.mode = "off"
        self._changed = asyncio.Event()

    def set(self, name, mode):
        if name != self.name or mode != self.mode:
            self.name, self.mode = name, mode
            self._changed.set()

    def _led(self, rgb, led, i, never_dark):
        if i % 2 == 0:
            return rgb
        return _dim(rgb) if never_dark else None

    async def run(self):
        board = self.board
        while True:
            self._changed.clear()
            rgb, led, buzz, hz, never_dark = TABLE[self.name]
            buzz = buzz_rhythm(buzz, self.mode)
            if self.mode == "escalated":
                hz = hz + 600  # a higher pitch carries further through a closed door
            now = 0
            li = bi = 0
            led_at = 0
            buzz_at = 0 if buzz else None
            while not self._changed.is_set():
                if now >= led_at:
                    colour = _SWEEP[(li // 2) % 4] if self.name == "selftest" else rgb
                    board.led.show(self._led(colour, led, li, never_dark))
                    led_at += led[li % len(led)]
                    li += 1
                if buzz_at is not None and now >= buzz_at:
                    board.buzzer.tone(hz if bi % 2 == 0 else 0)
                    buzz_at += buzz[bi % len(buzz)]
                    bi += 1
                nxt = led_at if buzz_at is None else min(led_at, buzz_at)
                if await wait_event(self.clock, self._changed, max(1, nxt - now)):
                    break
                now = nxt
            board.buzzer.tone(0)
