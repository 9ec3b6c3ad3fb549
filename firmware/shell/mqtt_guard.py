# Puts umqtt.simple's blocking socket calls under a real-time timeout.
# umqtt.simple creates its socket through its module-global `socket` (1.3.4: `import usocket as socket`;
# 1.8: `import socket`), and wait_msg() calls sock.setblocking(True), which on a plain socket would wait
# forever on a hung broker. We hand it a socket module whose sockets turn "blocking" into "blocking with a
# timeout", and which note every byte received, since any bytes from the broker are an acknowledged round
# trip (CONNACK, SUBACK, PUBACK, PINGRESP or a command).
#
# The deadline is our own, not the socket's: after connect (and the TLS handshake) the TCP socket is
# non-blocking and every read or write polls against a ticks deadline. A socket timeout alone is not
# enough: on the unix port a blocking call interrupted by a signal is restarted with a fresh timeout,
# so a half-open connection (no RST, no bytes) held the uplink thread forever.
#
# Incoming messages are bounded too: umqtt's wait_msg reads a PUBLISH whole, whatever length the broker
# announces (a 1 MB retained message on cmd/# was a 1 MB allocation, a MemoryError and a reconnect, on
# every reconnect). install() gives umqtt a subclass whose wait_msg reads the announced remaining length
# first and throws a message longer than max_in away through a small fixed buffer, counted (on_big),
# with the connection kept. Only the public wait_msg is replaced; check_msg, publish and subscribe of
# both umqtt.simple 1.3.4 and 1.8 call it, and what it reads is the MQTT 3.1.1 wire format, not umqtt's
# internals.
import select
import socket as _socket
import time

_ETIMEDOUT = 110
_POLL_SLICE_MS = 100  # re-check the deadline at least this often, whatever wakes the poll
# A command is < 600 bytes (firmware.core.commands: payload <= 512, topic < 100); a message longer than
# this is never one we act on. Big enough for Home Assistant's status ("online"/"offline").
MAX_IN = 1024
_SKIP_CHUNK = 128     # the discard buffer: an oversized message costs this, never its own size


class TimedSocket:
    def __init__(self, timeout_s, on_rx, max_in=MAX_IN, on_big=None, admit=None):
        self.timeout_s = timeout_s
        self.on_rx = on_rx
        self.max_in = max_in
        self.on_big = on_big         # called once per discarded oversized message
        self.admit = admit           # admit(topic) False: the payload is skipped unread
        self._skipbuf = None
        self.raw = _socket.socket()  # the TCP socket: timeouts are always set on this one
        self.s = self.raw            # what reads and writes go through (the TLS layer once wrapped)
        self.raw.settimeout(timeout_s)  # bounds connect and the TLS handshake
        self.blocking = True         # what umqtt asked for: True = wait up to timeout_s
        self._poll = None            # set once connected: from then on the socket is non-blocking

    def connect(self, addr):
        self.raw.connect(addr)
        try:
            # TCP_NODELAY (IPPROTO_TCP 6, option 1): umqtt writes a packet in several small pieces, and
            # Nagle held each for the broker's delayed ACK (~46 ms a reading: 288 replayed took 13 s).
            self.raw.setsockopt(6, 1, 1)
        except (OSError, AttributeError):
            pass  # a stack without the option is slower, not wrong

    def wrap(self, tls_sock):
        """TLS (firmware.shell.tls) wraps our TCP socket; reads and writes go through TLS from now
        on, while the real-time timeout stays on the TCP socket underneath."""
        self.s = tls_sock

    def setblocking(self, flag):
        self.blocking = bool(flag)

    def settimeout(self, t):
        # umqtt 1.8 passes its own timeout (None = forever): ours always wins.
        self.blocking = True

    def _ready(self, mask):
        # Poll only for the direction this call waits on: a TCP socket is nearly always writable,
        # so a read polling for POLLOUT too woke at once and spun, allocating poll()'s result list
        # every turn (heap dips of ~200 KiB on the unix port; host_tests/unit/test_mqtt_guard.py) and, on a board,
        # taking the interpreter from the alarm path for as long as the broker kept us waiting.
        if self._poll is None:
            self.raw.setblocking(False)
            p = select.poll()
            # Kept only once register() has worked: one that runs out of heap leaves a half-made entry
            # in p (MicroPython v1.28 extmod/modselect.c: "This case is not handled"), and the next
            # modify() or ipoll() on p dereferences it, crashing the process (a reset on a board). The
            # MemoryError goes to umqtt instead, which drops the connection and makes a new one.
            p.register(self.raw, mask)
            self._poll = p
        else:
            self._poll.modify(self.raw, mask)
        return time.ticks_add(time.ticks_ms(), int(self.timeout_s * 1000))

    def _wait(self, deadline):
        left = time.ticks_diff(deadline, time.ticks_ms())
        if left <= 0:
            raise OSError(_ETIMEDOUT)
        for _ in self._poll.ipoll(min(left, _POLL_SLICE_MS)):  # ipoll: no list allocated per wake
            break

    def read(self, n):
        deadline = self._ready(select.POLLIN)
        if not self.blocking:
            data = self.s.read(n)  # None: nothing waiting (check_msg)
        else:
            data = b""
            while len(data) < n:
                chunk = self.s.read(n - len(data))
                if chunk is None:
                    self._wait(deadline)
                elif not chunk:
                    break  # the broker closed: umqtt sees a short read / b""
                else:
                    data += chunk
        if data:
            self.on_rx()
        return data

    def skip(self, n):
        """Read and throw away n bytes through one small buffer. The deadline restarts on every chunk:
        a slow but moving transfer is not a hung broker."""
        if self._skipbuf is None:
            self._skipbuf = bytearray(_SKIP_CHUNK)
        buf = self._skipbuf
        deadline = self._ready(select.POLLIN)
        while n > 0:
            got = self.s.readinto(buf, min(n, _SKIP_CHUNK))
            if got is None:
                self._wait(deadline)
            elif not got:
                raise OSError(-1)  # the broker closed mid-message: umqtt's way to say the link is gone
            else:
                n -= got
                deadline = time.ticks_add(time.ticks_ms(), int(self.timeout_s * 1000))
        self.on_rx()

    def write(self, buf, n=None):
        deadline = self._ready(select.POLLOUT)
        mv = memoryview(buf)
        if n is not None:
            mv = mv[:n]
        sent = 0
        while sent < len(mv):
            r = self.s.write(mv[sent:])
            if not r:
                self._wait(deadline)
            else:
                sent += r
        return sent

    def close(self):
        self.s.close()
        if self.raw is not self.s:
            self.raw.close()


class GuardedSocketModule:
    """Stands in for the socket module inside umqtt.simple."""

    def __init__(self, timeout_s, on_rx, max_in=MAX_IN, on_big=None, admit=None):
        self.timeout_s = timeout_s
        self.on_rx = on_rx
        self.max_in = max_in
        self.on_big = on_big
        self.admit = admit

    def socket(self, *args):
        return TimedSocket(self.timeout_s, self.on_rx, self.max_in, self.on_big, self.admit)

    def getaddrinfo(self, host, port, *args):
        return _socket.getaddrinfo(host, port, *args)


def _byte(sock):
    b = sock.read(1)
    if not b:
        raise OSError(-1)  # the broker closed (umqtt's convention)
    return b[0]


def _u16(sock):
    return (_byte(sock) << 8) | _byte(sock)


def guarded_wait_msg(self):
    """umqtt's wait_msg, with the PUBLISH length checked before its payload is read. Returns what
    umqtt's does: None (nothing waiting, or PINGRESP), or the packet type byte read; a PUBLISH is
    handed to the callback, or, when longer than the socket's max_in, discarded and counted."""
    sock = self.sock
    res = sock.read(1)
    sock.setblocking(True)
    if res is None:
        return None
    if res == b"":
        raise OSError(-1)
    op = res[0]
    if op == 0xD0:  # PINGRESP
        if _byte(sock) != 0:
            raise OSError(-1)
        return None
    if op & 0xF0 != 0x30:
        return op  # an ack: the caller (publish, subscribe) reads the rest
    size, shift = 0, 0
    while True:  # remaining length: 7 bits a byte, at most 4 bytes (MQTT 3.1.1 2.2.3)
        b = _byte(sock)
        size |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 21:
            raise OSError(-1)  # not MQTT: drop the connection rather than guess
    qos = (op >> 1) & 3
    tlen = _u16(sock)
    rest = size - 2 - tlen - (2 if qos else 0)
    if rest < 0 or qos == 3:
        raise OSError(-1)  # a malformed packet: the stream cannot be trusted any more
    if size > sock.max_in:
        sock.skip(tlen)
        pid = _u16(sock) if qos else 0
        sock.skip(rest)
        if sock.on_big is not None:
            sock.on_big()
    else:
        topic = sock.read(tlen)
        pid = _u16(sock) if qos else 0
        if sock.admit is None or sock.admit(topic):
            self.cb(topic, sock.read(rest))
        else:
            sock.skip(rest)  # refused (a flood beyond the rate limit): never read into the heap
    if qos == 1:
        sock.write(bytes((0x40, 2, pid >> 8, pid & 0xFF)))  # PUBACK
    elif qos == 2:
        sock.write(bytes((0x50, 2, pid >> 8, pid & 0xFF)))  # PUBREC; we subscribe at QoS 0 anyway
    return op


def install(simple_module, timeout_s, on_rx, max_in=MAX_IN, on_big=None, admit=None):
    simple_module.socket = GuardedSocketModule(timeout_s, on_rx, max_in, on_big, admit)
    # Once per module: the class umqtt (and firmware.shell.tls) build is the same, with wait_msg bounded.
    base = simple_module.MQTTClient
    if getattr(base, "_nightstand_guarded", False):
        return

    class GuardedClient(base):
        _nightstand_guarded = True
        wait_msg = guarded_wait_msg

    simple_module.MQTTClient = GuardedClient
