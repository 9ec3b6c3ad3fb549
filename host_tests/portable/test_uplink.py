# Uplink worker against a fake MQTT client, driven one worker pass at a time: what reaches the broker,
# in which order, what goes to flash and when. Runs under pytest and MicroPython.
import json
import sys

from firmware.core import config, ha_discovery
from firmware.shell.outage_queue import OutageQueue
from firmware.shell.queues import LazyQueue, open_queue
from firmware.lib.unload import forget
from firmware.shell.uplink import Uplink
from host_tests.portable.scratch import exists, fresh

_DIR = "build/test_uplink"


def _fresh(name):
    return fresh(_DIR, name)


class Clock:
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        return self.t

    def sleep_blocking_ms(self, ms):
        self.t += ms


class Wifi:
    up = True

    def isconnected(self):
        return self.up


class Board:
    def __init__(self):
        self.wifi = Wifi()


class Broker:
    """What the fake clients talk to: up or down, and every message it acknowledged."""

    def __init__(self):
        self.up = True
        self.got = []        # (topic, payload bytes, retain, qos)
        self.inbox = []      # (topic, msg) to deliver on the next check_msg
        self.wills = []
        self.subs = []


class FakeClient:
    def __init__(self, broker):
        self.b = broker
        self.sock = self
        self.cb = None

    def close(self):
        pass

    def _check(self):
        if not self.b.up:
            raise OSError(104)

    def set_last_will(self, topic, msg, retain, qos):
        self.b.wills.append((topic, msg, retain, qos))

    def connect(self):
        if not self.b.up:
            raise OSError(111)

    def set_callback(self, cb):
        self.cb = cb

    def subscribe(self, topic, qos=0):
        self._check()
        self.b.subs.append(topic)

    def publish(self, topic, msg, retain=False, qos=0):
        self._check()
        if getattr(self.b, "boom", 0):
            self.b.boom -= 1
            raise MemoryError("test: heap full")
        if isinstance(msg, str):
            msg = msg.encode()
        self.b.got.append((topic.decode(), bytes(msg), retain, qos))

    def ping(self):
        self._check()

    def check_msg(self):
        self._check()
        while self.b.inbox:
            t, m = self.b.inbox.pop(0)
            self.cb(t, m)


def _make(queue=None, **mqtt):
    cfg = config.build({"gateway_id": "kid", "sensor": {"allow_plain": True}, "mqtt": mqtt})
    broker = Broker()
    board = Board()
    # as firmware/shell/app.py hands it over: a function building the messages, None when discovery is off
    disc = (lambda: ha_discovery.messages(cfg)) if cfg["mqtt"]["ha_discovery"] else None
    up = Uplink(cfg, board, Clock(), queue, client_factory=lambda u: FakeClient(broker), discovery=disc)
    return up, broker, board


def _reading(seq):
    return {"type": "sgv", "sgv": 100 + seq, "direction": "Flat", "seq": seq, "trend": 0.0,
            "device": "nightstand/kid", "replayed": False}


def _run(up, n=50):
    for _ in range(n):
        up._cycle()


def _readings(broker):
    return [json.loads(p) for t, p, _, _ in broker.got if t == "nightstand/kid/reading"]


def test_connect_sets_last_will_publishes_online_and_subscribes_commands():
    up, b, _ = _make()
    _run(up, 3)
    assert b.wills == [(b"nightstand/kid/availability", b"offline", True, 1)]
    assert ("nightstand/kid/availability", b"online", True, 1) in b.got
    assert b"nightstand/kid/cmd/#" in b.subs
    assert up.news()[0] == ("up",)


def test_outage_readings_go_to_flash_then_first_in_order_with_replayed_then_live():
    path = _fresh("outage.q")
    up, b, _ = _make(OutageQueue(path, 16384))
    _run(up, 3)
    up.send("reading", _reading(1), 1, False)
    _run(up, 5)
    assert not exists(path), "a reading with the cloud up must not touch flash"
    b.up = False
    for s in range(2, 12):
        up.send("reading", _reading(s), 1, False)
        _run(up, 2)
    assert len(up.queue) == 10 and up.depth() == 10 and exists(path)
    b.up = True
    _run(up, 1)                                 # reconnected, replay under way
    assert up.connected and len(up.queue) == 9
    up.send("reading", _reading(12), 1, False)  # live, made after the cloud came back
    _run(up, 60)
    got = _readings(b)
    assert [r["seq"] for r in got] == list(range(1, 13))
    assert [r["replayed"] for r in got] == [False] + [True] * 10 + [False]
    assert len(up.queue) == 0 and up.depth() == 0


def test_a_restarted_gateway_sends_what_was_queued_before_the_reboot():
    path = _fresh("reboot.q")
    up, b, _ = _make(OutageQueue(path, 16384))
    b.up = False
    for s in range(1, 6):
        up.send("reading", _reading(s), 1, False)
        _run(up, 2)
    up.queue.close()                 # power off
    up2, b2, _ = _make(OutageQueue(path, 16384))
    assert up2.depth() == 5
    _run(up2, 40)
    got = _readings(b2)
    assert [r["seq"] for r in got] == [1, 2, 3, 4, 5] and all(r["replayed"] for r in got)


def test_no_flash_write_for_a_long_healthy_night():
    path = _fresh("healthy.q")
    up, b, _ = _make(OutageQueue(path, 16384))
    for s in range(1, 289):         # 24 h of readings, the cloud up throughout
        up.send("reading", _reading(s), 1, False)
        up.send("state", {"pattern": "ok"}, 1, True)
        _run(up, 3)
    assert len(_readings(b)) == 288
    assert up.queued == 0 and not exists(path)


def test_a_stuck_worker_never_lets_ram_grow_and_counts_what_it_lost():
    up, b, _ = _make()
    for s in range(1, 101):         # nobody runs the worker
        up.send("reading", _reading(s), 1, False)
    assert len(up.pending) == 64 and up.lost() == 36
    _run(up, 200)
    seqs = [r["seq"] for r in _readings(b)]
    assert seqs == list(range(37, 101))  # the newest kept, in order


def test_a_full_ring_drops_the_oldest_and_health_counts_it():
    up, b, _ = _make()
    up.queue.capacity = 5
    b.up = False
    for s in range(1, 9):
        up.send("reading", _reading(s), 1, False)
        _run(up, 1)
    assert up.lost() == 3 and up.depth() == 5
    assert ("queue", "full: oldest readings dropped") in up.news()
    b.up = True
    _run(up, 40)
    assert [r["seq"] for r in _readings(b)] == [4, 5, 6, 7, 8]


def test_health_is_not_kept_while_down_and_state_keeps_only_the_newest():
    up, b, _ = _make()
    b.up = False
    _run(up, 1)
    up.send("health", {"uptime_s": 1}, 0, False)
    up.send("state", {"pattern": "low"}, 1, True)
    up.send("state", {"pattern": "ok"}, 1, True)
    b.up = True
    _run(up, 20)
    topics = [t for t, _, _, _ in b.got]
    assert "nightstand/kid/health" not in topics
    states = [json.loads(p) for t, p, _, _ in b.got if t == "nightstand/kid/state"]
    assert states == [{"pattern": "ok"}]


def test_home_assistant_discovery_on_connect_and_again_when_ha_comes_online():
    up, b, _ = _make()
    _run(up, 3)
    cfgs = [(t, json.loads(p), r) for t, p, r, _ in b.got if t.startswith("homeassistant/")]
    assert len(cfgs) == 3 and all(r for _, _, r in cfgs)
    t, glucose, _ = cfgs[0]
    assert t == "homeassistant/sensor/nightstand_kid/glucose/config"
    assert glucose["device_class"] == "blood_glucose_concentration"
    assert glucose["unit_of_measurement"] == "mg/dL"
    assert glucose["state_topic"] == "nightstand/kid/state"
    assert glucose["availability_topic"] == "nightstand/kid/availability"
    assert "last_sgv" in glucose["value_template"]
    assert b"homeassistant/status" in b.subs
    n = len(b.got)
    b.inbox.append((b"homeassistant/status", b"offline"))
    _run(up, 3)
    assert len(b.got) == n          # HA going away needs nothing
    b.inbox.append((b"homeassistant/status", b"online"))
    _run(up, 3)
    again = [t for t, _, _, _ in b.got[n:] if t.startswith("homeassistant/")]
    assert len(again) == 3


def test_discovery_off_publishes_and_subscribes_nothing_for_home_assistant():
    up, b, _ = _make(ha_discovery=False)
    _run(up, 3)
    assert not [t for t, _, _, _ in b.got if t.startswith("homeassistant/")]
    assert b"homeassistant/status" not in b.subs


def test_commands_reach_the_asyncio_side_by_name():
    up, b, _ = _make()
    _run(up, 3)
    up.news()
    b.inbox.append((b"nightstand/kid/cmd/snooze", b'{"n": 1}'))
    _run(up, 2)
    assert up.news() == [("cmd", "snooze", b'{"n": 1}')]


def test_a_command_flood_keeps_a_fixed_number_of_slots_counts_the_rest_and_says_so_once():
    up, b, _ = _make()
    _run(up, 3)
    up.news()
    for i in range(10000):
        b.inbox.append((b"nightstand/kid/cmd/snooze", b'{"n": %d}' % i))
    _run(up, 2)
    news = up.news()
    cmds = [x for x in news if x[0] == "cmd"]
    floods = [x for x in news if x[0] == "cmd_flood"]
    assert len(cmds) == 4 and cmds[0][2] == b'{"n": 0}', cmds       # the slots, first come
    assert up.cmd_dropped == 10000 - 4
    assert len(floods) == 1, floods                                 # once per burst, not 9996 times
    # the rate limit: one command every 2 s of clock time while the flood goes on
    up.clock.t += 2000
    b.inbox.append((b"nightstand/kid/cmd/snooze", b"late"))
    b.inbox.append((b"nightstand/kid/cmd/snooze", b"later"))
    _run(up, 1)
    assert [x[2] for x in up.news() if x[0] == "cmd"] == [b"late"]
    assert up.cmd_dropped == 10000 - 4 + 1
    # quiet for a while: a parent's command goes through, and the next flood is news again
    up.clock.t += 60000
    b.inbox.append((b"nightstand/kid/cmd/ack", b"parent"))
    _run(up, 1)
    assert up.news() == [("cmd", "ack", b"parent")]
    for _ in range(10):
        b.inbox.append((b"nightstand/kid/cmd/snooze", b"x"))
    _run(up, 1)
    assert len([x for x in up.news() if x[0] == "cmd_flood"]) == 1


def test_an_oversized_message_is_counted_as_a_dropped_command():
    up, b, _ = _make()
    _run(up, 3)
    up.news()
    up._on_big()            # what mqtt_guard calls after discarding one unread
    assert up.cmd_oversized == 1 and up.cmd_dropped == 1
    assert [x[0] for x in up.news()] == ["cmd_flood"]


def _run_worker(up, until_ms, passes=300):
    """The worker thread's own loop (_run), stopped after until_ms of clock time or that many passes
    (an idle pass sleeps real time, not clock time)."""
    clock = up.clock
    sleep = clock.sleep_blocking_ms
    cycle = up._cycle
    n = [0]

    def stop_later(ms):
        sleep(ms)
        if clock.t >= until_ms:
            up.running = False

    def counted():
        n[0] += 1
        if n[0] >= passes:
            up.running = False
        cycle()
    clock.sleep_blocking_ms = stop_later
    up._cycle = counted
    up._run()
    clock.sleep_blocking_ms = sleep
    up._cycle = cycle
    up.running = True


def test_a_memory_error_in_the_worker_and_in_its_error_handler_does_not_stop_it_nor_lose_readings():
    up, b, _ = _make()
    _run(up, 3)
    up.news()
    real_tell = up._tell
    told = []

    def tell_once_fails(*item):
        if not told:
            told.append(item)
            raise MemoryError("test: heap full in the error handler")
        real_tell(*item)
    up._tell = tell_once_fails
    b.boom = 1              # the next publish raises MemoryError
    for seq in (1, 2, 3):
        up.send("reading", _reading(seq), 1, False)
    t0 = up.clock.t
    _run_worker(up, t0 + 5000)
    assert not up.alive and up.crashes == 1 and isinstance(up.fault, MemoryError), up.fault
    assert told and told[0][0] == "down"            # the handler itself failed: _run caught that too
    assert up.queued >= 1                           # while it napped, readings went to the queue
    assert [r["seq"] for r in _readings(b)] == [1, 2, 3]     # every reading, in order
    assert up.connected                              # and the worker is back on the broker


def test_a_crash_looping_worker_backs_off_up_to_thirty_seconds_and_then_recovers():
    up, b, _ = _make()
    _run(up, 3)
    b.boom = 1              # a publish fails, and so does every move to flash in the error handler

    def spill_fails(keep_ram):
        raise MemoryError("test: heap full")
    up._spill = spill_fails
    waits = []
    sleep = up.clock.sleep_blocking_ms

    def note(ms):
        waits.append(ms)
        sleep(ms)
    up.clock.sleep_blocking_ms = note
    for seq in range(1, 41):
        up.send("reading", _reading(seq), 1, False)
    _run_worker(up, up.clock.t + 200000)
    assert 5 <= up.crashes <= 20, up.crashes        # backoff: not one crash a pass
    assert max(waits) == 30000, waits               # capped like the asyncio tasks' restarts
    assert up.lost() == 0                           # nothing lost: the readings wait in RAM
    del up._spill                                   # the heap is back
    _run_worker(up, up.clock.t + 200000)
    assert [r["seq"] for r in _readings(b)] == list(range(1, 41))


def test_open_queue_falls_back_to_ram_and_says_why():
    q, why = open_queue("/no/such/dir/anywhere")
    assert why and "RAM" in why
    q.append(b"x")       # a RAM queue still works
    assert len(q) == 1
    _fresh("outage.q")
    q2, why2 = open_queue(_DIR)
    assert why2 is None and isinstance(q2, LazyQueue)  # the flash ring, loaded on the first spill


def test_a_failing_flash_write_keeps_the_reading_in_ram_and_says_so():
    up, b, _ = _make(OutageQueue("/no/such/dir/outage.q", 16384))
    b.up = False
    up.send("reading", _reading(1), 1, False)
    _run(up, 1)
    assert up.lost() == 0 and up.depth() == 1        # late, not lost
    news = up.news()
    assert [n for n in news if n[0] == "flash_fail"], news  # the app shows a `flash` fault
    b.up = True
    _run(up, 10)
    assert [(r["seq"], r["replayed"]) for r in _readings(b)] == [(1, True)]


def test_a_reading_made_while_booting_is_live_one_made_while_away_says_replayed():
    up, b, _ = _make()
    up.send("reading", _reading(1), 1, False)   # before the worker's first connect attempt
    _run(up, 5)
    b.up = False
    _run(up, 2)                                  # the connection is lost: away
    up.send("reading", _reading(2), 1, False)
    b.up = True
    _run(up, 10)
    assert [(r["seq"], r["replayed"]) for r in _readings(b)] == [(1, False), (2, True)]


def test_a_whole_day_of_outage_fits_the_flash_queue_and_comes_back_whole():
    # 288 readings (24 h at one per 5 min) with real dates and trends: none dropped from 16 KiB, and
    # each comes back as the full Nightscout payload, in order, marked replayed.
    up, b, _ = _make(OutageQueue(_fresh("day.q"), 16384))
    b.up = False
    for seq in range(1, 289):
        r = _reading(seq)
        r["date"] = 1763770000000 + seq * 300000
        r["trend"] = -1.3 if seq % 2 else 2.4
        r["direction"] = "FortyFiveDown" if seq % 2 else "SingleUp"
        up.send("reading", r, 1, False)
        _run(up, 1)
    assert up.lost() == 0 and len(up.queue) == 288
    b.up = True
    _run(up, 400)
    got = _readings(b)
    assert [r["seq"] for r in got] == list(range(1, 289))
    first = got[0]
    assert first == {"type": "sgv", "sgv": 101, "direction": "FortyFiveDown", "seq": 1, "trend": -1.3,
                     "device": "nightstand/kid", "replayed": True, "date": 1763770300000}


def test_a_reading_made_during_a_long_reconnect_wait_is_on_flash_within_a_second():
    # A power cut during the 30 s backoff must not take a reading that only lived in RAM.
    up, b, _ = _make()
    b.up = False
    _run(up, 8)                                  # the reconnect wait has grown to its cap
    clock, seen = up.clock, []

    def sleep(ms):
        seen.append((clock.t, len(up.queue)))    # before this step: what flash holds
        clock.t += ms
        if len(seen) == 3:
            up.send("reading", _reading(9), 1, False)
            seen.append(("sent", clock.t))
    clock.sleep_blocking_ms = sleep
    t0 = clock.t
    up._cycle()                                  # one failed connect and its wait
    assert clock.t - t0 >= 20000, "not a long wait: %d ms" % (clock.t - t0)
    i = seen.index(("sent", seen[3][1]))
    sent_at = seen[i][1]
    on_flash = [t for t, n in seen[i + 1:] if n == 1]
    assert on_flash and on_flash[0] - sent_at <= 1000, seen


_QMOD = "firmware.shell.outage_queue"


def test_a_healthy_night_never_loads_the_outage_queue_and_an_outage_then_replays_in_order():
    # The ring's code is ~12 KiB of heap: a night with the cloud up must not spend it. The first
    # reading that has to wait loads it, and the outage replays as before.
    path = _fresh("outage.q")
    forget(_QMOD)
    q, why = open_queue(_DIR)
    assert why is None
    up, b, _ = _make(q)
    for s in range(1, 289):                     # 24 h of readings, the cloud up throughout
        up.send("reading", _reading(s), 1, False)
        _run(up, 3)
        up.depth(), up.lost()                   # what the health task reads
    assert _QMOD not in sys.modules, "a healthy night loaded the outage queue"
    assert not exists(path) and len(_readings(b)) == 288
    b.up = False
    for s in range(289, 299):
        up.send("reading", _reading(s), 1, False)
        _run(up, 2)
    assert _QMOD in sys.modules and exists(path)
    assert len(up.queue) == 10 and up.depth() == 10 and up.lost() == 0
    b.up = True
    _run(up, 60)
    got = _readings(b)
    assert [r["seq"] for r in got] == list(range(1, 299))
    assert [r["replayed"] for r in got[288:]] == [True] * 10
    assert up.depth() == 0


def test_an_outage_queue_that_cannot_load_keeps_readings_in_ram_in_order_and_says_so():
    # A tight heap: importing the ring fails. Nothing is lost, the `flash` fault shows, and it clears
    # once a later spill loads the ring.
    path = _fresh("noload.q")
    tight = [True]

    def make(p, capacity):
        if tight[0]:
            raise MemoryError("memory allocation failed, allocating 4096 bytes")
        return OutageQueue(p, capacity)
    up, b, _ = _make(LazyQueue(path, 16384, make=make))
    b.up = False
    up.send("reading", _reading(1), 1, False)
    _run(up, 1)
    up.send("reading", _reading(2), 1, False)
    _run(up, 1)
    assert up.lost() == 0 and up.depth() == 2 and len(up.queue) == 0  # late, not lost, still in RAM
    assert [r[1]["seq"] for r in up.pending] == [1, 2]
    news = up.news()
    assert [n for n in news if n[0] == "flash_fail"], news
    tight[0] = False                            # heap freed: the next spill loads the ring
    up.send("reading", _reading(3), 1, False)
    _run(up, 1)
    assert len(up.queue) == 3 and ("flash_ok", None) in up.news()
    b.up = True
    _run(up, 20)
    assert [(r["seq"], r["replayed"]) for r in _readings(b)] == [(1, True), (2, True), (3, True)]


def test_a_reboot_mid_outage_loads_the_queue_at_boot_and_replays_it_first():
    _fresh("outage.q")
    up, b, _ = _make(open_queue(_DIR)[0])
    b.up = False
    for s in range(1, 4):
        up.send("reading", _reading(s), 1, False)
        _run(up, 2)
    up.queue.close()                            # power off mid-outage
    forget(_QMOD)
    q, why = open_queue(_DIR)
    assert why is None and len(q) == 3 and _QMOD in sys.modules
    up2, b2, _ = _make(q)
    assert up2.depth() == 3
    _run(up2, 20)
    assert [(r["seq"], r["replayed"]) for r in _readings(b2)] == [(1, True), (2, True), (3, True)]
    # Everything sent: the next boot finds an empty ring and does not keep its code.
    up2.queue.close()
    forget(_QMOD)
    q3, _ = open_queue(_DIR)
    assert isinstance(q3, LazyQueue) and len(q3) == 0 and _QMOD not in sys.modules


def test_no_memory_for_home_assistant_discovery_still_brings_the_link_up_and_sends_readings():
    # Discovery is built as the uplink connects, the heap's busiest moment: running out of memory there
    # must cost Home Assistant's (retained, already sent) config messages, never the link or the readings.
    up, b, _ = _make()
    cfg = config.build({"gateway_id": "kid", "sensor": {"allow_plain": True}, "mqtt": {}})

    def no_memory_after_the_first():
        yield next(iter(ha_discovery.messages(cfg)))
        raise MemoryError("memory allocation failed, allocating 512 bytes")
    up.discovery = no_memory_after_the_first
    up.send("reading", _reading(1), qos=1)
    _run(up, 3)
    assert up.connected
    assert [t for t, _, _, _ in b.got if t.startswith("homeassistant/")] == [
        "homeassistant/sensor/nightstand_kid/glucose/config"]
    assert [r["seq"] for r in _readings(b)] == [1]
    assert up.ha_skipped == 1
