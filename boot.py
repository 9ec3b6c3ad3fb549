# Runs at power-on before main.py; MicroPython runs both in the same globals, so SAFE_MODE set here
# is what main.py checks. Safe mode (the button held at power-on, or a file named `safe_mode`) skips
# the gateway and so never starts the watchdog: a maker can always reach the board with mpremote, even
# when the firmware on it crashes or hangs. Nothing here may raise: a boot.py error would still run
# main.py, and then a broken gateway could lock the maker out.
SAFE_MODE = False


def _board_cfg():
    """The raw /board.json (esp32.safe_mode_requested validates what it reads), or None."""
    try:
        import json
        with open("board.json") as f:
            return json.load(f)
    except Exception as e:  # missing or corrupt: only the safe_mode file can ask for safe mode
        print("boot: board.json unusable (%r)" % (e,))
        return None


def _safe_mode():
    try:
        from firmware.hal.esp32 import safe_mode_requested
    except Exception as e:
        # Firmware missing or half-copied (a deploy stopped midway): starting it cannot work.
        print("boot: firmware does not import (%r): safe mode" % (e,))
        return True
    cfg = _board_cfg()
    return bool(safe_mode_requested(cfg if cfg is not None else {}))


try:
    SAFE_MODE = _safe_mode()
except Exception as _e:  # belt and braces: never stop at boot.py
    print("boot: safe-mode check failed (%r); starting the gateway" % (_e,))
    SAFE_MODE = False

if SAFE_MODE:
    print("boot: SAFE MODE: the gateway and its watchdog are not started. "
          "Leave with: mpremote rm :safe_mode + reset (or release the button and reset)")
