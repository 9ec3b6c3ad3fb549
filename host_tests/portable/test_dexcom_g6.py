# Dexcom G6 messages (firmware/sensor/dexcom_g6.py) against every vector in host_tests/vectors/dexcom_g6.json
# (real messages from CGMBLEKit's and xDrip's tests and one ESP32 capture; ../shared/DEXCOM_G6.md).
# Portable: runs under pytest and `micropython host_tests/mp_runner.py test_dexcom_g6`.
import json

from firmware.sensor import dexcom_g6 as g6

_VEC = "host_tests/vectors/dexcom_g6.json"


def _vectors():
    with open(_VEC) as f:
        return json.load(f)


def _by(prefix):
    return [v for v in _vectors() if v["message"].startswith(prefix)]


def _frames(v):
    return [bytes.fromhex(h) for h in v["hex"].split()]


def _refused(fn, arg, reason):
    try:
        fn(arg)
    except g6.G6Error as e:
        assert e.reason == reason, (e.reason, reason)
        return
    assert False, "not refused: %r" % (arg,)


# Which test consumes each kind of vector: a vector kind added to the file without a test fails here.
_HANDLED = ("GlucoseRx", "TransmitterTimeRx", "BackfillTx", "BackfillRx", "BackfillFrames", "AuthHash",
            "AuthRequestTx", "AuthStatusRx", "InvalidRx", "KeepAliveTx", "BondRequestTx", "DisconnectTx",
            "TransmitterTimeTx", "BatteryStatusTx", "GlucoseTx", "SensorTx", "CalibrationDataTx",
            "BatteryStatusRx", "CRC16", "SessionStartRx", "SessionStopRx", "CalibrationDataRx",
            "TransmitterVersionRx", "SensorRx", "Advertisement")


def test_every_vector_kind_has_a_test():
    vs = _vectors()
    assert len(vs) == 61
    for v in vs:
        assert any(v["message"].startswith(h) for h in _HANDLED), v["message"]


def test_crc_single_byte_table_long_buffer_prefixes_and_check_value():
    t = _by("CRC16 single byte table")[0]["expected"]["wire_bytes_for_byte_i_as_uint16_be"]
    assert len(t) == 256
    for i in range(256):
        c = g6.crc16(bytes((i,)))
        assert "%02x%02x" % (c & 0xFF, c >> 8) == t[i], i     # wire order: low byte first
    v = _by("CRC16 long buffer")[0]
    data = bytes.fromhex(v["hex"])
    assert len(data) == v["expected"]["length"]
    assert "%04x" % g6.crc16(data) == v["expected"]["full_crc_value"]
    prefixes = v["expected"]["prefix_crc_wire_bytes"]
    for n in range(len(prefixes)):
        c = g6.crc16(data, 0, n)
        assert "%02x%02x" % (c & 0xFF, c >> 8) == prefixes[n], n
    # continuing a CRC over pieces is the CRC of the whole (the backfill stream is checked that way)
    assert g6.crc16(data, 100, len(data), g6.crc16(data, 0, 100)) == g6.crc16(data)
    chk = _by("CRC16 check value")[0]
    assert "%04x" % g6.crc16(bytes.fromhex(chk["hex"])) == chk["expected"]["crc16_xmodem"]


def test_auth_hash_request_challenge_and_status():
    v = _by("AuthHash")[0]
    e = v["expected"]
    key = g6.auth_key(e["transmitter_id"])
    assert key.hex() == e["aes128_key_hex"]
    assert g6.hash8(key, bytes.fromhex(v["hex"])).hex() == e["hash_first8_of_aes_ecb"]
    for v in _by("AuthRequestTx"):
        e = v["expected"]
        tok = bytes.fromhex(e["token_hex"])
        assert g6.auth_request(tok, e["channel_byte"]).hex() == v["hex"]
        if "expected_token_hash_for_id_123456" in e:
            assert g6.hash8(g6.auth_key("123456"), tok).hex() == e["expected_token_hash_for_id_123456"]
        # a firefly read of the auth characteristic returns the request itself: never a challenge
        _refused(g6.parse_auth_challenge, bytes.fromhex(v["hex"]), "malformed")
    assert g6.auth_request(bytes(8))[-1] == 0x01               # the default is the alternate slot
    assert g6.auth_request(bytes(8), g6.SLOT_PHONE)[-1] == 0x02
    v = _by("AuthStatusRx")[0]
    assert g6.parse_auth_status(bytes.fromhex(v["hex"])) == (True, False)   # 05 01 02: bond next
    assert g6.parse_auth_status(b"\x05\x01\x01") == (True, True)
    assert g6.parse_auth_status(b"\x05\x02\x02") == (False, False)
    _refused(g6.parse_auth_status, b"\x05\x01", "malformed")
    # a challenge and its answer, with the test id's key
    tok = bytes.fromhex("19f389f8b7584133")
    chal = bytes.fromhex("0123456789abcdef")
    msg = b"\x03" + g6.hash8(key, tok) + chal
    th, ch = g6.parse_auth_challenge(msg)
    assert th.hex() == "6e3584b284b4e02b" and ch == chal
    assert g6.challenge_reply(key, chal).hex() == "04e60d4a7999b0fbb2"
    # the wrong id gives another token hash: how the box tells a mistyped id from a taken slot
    assert g6.hash8(g6.auth_key("123457"), tok) != th


def test_keep_alive_bond_disconnect_and_invalid():
    for v in _by("KeepAliveTx"):
        assert g6.keep_alive(bytes.fromhex(v["hex"])[1]).hex() == v["hex"]
    assert g6.keep_alive(25).hex() == "0619" and g6.keep_alive(60).hex() == "063c"
    assert g6.BOND_REQUEST.hex() == _by("BondRequestTx")[0]["hex"]
    assert g6.DISCONNECT.hex() == _by("DisconnectTx")[0]["hex"]
    v = _by("InvalidRx")[0]
    assert g6.parse_invalid(bytes.fromhex(v["hex"])) == v["expected"]["byte1_echo_opcode"]
    assert g6.parse_invalid(b"\x05\x01\x01") is None
    assert g6.is_interlude(b"\xd0\x01") and not g6.is_interlude(b"\x25")


def test_one_byte_control_requests():
    names = {"TransmitterTimeTx": g6.OP_TIME, "BatteryStatusTx": g6.OP_BATTERY,
             "GlucoseTx G5": g6.OP_GLUCOSE_G5, "GlucoseTx G6": g6.OP_GLUCOSE_G6,
             "SensorTx": 0x2E, "CalibrationDataTx": 0x32}
    seen = 0
    for prefix, op in names.items():
        for v in _by(prefix):
            assert g6.request(op).hex() == v["hex"], prefix
            seen += 1
    assert seen == 6


def test_time_replies():
    vs = _by("TransmitterTimeRx")
    assert len(vs) == 5
    for v in vs:
        e = v["expected"]
        status, now, start = g6.parse_time(bytes.fromhex(v["hex"]))
        assert status == e["status"] and now == e["current_time_s"]
        assert (start is not None) == e["session_active"]
        if start is not None:
            assert start == e["session_start_time_s"]
    b = bytearray(bytes.fromhex(vs[0]["hex"]))
    b[3] ^= 1
    _refused(g6.parse_time, bytes(b), "crc")
    _refused(g6.parse_time, bytes(b[:15]), "malformed")


def _check_glucose(g, e):
    assert g.mgdl == e["glucose_mgdl"] and g.display_only == e["display_only"]
    assert g.state == e["state"] and g.trend == e["trend"]
    assert g.timestamp == e["timestamp"]


def test_glucose_replies_and_which_may_alarm():
    vs = _by("GlucoseRx(0x31)")
    assert len(vs) == 5
    for v in vs:
        e = v["expected"]
        g = g6.parse_glucose(bytes.fromhex(v["hex"]))
        _check_glucose(g, e)
        assert g.status == e["status"] and g.sequence == e["sequence"]
        assert g.predicted is None
        if e["display_only"]:
            assert g.usable() == "display_only"
        elif e["state"] == 1:
            # the real capture of a stopped sensor: glucose 1, trend 127: nothing to alarm on
            assert g.usable() == "state_stopped" and g.trend_mgdl_min() is None
            assert g6.status_name(g.status) == "expired"
        else:
            assert g.usable() is None
    g = g6.parse_glucose(bytes.fromhex(vs[0]["hex"]))
    assert g.trend_mgdl_min() == -0.1


def test_g6_4f_layout_and_states():
    # No captured 4F in the vectors: built here from the layout (DEXCOM_G6.md §6), CRC from the tested CRC.
    def msg(raw, state, trend=0xFB, status=0):
        body = bytes((0x4F, status, 0x68, 0x0A, 0, 0, 0x8A, 0x71, 0x57, 0, raw & 0xFF, raw >> 8, state, trend,
                      0xD2, 0xFC))
        c = g6.crc16(body)
        return body + bytes((c & 0xFF, c >> 8))
    g = g6.parse_glucose(msg(204, 6))
    assert (g.sequence, g.timestamp, g.mgdl, g.state, g.trend, g.predicted) == (2664, 5730698, 204, 6, -5, 0xD2)
    assert g.usable() is None
    assert g6.parse_glucose(msg(120, 7)).usable() is None
    assert g6.parse_glucose(msg(120, 0x0E)).usable() == "state_calibration"
    assert g6.parse_glucose(msg(120, 0x0E)).usable(allow_0e=True) is None
    for state, name in ((2, "warmup"), (1, "stopped"), (0x18, "expired"), (0x0B, "failed"),
                        (0x1B, "failed"), (0x12, "unknown"), (0x0F, "stopped")):
        assert g6.parse_glucose(msg(120, state)).usable() == "state_" + name, state
    assert g6.parse_glucose(msg(0x5000 | 90, 6)).usable() == "display_only"
    for code in (0, 5, 13):
        assert g6.parse_glucose(msg(code, 6)).usable() == "special_code"
    assert g6.parse_glucose(msg(14, 6)).usable() is None
    assert g6.parse_glucose(msg(120, 6, status=0x81)).status == 0x81
    assert g6.status_name(0x81) == "low_battery" and g6.status_name(0x83) == "expired"
    bad = bytearray(msg(120, 6))
    bad[10] ^= 4
    _refused(g6.parse_glucose, bytes(bad), "crc")
    _refused(g6.parse_glucose, msg(120, 6)[:16], "malformed")
    _refused(g6.parse_glucose, b"", "malformed")


def _days(y, m, d):
    """Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _epoch(iso):
    s = iso[11:19].split(":")
    return (_days(int(iso[0:4]), int(iso[5:7]), int(iso[8:10])) * 86400 + int(s[0]) * 3600 + int(s[1]) * 60
            + int(s[2]))


def test_measurement_time_from_the_transmitter_clock():
    for v in _by("GlucoseRx+TransmitterTime"):
        e = v["expected"]
        g = g6.parse_glucose(bytes.fromhex(v["hex"]))
        _, now_tx, start = g6.parse_time(bytes.fromhex(e["time_message_hex"]))
        activation = _epoch(e["activation_date_utc"])
        # the box's wall clock when the time message was read: activation + the transmitter's clock
        wall_now = activation + now_tx
        if g.timestamp <= now_tx:
            assert wall_now - g6.measured_ago_s(now_tx, g.timestamp) == _epoch(e["read_date_utc"])
        else:
            # the suite pairs this glucose with an older time message: the box never dates a value
            # after its own clock, and activation + timestamp is still the measurement time
            assert g6.measured_ago_s(now_tx, g.timestamp) == 0
            assert activation + g.timestamp == _epoch(e["read_date_utc"])
        if "session_start_date_utc" in e:
            assert activation + start == _epoch(e["session_start_date_utc"])
    assert g6.measured_ago_s(100, 400) == 0     # never in the future


def test_battery_replies():
    vs = _by("BatteryStatusRx")
    assert len(vs) == 2
    for v in vs:
        e = v["expected"]
        assert g6.parse_battery(bytes.fromhex(v["hex"])) == (
            e["status"], e["voltage_a"], e["voltage_b"], e["resistance"], e["runtime_days"], e["temperature_c"])
    body = bytes((0x23, 0, 0x3C, 0x01, 0x2F, 0x01, 0x1F, 0x24))    # firefly: 10 bytes, no resistance
    c = g6.crc16(body)
    assert g6.parse_battery(body + bytes((c & 0xFF, c >> 8))) == (0, 316, 303, None, 31, 36)


def test_backfill_request_and_reply():
    for v in _by("BackfillTx"):
        e = v["expected"]
        assert g6.backfill_request(e["start_time_s"], e["end_time_s"]).hex() == v["hex"]
    vs = _by("BackfillRx")
    assert len(vs) == 7
    for v in vs:
        e = v["expected"]
        assert g6.parse_backfill_rx(bytes.fromhex(v["hex"])) == (
            e["status"], e["backfill_status"], e["identifier"], e["start_time_s"], e["end_time_s"],
            e["buffer_length"], e["buffer_crc"])


def _streams():
    """(0x51 reply as parsed, frames vector) pairs from the same source test. testGlucoseBackfill2 has no
    0x51 vector: its reply is made from its 0x50 request's span and the stream's stated length and CRC."""
    rx = {v["source"]: g6.parse_backfill_rx(bytes.fromhex(v["hex"])) for v in _by("BackfillRx")}
    tx = {v["source"]: v["expected"] for v in _by("BackfillTx")}
    out = []
    for f in _by("BackfillFrames(characteristic"):
        r = rx.get(f["source"])
        if r is None:
            t, e = tx[f["source"]], f["expected"]
            r = (0, 1, 3, t["start_time_s"], t["end_time_s"], e["buffer_length_incl_2byte_frame_headers"],
                 e["buffer_crc16_over_all_frames_incl_headers"])
        out.append((r, f))
    return out


def test_backfill_frames_reassemble_and_non_glucose_streams_are_refused():
    pairs = _streams()
    assert len(pairs) == 7
    glucose = refused = 0
    for rx, fv in pairs:
        e = fv["expected"]
        frames = _frames(fv)
        assert len(frames) == e["frame_count"]
        bf = g6.Backfill()
        for fr in frames:
            bf.add(fr)
        assert bf.length == e["buffer_length_incl_2byte_frame_headers"]
        assert bf.crc == e["buffer_crc16_over_all_frames_incl_headers"]
        assert bytes(bf.payload[:4]).hex() == e["stream_header_first4_after_frame_headers"]
        assert len(g6.records(bf.payload)) == e["record_count_8byte"]
        if e["is_glucose"]:
            recs = bf.finish(rx)
            assert len(recs) == len(e["records"])
            for r, x in zip(recs, e["records"]):
                _check_glucose(r, x)
            glucose += 1
        else:
            _refused(bf.finish, rx, "not_glucose")
            refused += 1
    assert glucose == 4 and refused == 3


def test_backfill_broken_streams():
    rx, fv = _streams()[0]
    frames = _frames(fv)
    # a lost frame
    bf = g6.Backfill()
    bf.add(frames[0])
    bf.add(frames[2])
    _refused(bf.finish, rx, "sequence")
    # a damaged byte: the 51 reply's CRC over the frames no longer matches
    bf = g6.Backfill()
    bf.add(frames[0])
    bf.add(frames[1][:5] + bytes((frames[1][5] ^ 0x10,)) + frames[1][6:])
    bf.add(frames[2])
    _refused(bf.finish, rx, "crc")
    # frames missing at the end
    bf = g6.Backfill()
    bf.add(frames[0])
    bf.add(frames[1])
    _refused(bf.finish, rx, "crc")
    # truncated stream (CGMBLEKit testMalformedBackfill): only whole records are kept
    tv = _by("BackfillFrames(truncated)")[0]
    bf = g6.Backfill()
    for fr in _frames(tv):
        bf.add(fr)
    assert bf.bad is None and len(g6.records(bf.payload)) == tv["expected"]["record_count_8byte"]
    # an oversized frame and a stream far longer than any 3-hour backfill
    bf = g6.Backfill()
    bf.add(bytes(21))
    _refused(bf.finish, rx, "malformed")
    bf = g6.Backfill()
    for i in range(1, 200):
        bf.add(bytes((i & 0xFF, 0)) + bytes(18))
    _refused(bf.finish, rx, "too_long")
    assert len(bf.payload) <= 2048


def test_other_replies_carry_a_valid_crc():
    # Messages the box never asks for, from the same suites: the CRC check accepts them all, and a
    # flipped byte in any of them is caught.
    n = 0
    for prefix in ("SessionStartRx", "SessionStopRx", "CalibrationDataRx", "TransmitterVersionRx", "SensorRx"):
        for v in _by(prefix):
            b = bytes.fromhex(v["hex"])
            assert g6.crc_ok(b) == v["expected"]["crc_valid"], prefix
            for i in range(len(b)):
                assert not g6.crc_ok(b[:i] + bytes((b[i] ^ 0x01,)) + b[i + 1:]), (prefix, i)
            n += 1
    assert n == 10


def test_advert_name_and_ids():
    v = _by("Advertisement")[0]
    assert v["expected"]["service_uuid_16"] == "febc"
    assert g6.advert_name("8G1234") == "Dexcom34"
    assert g6.check_id("8G1234") is None and g6.check_id("812345") is None
    for bad in ("8G123", "8g1234", "8G12345", "8G 234", 812345, ""):
        assert g6.check_id(bad) is not None, bad


def _ad(kind, body):
    return bytes((len(body) + 1, kind)) + body


def test_an_advert_is_read_for_its_dexcom_name_and_service():
    flags = _ad(0x01, b"\x06")
    maker = _ad(0xFF, bytes.fromhex(_by("Advertisement")[0]["hex"]))    # the one real advert's extra data
    ours = flags + _ad(0x09, b"Dexcom34") + _ad(0x03, b"\xbc\xfe") + maker
    assert g6.heard(ours) == ("Dexcom34", True)
    # the service in an incomplete list, the name shortened, other services beside it: still found
    assert g6.heard(_ad(0x02, b"\x0d\x18\xbc\xfe") + _ad(0x08, b"Dexcom34")) == ("Dexcom34", True)
    # a Dexcom name without the service (the box does not connect to it, but names it as a hint)
    assert g6.heard(flags + _ad(0x09, b"DexcomAB")) == ("DexcomAB", False)
    # not a Dexcom: an iBeacon, a bulb, "Dexcom" only inside other data, a name that is not UTF-8
    assert g6.heard(flags + _ad(0xFF, bytes.fromhex("4c000215") + bytes(21))) is None
    assert g6.heard(flags + _ad(0x09, b"Bulb-017")) is None
    assert g6.heard(flags + _ad(0xFF, b"Dexcom34") + _ad(0x03, b"\xbc\xfe")) is None
    assert g6.heard(_ad(0x09, b"Dexcom\xff\xfe")) is None
    # a truncated or zero-length structure ends the advert; what came before it counts, nothing raises
    assert g6.heard(_ad(0x09, b"Dexcom34") + b"\x05\x03\xbc") == ("Dexcom34", False)
    assert g6.heard(_ad(0x09, b"Dexcom34") + b"\x00" + _ad(0x03, b"\xbc\xfe")) == ("Dexcom34", False)
    for i in range(len(ours)):
        g6.heard(ours[:i])
        g6.heard(bytearray(ours[:i]))
