# Loads config.json + secrets.json through the core validator. A corrupt or invalid file names the bad
# key and the last good config is kept (a copy in the data dir), so a typo never silences the alarm.
import json
import os

from firmware.core import config
from firmware.shell.files import write_atomic

_LAST_GOOD = "/config.last_good.json"

# The modules only the config load needs: this loader, the validator and every schema table. The app
# drops them once the config is loaded (firmware/shell/app.py); tools/heap_profile.py reports them as
# boot only. A new schema module the loader imports belongs here, and so does any other module only boot
# needs: the board loader and the board config's validator (firmware/hal/esp32.py imports it inside).
BOOT_ONLY = ("firmware.shell.config_store", "firmware.core.config", "firmware.core.commands_schema",
             "firmware.core.alarm_schema", "firmware.core.checks", "firmware.core.sources_schema",
             "firmware.core.sensor_schema", "firmware.core.board", "firmware.hal.loader")


def _read(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None  # a missing file is an empty layer: defaults apply
    try:
        return json.loads(text)
    except ValueError:
        raise config.ConfigError(path, "is not valid JSON")


def _paths():
    env = os.getenv if hasattr(os, "getenv") else (lambda k: None)
    return env("NIGHTSTAND_CONFIG") or "config.json", env("NIGHTSTAND_SECRETS") or "secrets.json"


def load(data_dir):
    """(cfg, error): error is None, or the ConfigError that made us fall back."""
    cfg_path, secrets_path = _paths()
    try:
        layers = (_read(cfg_path), _read(secrets_path))
        cfg = config.build(*layers)
    except config.ConfigError as e:
        return _fallback(data_dir), e
    _save_last_good(data_dir, layers)
    return cfg, None


def _fallback(data_dir):
    try:
        return config.build(_read(data_dir + _LAST_GOOD))
    except Exception:
        # No good config ever: defaults keep the alarm engine and silence watch running; the
        # sensor refuses every frame until the family provisions a key, and `fault` shows why.
        return config.defaults()


def _save_last_good(data_dir, layers):
    merged = {}
    for layer in layers:
        if layer:
            for k, v in layer.items():
                if type(v) is dict and type(merged.get(k)) is dict:
                    merged[k] = dict(merged[k], **v)
                else:
                    merged[k] = v
    text = json.dumps(merged)
    path = data_dir + _LAST_GOOD
    try:
        with open(path) as f:
            if f.read() == text:
                return  # unchanged: no flash write at boot
    except OSError:
        pass
    try:
        write_atomic(path, text)
    except OSError:
        pass  # no writable data dir: the gateway still runs on the config it has
