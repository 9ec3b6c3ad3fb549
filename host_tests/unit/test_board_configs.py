# Every shipped board config loads through the firmware's own validator, and each one drives
# distinct, output-capable pins: what a maker relies on before soldering anything.
import json
import os

import pytest

from firmware.core import board
from firmware.core.config import ConfigError

from host_tests.paths import ROOT
DIR = os.path.join(ROOT, "board_configs")
NAMES = sorted(f[:-5] for f in os.listdir(DIR) if f.endswith(".json"))
ESP32 = [n for n in NAMES if json.load(open(os.path.join(DIR, n + ".json"))).get("kind") == "esp32"]


def _load(name):
    with open(os.path.join(DIR, name + ".json")) as f:
        return board.parse(f.read())


@pytest.mark.parametrize("name", NAMES)
def test_every_board_config_validates(name):
    cfg = _load(name)
    assert cfg["name"]
    assert cfg["kind"] in ("esp32", "host")


def test_at_least_three_real_boards_of_each_led_family():
    assert len(ESP32) >= 4
    kinds = {_load(n)["led"]["kind"] for n in ESP32}
    assert "plain" in kinds and ("ws2812" in kinds or "sk6812" in kinds)
    chips = {_load(n)["chip"] for n in ESP32}
    assert chips >= {"esp32", "esp32s3", "esp32c3"}


@pytest.mark.parametrize("name,expect", [
    ("esp32_devkitc", {"led": ("plain", 23), "button": 0, "chip": "esp32"}),
    ("m5_atom_lite", {"led": ("sk6812", 27), "button": 39, "chip": "esp32"}),
    ("esp32s3_devkitc1", {"led": ("ws2812", 48), "button": 0, "chip": "esp32s3"}),
    ("esp32c3_supermini", {"led": ("plain", 8), "button": 9, "chip": "esp32c3"}),
])
def test_known_boards_match_their_hardware(name, expect):
    cfg = _load(name)
    assert (cfg["led"]["kind"], cfg["led"]["pin"]) == expect["led"]
    assert cfg["button"]["pin"] == expect["button"]
    assert cfg["chip"] == expect["chip"]


def test_supermini_led_is_active_low_and_atom_button_has_no_internal_pull():
    assert _load("esp32c3_supermini")["led"]["active_low"] is True
    assert _load("m5_atom_lite")["button"]["pull"] == "none"


def test_a_broken_copy_names_the_key(tmp_path):
    with open(os.path.join(DIR, "m5_atom_lite.json")) as f:
        raw = json.load(f)
    raw["buzzer"]["pin"] = 39            # a maker moving the piezo to an input-only pin
    with pytest.raises(ConfigError) as e:
        board.build(raw)
    assert e.value.key == "buzzer.pin"
    assert "input-only" in str(e.value)
