# Open CGM broadcast v1: shared vectors, refusals, garbage, counters across reboots.
# Portable: runs under pytest and `micropython host_tests/mp_runner.py test_open_broadcast`.
import json
import os

from firmware.sensor import open_broadcast as ob
from firmware.shell.counter_store import FileCounterStore, MemoryCounterStore

_VEC = "host_tests/vectors/open_broadcast_v1.json"
_KEY = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f"
_SID = 200133374


def _vectors():
    with open(_VEC) as f:
        return json.load(f)


def _receiver(allow_plain=False, key=_KEY, store=None):
    cfg = {"id": _SID, "bind_key": key, "allow_plain": allow_plain}
    return ob.BroadcastReceiver(cfg, store if store is not None else MemoryCounterStore())


def _close(a, b):
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-6


def _run_vectors(allow_plain):
    v = _vectors()
    assert v["bind_key_hex"] == _KEY and v["allowlisted_sensor_id"] == _SID
    rx = _receiver(allow_plain)
    for case in v["cases"]:
        got, why = rx.accept(bytes.fromhex(case["adv_hex"]))
        exp = case["expect"]
        name = case["name"]
        if "reject" in exp:
            assert got is None and why == exp["reject"], (name, why)
            continue
        if exp.get("accept_if_plain_allowed") and not allow_plain:
            assert got is None and why == "plain_refused", (name, why)
            continue
        assert why is None, (name, why)
        assert got.sensor_id == exp["sensor_id"], name
        assert got.seq == exp["counter"], name
        assert got.mgdl == exp["mgdl"], name
        assert _close(got.trend, exp["trend"]), (name, got.trend)
        assert got.minutes == exp["minutes"], name
        assert got.status == exp["status"], name
        assert got.source == "broadcast" and not got.backfilled, name


def test_vectors_with_plain_allowed():
    _run_vectors(True)


def test_vectors_with_plain_refused():
    _run_vectors(False)


def test_encode_frame_reproduces_the_vectors():
    cases = _vectors()["cases"]
    assert ob.encode_frame(_SID, 1, 112, 0.0, 600, 0).hex() == cases[0]["adv_hex"]
    assert ob.encode_frame(_SID, 2, 54, -2.1, 605, 0, _KEY).hex() == cases[1]["adv_hex"]
    assert ob.encode_frame(_SID, 3, None, None, 610, 10, _KEY).hex() == cases[2]["adv_hex"]


def test_irrelevant_adverts_are_not_rejects():
    rx = _receiver()
    ibeacon = bytes.fromhex("0201061aff4c000215e2c56db5dffb48d2b060d0f5a71096e000010002c5")
    named = bytes.fromhex("0201060909") + b"Headphone"
    other_company = bytes.fromhex("02010607ff5900aabbccdd")
    for adv in (ibeacon, named, other_company, b"", b"\x00\x00\x00"):
        assert rx.accept(adv) == (None, None), adv


def test_garbage_and_short_adverts_never_raise():
    rx = _receiver(allow_plain=True)
    good = bytes.fromhex(_vectors()["cases"][1]["adv_hex"])
    samples = [b"\xff\xff\xff", b"\x03\xff\xff\xff", b"\x04\xff\xff\xff", b"\xff" * 31,
               b"\x01\xff\xff\xff\x00", b"\x02\x01\x06\x30\xff\xff\xff\x11",
               good[:-1], good[:10], b"\x1f\x09" + good, bytearray(good[:12])]
    for i in range(len(good)):
        samples.append(good[:i])
    for adv in samples:
        got, why = rx.accept(adv)
        assert got is None
        assert why is None or why in ob.REASONS, (adv, why)
    assert rx.accept(good[:-1])[1] == "malformed"
    assert rx.accept(b"\x02\x01\x06\x03\xff\xff\xff")[1] == "malformed"
    got, why = rx.accept(good + b"\x00\x00")     # zero padding after the last structure is legal
    assert why is None and got.mgdl == 54


def test_other_version_and_reserved_bits():
    rx = _receiver(allow_plain=True)
    adv = bytearray(ob.encode_frame(_SID, 9, 100, 0.0, 700, 0))
    adv[7] = 0x02                              # version 2
    assert rx.accept(bytes(adv)) == (None, "version")
    adv[7] = 0x21                              # version 1 with a reserved bit set
    assert rx.accept(bytes(adv)) == (None, "malformed")


def test_encrypted_frame_without_a_key_is_refused():
    rx = _receiver(allow_plain=True, key="")
    adv = ob.encode_frame(_SID, 5, 100, 0.0, 700, 0, _KEY)
    assert rx.accept(adv) == (None, "mic")


def test_wrong_key_is_a_mic_failure():
    rx = _receiver()
    adv = ob.encode_frame(_SID, 5, 100, 0.0, 700, 0, "00" * 16)
    assert rx.accept(adv) == (None, "mic")


def test_repeats_of_the_accepted_frame_are_dropped_quietly():
    rx = _receiver()
    adv = ob.encode_frame(_SID, 7, 130, 0.5, 700, 0, _KEY)
    got, why = rx.accept(adv)
    assert got.mgdl == 130 and why is None
    assert rx.accept(adv) == (None, None)      # a bridge repeats each frame: not an attack
    assert rx.duplicates == 1
    older = ob.encode_frame(_SID, 6, 40, -3.0, 695, 0, _KEY)
    got, why = rx.accept(older)                 # late but genuine, inside the window: accepted once
    assert why is None and got.seq == 6 and got.mgdl == 40
    assert rx.accept(older) == (None, "replay")   # but only once


def test_plain_frame_with_same_counter_but_other_value_is_a_replay():
    rx = _receiver(allow_plain=True, key="")
    assert rx.accept(ob.encode_frame(_SID, 7, 130, 0.5, 700, 0))[1] is None
    assert rx.accept(ob.encode_frame(_SID, 7, 130, 0.5, 700, 0)) == (None, None)
    assert rx.accept(ob.encode_frame(_SID, 7, 45, 0.5, 700, 0)) == (None, "replay")


def test_implausible_values_are_refused():
    rx = _receiver()
    assert rx.accept(ob.encode_frame(_SID, 1, 700, 0.0, 700, 0, _KEY)) == (None, "implausible")
    assert rx.accept(ob.encode_frame(_SID, 2, 10, 0.0, 700, 0, _KEY)) == (None, "implausible")
    # an implausible trend loses the trend, never the glucose: a fast fall must still alarm
    got, why = rx.accept(ob.encode_frame(_SID, 3, 64, -12.0, 700, 0, _KEY))
    assert why is None and got.mgdl == 64 and got.trend is None
    assert rx.accept(ob.encode_frame(_SID, 4, 100, 0.0, 700, 0, _KEY))[0].mgdl == 100
    # minutes since session start going back by hours: not the same session, not a new one
    assert rx.accept(ob.encode_frame(_SID, 5, 100, 0.0, 400, 0, _KEY)) == (None, "implausible")
    # a new sensor session starts again near 0 and is believed
    got, why = rx.accept(ob.encode_frame(_SID, 6, 100, None, 3, 1, _KEY))
    assert why is None and got.minutes == 3 and got.status == 1 and got.trend is None


def _tmp_path(name):
    p = "/tmp/nightstand_test_%d_%s" % (os.getpid() if hasattr(os, "getpid") else 0, name)
    for q in (p, p + ".tmp"):
        try:
            os.remove(q)
        except OSError:
            pass
    return p


def test_counter_survives_a_reboot():
    path = _tmp_path("counters_reboot.json")
    rx = _receiver(store=FileCounterStore(path))
    replay_me = ob.encode_frame(_SID, 41, 60, -1.0, 800, 0, _KEY)
    assert rx.accept(replay_me)[1] is None
    rx2 = _receiver(store=FileCounterStore(path))   # power cycle: a new store reads the file
    assert rx2.counters.get(_SID) == 41
    older = ob.encode_frame(_SID, 40, 60, -1.0, 795, 0, _KEY)
    assert rx2.accept(older) == (None, "replay")
    assert rx2.accept(ob.encode_frame(_SID, 42, 58, -1.0, 805, 0, _KEY))[1] is None


def test_counter_writes_are_bounded_and_flush_closes_the_window():
    path = _tmp_path("counters_bounded.json")
    store = FileCounterStore(path, every=10)
    for c in range(1, 31):
        store.put(_SID, c)
    assert store.writes == 3                       # 1 (first), 11, 21 -- not 30 writes
    assert FileCounterStore(path).get(_SID) == 21  # a power cut now loses at most every-1
    store.flush()
    assert FileCounterStore(path).get(_SID) == 30
    assert store.error is None


def test_counter_file_left_as_temp_by_a_cut_rename_is_read():
    path = _tmp_path("counters_cut.json")
    with open(path + ".tmp", "w") as f:
        f.write('{"%d": 77}' % _SID)
    assert FileCounterStore(path).get(_SID) == 77


def test_corrupt_counter_file_is_reported_not_fatal():
    path = _tmp_path("counters_bad.json")
    with open(path, "w") as f:
        f.write("{not json")
    store = FileCounterStore(path)
    assert store.get(_SID) is None
    assert store.error is not None
    store.put(_SID, 1)                       # the first frame after boot rewrites the file
    assert store.error is None and FileCounterStore(path).get(_SID) == 1


def test_counter_write_failure_is_kept_until_a_write_works():
    path = _tmp_path("counters_unwritable.json")
    store = FileCounterStore(path)
    good_dir = store.path
    store.path = _tmp_path("no_such_dir") + "/sub/counters.json"  # the flash refuses the write
    store.put(_SID, 5)
    assert store.error is not None and "write failed" in store.error
    store.put(_SID, 6)                       # not yet due for a write: the problem still shows
    assert store.error is not None
    store.path = good_dir
    store.flush()                            # a write works again: the fault can clear
    assert store.error is None and FileCounterStore(good_dir).get(_SID) == 6


def test_a_burst_handed_over_newest_first_loses_no_reading():
    # aioble pops its scan queue from the end: frames 3, 4, 5 heard together come as 5, 4, 3.
    rx = _receiver()
    assert rx.accept(ob.encode_frame(_SID, 2, 100, 0.0, 700, 0, _KEY))[1] is None
    got = [rx.accept(ob.encode_frame(_SID, c, 100 + c, 0.0, 700 + 5 * c, 0, _KEY)) for c in (5, 4, 3)]
    assert [(r.seq, why) for r, why in got] == [(5, None), (4, None), (3, None)]
    assert rx.accept(ob.encode_frame(_SID, 4, 104, 0.0, 720, 0, _KEY)) == (None, "replay")
    assert rx.accept(ob.encode_frame(_SID, 5, 105, 0.0, 725, 0, _KEY)) == (None, None)   # the newest again
    assert rx.late == 2


def test_the_replay_window_is_32_counters_behind_the_newest():
    rx = _receiver()
    assert rx.accept(ob.encode_frame(_SID, 100, 120, 0.0, 900, 0, _KEY))[1] is None
    assert rx.accept(ob.encode_frame(_SID, 68, 120, 0.0, 740, 0, _KEY))[1] is None     # 32 behind
    assert rx.accept(ob.encode_frame(_SID, 67, 120, 0.0, 735, 0, _KEY)) == (None, "replay")
    plain = _receiver(allow_plain=True, key="")
    assert plain.accept(ob.encode_frame(_SID, 10, 120, 0.0, 900, 0))[1] is None
    assert plain.accept(ob.encode_frame(_SID, 9, 120, 0.0, 895, 0))[1] is None
    # a plain frame with a counter already accepted but other bytes: refused, not a repeat
    assert plain.accept(ob.encode_frame(_SID, 9, 40, 0.0, 895, 0)) == (None, "replay")


def test_after_a_reboot_only_frames_newer_than_the_persisted_counter_are_accepted():
    store = MemoryCounterStore()
    rx = _receiver(store=store)
    for c in (20, 22):
        assert rx.accept(ob.encode_frame(_SID, c, 120, 0.0, 800 + c, 0, _KEY))[1] is None
    rx2 = _receiver(store=store)                # the same counters after a reboot
    assert rx2.accept(ob.encode_frame(_SID, 21, 120, 0.0, 821, 0, _KEY)) == (None, "replay")
    assert rx2.accept(ob.encode_frame(_SID, 23, 120, 0.0, 823, 0, _KEY))[1] is None
