from firmware.core import config, ticks


def test_diff_across_the_wrap():
    before = ticks.PERIOD - 1000
    after = ticks.add(before, 3000)
    assert after == 2000
    assert ticks.diff(after, before) == 3000
    assert ticks.diff(before, after) == -3000


def test_age_seconds():
    assert ticks.age_s(ticks.add(5, 61000), 5) == 61
    assert ticks.age_s(10, None) is None


def test_partial_config_merges_over_defaults():
    cfg = config.build({"sensor": {"allow_plain": True}, "alarms": {"low": 75}})
    assert cfg["alarms"]["low"] == 75
    assert cfg["alarms"]["urgent_low"] == 55
    assert cfg["mqtt"]["keepalive"] == 30


def _error_key(layer):
    try:
        config.build(layer)
    except config.ConfigError as e:
        return e.key
    return None


def test_bad_value_names_the_dotted_key():
    assert _error_key({"alarms": {"low": "seventy"}}) == "alarms.low"
    assert _error_key({"mqtt": {"port": 70000}}) == "mqtt.port"
    assert _error_key({"mqtt": {"colour": 1}}) == "mqtt.colour"
    assert _error_key({"sensor": {"bind_key": "abc"}}) == "sensor.bind_key"


def test_cross_key_rules():
    assert _error_key({"sensor": {"allow_plain": True}, "alarms": {"low": 140, "high": 130}}) == "alarms"
    assert _error_key({"sensor": {"allow_plain": False}}) == "sensor.bind_key"


def test_secrets_layer_merges_and_redacts():
    cfg = config.build({"sensor": {"id": 7}},
                       {"sensor": {"bind_key": "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f"},
                        "mqtt": {"password": "hunter2"}})
    assert cfg["sensor"]["id"] == 7
    safe = config.redact(cfg)
    assert safe["sensor"]["bind_key"] == "***"
    assert safe["mqtt"]["password"] == "***"
    assert "hunter2" not in repr(safe)
