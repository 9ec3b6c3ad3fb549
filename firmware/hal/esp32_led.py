# ESP32 status LED drivers: one plain GPIO LED (either polarity) or a chain of WS2812/SK6812 pixels.
# Both offer show(rgb): rgb = (r, g, b) 0..255, or None / (0, 0, 0) for dark.
# `machine` and `neopixel` are imported in the constructors so this module imports anywhere.


from micropython import const

_FULL = const(65535)
# 1 kHz: far above visible flicker, and apart from the piezo's 2-4 kHz tones so the two PWM
# channels never want the same timer at different frequencies.
_LED_HZ = const(1000)


def _dark(rgb):
    return rgb is None or not (rgb[0] or rgb[1] or rgb[2])


def _duty(level):
    """0..255 to duty_u16 on a square law: the eye sees brightness roughly logarithmically, so a
    linear duty would make the dim phase look almost as bright as the beat. Never 0 for a lit
    colour: lit must never look dark."""
    return max(1, level * level * _FULL // 65025)


class PlainLed:
    """A single-colour LED on a GPIO. active_low: lit when the pin is low (ESP32-C3 SuperMini GPIO8).

    dim=True (the default) drives it with PWM so its brightness follows the brightest channel: the
    pattern player's never-dark phases (the colour dimmed, e.g. the `ok` heartbeat) then show as a
    faint glow between bright beats, so the rhythm survives on a one-colour LED. dim=False switches
    the pin: any non-dark colour is fully on."""

    def __init__(self, pin, active_low=False, dim=True):
        import machine
        self._low = active_low
        self.can_dim = dim  # the player shows never-dark phases as dark on a switched LED
        # Start dark: value= sets the level before the pin becomes an output, so no flash at boot.
        p = machine.Pin(pin, machine.Pin.OUT, value=1 if active_low else 0)
        self._pin = p
        self._pwm = None
        if dim:
            self._pwm = machine.PWM(p, freq=_LED_HZ, duty_u16=_FULL if active_low else 0)

    def show(self, rgb):
        if self._pwm is None:
            on = not _dark(rgb)
            self._pin.value(int(on) ^ int(self._low))
            return
        duty = 0 if _dark(rgb) else _duty(max(rgb))
        self._pwm.duty_u16(_FULL - duty if self._low else duty)


class PixelLed:
    """WS2812 / SK6812 RGB pixels; every pixel shows the same colour. neopixel.NeoPixel sends the
    bytes in the GRB order these parts expect, so callers always speak (r, g, b)."""

    def __init__(self, pin, count=1, brightness=100):
        import machine
        import neopixel
        self._np = neopixel.NeoPixel(machine.Pin(pin, machine.Pin.OUT), count)
        self._pct = brightness
        self.show(None)

    def show(self, rgb):
        if _dark(rgb):
            c = (0, 0, 0)
        else:
            p = self._pct
            # Round up so a dim colour never scales to 0: a lit pattern must never look dark.
            c = tuple((v * p + 99) // 100 for v in rgb)
        self._np.fill(c)
        self._np.write()


def make_led(led_cfg):
    """Driver for the board config's "led" section (already validated by firmware.core.board)."""
    if led_cfg["kind"] == "plain":
        return PlainLed(led_cfg["pin"], led_cfg.get("active_low", False), led_cfg.get("dim", True))
    return PixelLed(led_cfg["pin"], led_cfg.get("count", 1), led_cfg.get("brightness", 100))
