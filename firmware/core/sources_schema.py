# The `sources` config list (docs/sources.md): one schema per source kind, the merge of layers by
# source name, and the checks that name the bad entry ("sources[1].port"). Boot-only, like the other
# schema modules: app.py drops it with the config loader.
#
# Adding a kind is one entry in KINDS: {key: (default, checker)} plus, if it needs keys that have no
# usable default, a line in REQUIRED. RADIO_KINDS are heard over the air by the box's own radio (at most
# one: it has one radio); every other kind is polled over the network by firmware/shell/http_source.py.
from firmware.core import sensor_schema
from firmware.core.checks import ConfigError, int_range as _int_range, num_range as _num_range, str_ as _str


def _host(v):
    if type(v) is not str or not v:
        return "must be the phone's address, e.g. \"192.168.1.23\""
    if len(v) > 253:
        return "must be at most 253 characters"
    for c in v:
        if c in "/:@ ?#" or ord(c) < 33:
            return "must be a bare address or name (no scheme, port or path)"


def _url(v):
    if type(v) is not str or not (v.startswith("http://") or v.startswith("https://")):
        return "must start with http:// or https://"
    if len(v) > 200:
        return "must be at most 200 characters"
    host = v.split("://", 1)[1].split("/", 1)[0]
    if not host or host.startswith(":") or "@" in host:
        return "must name a host (credentials go in secret or token, not in the URL)"
    for c in v:
        if ord(c) < 33:
            return "must not contain spaces"


# Poll periods: below 10 s the phone's one-connection server (xDrip+ listens with a backlog of 1) is
# kept busy for nothing (readings come every 1-5 min); above 10 min a lost reading is seen too late.
_POLL = (60, _int_range(10, 600))
# Real seconds for each network step (connect+send, each read), never scaled by the simulator's clock.
# 5 s: a phone on Wi-Fi power save answers within ~1 s, xDrip+ sleeps 1 s+ before a 403; a longer wait
# only delays noticing a hung phone (the alarm path never waits on it).
_TIMEOUT = (5, _num_range(0.05, 30))

def _radio(*keys):
    # the radio kinds take the keys (defaults and checks) of the single `sensor` object
    return dict((k, sensor_schema.SCHEMA["sensor"][k]) for k in keys)


KINDS = {
    "broadcast": _radio("id", "bind_key", "allow_plain"),
    "cgms": _radio("address", "passkey"),
    "dexcom_g6": _radio("transmitter_id", "slot", "allow_0e"),
    "phone": {"host": ("", _host), "port": (17580, _int_range(1, 65535)), "secret": ("", _str(128)),
              "poll_s": _POLL, "timeout_s": _TIMEOUT},
    # ca: the CA certificate (PEM or DER path on the board) that signed an https:// Nightscout
    "nightscout": {"url": ("", _url), "secret": ("", _str(128)), "token": ("", _str(128)),
                   "poll_s": _POLL, "timeout_s": _TIMEOUT, "ca": ("", _str(128))},
}
RADIO_KINDS = ("broadcast", "cgms", "dexcom_g6")
REQUIRED = {"cgms": ("address",), "dexcom_g6": ("transmitter_id",), "phone": ("host",), "nightscout": ("url",)}
SECRET_FIELDS = ("bind_key", "secret", "token")


def _name(v):
    if type(v) is not str or not v or len(v) > 24:
        return "must be a short non-empty name (at most 24 characters)"
    for c in v:
        if not (c.isalpha() or c.isdigit() or c in "_-"):
            return "may hold only letters, digits, '_' and '-'"


def merge_layers(lists):
    """One list from the `sources` lists of several layers (config, then secrets): an entry whose
    `name` (default: its kind) matches an earlier one updates it, key by key; others are appended."""
    out = []
    for i_layer, lst in enumerate(lists):
        if type(lst) is not list or not lst:
            raise ConfigError("sources", "must be a non-empty list of source objects")
        for i, e in enumerate(lst):
            key = "sources[%d]" % i
            if type(e) is not dict:
                raise ConfigError(key, "must be a JSON object with a \"kind\"")
            name = e.get("name", e.get("kind"))
            if type(name) is not str:
                raise ConfigError(key + ".name" if "name" in e else key + ".kind", "must be a string")
            hit = None
            for o in out:
                if o.get("name", o.get("kind")) == name and name is not None:
                    hit = o
            if hit is not None and i_layer > 0:
                hit.update(e)
            elif hit is not None:
                raise ConfigError(key + ".name", "%r is used twice; give each source its own name" % name)
            else:
                out.append(dict(e))
    return out


def check(lst):
    """Validated entries with defaults filled in, in the given order. Raises ConfigError."""
    out, radio = [], None
    for i, e in enumerate(lst):
        key = "sources[%d]" % i
        kind = e.get("kind")
        spec = KINDS.get(kind) if type(kind) is str else None
        if spec is None:
            raise ConfigError(key + ".kind", "must be one of " + ", ".join(sorted(KINDS)))
        name = e.get("name", kind)
        why = _name(name)
        if why:
            raise ConfigError(key + ".name", why)
        full = {"kind": kind, "name": name}
        for k, leaf in spec.items():
            full[k] = leaf[0]  # the default
        for k, v in e.items():
            if k in ("kind", "name"):
                continue
            if k not in spec:
                raise ConfigError("%s.%s" % (key, k), "unknown key for a %s source" % kind)
            why = spec[k][1](v)
            if why:
                raise ConfigError("%s.%s" % (key, k), why)
            full[k] = v
        for k in REQUIRED.get(kind, ()):
            if not full[k]:
                raise ConfigError("%s.%s" % (key, k), "needed for a %s source" % kind)
        if kind == "broadcast" and not full["bind_key"] and not full["allow_plain"]:
            raise ConfigError(key + ".bind_key", "needed unless allow_plain is true")
        if kind == "nightscout" and full["secret"] and full["token"]:
            raise ConfigError(key + ".token", "give secret or token, not both")
        if kind == "nightscout" and full["url"].startswith("https://") and not full["ca"]:
            raise ConfigError(key + ".ca", "needed for an https:// url (the CA that signed the server)")
        if kind in RADIO_KINDS:
            if radio is not None:
                raise ConfigError(key + ".kind", "only one source can use the box's radio (%s is)" % radio)
            radio = name
        out.append(full)
    return out


def as_sensor(src, sensor_defaults):
    """The radio source in the shape of the old `sensor` object, which the radio tasks read."""
    s = dict(sensor_defaults)
    for k in s:
        if k in src:
            s[k] = src[k]
    s["kind"] = src["kind"]
    return s


def redact(lst):
    return [dict((k, "***" if k in SECRET_FIELDS and v else v) for k, v in e.items()) for e in lst]
