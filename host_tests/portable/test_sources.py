# Several glucose sources (docs/sources.md): the `sources` config list, the phone / Nightscout answer
# parser (firmware/sensor/lan_entries.py, with the quirks of docs/sources.md) and the merge in the core.
from firmware.core import config
from firmware.core.gateway import Gateway
from firmware.core.reading import Reading
from firmware.sensor import lan_entries as le

_MIN = 60000
_KEY = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f"
_T0 = 1764540000000  # a wall clock instant (epoch ms) for the answers' Date headers
_BLE = {"kind": "broadcast", "bind_key": _KEY}
_PHONE = {"kind": "phone", "host": "192.168.1.23"}


def _error(*layers):
    try:
        config.build(*layers)
    except config.ConfigError as e:
        return e.key, e.why
    return None


# ---- config ------------------------------------------------------------------------------------
def test_sources_list_fills_defaults_and_keeps_the_radio_sensor_shape():
    cfg = config.build({"sources": [_BLE, _PHONE, {"kind": "nightscout", "url": "https://ns.example.org",
                                                   "token": "tok-123", "ca": "ca.pem"}]})
    names = [s["name"] for s in cfg["sources"]]
    assert names == ["broadcast", "phone", "nightscout"]
    phone = cfg["sources"][1]
    assert (phone["port"], phone["poll_s"], phone["secret"]) == (17580, 60, "")
    assert cfg["sensor"]["kind"] == "broadcast" and cfg["sensor"]["bind_key"] == _KEY


def test_a_phone_only_config_has_no_radio_sensor():
    cfg = config.build({"sources": [_PHONE]})
    assert cfg["sensor"] is None and cfg["sources"][0]["kind"] == "phone"


def test_the_old_sensor_object_is_a_one_item_sources_list():
    cfg = config.build({"sensor": {"allow_plain": True}})
    assert [(s["name"], s["kind"]) for s in cfg["sources"]] == [("broadcast", "broadcast")]


def test_sensor_and_sources_together_are_refused_naming_both():
    key, why = _error({"sensor": {"allow_plain": True}, "sources": [_PHONE]})
    assert key == "sensor, sources"
    key, _ = _error({"sources": [_PHONE]}, {"sensor": {"bind_key": _KEY}})
    assert key == "sensor, sources"


def test_each_kind_checks_its_keys_by_position():
    assert _error({"sources": [{"kind": "phone"}]})[0] == "sources[0].host"
    assert _error({"sources": [_PHONE, {"kind": "phone", "name": "tablet", "host": "10.0.0.2", "port": 0}]}) == \
        ("sources[1].port", "must be between 1 and 65535")
    assert _error({"sources": [{"kind": "phone", "host": "http://192.168.1.2"}]})[0] == "sources[0].host"
    assert _error({"sources": [{"kind": "phone", "host": "a", "colour": 1}]})[0] == "sources[0].colour"
    assert _error({"sources": [{"kind": "nightscout", "url": "ftp://x"}]})[0] == "sources[0].url"
    assert _error({"sources": [{"kind": "nightscout", "url": "https://x"}]})[0] == "sources[0].ca"
    assert _error({"sources": [{"kind": "nightscout", "url": "http://x", "secret": "a" * 12,
                                "token": "t"}]})[0] == "sources[0].token"
    assert _error({"sources": [{"kind": "carrier-pigeon"}]})[0] == "sources[0].kind"
    assert _error({"sources": [_PHONE, _PHONE]})[0] == "sources[1].name"
    assert _error({"sources": [_BLE, {"kind": "cgms", "address": "aa:bb:cc:dd:ee:ff"}]})[0] == "sources[1].kind"
    assert _error({"sources": []})[0] == "sources"
    assert _error({"sources": [{"kind": "broadcast"}]})[0] == "sources[0].bind_key"


def test_secrets_layer_updates_a_source_by_name_and_redacts_it():
    cfg = config.build({"sources": [_PHONE]}, {"sources": [{"name": "phone", "secret": "Abc"}]})
    assert cfg["sources"][0]["secret"] == "Abc" and cfg["sources"][0]["host"] == "192.168.1.23"
    assert "Abc" not in repr(config.redact(cfg))


# ---- parser ------------------------------------------------------------------------------------
def _answer(body, status="200 OK", date_ms=_T0, extra=b""):
    head = b"HTTP/1.0 " + status.encode() + b"\r\n"
    if date_ms is not None:
        head += b"Date: " + le.http_date(date_ms).encode() + b"\r\n"
    head += extra + b"Content-Length: %d\r\n\r\n" % len(body)
    return head + body


def _entry(age_s, sgv, delta=-2.5, direction="FortyFiveDown"):
    return '{"date":%d,"sgv":%s,"delta":%s,"direction":"%s","noise":1}' % (
        _T0 - age_s * 1000, sgv, delta, direction)


def test_http_date_both_ways():
    assert le.http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT") is None  # before 2000: a clock not set
    assert le.http_date_ms("Mon, 30 Nov 2026 20:24:49 GMT") == 1796070289000
    assert le.http_date(1796070289000) == "Mon, 30 Nov 2026 20:24:49 GMT"
    assert le.http_date_ms(le.http_date(_T0)) == _T0
    assert le.http_date_ms("30 Nov 2026") is None


def test_brief_mode_answer_gives_age_from_the_date_header():
    body = ("[" + _entry(40, 98) + "," + _entry(340, 104) + "]").encode()
    a = le.parse(_answer(body), True)
    assert a.kind == "ok"
    # oldest first; trend = delta per 5 min / 5; age from Date - date, no box clock needed
    assert a.entries == [(_T0 - 340000, 104, -0.5, 340000), (_T0 - 40000, 98, -0.5, 40000)]


def test_unknown_direction_means_unknown_trend_even_with_a_delta():
    a = le.parse(_answer(("[" + _entry(10, 120, 0, "") + "]").encode()), True)
    assert a.entries[0][2] is None  # Juggluco: delta 0 and direction "" when its rate is NaN


def test_each_apps_no_data_answer():
    for body in (b"[]", b"{}", b"", b"\"\"", b"Error"):
        assert le.parse(_answer(body), True).kind == "no_data", body
    assert le.parse(b"HTTP/1.0 500 Internal Server Error\r\n", True).kind == "no_data"
    assert le.parse(b"HTTP/1.0 500 Internal Server Error\r\n", True, "nightscout").kind == "reject"


def test_auth_failures_and_not_modified():
    assert le.parse(_answer(b"Authentication failed - check api-secret", "403 Forbidden"), True).kind == "auth_failed"
    assert le.parse(_answer(b"Unauthorized", "401 Unauthorized"), True, "nightscout").kind == "auth_failed"
    assert le.parse(_answer(b'{"status":304}', "304 Not Modified"), True, "nightscout").kind == "not_modified"


def _reason(data, eof=True):
    a = le.parse(data, eof)
    assert a.kind == "reject", a
    return a.reason


def test_bad_answers_are_refused_with_a_reason():
    ok = ("[" + _entry(10, 120) + "]").encode()
    assert _reason(_answer(b"<html>nope</html>")) == "not JSON"
    assert _reason(_answer(b'{"sgv": 120}')) == "not a list of entries"
    assert _reason(_answer(("[" + _entry(10, '"120"') + "]").encode())) == "sgv is not a number"
    assert _reason(_answer(("[" + _entry(10, 5) + "]").encode())).startswith("sgv 5 outside")
    assert _reason(_answer(("[" + _entry(-600, 120) + "]").encode())) == "date in the future"
    assert _reason(_answer(("[" + _entry(2 * 86400, 120) + "]").encode())) == "date more than a day old"
    assert _reason(_answer(ok)[:-3]).startswith("truncated body")
    assert _reason(_answer(ok)[:20]) == "truncated head"
    assert _reason(b"SSH-2.0-OpenSSH\r\n\r\n") == "not an HTTP answer"
    assert _reason(_answer(ok, "404 Not Found")) == "HTTP 404"
    assert _reason(_answer(ok, date_ms=None)).startswith("no Date header")
    assert _reason(_answer(ok, date_ms=None, extra=b"Date: yesterday\r\n")) == "bad Date header"
    assert _reason(b"x" * (le.MAX_BYTES + 1)).startswith("oversized")


def test_a_huge_announced_body_is_refused_before_it_is_read():
    head = b"HTTP/1.0 200 OK\r\nContent-Length: 999999999\r\n\r\n"
    assert le.body_wanted(head) == -1
    assert _reason(head + b"[") .startswith("oversized")
    assert le.body_wanted(b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n") == 12


def test_no_date_header_falls_back_to_the_box_clock():
    a = le.parse(_answer(("[" + _entry(60, 120) + "]").encode(), date_ms=None), True, "phone", _T0)
    assert a.kind == "ok" and a.entries[0][3] == 60000


def test_one_bad_entry_among_good_ones_is_counted_not_fatal():
    body = ("[" + _entry(10, 120) + ",{\"date\":\"x\",\"sgv\":1}]").encode()
    a = le.parse(_answer(body), True)
    assert a.kind == "ok" and len(a.entries) == 1 and a.rejected == 1 and a.reason == "date is not a number"


def test_nightscout_entries_skip_other_types():
    body = ('[{"type":"mbg","date":%d,"mbg":100},{"type":"sgv","date":%d,"sgv":140.0,"dateString":"x"}]'
            % (_T0 - 1000, _T0 - 2000)).encode()
    a = le.parse(_answer(body, extra=b"Last-Modified: " + le.http_date(_T0).encode() + b"\r\n"),
                 True, "nightscout")
    assert a.kind == "ok" and [e[1] for e in a.entries] == [140] and a.last_modified == le.http_date(_T0)


# ---- merge in the gateway ----------------------------------------------------------------------
def _gw(sources, now=0):
    gw = Gateway(config.build({"sources": sources}), now)
    gw.drain()
    return gw


def _events(out, name):
    return [e[1] for e in out if e[0] == "event" and e[1]["event"] == name]


def _state(out):
    return [e[2] for e in out if e[0] == "publish" and e[1] == "state"][-1]


def _phone_reading(now, age_ms, mgdl, date_ms):
    return Reading("phone", date_ms // 1000, mgdl, None, source="phone"), now - age_ms


def test_a_reading_two_sources_deliver_reaches_the_core_once():
    gw = _gw([_BLE, _PHONE])
    assert gw.on_reading(10 * _MIN, Reading(7, 1, 120))
    r, measured = _phone_reading(10 * _MIN + 50000, 45000, 121, _T0)  # same measurement, +-1 mg/dL
    assert not gw.on_reading(10 * _MIN + 50000, r, measured, "phone")
    out = gw.drain()
    assert len([e for e in out if e[0] == "publish" and e[1] == "reading"]) == 1
    assert gw.merge.dups == 1


def test_one_reading_stands_for_at_most_one_reading_of_another_source():
    gw = _gw([_BLE, _PHONE])
    r, measured = _phone_reading(60000, 30000, 120, _T0)
    assert gw.on_reading(60000, r, measured, "phone")
    assert not gw.on_reading(70000, Reading(7, 1, 120))   # the radio's copy of it
    assert not gw.on_reading(71000, Reading(7, 1, 120))   # ... heard again
    assert gw.on_reading(100000, Reading(7, 2, 121))      # a new measurement of the same value
    assert gw.merge.dups == 2


def test_an_older_reading_after_a_newer_one_is_backfilled_and_never_alarms():
    gw = _gw([_BLE, _PHONE])
    gw.on_reading(20 * _MIN, Reading(7, 5, 120))
    gw.drain()
    r, measured = _phone_reading(20 * _MIN + 1000, 10 * _MIN, 50, _T0)
    assert gw.on_reading(20 * _MIN + 1000, r, measured, "phone")
    out = gw.drain()
    assert _events(out, "reading")[0]["backfilled"] is True
    assert _events(out, "alarm") == []


def test_phone_keeps_the_box_ok_when_the_radio_is_silent_and_says_which_path_is_up():
    gw = _gw([_BLE, _PHONE])
    t = 0
    for i in range(1, 30):
        t = i * 5 * _MIN
        r, measured = _phone_reading(t, 30000, 110 + i % 3 * 5, _T0 + t)
        gw.on_reading(t, r, measured, "phone")
        gw.on_source(t, "phone", "ok")
        gw.on_cloud_ok(t)
        gw.tick(t + 1000)
    out = gw.drain()
    assert gw.pattern == "ok" and [e for e in _events(out, "link") if e["name"] == "sensor"] == []
    st = _state(out)
    by = dict((s["name"], s["state"]) for s in st["sources"])
    assert by == {"broadcast": "silent", "phone": "up"} and st["sensor_path"] == "lan"
    assert {"event": "source", "name": "broadcast", "state": "silent", "age_s": None, "path": "radio"} \
        in _events(out, "source")


def test_a_low_from_the_phone_alarms():
    gw = _gw([_PHONE])
    r, measured = _phone_reading(5 * _MIN, 20000, 50, _T0)
    gw.on_reading(5 * _MIN, r, measured, "phone")
    assert gw.pattern in ("low", "urgent_low")


def test_a_source_that_only_repeats_an_old_reading_is_stale_then_the_box_sensor_silent():
    gw = _gw([_PHONE])
    r, measured = _phone_reading(60000, 10000, 120, _T0)
    gw.on_reading(60000, r, measured, "phone")
    gw.on_source(60000, "phone", "ok")
    gw.drain()
    t = 60000
    states = []
    while t < 13 * _MIN:
        t += 60000
        gw.on_source(t, "phone", "ok")  # it answers, with the same old reading (not offered again)
        gw.on_cloud_ok(t)
        gw.tick(t)
        states += [(e["state"], t // _MIN) for e in _events(gw.drain(), "source")]
    assert states[0][0] == "stale" and 7 <= states[0][1] <= 8
    assert gw.pattern == "sensor_silent"  # 660 s after the reading was measured, not received


def test_auth_failed_is_a_fault_naming_the_source_until_it_answers_again():
    gw = _gw([_BLE, _PHONE])
    gw.on_source(1000, "phone", "auth_failed", "HTTP 403")
    out = gw.drain()
    assert "auth_failed:phone" in gw.faults and "phone" in gw.faults["auth_failed:phone"]
    assert _events(out, "source")[-1]["state"] == "auth_failed"
    gw.on_source(61000, "phone", "no_data")
    assert "auth_failed:phone" not in gw.faults


def test_a_poll_the_box_had_no_heap_for_is_its_own_state_not_a_fault():
    gw = _gw([_BLE, _PHONE])
    gw.on_source(1000, "phone", "heap", "no free heap on the box for the answer")
    out = gw.drain()
    ev = _events(out, "source")[-1]
    assert (ev["state"], ev["why"]) == ("heap", "no free heap on the box for the answer")
    assert not any(name.endswith("phone") for name in gw.faults)   # the phone is fine: no `fault`
    gw.on_source(61000, "phone", "no_data")
    assert _events(gw.drain(), "source")[-1]["state"] == "no_data"


def test_internet_nightscout_is_a_cloud_path():
    from firmware.core.merge import path_of
    assert path_of({"kind": "nightscout", "url": "https://my.herokuapp.com/"}) == "cloud"
    assert path_of({"kind": "nightscout", "url": "http://192.168.1.5:1337"}) == "lan"
    assert path_of({"kind": "nightscout", "url": "http://nightscout.local:1337/"}) == "lan"
    assert path_of({"kind": "nightscout", "url": "http://172.32.0.1/"}) == "cloud"
    assert path_of(_PHONE) == "lan"


def test_a_g6_transmitter_is_a_radio_source_beside_the_phone():
    cfg = config.build({"sources": [{"kind": "dexcom_g6", "transmitter_id": "8G1234"}, _PHONE]})
    assert cfg["sensor"]["kind"] == "dexcom_g6" and cfg["sensor"]["transmitter_id"] == "8G1234"
    assert cfg["sensor"]["slot"] == "alternate"
    assert _error({"sources": [{"kind": "dexcom_g6"}]})[0] == "sources[0].transmitter_id"
    assert _error({"sources": [{"kind": "dexcom_g6", "transmitter_id": "8G12"}]})[0] == "sources[0].transmitter_id"
