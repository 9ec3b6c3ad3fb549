# Puts umqtt.simple's blocking socket calls under a real-time timeout.
# umqtt.simple creates its socket through its module-global `socket` (1.3.4: `import usocket as socket`;
# 1.8: `import socket`), and wait_msg() calls sock.setblocking(True), which on a plain socket would wait
# forever on a hung broker. We hand it a socket module whose sockets turn "blocking" into "blocking with a
# timeout", and which note every byte received, since any bytes from the broker are an acknowledged round
# trip (CONNACK, SUBACK, PUBACK, PINGRESP or a command).
import socket as _socket


class TimedSocket:
    def __init__(self, timeout_s, on_rx):
        self.timeout_s = timeout_s
        self.on_rx = on_rx
        self.raw = _socket.socket()  # the TCP socket: timeouts are always set on this one
        self.s = self.raw            # what reads and writes go through (the TLS layer once wrapped)
        self.raw.settimeout(timeout_s)

    def connect(self, addr):
        self.raw.connect(addr)

    def wrap(self, tls_sock):
        """TLS (firmware.shell.tls) wraps our TCP socket; reads and writes go through TLS from now
        on, while the real-time timeout stays on the TCP socket underneath."""
        self.s = tls_sock

    def setblocking(self, flag):
        if flag:
            self.raw.settimeout(self.timeout_s)
        else:
            self.raw.setblocking(False)

    def settimeout(self, t):
        # umqtt 1.8 passes its own timeout (None = forever): ours always wins.
        self.raw.settimeout(self.timeout_s)

    def read(self, n):
        data = self.s.read(n)
        if data:
            self.on_rx()
        return data

    def write(self, buf, n=None):
        if n is not None:
            buf = memoryview(buf)[:n]
        return self.s.write(buf)

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
