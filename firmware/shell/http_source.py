# Network glucose sources: one asyncio task per `phone` or `nightscout` source polls it over HTTP/1.0
# (docs/sources.md) and hands new readings to the core, which merges them with the radio's
# (firmware/core/merge.py). This task is beside the alarm path, never on it: the radio task feeds the
# core and the player without waiting for anything here, and every step here that waits on the network
# has its own timeout (sources[].timeout_s, real seconds like mqtt.timeout_s):
#   name lookup  an IP address (what a phone on the home network has) needs none. A name is looked up
#                in a short-lived thread where the board has _thread, so a slow DNS server cannot stall
#                the asyncio loop (and with it the radio and the buzzer); the answer is kept for an hour.
#                Without _thread the lookup would block the loop: then only an IP address is accepted.
#   connect + send   non-blocking socket; the request goes in one write (Juggluco reads one recv).
#                The task waits on the socket by trying it every _IO_WAIT_MS, not through asyncio's
#                poller: MicroPython's select (extmod/modselect.c, v1.28) keeps a half-made entry when
#                poll.register() runs out of heap ("This case is not handled"), and the next poll of
#                asyncio's loop dereferences it: a crash (SIGSEGV on the unix port, a reset on an ESP32),
#                found at 48 KiB on the frozen 32-bit build. Here a heap that runs out is a MemoryError.
#   each read    at most MAX_BYTES in all (lan_entries.py says why); a Content-Length above that
#                is refused before its body is read, so a peer can never make us allocate its size.
# What the poll ended with goes to the core as the source's outcome: "ok", "no_data", "down" (refused,
# unreachable, no name), "hung" (connected, then no answer in time), "auth_failed" (401/403: a fault
# naming the source), "bad" (an answer we refuse: a `reject` event names the source and the reason) or
# "heap" (the box's own heap had no block for the answer, twice: see _fetch).
import binascii
import errno
import socket
import time

import asyncio

from firmware.core import ticks
from firmware.core.reading import Reading
from firmware.sensor import lan_entries

from micropython import const

# One read. The advert flood leaves a board's heap in small pieces: with the phone beside the radio on
# the 32-bit frozen build, 512-byte reads found no free block 70 times in a simulated day at 72 KiB
# (13-20 KB free), 256-byte reads 3 to 6 times (tools/soak.py --source phone).
_CHUNK = const(256)
_DNS_KEEP_MS = const(3600000)  # a looked-up address is reused for an hour (or until a poll fails)
_DNS_STEP_MS = const(20)       # how often the task looks whether the lookup thread has answered
# How often a waiting socket is tried: a LAN answer takes tens of ms, so 20 ms adds little to a 60 s
# poll, and a try that would block costs the loop well under a millisecond on a board.
_IO_WAIT_MS = const(20)
# A poll whose read found no free block waits this long and tries once more: the radio task drains its
# adverts and the uplink sends what it holds meanwhile, so the heap's free space is in other places by
# then; short beside the 60 s poll, so the reading is at most this late.
_HEAP_RETRY_MS = const(3000)


class _Timeout(Exception):
    pass


async def _io(call, arg, timeout_ms, what):
    """call(arg) on a non-blocking socket (or its TLS wrapper, which also answers None while its
    handshake waits) until it answers; _Timeout(what) after timeout_ms of real time."""
    t0 = time.ticks_ms()
    while True:
        try:
            r = call(arg)
        except OSError as e:
            # EINPROGRESS: lwIP's answer to a write while the connect is still under way
            if not e.args or e.args[0] not in (errno.EAGAIN, errno.EINPROGRESS):
                raise
            r = None
        if r is not None:
            return r
        if time.ticks_diff(time.ticks_ms(), t0) >= timeout_ms:
            raise _Timeout(what)
        await asyncio.sleep_ms(_IO_WAIT_MS)


def _is_ip(host):
    p = host.split(".")
    return len(p) == 4 and all(x.isdigit() and len(x) <= 3 for x in p)


def sha1_hex(secret):
    import hashlib
    return binascii.hexlify(hashlib.sha1(secret.encode()).digest()).decode()


def request(src, last_modified=None):
    """(host, port, tls, request bytes) for a source config entry."""
    if src["kind"] == "phone":
        host, port, tls = src["host"], src["port"], False
        # brief_mode needs a value: xDrip+ drops a parameter without "=value" (docs/sources.md)
        path = "/sgv.json?count=3&brief_mode=Y"
        secret, token = src["secret"], ""
    else:
        url = src["url"]
        tls = url.startswith("https://")
        rest = url.split("://", 1)[1]
        hostport, _, base = rest.partition("/")
        host, _, port = hostport.partition(":")
        port = int(port) if port else (443 if tls else 80)
        base = base.strip("/")  # a Nightscout under a sub-path: https://host/ns/
        path = ("/" + base if base else "") + "/api/v1/entries/sgv.json?count=3"
        secret, token = src["secret"], src["token"]
        if token:
            path += "&token=" + token
    lines = ["GET %s HTTP/1.0" % path, "Host: %s:%d" % (host, port), "Accept: application/json"]
    if secret:
        # exactly one space after the colon, and after the GET line: xDrip+ splits on ": " and stops
        # reading at this line; omitted without a secret (xDrip+ refuses an unexpected one)
        lines.append("api-secret: " + sha1_hex(secret))
    if last_modified:
        lines.append("If-Modified-Since: " + last_modified)  # Nightscout answers 304: a cheap poll
    return host, port, tls, ("\r\n".join(lines) + "\r\n\r\n").encode()


class HttpSource:
    def __init__(self, app, src):
        self.app = app
        self.src = src
        self.name = src["name"]
        self.kind = src["kind"]
        self.timeout_ms = int(src.get("timeout_s", 5) * 1000)
        self.last_date = None       # epoch ms of the newest entry handed to the core
        self.last_modified = None   # Nightscout's Last-Modified, sent back as If-Modified-Since
        self.addr = None            # (addr, looked up at tick)

    # ---- name lookup -------------------------------------------------------------------------
    async def _resolve(self, host, port):
        clock = self.app.clock
        if self.addr is not None and ticks.diff(clock.ticks_ms(), self.addr[1]) < _DNS_KEEP_MS:
            return self.addr[0]
        sock_mod = getattr(self.app.board, "socket_module", socket)
        if _is_ip(host):
            ai = sock_mod.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]  # a literal: no lookup
        else:
            try:
                import _thread
            except ImportError:
                raise OSError("DNS: this board has no thread for a lookup; give an IP address")
            slot = []

            def look():
                try:
                    slot.append(sock_mod.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0])
                except Exception as e:  # handed to the task as its reason
                    slot.append(e)

            _thread.start_new_thread(look, ())
            waited = 0
            while not slot:
                if waited >= self.timeout_ms:
                    raise _Timeout("dns")  # the thread ends on its own; its answer is dropped
                await asyncio.sleep_ms(_DNS_STEP_MS)
                waited += _DNS_STEP_MS
            if isinstance(slot[0], Exception):
                raise OSError("DNS: %s" % slot[0])
            ai = slot[0]
        self.addr = (ai, clock.ticks_ms())
        return ai

    # ---- one poll ----------------------------------------------------------------------------
    async def fetch(self):
        """(bytes, eof) of one answer; raises _Timeout(step) or OSError."""
        host, port, tls, req = request(self.src, self.last_modified)
        ai = await self._resolve(host, port)
        s = socket.socket(ai[0], ai[1], ai[2])
        try:
            s.setblocking(False)
            try:
                s.connect(ai[-1])
            except OSError as e:
                if not e.args or e.args[0] != errno.EINPROGRESS:
                    raise
            if tls:
                from firmware.shell.tls import TlsWrapper
                w = TlsWrapper(self.src["ca"], host)
                s = w.context().wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
                s.setblocking(False)
            mv, sent = memoryview(req), 0
            while sent < len(mv):
                sent += await _io(s.write, mv[sent:], self.timeout_ms, "connect")
            buf = b""
            want = None  # body bytes the head announces, once it has arrived
            end = -1
            while len(buf) <= lan_entries.MAX_BYTES:
                chunk = await _io(s.read, min(_CHUNK, lan_entries.MAX_BYTES + 1 - len(buf)),
                                  self.timeout_ms, "read" if buf else "answer")
                if not chunk:
                    return buf, True
                buf += chunk
                if end < 0:
                    end = lan_entries.head_end(buf)
                    if end >= 0:
                        want = lan_entries.body_wanted(buf[:end])
                        if want == -1:
                            return buf[:end], False  # refused by its Content-Length, body unread
                if want is not None and end >= 0 and len(buf) - end >= want:
                    return buf, False
            return buf, False  # more than MAX_BYTES: the parser refuses it as oversized
        finally:
            s.close()

    async def _fetch(self):
        """fetch(), and once more after _HEAP_RETRY_MS when the box's heap had no free block for it.
        Measured on the 32-bit frozen build with the phone beside the radio: the poll's 512-byte read
        failed ("allocating 513 bytes") with 13-20 KB free, the heap cut into smaller pieces by the
        advert flood. Before this retry each one crashed the task: a crash log written to flash and the
        `fault` pattern, for what the next moment's heap could serve."""
        try:
            return await self.fetch()
        except MemoryError:
            # the failed allocation has already collected: waiting is what can free a block
            print("source %s: no free heap block for the answer; trying again" % self.name)  # tools/soak.py
        await self.app.clock.sleep_ms(_HEAP_RETRY_MS)
        return await self.fetch()

    async def poll(self):
        app, gw, clock = self.app, self.app.gw, self.app.clock
        why = None
        try:
            data, eof = await self._fetch()
        except MemoryError:
            # twice: the source's state says the box could not take the answer, not that the phone is
            # down; the next poll tries again, and the radio and the alarms never wait on this task
            outcome, why, data = "heap", "no free heap on the box for the answer", None
        except _Timeout as e:
            # no answer after connecting: the phone's app is frozen or asleep; no connection: it is away
            outcome = "hung" if e.args[0] in ("answer", "read") else "down"
            why = "no %s within %d ms" % (e.args[0], self.timeout_ms)
            data = None
        except OSError as e:
            self.addr = None  # look the name up again next time
            outcome, why, data = "down", str(e), None
        except ValueError as e:
            # MicroPython's TLS raises ValueError for a refused certificate ("not correctly signed by
            # the trusted CA", a wrong name): the server is not the one configured. Anything else is a bug
            # here, and the supervisor shows it as a crash.
            if not self.src.get("url", "").startswith("https://"):
                raise
            outcome, why, data = "down", "TLS: " + " ".join(str(e).split()), None
        now = clock.ticks_ms()
        if data == b"" and eof:
            # closed without a byte: a server that refuses us (Juggluco with "Local only" ticked
            # closes connections from other addresses) or an app restarting
            outcome, why, data = "down", "closed the connection without answering", None
        if data is not None:
            a = lan_entries.parse(data, eof, self.kind, clock.wall_ms())
            outcome, why = self._answer(a, now)
        gw.on_source(now, self.name, outcome, why)
        app.flush()
        return outcome

    def _answer(self, a, now):
        gw = self.app.gw
        if a.kind == "auth_failed":
            return "auth_failed", a.reason
        if a.kind == "reject":
            gw.on_reject(now, a.reason, self.name)
            return "bad", a.reason
        if a.last_modified:
            self.last_modified = a.last_modified
        if a.kind == "no_data":
            return "no_data", a.reason
        if a.kind == "ok":
            if a.rejected:
                gw.on_reject(now, a.reason, self.name)  # counted; the good entries still count
            fresh = [e for e in a.entries if self.last_date is None or e[0] > self.last_date]
            for i, (date, mgdl, trend, age) in enumerate(fresh):
                # only the newest is news; older ones we missed (first poll, after an outage) are
                # history: published, never alarmed
                r = Reading(self.name, date // 1000, mgdl, trend, source=self.kind,
                            backfilled=i < len(fresh) - 1)
                r.wall_ms = date
                gw.on_reading(now, r, ticks.add(now, -age), self.name)
                self.last_date = date
        return "ok", None

    async def run(self):
        clock = self.app.clock
        period = self.src["poll_s"] * 1000
        while True:
            t0 = clock.ticks_ms()
            await self.poll()
            left = period - ticks.diff(clock.ticks_ms(), t0)
            await clock.sleep_ms(max(1000, left))


def tasks(app):
    """[(task name, factory)] for every network source in the config."""
    out = []
    for src in app.cfg.get("sources") or ():
        if src["kind"] in ("phone", "nightscout"):
            s = HttpSource(app, src)
            out.append(("source:" + s.name, s.run))
    return out
