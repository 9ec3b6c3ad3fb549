# Board-config validation and the button's press detector: pure, so the same tests run under pytest
# and under the MicroPython unix port (host_tests/mp_runner.py test_board).
from firmware.core import board
from firmware.core.config import ConfigError
from firmware.hal.esp32_button import PressDetector


def _devkit(**over):
    raw = {
        "name": "ESP32-DevKitC", "kind": "esp32", "chip": "esp32",
        "led": {"kind": "plain", "pin": 23, "active_low": False},
        "buzzer": {"kind": "passive_pwm", "pin": 25},
        "button": {"pin": 0, "pull": "up", "active_low": True},
    }
    for k, v in over.items():
        if type(v) is dict and type(raw.get(k)) is dict:
            d = dict(raw[k])
            d.update(v)
            raw[k] = d
        elif v is None:
            del raw[k]
        else:
            raw[k] = v
    return raw


def _key(raw):
    try:
        board.build(raw)
    except ConfigError as e:
        assert e.key in str(e)          # the message a maker reads names the key too
        return e.key
    return None


def test_good_config_gets_defaults():
    cfg = board.build(_devkit())
    assert cfg["long_press_ms"] == 1500
    assert cfg["debounce_ms"] == 30
    assert cfg["led"]["brightness"] == 100
    # BOOT (GPIO0) is the download strap: the maker needs time to press it after RESET.
    assert cfg["safe_mode_window_ms"] == 1500
    assert board.build(cfg) == cfg      # validating twice (tools, then the board) changes nothing


def test_bad_values_name_their_key():
    assert _key(_devkit(led={"kind": "rgbw"})) == "led.kind"
    assert _key(_devkit(led={"pin": "D4"})) == "led.pin"
    assert _key(_devkit(led={"active_low": "yes"})) == "led.active_low"
    assert _key(_devkit(buzzer={"kind": "speaker"})) == "buzzer.kind"
    assert _key(_devkit(button={"pull": "sideways"})) == "button.pull"
    assert _key(_devkit(button={"colour": 1})) == "button.colour"
    assert _key(_devkit(kind="esp8266")) == "kind"
    assert _key(_devkit(chip="esp32h2")) == "chip"
    assert _key(_devkit(long_press_ms=50)) == "long_press_ms"
    assert _key(_devkit(name="")) == "name"
    assert _key(_devkit(wifi={})) == "wifi"


def test_missing_outputs_are_refused():
    # A box without its LED or buzzer would be dark or quiet: that must only ever mean "no power".
    assert _key(_devkit(buzzer=None)) == "buzzer"
    assert _key(_devkit(led=None)) == "led"
    raw = _devkit()
    del raw["led"]["pin"]
    assert _key(raw) == "led.pin"


def test_pins_checked_against_the_chip():
    assert _key(_devkit(buzzer={"pin": 36})) == "buzzer.pin"       # ESP32 34-39: input only
    assert _key(_devkit(led={"pin": 7})) == "led.pin"              # ESP32 6-11: the flash
    assert _key(_devkit(led={"pin": 24})) == "led.pin"             # no GPIO24 on the ESP32
    assert _key(_devkit(button={"pin": 39})) == "button.pull"      # no internal pull-up there
    assert _key(_devkit(button={"pin": 39, "pull": "none"})) is None
    assert _key(_devkit(buzzer={"pin": 23})) == "buzzer.pin"       # already the LED's
    s3_led = {"kind": "ws2812", "pin": 48, "active_low": False}
    assert _key(_devkit(chip="esp32s3", led=s3_led)) == "buzzer.pin"     # no GPIO25 on the S3
    assert _key(_devkit(chip="esp32s3", led=s3_led, buzzer={"pin": 4})) is None
    assert _key(_devkit(chip="esp32c3", led={"pin": 48})) == "led.pin"
    assert _key(_devkit(chip="esp32c3", led={"pin": 14})) == "led.pin"   # C3 flash
    assert _key(_devkit(chip="esp32s3", led=s3_led, buzzer={"pin": 36})) is None  # an output on the S3


def test_rgb_led_has_no_polarity():
    assert _key(_devkit(led={"kind": "sk6812", "pin": 27, "active_low": True})) == "led.active_low"
    assert board.is_rgb(board.build(_devkit(led={"kind": "sk6812", "pin": 27, "active_low": False})))
    assert not board.is_rgb(board.build(_devkit()))


def test_host_board_needs_no_chip_pins():
    cfg = board.build({"name": "host", "kind": "host",
                       "led": {"kind": "ws2812", "pin": 0, "active_low": False},
                       "buzzer": {"kind": "passive_pwm", "pin": 1},
                       "button": {"pin": 2, "pull": "up", "active_low": True}})
    assert cfg["chip"] is None
    assert _key({"name": "host", "kind": "host", "chip": "esp32"}) == "chip"


def test_bad_json_text_is_a_config_error():
    try:
        board.parse("{\"name\": ")
    except ConfigError as e:
        assert e.key == "(file)"
        return
    assert False, "bad JSON accepted"


def _run(samples, deb=30, long_ms=1500):
    """samples: list of (ms, pressed); returns [(ms, result)] for non-None results."""
    d = PressDetector(deb, long_ms)
    out = []
    for t, p in samples:
        r = d.update(t, p)
        if r:
            out.append((t, r))
    return out


def _timeline(end, down, step=10, t0=0):
    return [((t0 + t) & 0x3FFFFFFF, any(a <= t < b for a, b in down)) for t in range(0, end, step)]


def test_short_press_reported_on_release():
    assert _run(_timeline(1000, [(100, 300)])) == [(330, "short")]


def test_long_press_reported_once_while_held():
    assert _run(_timeline(6000, [(100, 5000)])) == [(1600, "long")]


def test_bounce_shorter_than_debounce_is_ignored():
    assert _run(_timeline(1000, [(100, 120), (200, 215)])) == []


def test_two_presses_two_events():
    got = _run(_timeline(3000, [(100, 300), (1000, 2800)]))
    assert got == [(330, "short"), (2500, "long")]


def test_press_across_ticks_wrap():
    got = _run(_timeline(3000, [(100, 2000)], t0=0x3FFFFFFF - 1000))
    assert [r for _, r in got] == ["long"]
