# Radio tasks: the first hop of the alarm path. Sensor frames in, readings to the core, nothing else.
from micropython import const

# Finite scan windows: aioble keeps one result per address for a scan's whole duration, and rotating
# random addresses would grow that set without bound. A window bounds it to one window's devices, and
# that set is the broadcast path's largest heap swing under advert noise: with 5 s windows (not 10 s) the
# smallest heap that runs a simulated day of a frozen build with --noise 200 went from 48 to 44 KiB
# (tools/bench_memory.py, measured on the aioble stand-ins). A CGM advertising every ~1 s is still heard
# in every window, and each window is also the radio's supervisor check-in.
_SCAN_MS = const(5000)
# Passive scan with a 30 ms window every 100 ms leaves the shared 2.4 GHz radio to Wi-Fi 70% of the time;
# a CGM advertising every ~1 s is still heard within a few seconds.
_SCAN_INTERVAL_US = const(100000)
_SCAN_WINDOW_US = const(30000)


def make_receiver(cfg, data_dir):
    s = cfg["sensor"]
    if s["kind"] == "broadcast":
        from firmware.sensor.open_broadcast import BroadcastReceiver
        from firmware.shell.counter_store import FileCounterStore
        return BroadcastReceiver(s, FileCounterStore(data_dir + "/counters.json"))
    if s["kind"] == "dexcom_g6":
        from firmware.shell.g6_central import G6Memory
        return G6Memory(s["transmitter_id"])
    # cgms: the central task (firmware/shell/cgms_central.py) owns the connection; the tracker is
    # its state that must outlive a crashed-and-restarted task (what was delivered, open gaps).
    from firmware.sensor.cgms import CgmsTracker
    return CgmsTracker(s["address"])


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


async def scan_task(app):
    """The radio task. Broadcast: passive scan for Open CGM frames, forever, in finite windows.
    CGMS: the central's scan/connect/session state machine."""
    if app.cfg["sensor"]["kind"] == "cgms":
        from firmware.shell.cgms_central import central_task
        await central_task(app)
        return
    if app.cfg["sensor"]["kind"] == "dexcom_g6":
        from firmware.shell.g6_central import central_task
        await central_task(app)
        return
    ble, rx, gw, clock = app.board.ble, app.receiver, app.gw, app.clock
    while True:
        async with ble.scan(_SCAN_MS, interval_us=_SCAN_INTERVAL_US, window_us=_SCAN_WINDOW_US,
                            active=False) as scanner:
            async for heard in Heard(scanner):
                reading, reason = rx.accept(heard[4])
                if reading is not None:
                    reading.wall_ms = clock.wall_ms()
                    gw.on_reading(clock.ticks_ms(), reading)
                    app.flush()
                elif reason is not None:
                    gw.on_reject(clock.ticks_ms(), reason)
                    app.flush()
