# Supervisor: restarts crashed tasks, feeds the board watchdog only while the critical tasks live,
# keeps the crash log, and runs the gateway's self-checks (heap, clock).
#
# Two kinds of failure, two answers:
#   crash  a task raised (or returned): the traceback goes to the crash log and the console, the box
#          shows `fault`, and the task restarts after a backoff (1 s, doubling up to 30 s; back to 1 s
#          once a run lasted STABLE_MS). The fault clears when the restarted task has run STABLE_MS.
#   hang   a critical task (radio, tick, player) checked in once this run but not for STALE_MS: the
#          supervisor cannot fix that, so it stops feeding the watchdog and the board resets (after
#          logging why). A task waiting out its restart backoff is not hung: it is not counted.
# Crash-log entries are published once on <prefix>/log when the cloud is up (also after a reset).
import sys

from firmware.core import ticks
from firmware.core.faults import ClockWatch, HeapWatch
from firmware.lib.clock import hang_bound_ms
from firmware.shell.crashlog import CrashLog

from micropython import const

CRITICAL = ("radio", "tick", "player")
# Board watchdog: 10 s. The monitor feeds it every second, so nine missed feeds are slack for a slow
# flash write or a GC pause; a wedged asyncio loop resets the board within 10 s.
WDT_MS = const(10000)
_FEED_MS = const(1000)
# A critical task's longest honest wait between check-ins is one BLE scan window with no advert heard
# (radio: 5 s, shell/radio.py _SCAN_MS; tick: 1 s, player: 2.8 s, its longest LED phase); 30 s without one,
# six such windows, is a hang.
STALE_MS = const(30000)
_RESTART_MIN_MS = const(1000)
_RESTART_MAX_MS = const(30000)  # cap: a crash-looping task still gets a try twice a minute
# A restarted task that runs this long without crashing has recovered: `fault` clears, backoff resets.
STABLE_MS = const(10000)
# gc.collect() for the heap check costs a few ms on an ESP32 (and real ms in a sped-up simulation):
# once a minute still catches a leak long before it starves the alarm path.
_HEAP_EVERY_MS = const(60000)


def format_exc(e):
    """The traceback text of e, on MicroPython and CPython."""
    try:
        import io
        buf = io.StringIO()
        sys.print_exception(e, buf)
        return buf.getvalue()
    except AttributeError:
        import traceback
        return "".join(traceback.format_exception(type(e), e, e.__traceback__))


class _WatchedScan:
    """Wraps one aioble scan: entering a scan window and every result count as a radio check-in."""

    def __init__(self, scan, checkin):
        self._scan = scan
        self._checkin = checkin
        self._it = None

    async def __aenter__(self):
        self._checkin("radio")
        self._inner = await self._scan.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self._scan.__aexit__(*exc)

    def __aiter__(self):
        self._it = self._inner.__aiter__()
        return self

    async def __anext__(self):
        r = await self._it.__anext__()
        self._checkin("radio")
        return r


class _WatchedBle:
    def __init__(self, ble, checkin):
        self._ble = ble
        self._checkin = checkin

    def scan(self, *args, **kw):
        return _WatchedScan(self._ble.scan(*args, **kw), self._checkin)

    def __getattr__(self, name):
        return getattr(self._ble, name)


class _View:
    """The app (or board) as a task sees it, with some attributes replaced."""

    def __init__(self, target, **replaced):
        self._target = target
        for k in replaced:
            setattr(self, k, replaced[k])

    def __getattr__(self, name):
        return getattr(self._target, name)


class Supervisor:
    def __init__(self, app):
        self.app = app
        self.board = app.board
        self.clock = app.clock
        self.log = CrashLog(self.board.data_dir)
        self.log_pending = bool(self.log.unsent())  # read once at boot; set again on every write
        self.seen = {}      # critical task -> ticks of its last check-in
        self.running = {}   # task -> ticks its current run started (absent while in backoff)
        self.crashed = {}   # task -> True while its `task:<name>` fault shows
        self.stalled = []   # critical tasks that stopped checking in (watchdog not fed)
        self.wdt = None
        self.feeds = 0
        self.heap = HeapWatch()
        self.clock_watch = ClockWatch()
        self._heap_at = None
        # Also 0.5 s of real time (clock.hang_bound_ms): at speed 3000 the small-heap soak logged hundreds
        # of "hangs" that were only host pauses.
        self.stale_ms = hang_bound_ms(self.clock, STALE_MS)
        # Host test hook (firmware/hal/host.py): names like "crash_radio" the simulator asked for.
        self.inject = getattr(self.board, "inject", None)
        player = getattr(app, "player", None)
        if player is not None:
            player.on_step = self.checkin

    def now(self):
        return self.clock.ticks_ms()

    # ---- what tasks call ----------------------------------------------------------------------
    def checkin(self, name):
        """A critical task is alive and making progress."""
        inj = self.inject
        if inj and "crash_" + name in inj:
            inj.discard("crash_" + name)
            raise RuntimeError("injected crash_%s (host test hook)" % name)
        self.seen[name] = self.now()

    def radio_app(self):
        """The app as the radio task should see it: its BLE scans check in for it."""
        board = _View(self.board, ble=_WatchedBle(self.board.ble, self.checkin))
        return _View(self.app, board=board)

    async def supervise(self, name, make):
        """Run make() forever: a crash (or a return: every task is a forever loop) is logged, shown
        as `fault`, and followed by a restart after a capped backoff."""
        backoff = _RESTART_MIN_MS
        while True:
            started = self.now()
            self.running[name] = started
            # Watched from its first check-in of this run on: a task that never checks in (a new
            # radio driver not yet wired to checkin) is restarted on a crash but never judged hung.
            self.seen.pop(name, None)
            try:
                await make()
                err = None
            except Exception as e:  # CancelledError is a BaseException: a cancel still ends us
                err = e
            now = self.now()
            self.running.pop(name, None)
            if ticks.diff(now, started) >= STABLE_MS:
                backoff = _RESTART_MIN_MS
            try:
                self.crash(name, err)
            except Exception:
                # Reporting the crash failed too (a heap too full for the log line: the 80wK soak). The
                # restart matters more than the report: without it the radio stays dead for good.
                self._crash_unreported(name)
            await self.clock.sleep_ms(backoff)
            backoff = min(backoff * 2, _RESTART_MAX_MS)

    def crash(self, name, err):
        app = self.app
        now = self.now()
        app.restarts = getattr(app, "restarts", 0) + 1
        if err is None:
            why, text = "task ended", "the task returned; tasks are meant to run forever"
        else:
            why, text = repr(err), format_exc(err)
            try:
                sys.print_exception(err)
            except AttributeError:
                pass  # CPython (tests): the log and the event carry it
        what = "task %s crashed at %ds: %s" % (name, ticks.diff(now, getattr(app, "t0", now)) // 1000, why)
        if self.log.write(what, text) is not None:
            self.log_pending = True
        self.crashed[name] = True
        app.gw.set_fault(now, "task:" + name, why)
        app.flush()

    def _crash_unreported(self, name):
        try:
            self.crashed[name] = True
            self.app.gw.set_fault(self.now(), "task:" + name, "crashed (no memory to say more)")
            self.app.flush()
        except Exception:
            pass  # the next self-check or restart tries again

    # ---- the monitor --------------------------------------------------------------------------
    async def monitor(self, timeout_ms=WDT_MS):
        """Runs until the board says it is stopping (host only; a board runs forever)."""
        self.wdt = self.board.watchdog(timeout_ms)
        while not getattr(self.board, "stopping", False):
            now = self.now()
            try:
                self.judge_stalls(now)
            except Exception:
                pass  # no memory to say it (MemoryError): judged again next round, the feed as before
            if not self.stalled:
                self.wdt.feed()
                self.feeds += 1
            try:
                self.step(now)
            except Exception as e:
                # A bug in a self-check must not starve the watchdog or kill the monitor: say it. On a
                # full heap saying it fails too (a week at 48 KiB ended here): the next round tries again.
                try:
                    self.app.gw.set_fault(now, "monitor", repr(e))
                    self.app.flush()
                except Exception:
                    pass
            await self.clock.sleep_ms(_FEED_MS)

    def judge_stalls(self, now):
        stalled = []
        for name in CRITICAL:
            if name in self.running and name in self.seen and ticks.diff(now, self.seen[name]) >= self.stale_ms:
                stalled.append(name)
        if stalled and not self.stalled:
            why = "%s silent for %d s: watchdog not fed" % (",".join(stalled), self.stale_ms // 1000)
            if self.log.write("watchdog: " + why, why) is not None:
                self.log_pending = True
            self.app.gw.set_fault(now, "stalled", why)
            self.app.flush()
        elif self.stalled and not stalled:
            self.app.gw.set_fault(now, "stalled", None)
            self.app.flush()
        self.stalled = stalled

    def step(self, now):
        app, gw = self.app, self.app.gw
        for name in list(self.crashed):
            started = self.running.get(name)
            if started is not None and ticks.diff(now, started) >= STABLE_MS:
                del self.crashed[name]
                gw.set_fault(now, "task:" + name, None)
        if self._heap_at is None or ticks.diff(now, self._heap_at) >= _HEAP_EVERY_MS:
            self._heap_at = now
            gw.set_fault(now, "heap", self.heap.judge(self.board.heap_free()))
        gw.set_fault(now, "clock", self.clock_watch.judge(now, self.board.wifi.isconnected(),
                                                          self.clock.wall_ms() is not None))
        # The broadcast receiver's replay counters: a file that could not be read at boot or written since
        # weakens replay protection until the next good write (firmware/shell/counter_store.py).
        store = getattr(getattr(app, "receiver", None), "counters", None)
        if store is not None:
            gw.set_fault(now, "counters", getattr(store, "error", None))
        self.watch_uplink(now)
        self.publish_log()
        app.flush()

    def watch_uplink(self, now):
        """The uplink worker is a thread, not a task: it catches its own crashes and naps with backoff
        (uplink.py); here they are logged and shown like a task's (`fault` task:uplink, cleared after
        STABLE_MS without another), and a thread that ended all the same is started again."""
        up = getattr(self.app, "uplink", None)
        if up is None:
            return
        err = getattr(up, "fault", None)
        if err is not None:
            up.fault = None
            self.running["uplink"] = now  # the fault clears once it ran STABLE_MS from here
            try:
                self.crash("uplink", err)
            except Exception:
                self._crash_unreported("uplink")
        if getattr(up, "running", False) and not getattr(up, "alive", True) \
                and not getattr(self.board, "stopping", False):
            at = getattr(self, "_uplink_dead", None)
            if at is None:
                self._uplink_dead = now
            elif ticks.diff(now, at) >= _RESTART_MIN_MS:
                self._uplink_dead = None
                self.running["uplink"] = now
                try:
                    self.crash("uplink", None)
                except Exception:
                    self._crash_unreported("uplink")
                up.start()

    def publish_log(self):
        uplink = getattr(self.app, "uplink", None)
        if not self.log_pending or uplink is None or not uplink.connected:
            return
        last = 0
        for n, what, text in self.log.unsent():
            uplink.send("log", {"n": n, "what": what, "trace": text}, 1, False)
            last = n
        self.log_pending = False
        if last:
            self.log.mark_sent(last)
