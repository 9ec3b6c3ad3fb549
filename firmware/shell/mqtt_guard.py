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
import select
import socket as _socket
import time

_ETIMEDOUT = 110
_POLL_SLICE_MS = 100  # re-check the deadline at least this often, whatever wakes the poll


class TimedSocket:
    def __init__(self, timeout_s, on_rx):
        self.timeout_s = timeout_s
        self.on_rx = on_rx
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
            self._poll = select.poll()
            self._poll.register(self.raw, mask)
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

    def __init__(self, timeout_s, on_rx):
        self.timeout_s = timeout_s
        self.on_rx = on_rx

    def socket(self, *args):
        return TimedSocket(self.timeout_s, self.on_rx)

    def getaddrinfo(self, host, port, *args):
        return _socket.getaddrinfo(host, port, *args)


def install(simple_module, timeout_s, on_rx):
    simple_module.socket = GuardedSocketModule(timeout_s, on_rx)
