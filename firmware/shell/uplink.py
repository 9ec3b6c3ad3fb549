# MQTT uplink. umqtt.simple blocks, so it runs on its own thread; the asyncio side (and so the alarm
# path) only ever touches two lock-guarded lists and never waits on the network.
#
#   asyncio side: send() puts messages in `pending`; news() drains what the worker learned.
#   worker thread: connects (last will: availability offline, retained), publishes online, subscribes to
#   commands, sends queued readings first (replayed: true), then pending messages in order, pings.
#   While the cloud is down, readings spill from RAM to the outage queue (flash on a board).
import json
import random
import time
import _thread

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from firmware.core import ticks
from firmware.shell import mqtt_guard

_RAM_SLOTS = const(32)       # messages held in RAM; a reading beyond this spills to the outage queue
_BACKOFF_MIN_MS = const(500)  # first reconnect wait (clock time)
_BACKOFF_MAX_MS = const(30000)  # cap: a broker back after an outage is found within 30 s
_IDLE_POLL_MS = const(2)     # real ms the worker sleeps when it has nothing to do


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


class Uplink:
    def __init__(self, cfg, board, clock, queue=None, client_factory=None):
        m = cfg["mqtt"]
        self.mq = m
        self.prefix = m["prefix"] + "/" + cfg["gateway_id"]
        self.client_id = "nightstand-" + cfg["gateway_id"]
        self.board = board
        self.clock = clock
        self.queue = queue if queue is not None else RamQueue()
        self.client_factory = client_factory
        self.lock = _thread.allocate_lock()
        self.pending = []      # [suffix, payload, qos, retain]
        self._news = []        # ("up",) ("down", why) ("cmd", name, bytes)
        self.rx_ticks = None   # ticks of the last bytes from the broker (a round trip)
        self.connected = False
        self.dropped = 0
        self.sent = 0
        self.running = True
        self.client = None
        self._ping_ms = min(m["keepalive"] * 500, cfg["silence"]["cloud_after_s"] * 333)
        self._last_ping = None

    # ---- asyncio side -------------------------------------------------------------------------
    def send(self, suffix, payload, qos=0, retain=False):
        with self.lock:
            if suffix == "state":
                # only the newest state matters; replace an unsent one
                self.pending = [p for p in self.pending if p[0] != "state"]
            elif suffix == "health" and not self.connected:
                return
            self.pending.append([suffix, payload, qos, retain])
            if len(self.pending) > _RAM_SLOTS:
                self._shed()

    def news(self):
        with self.lock:
            out, self._news = self._news, []
        return out

    def depth(self):
        return len(self.pending) + len(self.queue)

    def start(self):
        _thread.start_new_thread(self._run, ())

    # ---- shared helpers (call with the lock held) ---------------------------------------------
    def _shed(self):
        """RAM is full: the oldest reading goes to the outage queue, else the oldest other message."""
        for i, p in enumerate(self.pending):
            if p[0] == "reading":
                self._spill(self.pending.pop(i))
                return
        self.pending.pop(0)
        self.dropped += 1

    def _spill(self, p):
        payload = p[1]
        payload["replayed"] = True
        before = self.queue.dropped
        self.queue.append(json.dumps(payload).encode())
        self.dropped += self.queue.dropped - before

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
        mqtt_guard.install(simple, self.mq["timeout_s"], self._rx)
        m = self.mq
        return simple.MQTTClient(self.client_id, m["host"], m["port"], m["user"] or None,
                                 m["password"] or None, m["keepalive"])

    def _connect(self):
        c = self._make_client()
        c.set_last_will(self.prefix + "/availability", b"offline", True, 1)
        c.connect()
        c.set_callback(self._on_msg)
        c.subscribe((self.prefix + "/cmd/#").encode(), 0)
        c.publish((self.prefix + "/availability").encode(), b"online", True, 1)
        self.client = c
        with self.lock:
            self.connected = True
        self._tell("up")

    def _on_msg(self, topic, msg):
        topic = topic.decode() if isinstance(topic, bytes) else topic
        name = topic[len(self.prefix) + 5:] if topic.startswith(self.prefix + "/cmd/") else topic
        self._tell("cmd", name, bytes(msg))

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
        if was:
            self._tell("down", why)

    def _spill_pending(self):
        with self.lock:
            keep = []
            for p in self.pending:
                if p[0] == "reading":
                    self._spill(p)
                elif p[0] != "health":
                    keep.append(p)
            self.pending = keep

    def _publish(self, suffix, data, qos, retain):
        self.client.publish((self.prefix + "/" + suffix).encode(), data, retain, qos)
        self.sent += 1

    def _step(self):
        """One unit of work while connected. True when something was sent."""
        q = self.queue.peek()
        if q is not None:
            self._publish("reading", q, 1, False)
            self.queue.pop()
            return True
        with self.lock:
            p = self.pending[0] if self.pending else None
        if p is None:
            return False
        data = p[1] if isinstance(p[1], (str, bytes)) else json.dumps(p[1])
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
        self.client.check_msg()

    def _run(self):
        backoff = _BACKOFF_MIN_MS
        while self.running:
            if not self.board.wifi.isconnected():
                self._drop("wifi")
                self._spill_pending()
                self.clock.sleep_blocking_ms(1000)
                continue
            if self.client is None:
                try:
                    self._connect()
                    backoff = _BACKOFF_MIN_MS
                except Exception as e:
                    self._drop("connect: %r" % (e,))
                    self._spill_pending()
                    self.clock.sleep_blocking_ms(backoff + random.getrandbits(8))
                    backoff = min(backoff * 2, _BACKOFF_MAX_MS)
                    continue
            try:
                if not self._step():
                    self._idle()
                    time.sleep_ms(_IDLE_POLL_MS)
            except Exception as e:
                self._drop("io: %r" % (e,))
