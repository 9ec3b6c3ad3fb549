# Supervisor, watchdog feeding, crash log and self-checks, on a virtual clock (ticks start just before
# the 2**30 wrap) with fake board, uplink and watchdog.
import asyncio
import heapq
import os

from firmware.core import config, ticks
from firmware.core.gateway import Gateway
from firmware.shell import supervisor as sup_mod
from firmware.shell.crashlog import CrashLog
from firmware.shell.supervisor import STABLE_MS, STALE_MS, Supervisor

START = ticks.PERIOD - 20000


class VClock:
    """Virtual time: sleep_ms waits until run() advances the clock to its wake time."""

    speed = 1

    def __init__(self, t=START):
        self.t = 0  # ms since START, unwrapped
        self.t0 = t
        self.wall = None
        self._q = []
        self._n = 0

    def ticks_ms(self):
        return ticks.add(self.t0, self.t)

    def wall_ms(self):
        return self.wall

    async def sleep_ms(self, ms):
        fut = asyncio.get_running_loop().create_future()
        self._n += 1
        heapq.heappush(self._q, (self.t + ms, self._n, fut))
        await fut

    async def run(self, until_ms):
        while True:
            for _ in range(10):
                await asyncio.sleep(0)
            if not self._q or self._q[0][0] > until_ms:
                self.t = until_ms
                return
            due, _, fut = heapq.heappop(self._q)
            self.t = max(self.t, due)
            if not fut.done():
                fut.set_result(None)


class Wdt:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.feeds = []

    def feed(self):
        self.feeds.append(None)


class Wifi:
    def __init__(self):
        self.up = True

    def isconnected(self):
        return self.up


class Board:
    def __init__(self, data_dir, clock):
        self.data_dir = str(data_dir)
        self.clock = clock
        self.wifi = Wifi()
        self.heap = 60000
        self.stopping = False
        self.wdt = None
        self.inject = set()

    def heap_free(self):
        return self.heap

    def watchdog(self, timeout_ms):
        self.wdt = Wdt(timeout_ms)
        return self.wdt


class Uplink:
    def __init__(self):
        self.connected = False
        self.sent = []

    def send(self, suffix, payload, qos=0, retain=False):
        self.sent.append((suffix, payload, qos, retain))


class App:
    def __init__(self, tmp_path, clock=None):
        self.clock = clock or VClock()
        self.board = Board(tmp_path, self.clock)
        self.clock.wall = 1700000000000
        now = self.clock.ticks_ms()
        self.gw = Gateway(config.defaults(), now)
        self.gw.booting(now, 0)
        self.uplink = Uplink()
        self.t0 = now
        self.restarts = 0
        self.effects = []
        self.sup = Supervisor(self)

    def now(self):
        return self.clock.ticks_ms()

    def flush(self):
        self.effects += self.gw.drain()

    def faults(self):
        return [e[1] for e in self.effects if e[0] == "event" and e[1]["event"] == "fault"]


def _run(app, coros, until_ms):
    async def main():
        tasks = [asyncio.ensure_future(c) for c in coros]
        await app.clock.run(until_ms)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    asyncio.run(main())


def test_a_crash_loop_restarts_with_capped_backoff_and_keeps_showing_fault(tmp_path):
    app = App(tmp_path)
    starts = []

    async def always_crashes():
        starts.append(app.clock.t)
        raise ValueError("bad frame %d" % len(starts))

    _run(app, [app.sup.supervise("radio", always_crashes)], 200000)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps[:6] == [1000, 2000, 4000, 8000, 16000, 30000], gaps
    assert set(gaps[5:]) == {30000}
    assert app.restarts == len(starts)
    # the fault went up once and never flickered off while the loop went on
    f = [e for e in app.faults() if e["name"] == "task:radio"]
    assert f and all(e["active"] for e in f), f
    assert app.gw.pattern == "fault"
    entries = CrashLog(app.board.data_dir).entries()
    assert entries and "ValueError" in entries[-1][2] and "task radio crashed" in entries[-1][1]


def test_a_recovered_task_clears_fault_and_resets_its_backoff(tmp_path):
    app = App(tmp_path)
    runs = []

    async def crashes_twice_then_runs():
        runs.append(app.clock.t)
        if len(runs) <= 2:
            raise RuntimeError("first runs crash")
        while True:
            app.sup.checkin("tick")
            await app.clock.sleep_ms(1000)

    _run(app, [app.sup.supervise("tick", crashes_twice_then_runs), app.sup.monitor()], 60000)
    assert runs[:3] == [0, 1000, 3000], runs
    actives = [e["active"] for e in app.faults() if e["name"] == "task:tick"]
    assert actives[0] is True and actives[-1] is False, app.faults()
    cleared = [e for e in app.effects if e[0] == "pattern"][-1]
    assert cleared[1] == "ok"
    assert app.board.wdt.feeds  # fed all along: a crashed task is restarted, not a hang


def test_watchdog_fed_only_while_every_critical_task_checks_in(tmp_path):
    app = App(tmp_path)
    hang_at = 20000

    async def tick():
        while True:
            if app.clock.t < hang_at:
                app.sup.checkin("tick")
            await app.clock.sleep_ms(1000)  # still "running", but stuck: it stops checking in

    async def player():
        while True:
            app.sup.checkin("player")
            await app.clock.sleep_ms(2800)

    async def button():  # not critical, never checks in
        while True:
            await app.clock.sleep_ms(100000)

    feeds_at = []
    real_feed = Wdt.feed

    def feed(self):
        feeds_at.append(app.clock.t)
        real_feed(self)

    Wdt.feed = feed
    try:
        _run(app, [app.sup.supervise("tick", tick), app.sup.supervise("player", player),
                   app.sup.supervise("button", button), app.sup.monitor()], 90000)
    finally:
        Wdt.feed = real_feed
    assert app.board.wdt.timeout_ms == sup_mod.WDT_MS
    last_checkin = hang_at - 1000
    assert feeds_at and max(feeds_at) < last_checkin + STALE_MS, (max(feeds_at), last_checkin)
    assert max(feeds_at) >= last_checkin + STALE_MS - 2000  # fed right up to the judgement
    assert app.gw.pattern == "fault"
    stalled = [e for e in app.faults() if e["name"] == "stalled"]
    assert stalled and "tick" in stalled[0]["why"] and "player" not in stalled[0]["why"]
    assert any(w.startswith("watchdog: tick") for _, w, _ in CrashLog(app.board.data_dir).entries())


def test_a_fast_simulation_does_not_call_a_host_pause_a_hang(tmp_path):
    # At speed 3000 a 20 ms pause of the host is a minute of scenario time; a hang must also last 0.5 s
    # of real time (25 scenario minutes here). A tick task silent for good is still caught.
    clock = VClock()
    clock.speed = 3000
    app = App(tmp_path, clock)
    quiet_from, quiet_to = 10000, 70000       # one scenario minute without a check-in

    async def tick():
        while True:
            if not quiet_from <= app.clock.t < quiet_to and app.clock.t < 40 * 60000:
                app.sup.checkin("tick")
            await app.clock.sleep_ms(1000)

    _run(app, [app.sup.supervise("tick", tick), app.sup.monitor()], 30 * 60000)
    assert not [e for e in app.faults() if e["name"] == "stalled"]
    _run(app, [app.sup.supervise("tick", tick), app.sup.monitor()], 80 * 60000)   # silent from 40 min
    stalled = [e for e in app.faults() if e["name"] == "stalled" and e["active"]]
    assert stalled and "silent for 1500 s" in stalled[0]["why"]


def test_crash_log_is_published_once_when_the_cloud_is_back_even_after_a_reset(tmp_path):
    app = App(tmp_path)
    try:
        raise KeyError("sensor")
    except KeyError as e:
        app.sup.crash("radio", e)
    now = app.now()
    app.sup.step(now)
    assert app.uplink.sent == []  # cloud down: kept
    app.uplink.connected = True
    app.sup.step(now)
    logs = [s for s in app.uplink.sent if s[0] == "log"]
    assert len(logs) == 1 and logs[0][2] == 1 and logs[0][3] is False
    assert "KeyError" in logs[0][1]["trace"] and logs[0][1]["n"] == 1
    app.sup.step(now)
    assert len([s for s in app.uplink.sent if s[0] == "log"]) == 1  # once
    # a reset: a new supervisor on the same data dir sends nothing old, then the new crash only
    app2 = App(tmp_path)
    app2.uplink.connected = True
    app2.sup.step(app2.now())
    assert app2.uplink.sent == []
    app2.sup.crash("tick", None)
    app2.sup.step(app2.now())
    assert [s[1]["n"] for s in app2.uplink.sent if s[0] == "log"] == [2]


def test_a_crash_written_before_a_reset_is_published_after_it(tmp_path):
    app = App(tmp_path)
    app.sup.crash("player", RuntimeError("x"))  # cloud down, then the board resets
    app2 = App(tmp_path)
    app2.uplink.connected = True
    app2.sup.step(app2.now())
    assert [s[1]["n"] for s in app2.uplink.sent if s[0] == "log"] == [1]


def test_crash_log_is_bounded_and_keeps_the_end_of_a_long_traceback(tmp_path):
    log = CrashLog(str(tmp_path), max_bytes=1024, files=2)
    for i in range(50):
        log.write("task radio crashed #%d" % i, "Traceback\n" + "  frame\n" * 30 + "ValueError: %d" % i)
    names = sorted(os.listdir(str(tmp_path)))
    assert names == ["crash.log", "crash.log.1"]
    assert all(os.path.getsize(os.path.join(str(tmp_path), n)) <= 1024 for n in names)
    entries = log.entries()
    assert entries[-1][0] == 50 and entries[-1][2].endswith("ValueError: 49")
    assert [e[0] for e in entries] == sorted(e[0] for e in entries)
    big = log.write("huge", "x" * 5000 + "\nMemoryError: the end")
    assert big == 51 and log.entries()[-1][2].endswith("MemoryError: the end")
    assert os.path.getsize(os.path.join(str(tmp_path), "crash.log")) <= 1024


def test_crash_log_survives_an_unwritable_data_dir(tmp_path):
    log = CrashLog(str(tmp_path / "missing" / "dir"))
    assert log.write("task x", "boom") is None
    assert log.unsent() == []


def test_a_full_heap_in_the_monitor_neither_ends_it_nor_starves_the_watchdog(tmp_path):
    """On a full heap even saying a fault fails (MemoryError from set_fault): the monitor goes on, feeds
    the watchdog, and says the fault once memory is back."""
    app = App(tmp_path)
    app.board.heap = 4000
    real = app.gw.set_fault

    def no_memory(*a, **k):
        raise MemoryError("memory allocation failed, allocating 96 bytes")
    app.gw.set_fault = no_memory
    _run(app, [app.sup.monitor()], 6 * 60000)
    assert len(app.board.wdt.feeds) > 100       # fed all along, not once before the monitor died
    app.gw.set_fault = real
    _run(app, [app.sup.monitor()], 8 * 60000)
    assert "heap" in [e["name"] for e in app.faults() if e["active"]]


def test_low_heap_and_unsynchronised_clock_are_faults_not_crashes(tmp_path):
    app = App(tmp_path)
    app.board.heap = 4000
    app.clock.wall = None
    _run(app, [app.sup.monitor()], 6 * 60000)
    names = [e["name"] for e in app.faults() if e["active"]]
    assert "heap" in names and "clock" in names
    assert app.gw.pattern == "fault"
    app.board.heap = 50000
    app.clock.wall = 1700000000000
    _run(app, [app.sup.monitor()], 8 * 60000)
    assert app.gw.faults == {} and app.gw.pattern == "ok"


def test_replay_counter_file_trouble_is_a_fault_until_a_write_works(tmp_path):
    from firmware.shell.counter_store import FileCounterStore
    app = App(tmp_path)
    (tmp_path / "counters.json").write_text("{not json")

    class Receiver:
        counters = FileCounterStore(str(tmp_path / "counters.json"))

    app.receiver = Receiver()
    _run(app, [app.sup.monitor()], 10000)
    active = [e for e in app.faults() if e["name"] == "counters" and e["active"]]
    assert active and "unreadable" in active[0]["why"] and app.gw.pattern == "fault"
    app.receiver.counters.put(7, 1)           # the first accepted frame rewrites the file
    _run(app, [app.sup.monitor()], 20000)
    assert app.gw.faults == {} and app.gw.pattern == "ok"


def test_injected_crash_raises_once_inside_the_task(tmp_path):
    app = App(tmp_path)
    app.board.inject.add("crash_tick")
    app.sup = Supervisor(app)
    raised = 0
    for _ in range(3):
        try:
            app.sup.checkin("tick")
        except RuntimeError as e:
            raised += 1
            assert "crash_tick" in str(e)
    assert raised == 1


def test_radio_scans_check_in(tmp_path):
    app = App(tmp_path)

    class Scan:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return False

        def __aiter__(self):
            self.left = 2
            return self

        async def __anext__(self):
            if not self.left:
                raise StopAsyncIteration
            self.left -= 1
            return "result"

    class Ble:
        def scan(self, *a, **kw):
            return Scan()

    app.board.ble = Ble()
    view = app.sup.radio_app()
    assert view.gw is app.gw and view.board.data_dir == app.board.data_dir
    seen = []

    async def scan_once():
        async with view.board.ble.scan(10000) as s:
            async for r in s:
                seen.append((r, app.sup.seen.get("radio")))
                app.clock.t += 500

    asyncio.run(scan_once())
    assert [r for r, _ in seen] == ["result", "result"]
    assert seen[1][1] == ticks.add(START, 500)  # each result is a check-in


def test_a_crash_whose_report_fails_is_still_restarted(tmp_path):
    # The 80wK soak: the radio task hit MemoryError, then so did the crash report, and the radio never
    # came back. The restart must not depend on the report.
    app = App(tmp_path)
    runs = []

    def report_fails(name, err):
        raise MemoryError("memory allocation failed, allocating 368 bytes")

    app.sup.crash = report_fails

    async def radio():
        runs.append(app.clock.t)
        if len(runs) == 1:
            raise MemoryError("memory allocation failed")
        while True:
            app.sup.checkin("radio")
            await app.clock.sleep_ms(1000)

    _run(app, [app.sup.supervise("radio", radio), app.sup.monitor()], 5000)
    assert len(runs) == 2, runs
    assert [e["active"] for e in app.faults() if e["name"] == "task:radio"][:1] == [True]


def test_backoff_starts_over_after_a_stable_run(tmp_path):
    app = App(tmp_path)
    runs = []

    async def crashes_now_and_then():
        runs.append(app.clock.t)
        n = len(runs)
        if n in (1, 2, 3):
            raise RuntimeError("quick crash")  # backoff 1 s, 2 s, 4 s
        if n == 4:
            await app.clock.sleep_ms(STABLE_MS + 5000)  # then a long healthy run
            raise RuntimeError("after a good run")
        while True:
            await app.clock.sleep_ms(1000)

    _run(app, [app.sup.supervise("radio", crashes_now_and_then)], 60000)
    gaps = [b - a for a, b in zip(runs, runs[1:])]
    assert gaps == [1000, 2000, 4000, STABLE_MS + 5000 + 1000], gaps


class WorkerUplink(Uplink):
    """The uplink as the supervisor sees its worker thread: a crash it caught, or the thread gone."""

    def __init__(self):
        super().__init__()
        self.running = True
        self.alive = True
        self.fault = None
        self.starts = 0

    def start(self):
        self.starts += 1
        self.alive = True


def test_an_uplink_worker_crash_is_logged_shown_and_cleared_and_a_dead_thread_restarted(tmp_path):
    app = App(tmp_path)
    up = app.uplink = WorkerUplink()
    seen = []

    async def crash_then_die():
        await app.clock.sleep_ms(2000)
        up.fault = MemoryError("memory allocation failed, allocating 1024 bytes")
        await app.clock.sleep_ms(3000)
        seen.append(app.gw.pattern)          # shown while it lasts
        await app.clock.sleep_ms(20000)
        seen.append(app.gw.pattern)          # cleared once the worker ran STABLE_MS without a crash
        up.alive = False                     # the thread ended all the same
        await app.clock.sleep_ms(5000)
        seen.append(up.starts)

    _run(app, [crash_then_die(), app.sup.monitor()], 40000)
    assert seen == ["fault", "ok", 1], seen
    f = [(e["active"], e["why"]) for e in app.faults() if e["name"] == "task:uplink"]
    assert f[0][0] is True and "MemoryError" in f[0][1] and f[1][0] is False, f
    entries = CrashLog(app.board.data_dir).entries()
    assert any("task uplink crashed" in e[1] and "MemoryError" in e[2] for e in entries), entries
    assert any("task ended" in e[1] for e in entries), entries   # the restart of a thread that ended
