# Every shipped board config loads through the firmware's own validator, and each one drives
# distinct, output-capable pins: what a maker relies on before soldering anything.
import json
import os
import sys

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


# --- memory classes (issue 16): each board says what it gives the heap and which build it needs ---
def _deploy():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import deploy
    return deploy


@pytest.mark.parametrize("name", ESP32)
def test_every_board_states_an_honest_memory_class(name):
    mem = _load(name)["memory"]
    assert mem is not None and mem["class"] in ("psram", "plain") and mem["needs"] in ("stock", "frozen")
    need = _deploy().NEED_KIB
    if mem["class"] == "plain":
        # A plain board's budget is what the heap can count on; the .mpy firmware needs more than any
        # plain ESP32 gives, so a plain board must say it needs Nightstand frozen in (whether the frozen
        # firmware fits, with the heap it grows into, `make deploy` measures on the board).
        if mem["heap_kib"] < need["stock"]:
            assert mem["needs"] == "frozen"
    else:
        assert mem["psram_kib"] >= 2048 and mem["needs"] == "stock"


def test_a_psram_board_that_stock_firmware_serves_is_shipped():
    psram = [n for n in ESP32 if _load(n)["memory"]["class"] == "psram" and _load(n)["memory"]["needs"] == "stock"]
    assert "esp32s3_devkitc1_n8r8" in psram
    cfg = _load("esp32s3_devkitc1_n8r8")
    assert (cfg["chip"], cfg["led"]["kind"], cfg["led"]["pin"], cfg["button"]["pin"]) == ("esp32s3", "ws2812", 48, 0)
    assert cfg["memory"]["psram_kib"] == 8192


@pytest.mark.parametrize("change,key,words", [
    ({"class": "lots"}, "memory.class", "psram, plain"),
    ({"class": "plain", "needs": "frozen"}, "memory.heap_kib", "missing"),
    ({"class": "plain", "heap_kib": 4096, "needs": "frozen"}, "memory.heap_kib", "between 16 and 512"),
    ({"class": "psram", "needs": "stock"}, "memory.psram_kib", "missing"),
    ({"class": "psram", "psram_kib": 8192, "needs": "maybe"}, "memory.needs", "stock, frozen"),
    ({"class": "psram", "psram_kib": 8192, "needs": "stock", "heap": 1}, "memory.heap", "unknown"),
])
def test_a_bad_memory_entry_names_the_key(change, key, words):
    with open(os.path.join(DIR, "esp32s3_devkitc1_n8r8.json")) as f:
        raw = json.load(f)
    raw["memory"] = change
    with pytest.raises(ConfigError) as e:
        board.build(raw)
    assert e.value.key == key
    assert words in str(e.value)


def test_pins_taken_by_psram_are_refused():
    with open(os.path.join(DIR, "esp32s3_devkitc1_n8r8.json")) as f:
        raw = json.load(f)
    raw["buzzer"]["pin"] = 35             # octal PSRAM on an R8 module
    with pytest.raises(ConfigError) as e:
        board.build(raw)
    assert e.value.key == "buzzer.pin" and "PSRAM" in str(e.value)
    with open(os.path.join(DIR, "esp32_devkitc_ve.json")) as f:
        raw = json.load(f)
    raw["led"]["pin"] = 16                 # WROVER: GPIO16/17 are the PSRAM's
    with pytest.raises(ConfigError) as e:
        board.build(raw)
    assert e.value.key == "led.pin"
