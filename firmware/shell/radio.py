# Radio tasks: the first hop of the alarm path. Sensor frames in, readings to the core, nothing else.
from micropython import const

from firmware.shell.heard import Heard

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
