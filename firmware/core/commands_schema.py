# The commands section of the config (commands.secret, commands.max_age_s), in the schema idiom of
# checks.py; config.py puts it in its SCHEMA. Apart from commands.py, so that loading the config does not
# load the HMAC code on a gateway with remote commands disabled (heap).
from micropython import const

_MIN_SECRET = const(16)       # 128 bits: shorter shared secrets are guessable offline
_DEFAULT_MAX_AGE_S = const(300)  # phone and gateway clocks agree within a few minutes via NTP


def _secret_hex(v):
    if type(v) is not str:
        return "must be a string of hex digits"
    if v == "":
        return None                 # remote commands disabled
    if len(v) % 2 or not 2 * _MIN_SECRET <= len(v) <= 128:
        return "must be 32 to 128 hex digits (16 to 64 bytes), or empty to disable commands"
    for c in v:
        if c not in "0123456789abcdefABCDEF":
            return "must be hex digits only"


def _max_age(v):
    if type(v) is not int or not 30 <= v <= 3600:
        return "must be a whole number of seconds between 30 and 3600"


SCHEMA = {
    "commands": {
        "secret": ("", _secret_hex),        # hex shared secret; "" = every command refused
        "max_age_s": (_DEFAULT_MAX_AGE_S, _max_age),
    },
}
SECRET_KEYS = ("commands.secret",)
