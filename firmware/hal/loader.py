# Picks the board adapter from the board config: NIGHTSTAND_BOARD (a path or a name under
# board_configs/), else /board.json as `make deploy` writes it on a board.
import json
import os


def board_config_path():
    name = os.getenv("NIGHTSTAND_BOARD") if hasattr(os, "getenv") else None
    if not name:
        return "board.json"
    if name.endswith(".json"):
        return name
    return "board_configs/" + name + ".json"


def load_board():
    with open(board_config_path()) as f:
        cfg = json.load(f)
    if cfg.get("kind") == "host":
        from firmware.hal.host import HostBoard
        return HostBoard(cfg)
    from firmware.hal.esp32 import Esp32Board
    return Esp32Board(cfg)
