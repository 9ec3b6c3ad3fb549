# Board config (board_configs/*.json, copied to the board as /board.json): schema and validation, in the
# one config idiom of checks.py (the gateway config's too): a schema per part (led, buzzer, button), then
# the rules that depend on the chip or span parts. Pure: takes parsed JSON, returns a complete dict with
# defaults, or raises ConfigError naming the dotted key to fix ("led.pin", "button.pull").
from micropython import const

from firmware.core.checks import REQUIRED, ConfigError, apply, bool_, int_range, one_of, or_none, str_

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


# Memory class (issue 16): what the board gives MicroPython's heap, and which Nightstand build it needs.
# "psram": the heap lives in PSRAM (megabytes): stock firmware + the .mpy files fit. "plain": internal RAM
# only; heap_kib is the Python heap the board can count on with Wi-Fi, BLE and TLS running (a plain ESP32
# starts MicroPython with ~56 KiB). needs: "stock" (stock MicroPython + `make deploy`'s .mpy files) or
# "frozen" (firmware built with firmware/manifest.py). tools/deploy.py measures the real board against it.
MEMORY_CLASSES = ("psram", "plain")
MEMORY_NEEDS = ("stock", "frozen")
# PSRAM takes pins of its own: on an ESP32 WROVER GPIO16/17, on an S3 module with octal PSRAM (R8 and up,
# psram_kib >= 8192) GPIO33-37.
PSRAM_PINS = {"esp32": ((0, (16, 17)),), "esp32s3": ((8192, (33, 34, 35, 36, 37)),)}


def _psram_pins(chip, kib):
    out = ()
    for at_least, pins in PSRAM_PINS.get(chip, ()):
        if kib >= at_least:
            out += pins
    return out


def _gpio(v):
    if type(v) is not int:
        return "must be a GPIO number"
    if v < 0:
        return "must be 0 or more"


def _text(v):
    if type(v) is not str:
        return "must be a string"


_PARTS = ("led", "buzzer", "button")
_NESTED = _PARTS + ("memory",)


def _schemas():
    """The schemas, built per call: board.build runs at boot only, so a running board keeps none."""
    return {
        "": {
            "name": (REQUIRED, str_(40, False)),
            "kind": (REQUIRED, one_of("esp32", "host")),
            "chip": (None, one_of(*sorted(CHIPS))),           # esp32 when kind is esp32
            "debounce_ms": (DEBOUNCE_MS, int_range(5, 200)),
            "long_press_ms": (LONG_PRESS_MS, int_range(500, 10000)),
            "safe_mode_window_ms": (None, or_none(int_range(0, 5000))),  # by the button's pin, see SAFE_WINDOW_*
            "notes": ("", _text),
        },
        "led": {
            "kind": (REQUIRED, one_of(*LED_KINDS)),
            "pin": (REQUIRED, _gpio),
            "active_low": (False, bool_),       # plain LED only: an RGB LED takes data, not a level
            # plain LED only: drive it with PWM so dimmed phases of a pattern glow instead of looking lit
            "dim": (True, bool_),
            # pixels on the data line (all show the same colour); 64 is far more than a box needs
            "count": (1, int_range(1, 64)),
            # percent, applied to every colour: a full-power RGB LED lights a dark bedroom
            "brightness": (100, int_range(1, 100)),
        },
        "buzzer": {
            "kind": (REQUIRED, one_of(*BUZZER_KINDS)),
            "pin": (REQUIRED, _gpio),
            # Some active-buzzer modules are "low-level trigger"; a piezo on PWM has no polarity.
            "active_low": (False, bool_),
        },
        "button": {
            "pin": (REQUIRED, _gpio),
            "pull": ("up", one_of(*PULLS)),
            "active_low": (True, bool_),
        },
        "memory": {
            "class": (REQUIRED, one_of(*MEMORY_CLASSES)),
            "needs": (REQUIRED, one_of(*MEMORY_NEEDS)),
            # 16 KiB runs nothing useful; internal RAM tops out at 512 KiB on any ESP32 family chip
            "heap_kib": (None, or_none(int_range(16, 512))),
            # 2 MiB (R2) to 32 MiB: the PSRAM parts MicroPython's esp32 port supports
            "psram_kib": (None, or_none(int_range(2048, 32768))),
        },
    }


def _memory(m, chip, used):
    """Rules of the memory part that span its keys or the pins; m is the part after its schema."""
    if m["class"] == "psram":
        if m["psram_kib"] is None:
            raise ConfigError("memory.psram_kib", "missing: the PSRAM size in KiB, e.g. 8192 for an R8 module")
        if m["heap_kib"] is not None:
            raise ConfigError("memory.heap_kib", "only for class plain (a PSRAM board's heap is its PSRAM)")
        taken = _psram_pins(chip, m["psram_kib"])
        for pin, key in used.items():
            if pin in taken:
                raise ConfigError(key + ".pin", "GPIO%d is wired to the PSRAM on this %s board" % (pin, chip))
    else:
        if m["heap_kib"] is None:
            raise ConfigError("memory.heap_kib", "missing: the Python heap in KiB the board can count on")
        if m["psram_kib"] is not None:
            raise ConfigError("memory.psram_kib", "only for class psram")


def _pin_on(chip, v, key, output):
    c = CHIPS[chip]
    if v not in c["valid"]:
        raise ConfigError(key, "GPIO%d does not exist on %s" % (v, chip))
    if v in c["flash"]:
        raise ConfigError(key, "GPIO%d is wired to the flash on %s; using it hangs the chip" % (v, chip))
    if output and v in c["input_only"]:
        raise ConfigError(key, "GPIO%d is input-only on %s and cannot drive an output" % (v, chip))


def build(raw):
    """Validate a parsed board config; return it complete with defaults. Raises ConfigError."""
    schemas = _schemas()
    if type(raw) is not dict:
        raise ConfigError("(top)", "must be a JSON object")
    top = {}
    for k in raw:
        if k not in _NESTED:
            top[k] = raw[k]
    out = apply(schemas[""], top)
    kind = out["kind"]
    if kind == "esp32":
        if out["chip"] is None:
            out["chip"] = "esp32"
    elif "chip" in raw:
        raise ConfigError("chip", "only for kind esp32")
    chip = out["chip"]
    for key in _PARTS:
        if key in raw:
            out[key] = apply(schemas[key], raw[key], key + ".")
        elif kind == "esp32":
            # A board without an LED or buzzer would be dark or quiet: that must only mean "no power".
            raise ConfigError(key, "missing")
        else:
            out[key] = None
        if out[key] is not None and chip is not None:
            _pin_on(chip, out[key]["pin"], key + ".pin", key != "button")
    # Rules that span keys, each naming the key to fix.
    led, buzzer, button = out["led"], out["buzzer"], out["button"]
    if led is not None and led["kind"] != "plain":
        if led["active_low"]:
            raise ConfigError("led.active_low", "only for a plain LED (an RGB LED takes data, not a level)")
        del led["active_low"], led["dim"]
    if buzzer is not None and buzzer["active_low"] and buzzer["kind"] != "active":
        raise ConfigError("buzzer.active_low", "only for an active buzzer")
    if button is not None and chip is not None and button["pull"] != "none" \
            and button["pin"] in CHIPS[chip]["no_pull"]:
        raise ConfigError("button.pull", "GPIO%d on %s has no internal pull resistor: use \"none\" "
                          "and an external resistor" % (button["pin"], chip))
    used = {}
    for key in _PARTS:
        if out[key] is not None:
            pin = out[key]["pin"]
            if kind == "esp32" and pin in used:
                raise ConfigError(key + ".pin", "GPIO%d is already used by %s" % (pin, used[pin]))
            used[pin] = key
    # Optional here so a board.json written before issue 16 still boots; tools/deploy.py requires it.
    mem = raw.get("memory")
    out["memory"] = None if mem is None else apply(schemas["memory"], mem, "memory.")
    if out["memory"] is not None:
        _memory(out["memory"], chip, used)
    if out["long_press_ms"] <= 2 * out["debounce_ms"]:
        raise ConfigError("long_press_ms", "must be well above debounce_ms")
    if out["safe_mode_window_ms"] is None:
        strap = chip is not None and button["pin"] == CHIPS[chip]["strap"]
        out["safe_mode_window_ms"] = SAFE_WINDOW_STRAP_MS if strap else SAFE_WINDOW_MS
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
