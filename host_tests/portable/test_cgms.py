# SIG CGM Service 0x181F: shared vectors, SFLOAT specials, RACP, and the tracker's gap/backfill.
# Portable: runs under pytest and `micropython host_tests/mp_runner.py test_cgms`.
import json

from firmware.sensor import cgms

_VEC = "host_tests/vectors/cgms_measurement.json"
_MIN = 60000  # ms in a minute


def _vectors():
    with open(_VEC) as f:
        return json.load(f)


def _close(a, b):
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-6


def _check(rec, exp, name):
    assert rec.offset == exp["offset_min"], name
    assert _close(rec.glucose, exp["mgdl"]), (name, rec.glucose)
    if "trend" in exp:
        assert _close(rec.trend, exp["trend"]), (name, rec.trend)
    if "quality" in exp:
        assert _close(rec.quality, exp["quality"]), (name, rec.quality)
    if "special" in exp:
        assert rec.special == exp["special"], name


def test_measurement_vectors():
    for case in _vectors()["records"]:
        exp = case["expect"]
        name = case["name"]
        data = bytes.fromhex(case["hex"])
        if type(exp) is dict and "reject" in exp:
            try:
                cgms.decode_measurements(data, case["e2e_crc"])
            except cgms.CgmsError as e:
                assert e.reason == exp["reject"], name
            else:
                assert False, name + ": not refused"
            continue
        recs = cgms.decode_measurements(data, case["e2e_crc"])
        exps = exp if type(exp) is list else [exp]
        assert len(recs) == len(exps), name
        for rec, e in zip(recs, exps):
            _check(rec, e, name)


def test_crc_check_value_and_racp_bytes():
    v = _vectors()
    want = int(v["crc_check"]["crc16_mcrf4xx"], 16)
    assert cgms.crc16_mcrf4xx(v["crc_check"]["input_ascii"].encode()) == want
    assert cgms.racp_report_since(300).hex() == v["racp"]["report_ge_offset_300"]
    assert cgms.parse_racp_response(bytes.fromhex(v["racp"]["success"])) == "success"
    assert cgms.parse_racp_response(bytes.fromhex(v["racp"]["no_records"])) == "no_records"
    assert cgms.parse_racp_response(bytes.fromhex("06000105")) == "invalid_operand"
    assert cgms.parse_racp_response(b"\x06") == "malformed"


def test_sfloat_special_values():
    assert cgms.sfloat(0x07FF) is None and cgms.sfloat_special(0x07FF) == "NaN"
    assert cgms.sfloat_special(0x0800) == "NRes"
    assert cgms.sfloat_special(0x07FE) == "+INF"
    assert cgms.sfloat_special(0x0802) == "-INF"
    assert cgms.sfloat_special(0x0801) == "reserved"
    assert cgms.sfloat(0xF3E5) == 99.7
    assert cgms.sfloat(0x0FFF) == -1.0          # mantissa -1, exponent 0
    assert cgms.sfloat(0x1001) == 10.0          # exponent +1


def test_nordic_record_annunciation_maps_to_status():
    rec = cgms.decode_measurements(bytes.fromhex("0fe3d2e405000214ff02f0e5f38e3f"), True)[0]
    # warning 0x02, cal/temp 0x14, status 0xff -> battery low, sensor error, calibration
    assert rec.annunciation == 0x0214FF
    st = cgms.status_bits(rec.annunciation)
    assert st == cgms.ST_SENSOR_ERROR | cgms.ST_CALIBRATION | cgms.ST_BATTERY_LOW
    assert cgms.status_bits(0x000002) == cgms.ST_BATTERY_LOW
    assert cgms.status_bits(0x020000) == 0   # a warning octet alone is not a sensor fault


def _refused(data, crc):
    try:
        cgms.decode_measurements(data, crc)
    except cgms.CgmsError as e:
        return e.reason
    return None


def test_malformed_notifications_raise_a_clear_reason():
    assert _refused(b"", False) == "malformed"
    assert _refused(b"\x05\x00\x0c\x10\x06", False) == "malformed"        # size below minimum
    assert _refused(b"\x06\x00\x0c\x10\x06", False) == "malformed"        # cut short
    assert _refused(b"\x06\x01\x0c\x10\x06\x00", False) == "malformed"    # trend flagged, absent
    assert _refused(b"\x06\x04\x0c\x10\x06\x00", False) == "malformed"    # reserved flag bit
    assert _refused(bytes.fromhex("06000c100600"), True) == "malformed"   # no room for the CRC
    assert _refused(bytes.fromhex("06000c1006000600"), False) == "malformed"  # second record cut


def _rec(offset, mgdl):
    return cgms.CgmRecord(offset, float(mgdl), None, None, None, 0)


def test_tracker_delivers_live_drops_repeats():
    t = cgms.CgmsTracker("aa:bb")
    out = t.on_records([_rec(5, 100), _rec(10, 104)], 0)
    assert [(r.seq, r.mgdl, r.backfilled, r.source) for r in out] == [
        (5, 100, False, "cgms"), (10, 104, False, "cgms")]
    assert t.on_records([_rec(10, 104)], 1000) == []
    assert t.want_racp() is None


def test_tracker_gap_while_connected_is_backfilled_in_order():
    t = cgms.CgmsTracker("aa:bb")
    t.on_records([_rec(5, 100)], 0)
    # notifications for 10 and 15 were dropped; 20 arrives and goes to the alarm at once
    live = t.on_records([_rec(20, 60)], 15 * _MIN)
    assert [(r.seq, r.backfilled) for r in live] == [(20, False)]
    assert t.want_racp() == 6
    assert t.want_racp() is None                  # one RACP procedure at a time
    # the RACP reports everything >= 6: the gap comes back marked, the live one is a repeat
    back = t.on_records([_rec(10, 80), _rec(15, 70), _rec(20, 60)], 15 * _MIN + 500)
    assert [(r.seq, r.mgdl, r.backfilled) for r in back] == [(10, 80, True), (15, 70, True)]
    t.racp_done("success")
    assert t.gaps == [] and t.want_racp() is None
    assert [r.seq for r in t.on_records([_rec(25, 58)], 20 * _MIN)] == [25]


def test_tracker_reconnect_backfills_the_outage_and_newest_is_live():
    t = cgms.CgmsTracker("aa:bb")
    t.on_records([_rec(100, 120)], 0)
    # 30 minutes out of range, then the gateway reconnects
    now = 31 * _MIN
    t.connected(now)
    assert t.want_racp() == 101
    recs = [_rec(105, 110), _rec(110, 100), _rec(115, 95), _rec(120, 90), _rec(125, 85),
            _rec(130, 80)]
    out = t.on_records(recs, now)
    assert [r.seq for r in out] == [105, 110, 115, 120, 125, 130]
    assert [r.backfilled for r in out] == [True, True, True, True, True, False]  # 130 is current
    t.racp_done("no_records")
    assert t.on_records([_rec(130, 80)], now + 1000) == []


def test_tracker_retries_a_failed_racp_then_gives_up_loudly():
    t = cgms.CgmsTracker("aa:bb")
    t.on_records([_rec(5, 100)], 0)
    t.on_records([_rec(30, 100)], 25 * _MIN)
    for _ in range(3):
        assert t.want_racp() == 6
        t.racp_done("procedure_not_completed")
    assert t.want_racp() is None
    assert t.lost == 1


def test_tracker_new_session_restarts_offsets():
    t = cgms.CgmsTracker("aa:bb")
    t.on_records([_rec(14000, 100)], 0)
    out = t.on_records([_rec(5, 110)], _MIN)
    assert [(r.seq, r.backfilled) for r in out] == [(5, False)]


def test_tracker_implausible_value_arrives_without_a_number():
    t = cgms.CgmsTracker("aa:bb")
    out = t.on_records([_rec(5, 12.34), cgms.CgmRecord(10, None, "NaN", None, None, 0)], 0)
    assert [r.mgdl for r in out] == [None, None]
    assert out[0].status & cgms.ST_SENSOR_ERROR
    assert t.take_rejects() == ["implausible"]
    assert t.take_rejects() == []
