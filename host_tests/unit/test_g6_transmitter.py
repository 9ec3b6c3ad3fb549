# The simulator's virtual Dexcom G6 (tools/simlib/g6_transmitter.py): its own encoder reproduces the
# shared vectors byte for byte, and its behaviour follows ../shared/DEXCOM_G6.md (window, auth, slots,
# bonding, generations, states, backfill). It never imports the firmware's codec.
import json
import os
import struct
import sys

import pytest

from host_tests.paths import ROOT, VECTORS

sys.path.insert(0, os.path.join(ROOT, "tools"))

from simlib import g6_transmitter as g6t
from simlib.g6_transmitter import AUTH, BACKFILL, CONTROL

with open(os.path.join(VECTORS, "dexcom_g6.json")) as f:
    VEC = json.load(f)


def _by(prefix):
    return [v for v in VEC if v["message"].startswith(prefix)]


def test_encoder_matches_the_vectors():
    table = _by("CRC16 single byte table")[0]["expected"]["wire_bytes_for_byte_i_as_uint16_be"]
    assert [struct.pack("<H", g6t.crc_xmodem(bytes((i,)))).hex() for i in range(256)] == table
    assert g6t.crc_xmodem(b"123456789") == 0x31C3
    h = _by("AuthHash")[0]
    assert g6t.auth_hash("123456", bytes.fromhex(h["hex"])).hex() == h["expected"]["hash_first8_of_aes_ecb"]
    for prefix, op in (("TransmitterTimeTx", 0x24), ("BatteryStatusTx", 0x22), ("GlucoseTx G6", 0x4E),
                       ("GlucoseTx G5", 0x30)):
        assert g6t.enc_request(op).hex() == _by(prefix)[0]["hex"]
    for v in _by("TransmitterTimeRx"):
        e = v["expected"]
        start = e["session_start_time_s"] if e["session_active"] else None
        assert g6t.enc_time(e["status"], e["current_time_s"], start).hex() == v["hex"]
    for v in _by("GlucoseRx(0x31)"):
        e = v["expected"]
        assert g6t.enc_glucose_31(e["status"], e["sequence"], e["timestamp"], e["glucose_mgdl"], e["state"],
                                  e["trend"], e["display_only"]).hex() == v["hex"]
    for v in _by("BatteryStatusRx"):
        e = v["expected"]
        assert g6t.enc_battery(e["status"], e["voltage_a"], e["voltage_b"], e["resistance"], e["runtime_days"],
                               e["temperature_c"]).hex() == v["hex"]
    for v in _by("BackfillTx"):
        e = v["expected"]
        assert g6t.enc_backfill_request(e["start_time_s"], e["end_time_s"]).hex() == v["hex"]
    for v in _by("BackfillRx"):
        e = v["expected"]
        assert g6t.enc_backfill_rx(e["status"], e["backfill_status"], e["identifier"], e["start_time_s"],
                                   e["end_time_s"], e["buffer_length"], e["buffer_crc"]).hex() == v["hex"]
    n = 0
    for v in _by("BackfillFrames(characteristic"):
        e = v["expected"]
        if not e["is_glucose"]:
            continue
        recs = [(r["timestamp"], r["glucose_mgdl"], r["state"], r["trend"]) for r in e["records"]]
        ident = int(e["frame_byte1"], 16) >> 6
        frames = g6t.enc_backfill_frames(bytes.fromhex(e["stream_header_first4_after_frame_headers"]), recs, ident)
        assert [f.hex() for f in frames] == v["hex"].split()
        whole = b"".join(frames)
        assert (len(whole), g6t.crc_xmodem(whole)) == (e["buffer_length_incl_2byte_frame_headers"],
                                                        e["buffer_crc16_over_all_frames_incl_headers"])
        n += 1
    assert n == 4


# ---- behaviour -------------------------------------------------------------------------------------
TOKEN = bytes.fromhex("19f389f8b7584133")


def _auth(link, tx_id, slot=g6t.ALTERNATE):
    """A minimal central, written here against the facts: returns the AuthStatus bytes."""
    out = link.write(AUTH, b"\x01" + TOKEN + bytes((slot,)))
    chal = out[0][2] if out else link.read(AUTH)
    assert chal[0] == 3
    assert (chal[1:9] == g6t.auth_hash(tx_id, TOKEN)) == (tx_id == link.tx.tx_id)
    out = link.write(AUTH, b"\x04" + g6t.auth_hash(tx_id, chal[9:]))
    return out[0][2] if out else link.read(AUTH)


def _tx(gen="firefly", **kw):
    tx = g6t.G6Transmitter("8G1234", gen, activated_at=-1000000, phase_s=100, **kw)
    tx.start_session(-WARM)    # warm-up over
    return tx


WARM = 3 * 3600


def test_advertises_about_15_s_every_5_min():
    tx = _tx()
    seen = [t for t in range(0, 1300) if tx.advertising(t)]
    assert seen[:2] == [100, 101] and len(seen) == 4 * 15
    assert tx.next_window(101) == 400 and tx.next_window(400) == 400
    assert tx.advert()[0] == "Dexcom34" and 0xFEBC in tx.advert()[1]
    assert tx.connect(50, "box") is None
    link = tx.connect(105, "box")
    assert link is not None and not tx.advertising(106)   # connected: no longer advertising
    link.write(AUTH, b"\x09")
    assert not link.open and tx.advertising(106)


@pytest.mark.parametrize("gen", ["1.x", "firefly"])
def test_auth_bond_then_data(gen):
    tx = _tx(gen)
    link = tx.connect(100, "box")
    link.subscribe(AUTH, "indicate")
    with pytest.raises(g6t.AttError) as e:
        link.subscribe(CONTROL, "indicate")               # before bonding: encryption is insufficient
    assert e.value.code == g6t.ATT_INSUFFICIENT_ENCRYPTION
    assert _auth(link, "8G1234") == b"\x05\x01\x02"       # authenticated, not bonded
    assert not link.pair()                                # no bond request yet: pairing fails
    link.write(AUTH, b"\x06\x19")
    link.write(AUTH, b"\x07")
    assert link.pair()
    link.subscribe(CONTROL, "indicate")
    t = link.write(CONTROL, g6t.enc_request(0x24))[-1][2]
    assert t[0] == 0x25 and struct.unpack("<I", t[2:6])[0] == 1000100
    g = link.write(CONTROL, g6t.enc_request(0x4E))[-1][2]
    assert g[0] == 0x4F and g[12] == 6 and len(g) == 18
    b = link.write(CONTROL, g6t.enc_request(0x22))[-1][2]
    assert len(b) == (10 if gen == "firefly" else 12)
    g5 = link.write(CONTROL, g6t.enc_request(0x30))[-1][2]
    assert (g5[0] == 0xFF) == (gen == "firefly")          # firefly needs 4E
    link.write(CONTROL, b"\x09")
    assert not link.open
    # the next session: already bonded, pairing just encrypts
    link = tx.connect(400, "box")
    link.subscribe(AUTH, "indicate")
    assert _auth(link, "8G1234") == b"\x05\x01\x01"
    assert link.pair()


def test_firefly_auth_is_indication_only_and_1x_is_read():
    ff = _tx("firefly").connect(100, "box")
    ff.subscribe(AUTH, "indicate")
    out = ff.write(AUTH, b"\x01" + TOKEN + b"\x01")
    assert out and out[0][2][0] == 3
    assert ff.read(AUTH)[0] == 1                         # reads back the request (xdrip-js #124)
    old = _tx("1.x").connect(100, "box")
    old.subscribe(AUTH, "indicate")
    assert old.write(AUTH, b"\x01" + TOKEN + b"\x01") == []
    assert old.read(AUTH)[0] == 3


def test_wrong_id_fails_auth_and_slot_taken_is_refused_and_traced():
    tx = _tx()
    link = tx.connect(100, "box")
    link.subscribe(AUTH, "indicate")
    assert _auth(link, "8G1235") == b"\x05\x00\x02"
    assert tx.slots[g6t.ALTERNATE] is None
    link.write(AUTH, b"\x09")
    tx.take_slot(g6t.ALTERNATE, "t:slim")
    link = tx.connect(100, "box2")
    link.subscribe(AUTH, "indicate")
    assert _auth(link, "8G1234") == b"\x05\x00\x02"
    assert tx.events == [{"event": "g6_slot_taken", "slot": 1, "by": "t:slim"}]
    # the phone slot is still free
    assert _auth(link, "8G1234", g6t.PHONE) == b"\x05\x01\x02"


def test_states_warmup_ok_expired_and_backfill_of_missed_windows():
    tx = g6t.G6Transmitter("8G1234", activated_at=0, phase_s=0, glucose=lambda t: 100 + t // 300)
    tx.start_session(0)
    assert tx.sensor_state(3600) == 2 and tx.sensor_state(WARM) == 6
    assert tx.sensor_state(10 * 86400) == 0x18
    for t in range(0, WARM + 3600, 300):
        tx.tick(t)
    assert [r[2] for r in tx.records[:2]] == [2, 2] and tx.records[-1][2] == 6
    link = tx.connect(WARM + 3600, "box")
    link.subscribe(AUTH, "indicate")
    _auth(link, "8G1234")
    link.write(AUTH, b"\x07")
    link.pair()
    link.subscribe(CONTROL, "indicate")
    link.subscribe(BACKFILL, "notify")
    out = link.write(CONTROL, g6t.enc_backfill_request(WARM, WARM + 1800))
    frames = [d for c, k, d in out if c == BACKFILL]
    rx = [d for c, k, d in out if c == CONTROL][-1]
    whole = b"".join(frames)
    assert rx[0] == 0x51 and struct.unpack("<IIIH", rx[4:18]) == (WARM, WARM + 1800, len(whole),
                                                                   g6t.crc_xmodem(whole))
    stream = b"".join(f[2:] for f in frames)[4:]
    ts = [struct.unpack("<I", stream[i:i + 4])[0] for i in range(0, len(stream), 8)]
    assert ts == list(range(WARM, WARM + 1801, 300))
