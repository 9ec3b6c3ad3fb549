# Gateway config: defaults, merge of partial files, and validation that names the bad key.
# The same code runs on the board, in the host runtime and in tools/provision.py.


from firmware.core.checks import ConfigError, bool_ as _bool, int_range as _int_range
from firmware.core.checks import num_range as _num_range, one_of as _one_of, str_ as _str


def _hex_key(v):
    if type(v) is not str:
        return "must be a string of 32 hex digits"
    if v == "":
        return None
    if len(v) != 32:
        return "must be 32 hex digits (16 bytes)"
    for c in v:
        if c not in "0123456789abcdefABCDEF":
            return "must be 32 hex digits (16 bytes)"


def _topic_part(v):
    if type(v) is not str or not v:
        return "must be a non-empty string"
    for c in v:
        if c in "#+" or ord(c) < 33:
            return "must not contain spaces, '#' or '+'"
    if len(v) > 64:
        return "must be at most 64 characters"


def _wifi_list(v):
    if type(v) is not list:
        return "must be a list of {\"ssid\": ..., \"password\": ...}"
    for n in v:
        if type(n) is not dict or type(n.get("ssid")) is not str or not n["ssid"]:
            return "each entry needs a non-empty \"ssid\""
        for k in n:
            if k not in ("ssid", "password"):
                return "unknown field %r in an entry" % k
        if type(n.get("password", "")) is not str:
            return "each \"password\" must be a string"


# Schema: nested dicts mirror the config; a leaf is (default, checker).
SCHEMA = {
    "gateway_id": ("bedroom", _topic_part),
    "sensor": {
        "kind": ("broadcast", _one_of("broadcast", "cgms")),
        "id": (200133374, _int_range(0, 0xFFFFFFFF)),
        "bind_key": ("", _hex_key),
        "allow_plain": (False, _bool),
        "address": ("", _str(17)),          # CGMS: BLE address "aa:bb:cc:dd:ee:ff"
        "passkey": (0, _int_range(0, 999999)),  # CGMS: bonding passkey
    },
    "mqtt": {
        "host": ("127.0.0.1", _str(253, False)),
        "port": (1883, _int_range(1, 65535)),
        "prefix": ("nightstand", _topic_part),
        "keepalive": (30, _int_range(5, 600)),
        "user": ("", _str(64)),
        "password": ("", _str(128)),
        "timeout_s": (5, _num_range(0.05, 60)),  # real seconds, never scaled by the sim clock
        "tls": (False, _bool),              # TLS with CERT_REQUIRED against mqtt.ca
        "ca": ("", _str(128)),              # path of the CA certificate (PEM) on the board
        "server_name": ("", _str(253)),     # name the broker's certificate must carry; "" = host
        "ha_discovery": (True, _bool),      # Home Assistant MQTT discovery (retained)
        "ha_prefix": ("homeassistant", _topic_part),
    },
    "silence": {
        "sensor_after_s": (660, _int_range(60, 7200)),
        "cloud_after_s": (60, _int_range(10, 3600)),
        # false: cloud_silent is only shown; true: it also chirps gently (60 ms once a minute). Never
        # louder: the bedside alarm still works without the cloud (the pattern table, patterns.py).
        "cloud_chirp": (False, _bool),
    },
    "wifi": {
        "networks": ([], _wifi_list),
    },
}

# Keys whose values never appear in a log, topic or event.
SECRET_KEYS = ("sensor.bind_key", "mqtt.password", "wifi.networks")

# Authenticated remote commands: their keys (commands.secret, commands.max_age_s) live with the code
# that checks them.
from firmware.core.commands_schema import COMMANDS_SCHEMA_EXTRA, SECRET_KEYS_EXTRA  # noqa: E402

SCHEMA.update(COMMANDS_SCHEMA_EXTRA)
SECRET_KEYS = SECRET_KEYS + SECRET_KEYS_EXTRA

# Alarm thresholds (mg/dL or mmol/L), persistence, snooze, escalation and the night schedule live with
# the alarm engine (its boot-only checkers in alarm_schema.py).
from firmware.core.alarm_schema import ALARM_SCHEMA_EXTRA, check as _check_alarms  # noqa: E402

SCHEMA["alarms"] = ALARM_SCHEMA_EXTRA["alarms"]
SCHEMA["night"] = dict(ALARM_SCHEMA_EXTRA["night"])
# Night mode needs local time: the board's NTP clock is UTC, so the family gives their offset.
SCHEMA["night"]["utc_offset_min"] = (0, _int_range(-720, 840))


def defaults(schema=SCHEMA):
    out = {}
    for k, spec in schema.items():
        if type(spec) is dict:
            out[k] = defaults(spec)
        else:
            d = spec[0]
            out[k] = list(d) if type(d) is list else d
    return out


def merge(base, over, schema=SCHEMA, path=""):
    """Return base updated with over; refuses unknown keys and bad values by dotted name."""
    if type(over) is not dict:
        raise ConfigError(path or "(top)", "must be a JSON object")
    out = dict(base)
    for k, v in over.items():
        key = path + k
        spec = schema.get(k)
        if spec is None:
            raise ConfigError(key, "unknown key")
        if type(spec) is dict:
            out[k] = merge(base.get(k, {}), v, spec, key + ".")
        else:
            why = spec[1](v)
            if why:
                raise ConfigError(key, why)
            out[k] = v
    return out


def check_consistency(cfg):
    """Rules that span keys. Raises ConfigError naming the key to fix."""
    _check_alarms(cfg["alarms"])  # after mmol/L -> mg/dL conversion; raises ConfigError
    from firmware.core.alarm_config import to_mgdl
    a = to_mgdl(cfg["alarms"])
    if a["dead_band"] >= (a["high"] - a["low"]) / 2:
        raise ConfigError("alarms.dead_band", "must be smaller than half the low..high range")
    s = cfg["sensor"] or {"kind": None}  # None: no source uses the box's radio
    if s["kind"] == "broadcast" and not s["bind_key"] and not s["allow_plain"]:
        raise ConfigError("sensor.bind_key", "needed unless sensor.allow_plain is true")
    if s["kind"] == "cgms" and not s["address"]:
        raise ConfigError("sensor.address", "needed when sensor.kind is cgms")
    if cfg["mqtt"]["tls"] and not cfg["mqtt"]["ca"]:
        raise ConfigError("mqtt.ca", "needed when mqtt.tls is true (the CA that signed the broker)")


def build(*layers):
    """Defaults, then each layer (parsed JSON objects, e.g. config then secrets), then checks.

    cfg["sources"] is always the list of sources (docs/sources.md); cfg["sensor"] is the one heard by
    the box's own radio in the old `sensor` shape (or None when every source is on the network)."""
    cfg = defaults()
    src_lists, sensor_given = [], False
    for layer in layers:
        if layer is not None:
            if type(layer) is dict and "sources" in layer:
                layer = dict(layer)
                src_lists.append(layer.pop("sources"))
            sensor_given = sensor_given or (type(layer) is dict and "sensor" in layer)
            cfg = merge(cfg, layer)
    if src_lists:
        from firmware.core import sources_schema as ss
        if sensor_given:
            raise ConfigError("sensor, sources", "give one of them: `sensor` is the old single-source "
                              "form of a one-item `sources` list; move the sensor into `sources`")
        cfg["sources"] = ss.check(ss.merge_layers(src_lists))
        radio = [s for s in cfg["sources"] if s["kind"] in ss.RADIO_KINDS]
        cfg["sensor"] = ss.as_sensor(radio[0], cfg["sensor"]) if radio else None
    check_consistency(cfg)
    if not src_lists:
        src = {"name": cfg["sensor"]["kind"]}
        src.update(cfg["sensor"])
        cfg["sources"] = [src]
    return cfg


def redact(cfg, schema=SCHEMA, path=""):
    """A copy safe to log or publish: secret values replaced by "***"."""
    out = {}
    for k, v in cfg.items():
        key = path + k
        if key in SECRET_KEYS and v:
            out[k] = "***"
        elif key == "sources" and type(v) is list:
            from firmware.core.sources_schema import redact as _redact_sources
            out[k] = _redact_sources(v)
        elif type(v) is dict:
            out[k] = redact(v, schema.get(k, {}), key + ".")
        else:
            out[k] = v
    return out
