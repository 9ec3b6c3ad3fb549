# Gateway config: defaults, merge of partial files, and validation that names the bad key, in the one
# idiom of checks.py. SCHEMA is composed of the components' schemas; each key is declared once, with
# the code it configures where that code keeps its own (commands_schema.py, alarm_schema.py).
# The same code runs on the board, in the host runtime and in tools/provision.py.
from firmware.core import alarm_schema, commands_schema, sensor_schema
from firmware.core.checks import ConfigError, bool_ as _bool, defaults as _defaults, int_range as _int_range
from firmware.core.checks import merge as _merge, num_range as _num_range, str_ as _str


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
    "sensor": sensor_schema.SCHEMA["sensor"],
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
    # Authenticated remote commands (commands.secret, commands.max_age_s).
    "commands": commands_schema.SCHEMA["commands"],
    # Alarm thresholds (mg/dL or mmol/L), persistence, snooze, escalation; the night schedule.
    "alarms": alarm_schema.SCHEMA["alarms"],
    "night": alarm_schema.SCHEMA["night"],
}

# Keys whose values never appear in a log, topic or event.
SECRET_KEYS = ("sensor.bind_key", "mqtt.password", "wifi.networks") + commands_schema.SECRET_KEYS


def defaults(schema=SCHEMA):
    return _defaults(schema)


def merge(base, over, schema=SCHEMA, path=""):
    """Return base updated with over; refuses unknown keys and bad values by dotted name."""
    return _merge(base, over, schema, path)


def check_consistency(cfg):
    """Rules that span keys. Raises ConfigError naming the key to fix."""
    alarm_schema.check(cfg["alarms"])  # after mmol/L -> mg/dL conversion; raises ConfigError
    from firmware.core.alarm_config import to_mgdl
    a = to_mgdl(cfg["alarms"])
    if a["dead_band"] >= (a["high"] - a["low"]) / 2:
        raise ConfigError("alarms.dead_band", "must be smaller than half the low..high range")
    s = cfg["sensor"] or {"kind": None}  # None: no source uses the box's radio
    if s["kind"] == "broadcast" and not s["bind_key"] and not s["allow_plain"]:
        raise ConfigError("sensor.bind_key", "needed unless sensor.allow_plain is true")
    if s["kind"] == "cgms" and not s["address"]:
        raise ConfigError("sensor.address", "needed when sensor.kind is cgms")
    if s["kind"] == "dexcom_g6" and not s["transmitter_id"]:
        raise ConfigError("sensor.transmitter_id", "needed when sensor.kind is dexcom_g6")
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
