# ESP32 status LED drivers: one plain GPIO LED (either polarity) or a chain of WS2812/SK6812 pixels.
# Both offer show(rgb): rgb = (r, g, b) 0..255, or None / (0, 0, 0) for dark.
# `machine` and `neopixel` are imported in the constructors so this module imports anywhere.


def _dark(rgb):
    return rgb is None or not (rgb[0] or rgb[1] or rgb[2])


class PlainLed:
    """A single-colour LED on a GPIO. A plain LED lights for any non-dark colour (rhythm carries
    the meaning). active_low: the LED lights when the pin is low (e.g. ESP32-C3 SuperMini GPIO8)."""

    def __init__(self, pin, active_low=False):
        import machine
        self._on = 0 if active_low else 1
        # Start dark: value= sets the level before the pin becomes an output, so no flash at boot.
        self._pin = machine.Pin(pin, machine.Pin.OUT, value=1 - self._on)

    def show(self, rgb):
        self._pin.value(1 - self._on if _dark(rgb) else self._on)


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
        return PlainLed(led_cfg["pin"], led_cfg.get("active_low", False))
    return PixelLed(led_cfg["pin"], led_cfg.get("count", 1), led_cfg.get("brightness", 100))
