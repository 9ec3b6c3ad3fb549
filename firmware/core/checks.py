# The one config idiom, shared by the gateway config (config.py, composed of the components' schemas:
# commands_schema.py, alarm_schema.py) and the board config (board.py), in the manner of ESPHome's
# per-component schemas:
#   - each component declares its keys as a schema: a dict of key -> (default, checker), or a nested
#     schema; REQUIRED as the default means the key must be given;
#   - a checker returns None when the value is good, else a short reason;
#   - merge() walks the schema and raises ConfigError naming the dotted key (unknown, missing, bad value);
#   - rules that span keys come after, and raise ConfigError naming the key to fix.
# Boot only (config_store.BOOT_ONLY): nothing here runs once the config is loaded.


class ConfigError(ValueError):
    def __init__(self, key, why):
        super().__init__("config key %s: %s" % (key, why))
        self.key = key
        self.why = why


REQUIRED = object()   # the default of a key that must be given (no parsed JSON value is this object)


def defaults(schema):
    """The schema's defaults as a fresh nested dict (lists copied, so a caller may change them)."""
    out = {}
    for k, spec in schema.items():
        if type(spec) is dict:
            out[k] = defaults(spec)
        else:
            d = spec[0]
            out[k] = list(d) if type(d) is list else d
    return out


def merge(base, over, schema, path=""):
    """base updated with over (parsed JSON), every value of over checked; refuses unknown keys and bad
    values by dotted name."""
    if type(over) is not dict:
        raise ConfigError(path[:-1] if path else "(top)", "must be a JSON object")
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


def apply(schema, raw, path=""):
    """raw checked against schema, complete with defaults; a REQUIRED key left out is "missing"."""
    out = merge(defaults(schema), raw, schema, path)
    for k, spec in schema.items():
        if type(spec) is not dict and out[k] is REQUIRED:
            raise ConfigError(path + k, "missing")
    return out


def int_range(lo, hi):
    def check(v):
        if type(v) is not int:
            return "must be a whole number"
        if v < lo or v > hi:
            return "must be between %d and %d" % (lo, hi)
    return check


def or_none(check):
    """check, but null is accepted too: for keys whose default is "not given" (null), so that a config
    already built (defaults filled in) is accepted again unchanged."""
    def check_or_none(v):
        if v is not None:
            return check(v)
    return check_or_none


def num_range(lo, hi):
    def check(v):
        if type(v) not in (int, float):
            return "must be a number"
        if v < lo or v > hi:
            return "must be between %s and %s" % (lo, hi)
    return check


def bool_(v):
    if type(v) is not bool:
        return "must be true or false"


def str_(max_len, allow_empty=True):
    def check(v):
        if type(v) is not str:
            return "must be a string"
        if not allow_empty and not v:
            return "must not be empty"
        if len(v) > max_len:
            return "must be at most %d characters" % max_len
    return check


def one_of(*choices):
    def check(v):
        if v not in choices:
            return "must be one of " + ", ".join(choices)
    return check
