# Authenticated commands and HMAC-SHA256. Runs under pytest and MicroPython.
import binascii
import json

from firmware.core import commands, commands_schema, hmac_sha256
from firmware.core.commands import CommandVerifier

SECRET = binascii.unhexlify("8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f00112233445566778899aabbccddeeff")
NOW = 1718000000


def _hex(b):
    return binascii.hexlify(b).decode()


# RFC 4231 test cases 1, 2, 3, 4, 6 and 7 (5 is a truncated output, not used here).
RFC4231 = (
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than "
     b"block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
)


def test_hmac_sha256_matches_rfc4231():
    for key, data, want in RFC4231:
        assert _hex(hmac_sha256.digest(key, data)) == want


def test_digest_compare():
    a = hmac_sha256.digest(b"k", b"m")
    assert hmac_sha256.equal(a, bytes(a))
    assert not hmac_sha256.equal(a, a[:-1] + bytes([a[-1] ^ 1]))
    assert not hmac_sha256.equal(a, a[:31])


def _verifier(last=0):
    return CommandVerifier(SECRET, last_counter=last)


def test_signed_snooze_is_accepted_and_moves_the_counter():
    v = _verifier(last=100)
    payload = commands.sign(SECRET, "snooze", 101, NOW, {"minutes": 30})
    cmd, why = v.verify("snooze", payload, NOW + 5)
    assert why is None
    assert cmd == {"name": "snooze", "n": 101, "ts": NOW, "args": {"minutes": 30}}
    assert v.last_counter == 101


def test_every_command_without_args():
    v = _verifier()
    for i, name in enumerate(commands.NAMES):
        cmd, why = v.verify(name, commands.sign(SECRET, name, 10 + i, NOW), NOW)
        assert why is None and cmd["name"] == name and cmd["args"] == {}


def test_replayed_command_is_refused_even_after_reboot():
    payload = commands.sign(SECRET, "ack", 7, NOW, {"level": "high"})
    v = _verifier()
    assert v.verify("ack", payload, NOW)[1] is None
    assert v.verify("ack", payload, NOW) == (None, "replay")
    rebooted = _verifier(last=v.last_counter)      # what the shell persisted
    assert rebooted.verify("ack", payload, NOW) == (None, "replay")
    older = commands.sign(SECRET, "ack", 6, NOW, {"level": "high"})
    assert rebooted.verify("ack", older, NOW) == (None, "replay")


def test_forged_or_altered_commands_are_bad_auth_and_change_nothing():
    v = _verifier(last=5)
    wrong_key = commands.sign(b"\x01" * 32, "snooze", 9, NOW)
    assert v.verify("snooze", wrong_key, NOW) == (None, "bad_auth")
    # a MAC for one command does not carry over to another name, counter or argument
    plain = commands.sign(SECRET, "snooze", 9, NOW)
    assert v.verify("ack", plain, NOW) == (None, "bad_auth")
    good = json.loads(commands.sign(SECRET, "snooze", 9, NOW, {"minutes": 10}))
    for field, value in (("n", 10), ("ts", NOW + 1), ("args", {"minutes": 120})):
        bent = dict(good)
        bent[field] = value
        assert v.verify("snooze", json.dumps(bent).encode(), NOW) == (None, "bad_auth")
    assert v.last_counter == 5
    # a rejected forgery with a huge counter must not lock out the real sender
    forged = json.loads(commands.sign(b"\x02" * 32, "snooze", 2 ** 52, NOW))
    assert v.verify("snooze", json.dumps(forged).encode(), NOW) == (None, "bad_auth")
    assert v.verify("snooze", commands.sign(SECRET, "snooze", 6, NOW), NOW)[1] is None


def test_stale_only_when_the_gateway_knows_the_time():
    v = _verifier()
    old = commands.sign(SECRET, "selftest", 1, NOW - 3600)
    assert v.verify("selftest", old, NOW) == (None, "stale")
    future = commands.sign(SECRET, "selftest", 2, NOW + 3600)
    assert v.verify("selftest", future, NOW) == (None, "stale")
    assert v.last_counter == 0


def test_without_wall_time_every_command_is_refused_as_no_time_and_moves_no_counter():
    # Fail closed: before NTP there is no freshness check, so a recorded command is not accepted.
    v = _verifier()
    fresh = commands.sign(SECRET, "snooze", 7, NOW)
    assert v.verify("snooze", fresh, None) == (None, "no_time")
    assert v.last_counter == 0
    assert v.verify("snooze", fresh, NOW)[1] is None     # the same command once the clock is set
    # a forgery still says bad_auth, not no_time: the reason never helps a forger
    assert v.verify("snooze", commands.sign(b"\x02" * 32, "snooze", 8, NOW), None) == (None, "bad_auth")


def test_a_counter_far_ahead_of_the_clock_is_refused_and_later_good_commands_still_pass():
    v = _verifier()
    wrong_clock = commands.sign(SECRET, "snooze", 2 ** 53 - 1, NOW)
    assert v.verify("snooze", wrong_clock, NOW) == (None, "ahead")
    just_over = commands.sign(SECRET, "snooze", (NOW + 300) * 1000 + 1, NOW)
    assert v.verify("snooze", just_over, NOW) == (None, "ahead")
    assert v.last_counter == 0
    good = commands.sign(SECRET, "snooze", NOW * 1000, NOW)       # what the tool sends: epoch ms
    assert v.verify("snooze", good, NOW)[1] is None
    later = commands.sign(SECRET, "ack", NOW * 1000 + 60000, NOW + 60)
    assert v.verify("ack", later, NOW + 60)[1] is None


def test_garbage_is_refused_never_raised():
    v = _verifier()
    mac = "0" * 64
    cases = (
        b"", b"not json", b"[]", b"null", b"{", b"\xff\xfe", b"[" * 400 + b"]" * 400,
        b'{"n":1,"ts":1,"mac":"%s","extra":1}' % mac.encode(),
        b'{"n":1.5,"ts":1,"mac":"%s"}' % mac.encode(),
        b'{"n":true,"ts":1,"mac":"%s"}' % mac.encode(),
        b'{"n":0,"ts":1,"mac":"%s"}' % mac.encode(),
        b'{"n":1,"ts":"1","mac":"%s"}' % mac.encode(),
        b'{"n":1,"ts":1,"mac":"zz%s"}' % mac[2:].encode(),
        b'{"n":1,"ts":1,"mac":"abc"}',
        b'{"n":1,"ts":1}',
        b'{"n":1,"ts":1,"mac":"%s","args":[1]}' % mac.encode(),
        b'{"n":1,"ts":1,"mac":"%s","args":{"minutes":"30"}}' % mac.encode(),
        b'{"n":1,"ts":1,"mac":"%s","args":{"level":"urgent_low","x":1}}' % mac.encode(),
        b"x" * 5000,
    )
    for c in cases:
        assert v.verify("snooze", c, NOW) == (None, "malformed"), c
    assert v.verify("snooze", None, NOW) == (None, "malformed")
    assert v.verify("snooze", "a string", NOW) == (None, "malformed")
    assert v.verify("reboot", commands.sign(SECRET, "reboot", 1, NOW), NOW) == \
        (None, "unknown_command")
    assert v.verify(None, b"{}", NOW) == (None, "unknown_command")
    assert v.last_counter == 0


def test_args_each_command_accepts():
    v = _verifier()
    ok = (("snooze", {"minutes": 5}), ("ack", {"level": "urgent_low"}), ("ack", {"level": "high"}))
    for i, (name, args) in enumerate(ok):
        assert v.verify(name, commands.sign(SECRET, name, i + 1, NOW, args), NOW)[1] is None
    bad = (("snooze", {"level": "high"}), ("selftest", {"minutes": 10}), ("snooze", {"minutes": 5.0}))
    for i, (name, args) in enumerate(bad):
        assert v.verify(name, commands.sign(SECRET, name, 50 + i, NOW, args), NOW) == \
            (None, "malformed")


def test_a_signed_value_out_of_range_is_refused_as_bad_args_and_moves_no_counter():
    v = _verifier()
    for i, (name, args) in enumerate((("snooze", {"minutes": 4}), ("snooze", {"minutes": 121}),
                                      ("snooze", {"minutes": 1000}), ("ack", {"level": "ok"}))):
        assert v.verify(name, commands.sign(SECRET, name, 60 + i, NOW, args), NOW) == \
            (None, "bad_args")
    assert v.last_counter == 0
    # unsigned, it is just a forgery: nobody without the secret learns the accepted range
    forged = commands.sign(b"x" * 16, "snooze", 70, NOW, {"minutes": 1000})
    assert v.verify("snooze", forged, NOW) == (None, "bad_auth")
    rec = commands.audit_record("snooze", False, "bad_args", "mqtt")
    assert rec["reason"] == "bad_args"


def test_no_secret_means_commands_disabled_and_short_secret_refused():
    v = CommandVerifier(b"")
    assert v.verify("snooze", commands.sign(SECRET, "snooze", 1, NOW), NOW) == (None, "disabled")
    try:
        CommandVerifier(b"short")
        refused = False
    except ValueError:
        refused = True
    assert refused


def test_audit_record_never_carries_secret_or_mac():
    payload = commands.sign(SECRET, "snooze", 3, NOW, {"minutes": 15})
    mac = json.loads(payload)["mac"]
    rec = commands.audit_record("snooze", False, "bad_auth", "mqtt")
    assert rec == {"cmd": "snooze", "accepted": False, "reason": "bad_auth", "source": "mqtt"}
    text = json.dumps(rec)
    assert mac not in text and _hex(SECRET) not in text
    assert commands.audit_record("ack", True, None, "mqtt")["reason"] is None
    odd = commands.audit_record("x/#\n" + "y" * 100, False, "whatever", "mqtt")
    assert odd["cmd"] == "x???" + "y" * 28
    assert odd["reason"] == "malformed"


def test_config_keys_check_like_the_main_schema():
    spec = commands_schema.SCHEMA["commands"]
    default, check = spec["secret"]
    assert default == "" and check("") is None
    assert check(_hex(SECRET)) is None
    assert check("abc") is not None
    assert check("zz" * 16) is not None
    assert check(12) is not None
    default, check = spec["max_age_s"]
    assert check(default) is None and check(5) is not None
    assert commands.secret_from_hex(_hex(SECRET)) == SECRET
    assert "commands.secret" in commands_schema.SECRET_KEYS
