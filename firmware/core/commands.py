# Authenticated remote commands (pure): <prefix>/cmd/<name> with name in snooze, ack, selftest.
#
# Payload, JSON:  {"n": 1718000000123, "ts": 1718000000, "args": {"minutes": 30}, "mac": "<64 hex>"}
#   n     counter, whole number, strictly increasing per gateway (the tool uses epoch ms, so a
#         sender needs no state); the last accepted one is persisted by the shell and passed back
#         in at boot, so a recorded command can never be played again, even after a reboot.
#         Refused as "ahead" when larger than the gateway's clock in epoch ms plus max_age_s: the
#         tool's n is its clock in ms, and a sender whose clock is further ahead than max_age_s is
#         refused as stale anyway; a counter beyond that (a phone with a wrong clock, n near 2^53)
#         would, once accepted, lock out every honest sender until our clock caught up with it.
#         Senders that count 1, 2, 3 are far below the bound.
#   ts    sender's wall time, epoch seconds; refused as "stale" when it is further than
#         max_age_s from the gateway's clock. Before the gateway knows wall time (NTP) every
#         command is refused as "no_time": without a freshness check a recorded command could be
#         played again after a reboot that lost the counter file's newer value (fail closed)
#   args  optional, flat: snooze {"minutes": 5..120} (absent: the level's own snooze time),
#         ack {"level": "<alarm level>"}, selftest {}; an authenticated value out of range is
#         refused as "bad_args"
#   mac   HMAC-SHA256 under the shared secret (config commands.secret) over the UTF-8 bytes of
#         "nightstand-cmd/1|<name>|<n>|<ts>|<args>", args written canonically: keys sorted,
#         "key=value" joined by "&", integers in decimal, booleans as true/false. No other field
#         is allowed in the payload, so nothing unsigned can ride along.
#
# What this module does NOT decide: whether the command may act. The alarm engine refuses to
# silence an urgent low from any remote source (a snooze or ack from MQTT never quiets it); this
# module only says who sent the command and that it is new. A refused command changes nothing:
# the shell emits a `reject` event with the reason and publishes audit_record() on <prefix>/audit.
import binascii
import json

from firmware.core import hmac_sha256
from firmware.core.patterns import ALARM_PATTERNS

from micropython import const

_MAX_PAYLOAD = const(512)     # a real command is < 200 bytes; bigger is refused before parsing
_MAX_COUNTER = 1 << 53  # JSON-safe integers (every language reads them); too big for const on ESP32
_MIN_SECRET = const(16)       # 128 bits: shorter shared secrets are guessable offline
_DEFAULT_MAX_AGE_S = const(300)  # phone and gateway clocks agree within a few minutes via NTP
_DOMAIN = "nightstand-cmd/1"  # binds the MAC to this use, so the secret's MACs mean nothing else

NAMES = ("snooze", "ack", "selftest")
REASONS = ("malformed", "unknown_command", "bad_auth", "replay", "stale", "disabled", "bad_args",
           "no_time", "ahead", "no_counter")

# Arguments each command may carry: name -> {arg: (type, value check -> True when good)}. A wrong
# key or type is "malformed" before the MAC is checked; a well-formed, authenticated value out of
# range is "bad_args", so the sender learns which number the gateway refused.
_ARGS = {
    # 5 min is the shortest snooze worth a tap; past 2 h it should be a config change instead
    "snooze": {"minutes": (int, lambda v: 5 <= v <= 120)},
    # naming the level means an ack meant for a high cannot silence a low that came later
    "ack": {"level": (str, lambda v: v in ALARM_PATTERNS)},
    "selftest": {},
}


def canonical_args(args):
    parts = []
    for k in sorted(args):
        v = args[k]
        if v is True:
            v = "true"
        elif v is False:
            v = "false"
        parts.append("%s=%s" % (k, v))
    return "&".join(parts)


def message(name, n, ts, args):
    """The bytes the MAC covers."""
    return ("%s|%s|%d|%d|%s" % (_DOMAIN, name, n, ts, canonical_args(args or {}))).encode()


def mac_hex(secret, name, n, ts, args=None):
    return binascii.hexlify(hmac_sha256.digest(secret, message(name, n, ts, args))).decode()


def sign(secret, name, n, ts, args=None):
    """A complete command payload (bytes), as the gateway expects it on <prefix>/cmd/<name>."""
    body = {"n": n, "ts": ts, "mac": mac_hex(secret, name, n, ts, args)}
    if args:
        body["args"] = args
    return json.dumps(body).encode()


def secret_from_hex(text):
    """Bytes of a commands.secret value; b"" when it is empty (remote commands disabled)."""
    return binascii.unhexlify(text) if text else b""


def _whole(v, lo, hi):
    return type(v) is int and lo <= v < hi


def _args_ok(name, args, values=False):
    """Known keys of the right type; with values=True, also every value in range."""
    allowed = _ARGS[name]
    if type(args) is not dict:
        return False
    for k, v in args.items():
        spec = allowed.get(k)
        if spec is None or type(v) is not spec[0] or (values and not spec[1](v)):
            return False
    return True


class CommandVerifier:
    def __init__(self, secret_bytes, last_counter=0, max_age_s=_DEFAULT_MAX_AGE_S):
        if secret_bytes and len(secret_bytes) < _MIN_SECRET:
            raise ValueError("commands.secret must be at least %d bytes" % _MIN_SECRET)
        self._secret = bytes(secret_bytes or b"")
        self.last_counter = last_counter  # the shell persists this after every accepted command
        self.max_age_s = max_age_s

    def verify(self, name, payload_bytes, now_epoch_s=None):
        """(command dict, None) when accepted, else (None, reason). Never raises on input.
        now_epoch_s None (the gateway has no wall time yet): an authentic new command is refused
        as "no_time"."""
        try:
            return self._verify(name, payload_bytes, now_epoch_s)
        except Exception:           # any surprise in hostile input is a refusal, never a crash
            return None, "malformed"

    def _verify(self, name, payload, now):
        if name not in _ARGS:
            return None, "unknown_command"
        if not self._secret:
            return None, "disabled"
        if not isinstance(payload, (bytes, bytearray)) or len(payload) > _MAX_PAYLOAD:
            return None, "malformed"
        body = json.loads(bytes(payload).decode())
        if type(body) is not dict:
            return None, "malformed"
        for k in body:
            if k not in ("n", "ts", "args", "mac"):
                return None, "malformed"
        n, ts, args, mac = body.get("n"), body.get("ts"), body.get("args", {}), body.get("mac")
        if not (_whole(n, 1, _MAX_COUNTER) and _whole(ts, 0, _MAX_COUNTER)
                and type(mac) is str and len(mac) == 64 and _args_ok(name, args)):
            return None, "malformed"
        got = binascii.unhexlify(mac)
        want = hmac_sha256.digest(self._secret, message(name, n, ts, args))
        if not hmac_sha256.equal(got, want):
            return None, "bad_auth"
        # Only authenticated commands reach here, so only the secret's holder moves the counter.
        if n <= self.last_counter:
            return None, "replay"
        if now is None:
            return None, "no_time"
        if ts - now > self.max_age_s or now - ts > self.max_age_s:
            return None, "stale"
        if n > (now + self.max_age_s) * 1000:
            return None, "ahead"      # refused whole: the counter stays where honest senders reach it
        if not _args_ok(name, args, True):
            return None, "bad_args"   # refused whole: the counter stays, nothing acts
        self.last_counter = n
        return {"name": name, "n": n, "ts": ts, "args": args}, None


def _safe_text(s, limit):
    out = []
    for c in str(s)[:limit]:
        out.append(c if ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "_-.")
                   else "?")
    return "".join(out)


def audit_record(name, accepted, reason, source):
    """What <prefix>/audit gets for every command, accepted or not. Never the secret or the MAC:
    only the command name (as received, made printable), the verdict and where it came from."""
    return {
        "cmd": _safe_text(name, 32),
        "accepted": bool(accepted),
        "reason": None if accepted else (reason if reason in REASONS else "malformed"),
        "source": _safe_text(source, 32),
    }
