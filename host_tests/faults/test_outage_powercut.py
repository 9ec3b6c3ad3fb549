# Outage queue under a power cut at every byte offset of every write (CPython only).
# A cut leaves the first k bytes of the write on flash and, for the rest of the write's range,
# either the old bytes, erased flash (0xFF) or zeros. After reopening, every record that was
# complete must be there, in order, the torn one must be gone, and `dropped` must account for
# exactly what is missing.
import os
import shutil

import pytest

from firmware.shell.outage_queue import OutageQueue
from host_tests.paths import ROOT

SCRATCH = os.path.join(ROOT, "build", "test_outage_powercut_%d" % os.getpid())


class PowerCut(Exception):
    pass


class _Budget:
    def __init__(self, n, fill):
        self.left = n
        self.fill = fill
        self.writes = 0
        self.landed = False


class CutFile:
    """A real file whose writes stop after the budget's bytes, like flash losing power."""

    def __init__(self, f, budget, path):
        self._f = f
        self._path = path
        self._b = budget

    def write(self, data):
        b = self._b
        b.writes += 1
        if b.left is None or len(data) <= b.left:
            if b.left is not None:
                b.left -= len(data)
            return self._f.write(data)
        start = self._f.tell()
        self._f.write(bytes(data[:b.left]))
        if b.fill is not None:
            self._f.write(bytes([b.fill]) * (len(data) - b.left))
        self._f.flush()
        # When the bytes left behind happen to equal the new ones, the write did land whole.
        with open(self._path, "rb") as r:
            r.seek(start)
            b.landed = r.read(len(data)) == bytes(data)
        self._f.seek(start + b.left)
        kept, b.left = b.left, 0
        raise PowerCut("power cut after %d bytes" % kept)

    def __getattr__(self, name):
        return getattr(self._f, name)


def cut_opener(budget):
    def opener(path, mode):
        return CutFile(open(path, mode), budget, path)
    return opener


def payload(i):
    # varying lengths so records straddle each other at different offsets lap after lap
    return ('{"type":"sgv","sgv":%d,"direction":"Flat","date":%d,"seq":%d,"trend":%s,'
            '"note":"%s"}' % (40 + i % 300, 1718000000000 + i * 300000, i, None if i % 4 == 0
                              else i % 7 - 3.5, "x" * (i * 7 % 23))).encode().replace(
        b"None", b"null")


def contents(path, capacity):
    q = OutageQueue(path, capacity)
    out = []
    n = len(q)
    # read without popping: pop writes. Walk a copy instead.
    tmp = path + ".walk"
    shutil.copyfile(path, tmp)
    w = OutageQueue(tmp, capacity)
    while w.peek() is not None:
        out.append(w.peek())
        w.pop()
    w.close()
    os.remove(tmp)
    assert len(out) == n
    dropped = q.dropped
    q.close()
    return out, dropped


@pytest.fixture
def scratch():
    shutil.rmtree(SCRATCH, ignore_errors=True)
    os.makedirs(SCRATCH)
    yield SCRATCH
    shutil.rmtree(SCRATCH, ignore_errors=True)


def _restore(base, trial):
    if os.path.exists(base):
        shutil.copyfile(base, trial)
    elif os.path.exists(trial):
        os.remove(trial)


def _sweep(base, capacity, op, fills=(None, 0xFF, 0x00)):
    """Run op(queue) with a cut at every byte offset; return (before, after, [(k, result)])."""
    before = contents(base, capacity) if os.path.exists(base) else ([], 0)
    trial = base + ".trial"
    _restore(base, trial)
    counter = _Budget(10 ** 9, None)     # the uncut run: what the op leaves and how much it writes
    q = OutageQueue(trial, capacity, opener=cut_opener(counter))
    op(q)
    q.close()
    after = contents(trial, capacity)
    total = 10 ** 9 - counter.left
    results = []
    assert counter.writes >= 1
    for fill in fills:
        for k in range(total):
            _restore(base, trial)
            b = _Budget(k, fill)
            q = OutageQueue(trial, capacity, opener=cut_opener(b))
            with pytest.raises(PowerCut):
                op(q)
            q.close()
            # a cut whose left-behind bytes equal the new ones, in the op's last write, is no cut
            whole = b.landed and b.writes == counter.writes
            results.append(("whole" if whole else k, fill, contents(trial, capacity)))
            # the queue still works after the cut
            q = OutageQueue(trial, capacity)
            q.append(b"after the cut")
            q.close()
            got, _ = contents(trial, capacity)
            assert got[-1] == b"after the cut"
    return before, after, results


def _check_torn_append(before, after, results):
    b_list, b_dropped = before
    a_list, a_dropped = after
    survivors = a_list[:-1]
    for k, fill, (got, dropped) in results:
        where = "cut at byte %s, fill %r" % (k, fill)
        if k == "whole":
            assert (got, dropped) == after, where
            continue
        # a suffix of what was queued before: order kept, the torn record absent
        assert got == b_list[len(b_list) - len(got):], where
        # every record the completed append would have kept is still there
        assert len(got) >= len(survivors), where
        # nothing vanished without being counted
        assert dropped == b_dropped + len(b_list) - len(got), where


def test_power_cut_during_every_append_of_many_laps(scratch):
    capacity = 1024
    base = os.path.join(scratch, "q.bin")
    checked = 0
    for i in range(1, 70):
        fills = (None, 0xFF, 0x00) if i % 4 == 0 else (None, 0xFF)
        before, after, results = _sweep(base, capacity, lambda q, i=i: q.append(payload(i)), fills)
        assert after[0][-1] == payload(i)
        _check_torn_append(before, after, results)
        checked += len(results)
        q = OutageQueue(base, capacity)   # advance the real state by one good append
        q.append(payload(i))
        if i % 5 == 0:
            q.pop()
        q.close()
    assert checked > 5000
    q = OutageQueue(base, capacity)
    assert q.dropped > 10 and len(q) > 10     # the sweep covered full-ring overwrites
    q.close()


def test_power_cut_while_creating_the_file(scratch):
    base = os.path.join(scratch, "new.bin")
    before, after, results = _sweep(base, 1024, lambda q: q.append(payload(1)))
    assert before == ([], 0)
    assert after == ([payload(1)], 0)
    for k, fill, (got, dropped) in results:
        assert got == [] and dropped == 0, (k, fill)


def test_power_cut_during_every_pop(scratch):
    capacity = 1024
    base = os.path.join(scratch, "p.bin")
    q = OutageQueue(base, capacity)
    for i in range(1, 40):
        q.append(payload(i))
    q.close()
    for _ in range(6):
        before, after, results = _sweep(base, capacity, lambda q: q.pop())
        assert after[0] == before[0][1:]
        for k, fill, (got, dropped) in results:
            # the popped record may be sent again after a cut; nothing else changes
            assert got == after[0] if k == "whole" else got in (before[0], after[0]), (k, fill)
            assert dropped == before[1], (k, fill)
        q = OutageQueue(base, capacity)
        q.pop()
        q.close()


def test_no_write_unless_append_or_pop(scratch):
    base = os.path.join(scratch, "quiet.bin")
    q = OutageQueue(base, 1024)
    for i in range(1, 50):
        q.append(payload(i))
    q.pop()
    q.close()
    counter = _Budget(10 ** 9, None)
    q = OutageQueue(base, 1024, opener=cut_opener(counter))
    for _ in range(3):
        q.peek()
        len(q)
    q.close()
    assert counter.writes == 0


def varied(i):
    return ('{"sgv":%d,"seq":%d,"note":"%s"}' % (40 + i % 300, i, "x" * (i * 37 % 71))).encode()


def test_power_cut_when_the_ring_wraps_past_an_unsent_record_in_the_tail(scratch):
    # With these lengths, append 78 wraps while the oldest unsent record sits in the bytes after
    # the write position (left over from two laps ago). A cut must not bring that record back
    # after newer ones were destroyed: order stays oldest-first and the loss is counted.
    capacity = 1024
    base = os.path.join(scratch, "tail.bin")
    for i in range(1, 78):
        q = OutageQueue(base, capacity)
        q.append(varied(i))
        if i % 5 == 0:
            q.pop()
        q.close()
    q = OutageQueue(base, capacity)
    assert q._hpos >= q._w and q._w + 11 + len(varied(78)) > capacity   # the case under test
    q.close()
    for i in (78, 79, 80):
        before, after, results = _sweep(base, capacity, lambda q, i=i: q.append(varied(i)))
        _check_torn_append(before, after, results)
        q = OutageQueue(base, capacity)
        q.append(varied(i))
        q.close()
