# The uplink's outage queues: the flash ring (outage_queue.py), loaded lazily, and a RAM stand-in for
# boards and tests without a filesystem. Only the uplink worker thread appends, peeks and pops; the
# asyncio side only asks len() and dropped, which never load the ring's code.
from micropython import const

from firmware.lib.unload import forget

_QUEUE_FILE = "/outage.q"    # in board.data_dir
# 288 readings (24 h at one per 5 min) of ~60 packed bytes each fit in 16 KiB with room to spare.
_QUEUE_BYTES = const(16384)
_QUEUE_HDR = const(32)       # outage_queue.py's two pop slots: a file no longer than this has no record
_QUEUE_MOD = "firmware.shell.outage_queue"


class RamQueue:
    """Outage queue stand-in with the OutageQueue API, for tests and boards without a filesystem."""

    def __init__(self, capacity=288):
        self.capacity = capacity
        self.items = []
        self.dropped = 0

    def append(self, payload):
        if len(self.items) >= self.capacity:
            self.items.pop(0)
            self.dropped += 1
        self.items.append(payload)

    def peek(self):
        return self.items[0] if self.items else None

    def pop(self):
        if self.items:
            self.items.pop(0)

    def __len__(self):
        return len(self.items)


def _flash_ring(path, capacity):
    from firmware.shell.outage_queue import OutageQueue
    return OutageQueue(path, capacity)


class LazyQueue:
    """The flash ring, loaded on the first reading that has to go to flash: a night with the cloud up
    never spends the heap its code takes (~12 KiB on the 64-bit port). append/peek/pop run on the
    worker thread only; len() and dropped (depth() and lost(), read by the asyncio side) never load it,
    so the alarm path never waits for an import. A load that fails (MemoryError on a tight heap)
    raises from append(): the uplink treats it as a failed flash write (the reading stays in RAM, the
    `flash` fault shows) and the next spill tries again."""

    def __init__(self, path, capacity=_QUEUE_BYTES, dropped=0, make=_flash_ring):
        self.path = path
        self.capacity = capacity
        self._dropped = dropped  # what the ring on flash already counted (kept across reboots)
        self._make = make
        self.ring = None

    @property
    def dropped(self):
        return self._dropped if self.ring is None else self.ring.dropped

    def append(self, payload):
        if self.ring is None:
            self.ring = self._make(self.path, self.capacity)
        self.ring.append(payload)

    def peek(self):
        return None if self.ring is None else self.ring.peek()

    def pop(self):
        if self.ring is None:
            raise IndexError("pop from an empty outage queue")
        self.ring.pop()

    def close(self):
        if self.ring is not None:
            self.ring.close()

    def __len__(self):
        return 0 if self.ring is None else len(self.ring)


def open_queue(data_dir):
    """(queue, None) with the flash ring in data_dir, or (RamQueue, reason) when there is no usable
    filesystem: the gateway still queues in RAM and says why (a `fault` the app shows). The ring's
    code loads now only when its file holds records (a reboot mid-outage replays them first);
    otherwise a LazyQueue loads it on the first spill."""
    try:
        import os
        os.stat(data_dir)  # the ring creates its file on the first outage: the dir must be there
        path = data_dir + _QUEUE_FILE
        try:
            size = os.stat(path)[6]
        except OSError:
            size = 0  # no outage yet
        if size <= _QUEUE_HDR:
            return LazyQueue(path), None
        q = _flash_ring(path, _QUEUE_BYTES)
        if len(q):
            return q, None
        dropped = q.dropped  # all sent before the reboot: only the count of lost ones matters
        q.close()
        q = None
        forget(_QUEUE_MOD)
        return LazyQueue(path, _QUEUE_BYTES, dropped), None
    except Exception as e:
        return RamQueue(), "outage queue in RAM only: %r" % (e,)
