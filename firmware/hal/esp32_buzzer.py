# ESP32 buzzer drivers. tone(hz): hz > 0 sounds, 0 silences.
# Passive piezo: square wave from machine.PWM at the asked pitch, 50 % duty (loudest for a piezo).
# Active buzzer: it has its own oscillator, so it is just switched on and off; the pitch is fixed.
from micropython import const

_HALF = const(32768)   # duty_u16 of 50 %: the square wave a piezo is loudest with
# A piezo disc resonates at 2-4 kHz; below ~100 Hz it only clicks and above 10 kHz a sleeping parent
# may not hear it, so asked pitches are clamped into this band rather than played inaudibly.
_MIN_HZ = const(100)
_MAX_HZ = const(10000)
_IDLE_HZ = const(2000)  # PWM needs a frequency even while silent; any in-band value will do


class PwmBuzzer:
    def __init__(self, pin):
        import machine
        self._pwm = machine.PWM(machine.Pin(pin), freq=_IDLE_HZ, duty_u16=0)
        self._hz = _IDLE_HZ

    def tone(self, hz):
        if hz <= 0:
            self._pwm.duty_u16(0)
            return
        hz = min(max(int(hz), _MIN_HZ), _MAX_HZ)
        if hz != self._hz:
            # Re-setting an unchanged frequency restarts the timer, which clicks; skip it.
            self._pwm.freq(hz)
            self._hz = hz
        self._pwm.duty_u16(_HALF)


class GpioBuzzer:
    """Active buzzer (or a buzzer module with its own driver) on a GPIO."""

    def __init__(self, pin, active_low=False):
        import machine
        self._on = 0 if active_low else 1
        self._pin = machine.Pin(pin, machine.Pin.OUT, value=1 - self._on)

    def tone(self, hz):
        self._pin.value(self._on if hz > 0 else 1 - self._on)


def make_buzzer(buzzer_cfg):
    if buzzer_cfg["kind"] == "passive_pwm":
        return PwmBuzzer(buzzer_cfg["pin"])
    return GpioBuzzer(buzzer_cfg["pin"], buzzer_cfg.get("active_low", False))
