# Push button: debounced by polling from an asyncio task (no IRQ: a poll is simple, cannot fire
# mid-allocation, and costs nothing while no task awaits a press). PressDetector is pure so it is
# tested on the host and the unix port; Button binds it to a machine.Pin and a clock.
from firmware.core import ticks

from micropython import const

# Sampling period: two samples fit inside the 30 ms debounce, and 15 ms is far below what a person
# notices between pressing and the box reacting.
POLL_MS = const(15)


class PressDetector:
    """Feed (now_ms, pressed) samples; update() returns "short" on release of a press shorter than
    long_ms, "long" as soon as a press has lasted long_ms (so the self-test starts while the finger
    is still down: the parent hears it worked), otherwise None. A level must hold for debounce_ms
    before it counts, so contact bounce and a single noisy sample are ignored."""

    def __init__(self, debounce_ms, long_ms):
        self._deb = debounce_ms
        self._long = long_ms
        self._stable = False      # debounced level
        self._raw = False
        self._raw_since = None
        self._down_at = None      # when the debounced press began
        self._long_sent = False

    def update(self, now, pressed):
        pressed = bool(pressed)
        if pressed != self._raw or self._raw_since is None:
            self._raw = pressed
            self._raw_since = now
        if pressed != self._stable and ticks.diff(now, self._raw_since) >= self._deb:
            self._stable = pressed
            if pressed:
                # The press began when the level first changed, not when debouncing accepted it.
                self._down_at = self._raw_since
                self._long_sent = False
            else:
                was_long = self._long_sent
                self._down_at = None
                if not was_long:
                    return "short"
                return None
        if self._stable and not self._long_sent and self._down_at is not None:
            if ticks.diff(now, self._down_at) >= self._long:
                self._long_sent = True
                return "long"
        return None


def pull_arg(machine, pull):
    if pull == "up":
        return machine.Pin.PULL_UP
    if pull == "down":
        return machine.Pin.PULL_DOWN
    return None


def make_pin(button_cfg):
    import machine
    return machine.Pin(button_cfg["pin"], machine.Pin.IN, pull_arg(machine, button_cfg["pull"]))


class Button:
    """await button.wait() -> "short" | "long". clock offers ticks_ms() and async sleep_ms()."""

    def __init__(self, button_cfg, clock, debounce_ms, long_ms, pin=None):
        self._pin = pin if pin is not None else make_pin(button_cfg)
        self._low = button_cfg["active_low"]
        self._clock = clock
        self._det = PressDetector(debounce_ms, long_ms)

    def pressed(self):
        v = self._pin.value()
        return v == 0 if self._low else v == 1

    async def wait(self):
        while True:
            r = self._det.update(self._clock.ticks_ms(), self.pressed())
            if r is not None:
                return r
            await self._clock.sleep_ms(POLL_MS)
