# HOST ONLY (never on a board): the parts of MicroPython's `machine` module the ESP32 adapter's drivers
# use (firmware/hal/esp32_led.py, esp32_buzzer.py, esp32_button.py, esp32.py), as virtual hardware.
# Pins keep their level, PWMs their frequency and duty, so the host board runs the board's own LED and
# buzzer drivers and a test can read back what a pin would show. On sys.path only on the host
# (firmware/hal/host.py puts tools/virtual_hw/ there).
#   Pin(id, mode=-1, pull=-1, value=None): value([v]), on(), off(), irq(handler=None, trigger=...);
#       Pin.drive(id, level) (host only) sets an input's level and calls its irq handler on an edge
#   PWM(pin, freq=, duty_u16=): freq([hz]), duty_u16([d]), deinit()
#   WDT(timeout=ms): feed(). Never resets the host: once attach()ed (host board) it says `watchdog`
#       {"timeout_ms"} when started and {"expired": true} where a board would reset, once per starvation
#   attach(clock, emit, running) (host only): the board clock, event log and "still running" test
#   reset(), soft_reset(): SystemExit with the code a board reset maps to; unique_id(); freq()
IN, OUT, OPEN_DRAIN = 1, 3, 7


class Pin:
    IN = IN
    OUT = OUT
    OPEN_DRAIN = OPEN_DRAIN
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1
    _all = {}

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._level = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self._level = 1 if value else 0
        self._irq = None
        self._trigger = 0
        Pin._all[id] = self

    def value(self, v=None):
        if v is None:
            return self._level
        self._level = 1 if v else 0

    def on(self):
        self._level = 1

    def off(self):
        self._level = 0

    def irq(self, handler=None, trigger=3):
        self._irq = handler
        self._trigger = trigger

    def __call__(self, v=None):
        return self.value(v)

    @staticmethod
    def drive(id, level):
        p = Pin._all.get(id)
        if p is None:
            return
        old, p._level = p._level, 1 if level else 0
        edge = Pin.IRQ_RISING if p._level > old else Pin.IRQ_FALLING if p._level < old else 0
        if edge & p._trigger and p._irq is not None:
            p._irq(p)


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin = pin
        self._freq = freq
        self._duty = duty_u16
        self.active = True

    def freq(self, hz=None):
        if hz is None:
            return self._freq
        self._freq = hz

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d

    def deinit(self):
        self.active = False
        self._duty = 0


_host = [None, None, None]   # clock, emit, running: set by attach()


def attach(clock, emit, running):
    _host[0], _host[1], _host[2] = clock, emit, running


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        self.expired = False
        clock, emit = _host[0], _host[1]
        if clock is None:
            return
        from firmware.lib.clock import hang_bound_ms
        # Like the supervisor's hang check it also waits 0.5 s of real time, so a fast simulation does not
        # report a pause of the host machine as a starved watchdog.
        self.timeout_ms = hang_bound_ms(clock, timeout)
        self.fed_at = clock.ticks_ms()
        emit({"event": "watchdog", "timeout_ms": timeout})
        import asyncio
        asyncio.create_task(self._watch())

    def feed(self):
        self.feeds += 1
        if _host[0] is not None:
            self.fed_at = _host[0].ticks_ms()
            self.expired = False

    def check(self):
        clock, emit = _host[0], _host[1]
        from firmware.core import ticks   # the board clock wraps at 2**30 ms (tests start near it)
        if not self.expired and ticks.diff(clock.ticks_ms(), self.fed_at) >= self.timeout_ms:
            self.expired = True
            emit({"event": "watchdog", "expired": True, "timeout_ms": self.timeout_ms,
                  "why": "not fed: a board resets here; the host goes on"})

    async def _watch(self):
        # Once a scenario second. A hang of one task shows here; a loop blocked for good would stop this
        # too (a board's hardware watchdog has no such limit).
        clock, running = _host[0], _host[2]
        while running():
            await clock.sleep_ms(1000)
            self.check()


def reset():
    raise SystemExit(3)


def soft_reset():
    raise SystemExit(3)


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def freq():
    return 160000000
