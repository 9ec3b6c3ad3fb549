# A BLE peripheral on the simulator's side of the virtual controller (tools/virtual_hw/bluetooth.py):
# what a sensor that holds a connection looks like on the air. Sensors subclass it (simlib/cgms_peer.py;
# a Dexcom G6 transmitter would be another) and only fill in their GATT table and behaviour.
#
#   p = Peripheral(send, "c4:7a:..", [Service(0x181F, [Char(0x2AA7, NOTIFY), Char(0x2AA8, READ, value=b"..")])],
#                  adv=bytes, adv_type=ADV_IND, every_ms=1000, passkey=123456 or None, secure=True)
#   p.start()                 advertise (connectable) every every_ms while in range and not connected
#   p.set_in_range(False)     the link drops (supervision timeout) and adverts stop; True: back
#   p.notify(char, data)      a notification, when connected and the central enabled it in the CCCD
#   p.indicate(char, data)    the same for indications
#   p.notify_many(char, [data, ...])   several notifications in one connection event (they reach the
#                             central's stack back to back, before its application runs)
#   p.stall = {"services", "characteristics", "descriptors", "read", "write", "pair", "mtu", "connect"}
#                             operations the peer receives but never answers (the central's ATT timeout)
# Hooks for subclasses: on_read(char) -> bytes or ATT error int; on_write(char, data) -> 0 or ATT error;
# on_subscribe(char, notify, indicate) -> None/0 or an ATT error (the CCCD write is refused and left as
# it was); on_pair(req) -> 0, or an error that refuses this pairing (e.g. before an application-level
# auth); on_connect(); on_disconnect(why).
# Handles are assigned in table order: service, then per characteristic its declaration, value and
# (for notify/indicate) its CCCD (0x2902), as a GATT server lays them out.
# Security: with secure=True nothing is readable, writable or subscribable before pairing (ATT error
# 0x05); with a passkey, pairing needs it. A bond is remembered: a central presenting the key from the
# last bonding re-encrypts without a passkey.
import os

ADV_IND, ADV_DIRECT_IND, ADV_SCAN_IND, ADV_NONCONN_IND, SCAN_RSP = 0, 1, 2, 3, 4
READ, WRITE_NO_RESPONSE, WRITE, NOTIFY, INDICATE = 0x02, 0x04, 0x08, 0x10, 0x20
CCCD = 0x2902
ERR_INVALID_HANDLE = 0x01
ERR_AUTHENTICATION = 0x05
ERR_ATTR_NOT_FOUND = 0x0A


class Char:
    def __init__(self, uuid, props, value=b""):
        self.uuid = uuid
        self.props = props
        self.value = value
        self.decl = self.handle = self.cccd = None
        self.notify_on = self.indicate_on = False


class Service:
    def __init__(self, uuid, chars):
        self.uuid = uuid
        self.chars = chars
        self.start = self.end = None


class Peripheral:
    def __init__(self, send, addr, services, adv, adv_type=ADV_IND, every_ms=1000, passkey=None,
                 secure=True, addr_type=0, rssi=-60, mtu=185):
        self.send = send              # callable(dict): one message to the firmware's controller
        self.addr = addr.lower()
        self.services = services
        self.adv = adv
        self.adv_type = adv_type
        self.every_ms = every_ms
        self.passkey = passkey or None
        self.secure = secure
        self.addr_type = addr_type
        self.rssi = rssi
        self.mtu = mtu
        self.in_range = True
        self.connected = False
        self.paired = False
        self.bond_key = None          # the key of the last bonding (the central stores it too)
        self.stall = set()
        self.connects = 0
        self.requests = []            # ops received, in order (for tests and the summary)
        self._by_handle = {}
        h = 1
        for s in services:
            s.start = h
            h += 1
            for c in s.chars:
                c.decl, c.handle = h, h + 1
                h += 2
                if c.props & (NOTIFY | INDICATE):
                    c.cccd = h
                    self._by_handle[h] = ("cccd", c)
                    h += 1
                self._by_handle[c.handle] = ("value", c)
            s.end = h - 1

    # ---- hooks ------------------------------------------------------------------------------------
    def on_read(self, char):
        return char.value

    def on_write(self, char, data):
        char.value = data
        return 0

    def on_subscribe(self, char, notify, indicate):
        return 0

    def on_pair(self, req):
        return 0

    def on_connect(self):
        pass

    def on_disconnect(self, why):
        pass

    # ---- the sensor's life ------------------------------------------------------------------------
    def start(self):
        self._advertise(self.in_range and not self.connected)

    def set_in_range(self, on):
        self.in_range = on
        if not on and self.connected:
            self._drop("out_of_range")
            self.send({"evt": {"evt": "disconnect", "addr": self.addr, "reason": "out_of_range"}})
        self._advertise(on and not self.connected)

    def notify(self, char, data):
        if self.connected and char.notify_on:
            self.send({"evt": {"evt": "notify", "addr": self.addr, "handle": char.handle, "data": data.hex()}})
            return True
        return False

    def notify_many(self, char, datas):
        if self.connected and char.notify_on and datas:
            self.send({"evt": [{"evt": "notify", "addr": self.addr, "handle": char.handle, "data": d.hex()}
                               for d in datas]})
            return True
        return False

    def indicate(self, char, data):
        if self.connected and char.indicate_on:
            self.send({"evt": {"evt": "indicate", "addr": self.addr, "handle": char.handle, "data": data.hex()}})
            return True
        return False

    # ---- what the central asks ----------------------------------------------------------------------
    def from_fw(self, req):
        op = req.get("op")
        rid = req.get("id")
        self.requests.append(op)
        if op in self.stall:
            return   # received, never answered
        if op == "connect":
            if not self.in_range or self.connected:
                return self._rsp(rid, "no_device")
            self.connected = True
            self.paired = False
            for c in self._chars():
                c.notify_on = c.indicate_on = False
            self.connects += 1
            self._advertise(False)
            self.on_connect()
            return self._rsp(rid, 0)
        if not self.connected:
            return  # a request on a dead link gets nothing: the central times out or saw the drop
        if op == "disconnect":
            self._drop("central")
            self._advertise(self.in_range)
        elif op == "pair":
            self._pair(rid, req)
        elif op == "mtu":
            self._rsp(rid, 0, mtu=min(self.mtu, req.get("mtu") or 23))
        elif op == "services":
            want = req.get("uuid")
            self._rsp(rid, 0, items=[[s.start, s.end, s.uuid] for s in self.services
                                     if want is None or _same(s.uuid, want)])
        elif op == "characteristics":
            want = req.get("uuid")
            items = []
            for s in self.services:
                for i, c in enumerate(s.chars):
                    if req["start"] <= c.decl <= req["end"] and (want is None or _same(c.uuid, want)):
                        end = s.chars[i + 1].decl - 1 if i + 1 < len(s.chars) else s.end
                        items.append([end, c.handle, c.props, c.uuid])
            self._rsp(rid, 0, items=items)
        elif op == "descriptors":
            items = [[c.cccd, CCCD] for c in self._chars()
                     if c.cccd is not None and req["start"] <= c.cccd <= req["end"]]
            self._rsp(rid, 0, items=items)
        elif op in ("read", "write"):
            self._access(rid, op, req)
        else:
            self._rsp(rid, ERR_ATTR_NOT_FOUND)

    def _access(self, rid, op, req):
        kind, c = self._by_handle.get(req.get("handle"), (None, None))
        answer = op == "read" or req.get("response")
        if c is None:
            return answer and self._rsp(rid, ERR_INVALID_HANDLE)
        if self.secure and not self.paired:
            return answer and self._rsp(rid, ERR_AUTHENTICATION)
        if kind == "cccd":
            if op == "read":
                return self._rsp(rid, 0, data=bytes((c.notify_on | c.indicate_on << 1, 0)).hex())
            v = bytes.fromhex(req.get("data", "")) + b"\x00\x00"
            status = self.on_subscribe(c, bool(v[0] & 1), bool(v[0] & 2))
            if not status:
                c.notify_on, c.indicate_on = bool(v[0] & 1), bool(v[0] & 2)
            return answer and self._rsp(rid, status or 0)
        if op == "read":
            if not c.props & READ:
                return self._rsp(rid, 0x02)   # read not permitted
            v = self.on_read(c)
            return self._rsp(rid, v) if type(v) is int else self._rsp(rid, 0, data=bytes(v).hex())
        if not c.props & (WRITE | WRITE_NO_RESPONSE):
            return answer and self._rsp(rid, 0x03)   # write not permitted
        status = self.on_write(c, bytes.fromhex(req.get("data", "")))
        if answer:
            self._rsp(rid, status or 0)

    def _pair(self, rid, req):
        veto = self.on_pair(req)
        if veto:
            return self._rsp(rid, veto)
        key = req.get("key")
        if key and self.bond_key is not None and key == self.bond_key:
            self.paired = True
            return self._rsp(rid, 0, authenticated=self.passkey is not None)
        if self.passkey is not None and req.get("passkey") != self.passkey:
            return self._rsp(rid, ERR_AUTHENTICATION)
        self.paired = True
        more = {"authenticated": self.passkey is not None}
        if req.get("bond"):
            self.bond_key = os.urandom(16).hex()
            more["key"] = self.bond_key
        self._rsp(rid, 0, **more)

    # ---- link ---------------------------------------------------------------------------------------
    def _chars(self):
        for s in self.services:
            for c in s.chars:
                yield c

    def _drop(self, why):
        self.connected = False
        self.paired = False
        for c in self._chars():
            c.notify_on = c.indicate_on = False
        self.on_disconnect(why)

    def _advertise(self, on):
        self.send({"air": {"addr": self.addr, "addr_type": self.addr_type, "adv_type": self.adv_type,
                           "rssi": self.rssi, "adv": self.adv.hex() if on else None,
                           "every_ms": self.every_ms}})

    def _rsp(self, rid, status, **more):
        rsp = {"id": rid, "status": status}
        rsp.update(more)
        self.send({"rsp": rsp})
        return True


def _same(uuid, wire):
    return uuid == wire or (isinstance(uuid, str) and isinstance(wire, str) and
                            uuid.replace("-", "").lower() == wire.lower())
