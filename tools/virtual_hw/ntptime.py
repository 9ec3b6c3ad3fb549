# HOST ONLY (never on a board): MicroPython's `ntptime` as virtual hardware. settime() sets the host
# board's clock from the simulator's wall clock (the `wall_ms` of its start message, moving with scenario
# time) as the real one sets the RTC from an NTP server; it fails as the real one does while the station
# has no link (timeout), while DNS is down (the name does not resolve) or when the simulator gave no wall
# clock (the server never answers).
#   host, timeout, time() -> epoch s, settime();  attach(clock, wall0_ms) (host only)
host = "pool.ntp.org"
timeout = 1
_ETIMEDOUT = 110
_src = [None, None]   # the board clock, the simulator's wall ms at scenario time 0
settimes = []         # host only, for tests: scenario ms of each successful settime()


def attach(clock, wall0_ms):
    _src[0], _src[1] = clock, wall0_ms


def _wall_ms():
    import network
    import socket
    if not any(w.isconnected() for w in network._ifaces.values()):
        raise OSError(_ETIMEDOUT)
    if hasattr(socket, "dns_up") and not socket.dns_up():
        raise OSError(-2)   # EAI_NONAME, as getaddrinfo(host) says with DNS down
    clock, wall0 = _src
    if clock is None or wall0 is None:
        raise OSError(_ETIMEDOUT)
    return wall0 + clock.sim_ms()


def time():
    return _wall_ms() // 1000


def settime():
    ms = _wall_ms()
    clock = _src[0]
    clock.set_wall_ms(ms)
    settimes.append(clock.sim_ms())
