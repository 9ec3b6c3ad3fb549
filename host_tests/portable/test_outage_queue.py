# Outage queue: order, wrap-around, overflow, persistence. Runs under pytest and MicroPython.
import os

from firmware.shell import outage_queue
from firmware.shell.outage_queue import OutageQueue
from host_tests.portable.scratch import fresh

_DIR = "build/test_outage_queue"


def _fresh(name):
    return fresh(_DIR, name)


def _size(path):
    return os.stat(path)[6]


def reading(seq, mgdl=112, trend=-0.4, direction="Flat", date=1718000000000):
    # What the uplink queues: the Nightscout-shaped reading without `replayed` (added on send).
    return ('{"type":"sgv","sgv":%d,"direction":"%s","date":%d,"seq":%d,"trend":%s,'
            '"device":"nightstand/bedroom"}' % (mgdl, direction, date + seq * 300000, seq,
                                                trend)).encode()


def _drain(q):
    out = []
    while True:
        p = q.peek()
        if p is None:
            return out
        out.append(p)
        q.pop()


def test_empty_queue_has_nothing_and_writes_no_file():
    path = _fresh("empty.bin")
    q = OutageQueue(path)
    assert len(q) == 0
    assert q.peek() is None
    assert q.dropped == 0
    q.close()
    try:
        os.stat(path)
        exists = True
    except OSError:
        exists = False
    assert not exists


def test_readings_come_back_in_order_and_pop_removes():
    q = OutageQueue(_fresh("order.bin"))
    for s in range(1, 6):
        q.append(reading(s))
    assert len(q) == 5
    assert q.peek() == reading(1)
    assert q.peek() == reading(1)      # peek does not consume
    q.pop()
    assert len(q) == 4
    assert q.peek() == reading(2)
    assert _drain(q) == [reading(s) for s in range(2, 6)]
    assert len(q) == 0
    q.close()


def test_any_bytes_round_trip():
    q = OutageQueue(_fresh("bytes.bin"))
    odd = [b"\x00\x01\xff binary", "caf\u00e9 \"t\":1".encode(), b"0", b"99 1234567",
           b'{"t":null,"x":true,"y":false}', bytes(range(32, 127))]
    for p in odd:
        q.append(p)
    assert _drain(q) == odd
    q.close()


def test_too_big_payload_is_refused_clearly():
    q = OutageQueue(_fresh("big.bin"))
    q.append(b"x" * outage_queue.MAX_PAYLOAD)
    for bad in (b"x" * (outage_queue.MAX_PAYLOAD + 1), b""):
        try:
            q.append(bad)
            refused = False
        except ValueError as e:
            refused = "outage queue payload" in str(e)
        assert refused
    assert len(q) == 1
    q.close()


def test_288_readings_fit_in_16_kib():
    path = _fresh("day.bin")
    q = OutageQueue(path, 16384)
    for s in range(1, 289):
        q.append(reading(100000 + s, mgdl=40 + s % 360, trend=-2.35 + s % 9,
                         direction=("FortyFiveDown", "SingleUp", "Flat")[s % 3]))
    assert len(q) == 288
    assert q.dropped == 0
    q.close()
    assert _size(path) <= 16384
    q = OutageQueue(path, 16384)
    assert len(q) == 288
    assert q.peek() == reading(100001, mgdl=40 + 1, trend=-2.35 + 1, direction="SingleUp")
    q.close()


def test_wrap_around_keeps_order_across_many_laps():
    path = _fresh("wrap.bin")
    q = OutageQueue(path, 1024)
    got = []
    for s in range(1, 200):
        q.append(reading(s))
        if s % 3 == 0:                  # drain slower than we fill, but keep up
            got.append(q.peek())
            q.pop()
            got.append(q.peek())
            q.pop()
            got.append(q.peek())
            q.pop()
    assert q.dropped == 0
    assert got == [reading(s) for s in range(1, 199)]
    assert _size(path) <= 1024
    q.close()


def test_overflow_drops_oldest_and_counts():
    path = _fresh("overflow.bin")
    q = OutageQueue(path, 1024)
    for s in range(1, 101):
        q.append(reading(s))
    n = len(q)
    assert 10 < n < 100
    assert q.dropped == 100 - n
    assert _size(path) <= 1024
    assert _drain(q) == [reading(s) for s in range(101 - n, 101)]
    assert q.dropped == 100 - n         # sending does not drop
    q.close()


def test_reopen_keeps_queue_pops_and_dropped_count():
    path = _fresh("reopen.bin")
    q = OutageQueue(path, 1024)
    for s in range(1, 61):
        q.append(reading(s))
    q.pop()
    q.pop()
    n, dropped, head = len(q), q.dropped, q.peek()
    q.close()
    q = OutageQueue(path, 1024)
    assert len(q) == n
    assert q.dropped == dropped
    assert q.peek() == head
    q.append(reading(61))               # continues after the old newest, not over it
    assert len(q) + (q.dropped - dropped) == n + 1
    q.close()
    q = OutageQueue(path, 1024)
    assert _drain(q)[-2:] == [reading(60), reading(61)]
    q.close()


def test_reopen_after_everything_sent_is_empty():
    path = _fresh("sent.bin")
    q = OutageQueue(path)
    for s in range(1, 4):
        q.append(reading(s))
    _drain(q)
    q.close()
    q = OutageQueue(path)
    assert len(q) == 0
    assert q.peek() is None
    q.append(reading(4))
    assert q.peek() == reading(4)
    q.close()


def test_opening_and_reading_never_write():
    path = _fresh("nowrite.bin")
    q = OutageQueue(path, 1024)
    for s in range(1, 30):
        q.append(reading(s))
    q.close()
    with open(path, "rb") as f:
        before = f.read()
    q = OutageQueue(path, 1024)
    q.peek()
    len(q)
    q.close()
    with open(path, "rb") as f:
        assert f.read() == before


def test_capacity_too_small_is_refused():
    try:
        OutageQueue(_fresh("tiny.bin"), 200)
        refused = False
    except ValueError:
        refused = True
    assert refused


def test_packing_shrinks_a_reading_and_crc_fallback_matches():
    kind, stored = outage_queue.pack(reading(123456))
    assert len(stored) * 2 < len(reading(123456))
    assert outage_queue.unpack(kind, stored) == reading(123456)
    data = b"123456789 nightstand"
    assert outage_queue._crc32_py(data) == outage_queue._crc32(data)
