# MQTT uplink. umqtt.simple blocks, so it runs on its own thread; the asyncio side (and so the alarm
# path) only ever touches two lock-guarded lists and never waits on the network or on flash.
#
#   asyncio side: send() puts messages in `pending`; news() drains what the worker learned. The lock
#   is only ever held for a list operation, never across a socket call or a flash write.
#   worker thread: connects (last will: availability offline, retained), publishes online, subscribes
#   to commands and homeassistant/status, publishes Home Assistant discovery, sends queued readings
#   first (replayed: true), then pending messages in order, pings.
#   While the cloud is down, readings move from RAM to the outage queue (a flash ring on a board, see
#   outage_queue.py); the worker is the only user of the queue. While the cloud is up nothing is
#   written to flash: readings go from RAM straight to the broker. The ring's code (~12 KiB of heap)
#   is loaded by the worker on the first spill (queues.LazyQueue), or at boot when the file holds records.
#
# Bounded against a hostile or broken broker (nothing it sends can grow the heap or stop the worker):
#   commands wait in a fixed number of slots behind a rate limit; what does not fit is dropped, counted
#   (cmd_dropped on the health topic) and said once per burst (a `cmd_flood` uplink event); a message
#   longer than mqtt_guard.MAX_IN is discarded unread (cmd_oversized). Any exception in the worker,
#   MemoryError included, is caught by _run: the worker records it (the supervisor shows `fault`
#   task:uplink and logs it), drops the connection and naps with backoff, still moving readings to
#   flash every second, then carries on; the supervisor restarts a thread that ended all the same.
import json
import random
import time
import _thread

from micropython import const

from firmware.core import payloads, ticks
from firmware.shell import mqtt_guard
from firmware.shell.queues import RamQueue

_RAM_SLOTS = const(32)       # pending readings beyond this move to the outage queue even while up
_RAM_HARD = const(64)        # send() never lets RAM grow past this (worker stuck): oldest dropped, counted
_BACKOFF_MIN_MS = const(500)  # first reconnect wait (clock time)
_BACKOFF_MAX_MS = const(30000)  # cap: a broker back after an outage is found within 30 s
_IDLE_POLL_MS = const(2)     # real ms the worker sleeps when it has nothing to do
_DRAIN = const(16)           # incoming messages read per idle pass
_NAP_MS = const(1000)        # while down, a reading waits in RAM at most this long before flash
# Command intake. The tick task takes commands every second; a parent taps a snooze a few times a
# minute at most. So: 4 slots, and 4 in a row then one every 2 s. A flood costs the alarm side at most
# one verification (~1 ms of HMAC on an ESP32) every 2 s, and the heap nothing that grows with it.
_CMD_SLOTS = const(4)
_CMD_BURST = const(4)
_CMD_EVERY_MS = const(2000)
_FLOOD_QUIET_MS = const(10000)  # a burst of drops ends after 10 s without one: the next is news again
# Worker crash backoff: 1 s doubling to 30 s, like the asyncio tasks (supervisor.py); back to 1 s once
# the worker ran a minute without a crash.
_CRASH_MIN_MS = const(1000)
_CRASH_MAX_MS = const(30000)
_CRASH_STABLE_MS = const(60000)
# JSON without the spaces after , and : (valid JSON all the same): the state and health messages are the
# largest strings the gateway builds, every minute and on every reading, and the first allocations to fail
# on a tight heap; this makes them ~12 % shorter, and a reading in the outage queue too.
_SEP = (",", ":")
# MicroPython's time.sleep_ms; CPython (portable tests) has only time.sleep
_sleep_ms = getattr(time, "sleep_ms", None) or (lambda ms: time.sleep(ms / 1000))


class Uplink:
    def __init__(self, cfg, board, clock, queue=None, client_factory=None, discovery=None):
        m = cfg["mqtt"]
        self.mq = m
        self.prefix = m["prefix"] + "/" + cfg["gateway_id"]
        self.device = "nightstand/" + cfg["gateway_id"]  # the reading payload's `device`
        self.client_id = "nightstand-" + cfg["gateway_id"]
        self.board = board
        self.clock = clock
        self.queue = queue if queue is not None else RamQueue()
        self.client_factory = client_factory
        # None, or a function giving the (topic, payload) pairs to publish retained on every connect and
        # when HA says it is online: built each time and dropped after (app.py), not kept (~1.7 KiB)
        self.discovery = discovery
        self.ha_status = m.get("ha_prefix", "homeassistant") + "/status"
        self._ha_status_b = self.ha_status.encode()  # compared with umqtt's topic bytes, no decode
        self._ha_due = False
        self.ha_skipped = 0    # discovery rounds cut short by a MemoryError (see _publish_discovery)
        self.lock = _thread.allocate_lock()
        self.pending = []      # [suffix, payload, qos, retain]
        self._news = []        # ("up",) ("down", why) ("queue", why), ("cmd_flood", why),
        #                        ("flash_fail", why) / ("flash_ok", None)
        self._cmds = []        # ("cmd", name, bytes): at most _CMD_SLOTS, handed out by news()
        self._cmd_tokens = _CMD_BURST
        self._cmd_t = None     # ticks the rate limit last counted from
        self.cmd_dropped = 0   # commands thrown away: slots full, rate limit or oversized
        self.cmd_oversized = 0  # of which longer than mqtt_guard.MAX_IN (discarded unread)
        self._flooding = False
        self._last_drop = 0
        self.alive = False     # the worker thread runs
        self.fault = None      # the worker's last crash, for the supervisor to log and show
        self.crashes = 0
        self._crash_at = None
        self._crash_backoff = _CRASH_MIN_MS
        self.flash_ok = True   # the last outage-queue write worked
        self.rx_ticks = None   # ticks of the last bytes from the broker (a round trip)
        self.connected = False
        self.away = False      # True from a failed connect or a lost connection until reconnected
        self.dropped = 0       # messages lost in RAM (the queue counts its own in queue.dropped)
        self.sent = 0
        self.queued = 0        # readings ever written to the outage queue (tests: flash writes)
        self.running = True
        self.client = None
        self._ping_ms = min(m["keepalive"] * 500, cfg["silence"]["cloud_after_s"] * 333)
        self._last_ping = None
        self._backoff = _BACKOFF_MIN_MS

    # ---- asyncio side -------------------------------------------------------------------------
    def send(self, suffix, payload, qos=0, retain=False):
        with self.lock:
            if suffix == "state":
                # only the newest state matters; replace an unsent one (in place: a state goes out on
                # every reading, and a new list each time is garbage the alarm side makes for nothing)
                pend = self.pending
                i = len(pend) - 1
                while i >= 0:
                    if pend[i][0] == "state":
                        pend.pop(i)
                    i -= 1
            elif suffix == "health" and not self.connected:
                return
            elif suffix == "reading" and self.away and isinstance(payload, dict):
                # made while the cloud is away: it will arrive late, so it says so even when the
                # worker reconnects before spilling it to the outage queue. Not before the first
                # connect attempt: a reading made while a fresh gateway boots is simply live.
                payload["replayed"] = True
            if len(self.pending) >= _RAM_HARD:
                self._shed()  # before the append: the list never outgrows _RAM_HARD slots
            self.pending.append([suffix, payload, qos, retain])

    def news(self):
        with self.lock:
            out, self._news = self._news, []
            if self._cmds:
                out.extend(self._cmds)
                self._cmds = []
        return out

    def depth(self):
        """Messages waiting: RAM and the outage queue."""
        return len(self.pending) + len(self.queue)

    def lost(self):
        """Every message lost so far: RAM overflow plus readings the full ring dropped."""
        return self.dropped + self.queue.dropped

    def start(self):
        self.alive = True  # before the thread runs: the supervisor must not start a second one
        _thread.start_new_thread(self._run, ())

    # ---- shared helpers -----------------------------------------------------------------------
    def _shed(self):
        """(lock held) RAM is full and the worker is stuck: drop the oldest non-reading, else the
        oldest reading. Never a flash write here: this runs on the alarm path's side."""
        for i, p in enumerate(self.pending):
            if p[0] != "reading":
                self.pending.pop(i)
                self.dropped += 1
                return
        self.pending.pop(0)
        self.dropped += 1

    def _tell(self, *item):
        with self.lock:
            self._news.append(item)

    # ---- worker thread ------------------------------------------------------------------------
    def _rx(self):
        self.rx_ticks = self.clock.ticks_ms()

    def _make_client(self):
        if self.client_factory:
            return self.client_factory(self)
        import umqtt.simple as simple
        mqtt_guard.install(simple, self.mq["timeout_s"], self._rx, mqtt_guard.MAX_IN, self._on_big, self._admit)
        m = self.mq
        user = m["user"] or None
        pswd = m["password"] or None
        if user is not None and pswd is None:
            pswd = ""  # umqtt sends the password whenever a user is set
        if not m.get("tls"):
            return simple.MQTTClient(self.client_id, m["host"], m["port"], user, pswd, m["keepalive"])
        from firmware.shell import tls
        return tls.make_client(simple, self.client_id, m, user, pswd)

    def _connect(self):
        c = self._make_client()
        c.set_last_will((self.prefix + "/availability").encode(), b"offline", True, 1)
        c.connect()
        self.client = c
        c.set_callback(self._on_msg)
        c.subscribe((self.prefix + "/cmd/#").encode(), 0)
        if self.discovery:
            c.subscribe(self.ha_status.encode(), 0)
        c.publish((self.prefix + "/availability").encode(), b"online", True, 1)
        self._ha_due = self.discovery is not None   # sent by the first _step, once the link is up
        with self.lock:
            self.connected = True
            self.away = False
        self._tell("up")

    def _publish_discovery(self):
        """Home Assistant's config messages, built one at a time. A MemoryError while one is built
        (the connect is the heap's busiest moment) skips the rest until the next connect or Home
        Assistant's next `online`: they are retained at the broker from earlier connects, and a
        connection that never comes up over them would strand the readings."""
        self._ha_due = False
        try:
            msgs = iter(self.discovery())
        except MemoryError:
            self.ha_skipped += 1
            return
        while True:
            try:
                topic, payload = next(msgs)
            except StopIteration:
                return
            except MemoryError:
                self.ha_skipped += 1
                return
            self.client.publish(topic.encode(), payload, True, 1)

    def _on_msg(self, topic, msg):
        # Runs inside umqtt's wait_msg (maybe inside a publish): never publish from here.
        if not self._admit(topic):
            return  # dropped and counted (the guard asks first and then skips the payload unread)
        topic = topic.decode() if isinstance(topic, (bytes, bytearray)) else topic
        if topic == self.ha_status:
            if bytes(msg) == b"online":
                self._ha_due = True  # Home Assistant restarted and forgot its entities
            return
        name = topic[len(self.prefix) + 5:] if topic.startswith(self.prefix + "/cmd/") else topic
        with self.lock:
            self._cmd_tokens -= 1
            self._cmds.append(("cmd", name, bytes(msg)))

    def _admit(self, topic):
        """Whether a message on topic gets a command slot. mqtt_guard asks before reading the payload,
        so a flood's messages are thrown away unread: no allocation for them beyond the topic. The
        rate limit is a token bucket of _CMD_BURST, one token back every _CMD_EVERY_MS; the token is
        taken by _on_msg (same thread, nothing in between)."""
        if topic == self._ha_status_b or topic == self.ha_status:
            return True
        now = self.clock.ticks_ms()
        if self._cmd_t is None:
            self._cmd_t = now
        gained = ticks.diff(now, self._cmd_t) // _CMD_EVERY_MS
        if gained < 0 or gained >= _CMD_BURST:
            self._cmd_tokens, self._cmd_t = _CMD_BURST, now  # a long quiet (or a ticks wrap): full
        elif gained:
            self._cmd_tokens = min(_CMD_BURST, self._cmd_tokens + gained)
            self._cmd_t = ticks.add(self._cmd_t, gained * _CMD_EVERY_MS)
        if self._cmd_tokens <= 0:
            self._cmd_drop(now, "rate limit")
        elif len(self._cmds) >= _CMD_SLOTS:
            self._cmd_drop(now, "command slots full")
        else:
            return True
        return False

    def _cmd_drop(self, now, why):
        """Counted always, said once per burst: a flood must not turn into a flood of log lines."""
        self.cmd_dropped += 1
        if self._flooding and ticks.diff(now, self._last_drop) >= _FLOOD_QUIET_MS:
            self._flooding = False
        self._last_drop = now
        if not self._flooding:
            self._flooding = True
            self._tell("cmd_flood", "commands dropped: " + why)

    def _on_big(self):
        """mqtt_guard discarded a message longer than MAX_IN without reading it."""
        self.cmd_oversized += 1
        self._cmd_drop(self.clock.ticks_ms(), "oversized message")

    def _drop(self, why):
        c, self.client = self.client, None
        if c is not None:
            try:
                c.sock.close()
            except Exception:
                pass
        was = self.connected
        with self.lock:
            self.connected = False
            self.away = True
        if was:
            self._tell("down", why)

    def _enqueue(self, payload):
        """True when the reading is on flash. A failed write keeps it with the caller (RAM), and the
        box shows a `flash` fault until a write succeeds again: the reading is late, never lost."""
        payload["replayed"] = True  # it will arrive late: say so
        try:
            before = self.queue.dropped
            self.queue.append(json.dumps(payloads.compact_reading(payload), separators=_SEP).encode())
        except Exception as e:
            if self.flash_ok:
                self.flash_ok = False
                self._tell("flash_fail", "outage queue write failed: %r" % (e,))
            return False
        self.queued += 1
        if not self.flash_ok:
            self.flash_ok = True
            self._tell("flash_ok", None)
        if self.queue.dropped != before:
            self._tell("queue", "full: oldest readings dropped")
        return True

    def _spill(self, keep_ram):
        """Move readings from RAM to the outage queue, oldest first, until at most keep_ram readings
        stay in RAM. Health is dropped while down (stale by the time it could be sent). The queue is
        touched outside the lock, so send() never waits for a flash write."""
        with self.lock:
            n = -keep_ram
            for p in self.pending:
                if p[0] == "reading":
                    n += 1
            keep, move = [], []
            for p in self.pending:
                if p[0] == "reading" and n > 0:
                    move.append(p)
                    n -= 1
                elif not (keep_ram == 0 and p[0] == "health"):
                    keep.append(p)
            self.pending = keep
        for i, p in enumerate(move):
            if not self._enqueue(p[1]):
                with self.lock:  # back in front, in order: older than anything pending now
                    self.pending = move[i:] + self.pending
                return

    def _publish(self, suffix, data, qos, retain):
        self.client.publish((self.prefix + "/" + suffix).encode(), data, retain, qos)
        self.sent += 1

    def _step(self):
        """One unit of work while connected. True when something was sent."""
        if self._ha_due:
            self._publish_discovery()   # and on, in the same pass, as it was part of the connect
        q = self.queue.peek()
        if q is not None:
            rec = json.loads(q)
            if isinstance(rec, list):  # compact (a dict is a full payload queued by an older version)
                rec = payloads.expand_reading(rec, self.device)
            self._publish("reading", json.dumps(rec, separators=_SEP), 1, False)
            self.queue.pop()
            return True
        with self.lock:
            p = self.pending[0] if self.pending else None
        if p is None:
            return False
        data = p[1] if isinstance(p[1], (str, bytes)) else json.dumps(p[1], separators=_SEP)
        try:
            self._publish(p[0], data, p[2], p[3])
        except Exception:
            if p[0] == "reading":
                p[1]["replayed"] = True  # it will arrive late: say so
            raise
        with self.lock:
            if self.pending and self.pending[0] is p:
                self.pending.pop(0)
        return True

    def _idle(self):
        now = self.clock.ticks_ms()
        if self._last_ping is None or ticks.diff(now, self._last_ping) >= self._ping_ms:
            self._last_ping = now
            self.client.ping()
        # Up to _DRAIN messages a pass: a flood on cmd/# is read (and mostly dropped) at 8000 a second,
        # not 500 (one per 2 ms nap), so the broker never has to queue it for us; readings still go
        # first, since _step runs before every _idle.
        for _ in range(_DRAIN):
            if self.client.check_msg() is None:
                break

    def _run(self):
        """The worker thread: nothing the network does may end it (see _crashed)."""
        self.alive = True
        try:
            while self.running:
                try:
                    self._cycle()
                except Exception as e:  # MemoryError too: it is an Exception on both runtimes
                    self._crashed(e)
        finally:
            self.alive = False

    def _crashed(self, e):
        """A worker pass raised. Keep the exception for the supervisor (which logs it and shows the
        `fault`): nothing here may allocate much, since a full heap may be why we are here. Then drop
        the connection and nap with backoff; the nap still moves readings to flash every second."""
        self.crashes += 1
        self.fault = e
        now = self.clock.ticks_ms()
        if self._crash_at is not None and ticks.diff(now, self._crash_at) >= _CRASH_STABLE_MS:
            self._crash_backoff = _CRASH_MIN_MS
        self._crash_at = now
        wait = self._crash_backoff
        self._crash_backoff = min(wait * 2, _CRASH_MAX_MS)
        try:
            self._drop("worker crashed")
        except Exception:
            self.client = None  # a connection in an unknown state is never used again
            self.connected = False
            self.away = True
        try:
            self._nap(wait)
        except Exception:
            try:
                self.clock.sleep_blocking_ms(wait)
            except Exception:
                pass

    def _nap(self, ms):
        """Sleep ms of clock time while down, moving readings made meanwhile to flash every second,
        so a power cut during a long backoff loses at most a second's worth of RAM."""
        while ms > 0 and self.running:
            step = min(ms, _NAP_MS)
            self.clock.sleep_blocking_ms(step)
            ms -= step
            self._spill(0)

    def _cycle(self):
        """One pass of the worker loop (tests call it directly)."""
        if not self.board.wifi.isconnected():
            self._drop("wifi")
            self._spill(0)
            self._nap(1000)
            return
        if self.client is None:
            try:
                self._connect()
                self._backoff = _BACKOFF_MIN_MS
            except Exception as e:
                self._drop("connect: %r" % (e,))
                self._spill(0)
                self._nap(self._backoff + random.getrandbits(8))
                self._backoff = min(self._backoff * 2, _BACKOFF_MAX_MS)
                return
        try:
            if len(self.pending) > _RAM_SLOTS:
                self._spill(_RAM_SLOTS)
            if not self._step():
                self._idle()
                _sleep_ms(_IDLE_POLL_MS)
        except Exception as e:
            self._drop("io: %r" % (e,))
            self._spill(0)
