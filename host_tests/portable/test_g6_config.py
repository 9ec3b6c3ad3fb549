# Config for source kind dexcom_g6 (firmware/core/config.py): the id as printed, the slot, the 0E flag.
# Portable: runs under pytest and `micropython host_tests/mp_runner.py test_g6_config`.
from firmware.core import config
from firmware.core.checks import ConfigError


def _refused(layer, key):
    try:
        config.build(layer)
    except ConfigError as e:
        assert e.key == key, (e.key, key)
        return e.why
    assert False, "accepted: %r" % (layer,)


def test_g6_source_defaults_to_the_alternate_slot():
    cfg = config.build({"sensor": {"kind": "dexcom_g6", "transmitter_id": "8G1234"}})
    s = cfg["sensor"]
    assert (s["transmitter_id"], s["slot"], s["allow_0e"]) == ("8G1234", "alternate", False)
    cfg = config.build({"sensor": {"kind": "dexcom_g6", "transmitter_id": "812345", "slot": "phone",
                                   "allow_0e": True}})
    assert cfg["sensor"]["slot"] == "phone" and cfg["sensor"]["allow_0e"] is True


def test_g6_bad_ids_and_slots_name_the_key():
    assert "needed" in _refused({"sensor": {"kind": "dexcom_g6"}}, "sensor.transmitter_id")
    for bad in ("8G123", "8G12345", "8g1234", "8G-234", 812345):
        _refused({"sensor": {"kind": "dexcom_g6", "transmitter_id": bad}}, "sensor.transmitter_id")
    assert "G7" in _refused({"sensor": {"kind": "dexcom_g6", "transmitter_id": "AB12"}}, "sensor.transmitter_id")
    _refused({"sensor": {"kind": "dexcom_g6", "transmitter_id": "8G1234", "slot": "receiver"}}, "sensor.slot")
    _refused({"sensor": {"kind": "dexcom_g6", "transmitter_id": "8G1234", "allow_0e": 1}}, "sensor.allow_0e")
    # the other kinds are unchanged by the new keys
    cfg = config.build({"sensor": {"kind": "cgms", "address": "c4:7a:01:22:33:44"}})
    assert cfg["sensor"]["transmitter_id"] == ""
