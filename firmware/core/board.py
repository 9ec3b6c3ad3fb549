# Board config (board_configs/*.json, copied to the board as /board.json): schema and validation.
# Pure: takes parsed JSON, returns a complete dict with defaults, or raises config.ConfigError naming
# the dotted key to fix ("led.pin", "button.pull"), the same error the gateway config uses.
from firmware.core.config import ConfigError

from micropython import const

# A press shorter than this is contact bounce, not a person (tactile switches bounce for < 10 ms).
DEBOUNCE_MS = const(30)
# Long press = self-test. 1.5 s is long enough that a child grabbing the box does not trigger it
# and short enough that a parent does not give up holding.
LONG_PRESS_MS = const(1500)
# How long boot.py looks for a held button. Where the button is also the chip's download strap
# (GPIO0 / GPIO9), holding it *through* reset enters the ROM bootloader instead of MicroPython, so the
# maker presses RESET, lets go, then holds the button: give them 1.5 s for that. Elsewhere the button
# is simply held while plugging in, and 0.3 s of sampling is plenty.
SAFE_WINDOW_STRAP_MS = const(1500)
SAFE_WINDOW_MS = const(300)

LED_KINDS = ("plain", "ws2812", "sk6812")
BUZZER_KINDS = ("passive_pwm", "active")
PULLS = ("up", "down", "none")

# Per chip: usable GPIOs, input-only GPIOs, GPIOs taken by the SPI flash/PSRAM (using them hangs
# the chip), GPIOs without internal pull resistors, and the download-mode strap pin.
CHIPS = {
    # ESP32: 6-11 are the module's flash; 34-39 are input-only and have no pull-ups/downs.
    "esp32": {
        "valid": tuple(range(0, 20)) + (21, 22, 23, 25, 26, 27) + tuple(range(32, 40)),
        "input_only": (34, 35, 36, 37, 38, 39),
        "flash": (6, 7, 8, 9, 10, 11),
        "no_pull": (34, 35, 36, 37, 38, 39),
        "strap": 0,
    },
    # ESP32-S3: 22-25 do not exist; 26-32 are flash (and 33-37 octal PSRAM on R8 modules, not
    # refused because N8/N16 modules without octal PSRAM can use them).
    "esp32s3": {
        "valid": tuple(range(0, 22)) + tuple(range(26, 49)),
        "input_only": (),
        "flash": (26, 27, 28, 29, 30, 31, 32),
        "no_pull": (),
        "strap": 0,
    },
    # ESP32-C3: 0-21; 12-17 are the flash.
    "esp32c3": {
        "valid": tuple(range(0, 22)),
        "input_only": (),
        "flash": (12, 13, 14, 15, 16, 17),
        "no_pull": (),
        "strap": 9,
    },
}


def _need(d, key, path):
    if key not in d:
        raise ConfigError(path + key, "missing")
    return d[key]


def _check_keys(d, allowed, path):
    if type(d) is not dict:
        raise ConfigError(path[:-1] if path else "(top)", "must be a JSON object")
    for k in d:
        if k not in allowed:
            raise ConfigError(path + k, "unknown key")


def _pin(v, key, chip, output):
    if type(v) is not int:
        raise ConfigError(key, "must be a GPIO number")
    if chip is None:
        if v < 0:
            raise ConfigError(key, "must be 0 or more")
        return v
    c = CHIPS[chip]
    if v not in c["valid"]:
        raise ConfigError(key, "GPIO%d does not exist on %s" % (v, chip))
    if v in c["flash"]:
        raise ConfigError(key, "GPIO%d is wired to the flash on %s; using it hangs the chip" % (v, chip))
    if output and v in c["input_only"]:
        raise ConfigError(key, "GPIO%d is input-only on %s and cannot drive an output" % (v, chip))
    return v


def _bool(d, key, path, default):
    v = d.get(key, default)
    if type(v) is not bool:
        raise ConfigError(path + key, "must be true or false")
    return v


def _int(d, key, path, default, lo, hi):
    v = d.get(key, default)
    if type(v) is not int or v < lo or v > hi:
        raise ConfigError(path + key, "must be a whole number between %d and %d" % (lo, hi))
    return v


def _kind(d, key, path, choices):
    v = _need(d, key, path)
    if v not in choices:
        raise ConfigError(path + key, "must be one of " + ", ".join(choices))
    return v


def _led(d, chip):
    p = "led."
    _check_keys(d, ("kind", "pin", "active_low", "count", "brightness", "dim"), p)
    kind = _kind(d, "kind", p, LED_KINDS)
    out = {"kind": kind, "pin": _pin(_need(d, "pin", p), p + "pin", chip, True)}
    if kind == "plain":
        out["active_low"] = _bool(d, "active_low", p, False)
        # dim: drive the LED with PWM so dimmed phases of a pattern glow instead of looking lit.
        out["dim"] = _bool(d, "dim", p, True)
    elif d.get("active_low", False) is not False:
        raise ConfigError(p + "active_low", "only for a plain LED (an RGB LED takes data, not a level)")
    # count: pixels on the data line (all show the same colour); 64 is far more than a box needs.
    out["count"] = _int(d, "count", p, 1, 1, 64)
    # brightness in percent, applied to every colour: a full-power RGB LED lights a dark bedroom.
    out["brightness"] = _int(d, "brightness", p, 100, 1, 100)
    return out


def _buzzer(d, chip):
    p = "buzzer."
    _check_keys(d, ("kind", "pin", "active_low"), p)
    out = {"kind": _kind(d, "kind", p, BUZZER_KINDS),
           "pin": _pin(_need(d, "pin", p), p + "pin", chip, True)}
    # Some active-buzzer modules are "low-level trigger"; a piezo on PWM has no polarity.
    out["active_low"] = _bool(d, "active_low", p, False)
    if out["active_low"] and out["kind"] != "active":
        raise ConfigError(p + "active_low", "only for an active buzzer")
    return out


def _button(d, chip):
    p = "button."
    _check_keys(d, ("pin", "pull", "active_low"), p)
    pin = _pin(_need(d, "pin", p), p + "pin", chip, False)
    pull = d.get("pull", "up")
    if pull not in PULLS:
        raise ConfigError(p + "pull", "must be one of " + ", ".join(PULLS))
    if chip is not None and pull != "none" and pin in CHIPS[chip]["no_pull"]:
        raise ConfigError(p + "pull", "GPIO%d on %s has no internal pull resistor: use \"none\" "
                          "and an external resistor" % (pin, chip))
    return {"pin": pin, "pull": pull, "active_low": _bool(d, "active_low", p, True)}


TOP_KEYS = ("name", "kind", "chip", "led", "buzzer", "button", "long_press_ms", "debounce_ms",
            "safe_mode_window_ms", "notes")


def build(raw):
    """Validate a parsed board config; return it complete with defaults. Raises ConfigError."""
    _check_keys(raw, TOP_KEYS, "")
    name = _need(raw, "name", "")
    if type(name) is not str or not name or len(name) > 40:
        raise ConfigError("name", "must be a non-empty string of at most 40 characters")
    kind = _kind(raw, "kind", "", ("esp32", "host"))
    chip = None
    if kind == "esp32":
        chip = raw.get("chip", "esp32")
        if chip not in CHIPS:
            raise ConfigError("chip", "must be one of " + ", ".join(sorted(CHIPS)))
    elif "chip" in raw:
        raise ConfigError("chip", "only for kind esp32")
    out = {"name": name, "kind": kind, "chip": chip}
    parts = (("led", _led), ("buzzer", _buzzer), ("button", _button))
    for key, fn in parts:
        if key in raw:
            out[key] = fn(raw[key], chip)
        elif kind == "esp32":
            # A board without an LED or buzzer would be dark or quiet: that must only mean "no power".
            raise ConfigError(key, "missing")
        else:
            out[key] = None
    used = {}
    for key, _ in parts:
        if out[key] is not None:
            pin = out[key]["pin"]
            if kind == "esp32" and pin in used:
                raise ConfigError(key + ".pin", "GPIO%d is already used by %s" % (pin, used[pin]))
            used[pin] = key
    out["debounce_ms"] = _int(raw, "debounce_ms", "", DEBOUNCE_MS, 5, 200)
    out["long_press_ms"] = _int(raw, "long_press_ms", "", LONG_PRESS_MS, 500, 10000)
    if out["long_press_ms"] <= 2 * out["debounce_ms"]:
        raise ConfigError("long_press_ms", "must be well above debounce_ms")
    window = SAFE_WINDOW_MS
    if chip is not None and out["button"]["pin"] == CHIPS[chip]["strap"]:
        window = SAFE_WINDOW_STRAP_MS
    out["safe_mode_window_ms"] = _int(raw, "safe_mode_window_ms", "", window, 0, 5000)
    notes = raw.get("notes", "")
    if type(notes) is not str:
        raise ConfigError("notes", "must be a string")
    out["notes"] = notes
    return out


def parse(text):
    """Board config from JSON text (the file's contents; reading the file is the caller's job)."""
    import json
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise ConfigError("(file)", "not valid JSON: %s" % e)
    return build(raw)


def is_rgb(board_cfg):
    led = board_cfg.get("led")
    return led is not None and led["kind"] != "plain"
