# Pattern player: one asyncio task that steps the LED and buzzer through the current pattern's rhythms.
# It never blocks: every wait is a clock wait that a pattern change cuts short.
import asyncio

from firmware.core.night import dim as night_dim
from firmware.core.patterns import TABLE, buzz_rhythm, led_phase
from firmware.lib.clock import wait_event

_ESCALATED_HZ = 600  # escalated alarms sound this much higher: a higher pitch carries through a door


class Player:
    def __init__(self, board, clock, on_step=None):
        self.board = board
        self.clock = clock
        self.name = "booting"
        self.mode = "off"
        # Called with "player" at every LED/buzzer step (at least every 2.8 s, the longest LED phase
        # in the table): the supervisor's proof of life for the watchdog.
        self.on_step = on_step
        self.led_percent = 100  # the tick sets it from AlarmEngine.led_percent() (night mode)
        self._changed = asyncio.Event()

    def set(self, name, mode):
        if name != self.name or mode != self.mode:
            self.name, self.mode = name, mode
            self._changed.set()

    async def run(self):
        board = self.board
        # A plain LED switched on/off (no PWM) would show a dimmed phase fully lit; the driver says so.
        can_dim = getattr(board.led, "can_dim", True)
        try:
            while True:
                self._changed.clear()
                name, mode = self.name, self.mode
                led = TABLE[name][1]
                hz = TABLE[name][3]
                buzz = buzz_rhythm(name, mode)
                if mode == "escalated":
                    hz = hz + _ESCALATED_HZ
                now = 0
                li = bi = 0
                led_at = 0
                buzz_at = 0 if buzz else None
                board.buzzer.tone(0)
                while not self._changed.is_set():
                    if self.on_step is not None:
                        self.on_step("player")
                    if now >= led_at:
                        board.led.show(night_dim(led_phase(name, li, can_dim), name, self.led_percent))
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
        finally:
            # A crash or a cancel must never leave the buzzer screaming (or stuck on).
            board.buzzer.tone(0)
