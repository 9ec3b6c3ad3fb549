# What a scan window hears, in arrival order, straight from aioble's scan queue: the broadcast radio
# (firmware/shell/radio.py) and the G6 and CGMS centrals' searches read their scans through it.


class Heard:
    """Every advert a scan window hears, oldest first, repeats included: (addr_type, addr, adv_type,
    rssi, adv_data) tuples. aioble's own iterator (central.scan.__anext__) does two things the alarm
    path cannot have: it pops its IRQ queue from the end, so a burst comes newest first, and it yields a
    device again only when its ScanResult changes, which for ADV_SCAN_IND without a scan response (what
    a passive scan gets) means only when the RSSI changes: the next frame at the same RSSI waited. It
    also keeps a ScanResult per address for the whole window. So the queue its IRQ handler fills
    (`_queue`, woken by `_event`, ended by `_done`; aioble 0.6) is taken whole and handed over in
    arrival order. A stack without those falls back to the iterator (newest first, repeats dropped:
    the receiver's replay window still keeps a late frame)."""

    def __init__(self, scanner):
        raw = getattr(scanner, "_inner", scanner)   # the supervisor's watched scan wraps aioble's
        self._raw = raw if hasattr(raw, "_queue") and hasattr(raw, "_event") else None
        self._it = scanner if self._raw is None else None
        self._batch = ()
        self._i = 0

    def __aiter__(self):
        if self._it is not None:
            self._it = self._it.__aiter__()
        return self

    async def __anext__(self):
        if self._it is not None:
            r = await self._it.__anext__()
            return (r.device.addr_type, r.device.addr, None, r.rssi, r.adv_data)
        raw = self._raw
        while True:
            if self._i < len(self._batch):
                self._i += 1
                return self._batch[self._i - 1]
            if raw._queue:
                # Swap, not copy: the IRQ handler appends to whatever list the scanner holds now.
                self._batch, raw._queue = raw._queue, []
                self._i = 0
                continue
            if raw._done:
                raise StopAsyncIteration
            await raw._event.wait()
