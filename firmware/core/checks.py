# Config value checks shared by every schema (config, alarms, patterns, commands) and the error that
# names the bad key. A checker returns None when the value is good, else a short reason.


class ConfigError(ValueError):
    def __init__(self, key, why):
        super().__init__("config key %s: %s" % (key, why))
        self.key = key
        self.why = why


def int_range(lo, hi):
    def check(v):
        if type(v) is not int:
            return "must be a whole number"
        if v < lo or v > hi:
            return "must be between %d and %d" % (lo, hi)
    return check


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
