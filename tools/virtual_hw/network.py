# HOST ONLY (never on a board): MicroPython's `network` module as virtual hardware: one station
# interface (WLAN(STA_IF)) and the simulator's access point. The host board runs the ESP32 adapter's own
# Wifi class (firmware/hal/esp32.py) over it; the simulator's wifi_down/wifi_up reach set_ap() through the
# sim link (firmware/hal/host.py). As on the ESP32 port, a station that was asked to connect keeps trying
# on its own (ESP-IDF reconnects after a lost AP until disconnect()), so it is back as soon as the AP is.
#   WLAN(STA_IF): active([b]), connect(ssid, key), disconnect(), isconnected(), status([param]),
#                 config(name | **kw), scan(), ifconfig()
#   set_ap(up)  (host only) the AP is gone (False) or back (True); calls (host only): what was asked of it
STA_IF, AP_IF = 0, 1
# The ESP32 port's station status codes (ports/esp32/network_wlan.c).
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
_RSSI = -55   # a router in the next room

_ap = {"up": True}
_ifaces = {}
calls = []   # (method, args) in order, for tests: which code drove the interface


def WLAN(iface=STA_IF):
    """One object per interface, as on a board: WLAN(STA_IF) twice is the same station."""
    w = _ifaces.get(iface)
    if w is None:
        w = _ifaces[iface] = _Wlan(iface)
    return w


class _Wlan:
    def __init__(self, iface):
        self.iface = iface
        self._active = False
        self._want = None      # the SSID asked for, until disconnect()
        self._up = False
        self._cfg = {"mac": b"\x24\x0a\xc4\x00\x00\x01", "hostname": "nightstand", "reconnects": -1}

    def active(self, on=None):
        if on is None:
            return self._active
        calls.append(("active", (bool(on),)))
        self._active = bool(on)
        if not on:
            self._want = None
            self._up = False

    def connect(self, ssid=None, key=None, bssid=None):
        calls.append(("connect", (ssid,)))
        if not self._active:
            raise OSError("Wifi Not Started")   # the ESP32 port's words
        self._want = ssid
        self._up = _ap["up"]

    def disconnect(self):
        calls.append(("disconnect", ()))
        self._want = None
        self._up = False

    def isconnected(self):
        return self._up

    def status(self, param=None):
        if param is None:
            if self._up:
                return STAT_GOT_IP
            if self._want is None:
                return STAT_IDLE
            return STAT_NO_AP_FOUND
        if param == "rssi":
            if not self._up:
                raise OSError("STA must be connected")
            return _RSSI
        raise ValueError("unknown status param")

    def config(self, *args, **kw):
        if args:
            if args[0] == "ssid":
                return self._want or ""
            return self._cfg[args[0]]
        self._cfg.update(kw)

    def scan(self):
        if not self._active:
            raise OSError("Wifi Not Started")
        # (ssid, bssid, channel, RSSI, security, hidden)
        return [(b"nightstand-sim", b"\x02\x00\x00\x00\x00\x01", 6, _RSSI, 3, False)] if _ap["up"] else []

    def ifconfig(self, *a):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1") if self._up else ("0.0.0.0",) * 4


def set_ap(up):
    """Host only: the simulator's access point goes away (False) or comes back (True). A station that
    was asked to connect and not told to disconnect joins again at once, as the ESP32's does."""
    _ap["up"] = bool(up)
    for w in _ifaces.values():
        w._up = bool(up) and w._active and w._want is not None


def ap_up():
    return _ap["up"]
