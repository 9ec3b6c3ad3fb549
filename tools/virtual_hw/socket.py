# HOST ONLY (never on a board): the unix port's own socket module, with the name resolver as virtual
# network hardware. The simulator's dns_down/dns_up faults (firmware/hal/host.py calls set_dns()) make
# getaddrinfo() fail as a board's lwIP does when its DNS server is unreachable; sockets, addresses and
# every other name are the real ones. tools/sim.py puts tools/virtual_hw/ first on MICROPYPATH, so the
# firmware's modules (the MQTT socket guard, the HTTP sources) import this one.
from usocket import *  # noqa: F403  (the real module's names, unchanged)
import usocket as _real

_up = [True]


def getaddrinfo(host, port, *args):
    if not _up[0]:
        raise OSError(-2)   # EAI_NONAME: the name does not resolve while DNS is down
    return _real.getaddrinfo(host, port, *args)


def set_dns(up):
    """Host only: name lookups work (True) or fail (False)."""
    _up[0] = bool(up)


def dns_up():
    """Host only: whether names resolve (tools/virtual_hw/ntptime.py asks)."""
    return _up[0]
