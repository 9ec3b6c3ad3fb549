# A simulated Bluetooth SIG CGM Service (0x181F) sensor for tools/sim.py --sensor cgms.
#
# It measures on every trace row with a value and stores every record, also while out of range (a
# real sensor keeps measuring and keeps its history). While connected and subscribed it notifies
# each new record at once. `sensor_off` is the sensor leaving radio range: the link drops (as a BLE
# supervision timeout would) and it stops advertising; `sensor_on` brings it back, advertising and
# connectable. The Record Access Control Point answers "report stored records" (all, the last one,
# or with time offset >= N) by notifying the records, two per notification (20 bytes fit the default ATT MTU of
# 23), one notification per 7.5 ms connection event, then indicating `06 00 01 01` (success) or
# `06 00 01 06` (no records). Security as the CGM Service asks: nothing is readable or subscribable
# before pairing, and pairing needs the configured passkey when there is one.
#
# The other side of the link is firmware/hal/virtual_aioble.py; the messages are described there.
import asyncio

from firmware.sensor.cgms import crc16_mcrf4xx

SVC = 0x181F
MEASUREMENT = 0x2AA7
FEATURE = 0x2AA8
RACP = 0x2A52
# aioble property bits
_READ, _WRITE, _NOTIFY, _INDICATE = 0x02, 0x08, 0x10, 0x20
GATT = {"%04x" % SVC: {"%04x" % MEASUREMENT: _NOTIFY, "%04x" % FEATURE: _READ,
                       "%04x" % RACP: _WRITE | _INDICATE}}
# ATT error codes the peer answers with
ERR_AUTHENTICATION = 0x05
ERR_CCCD = 0xFD                 # "Client Characteristic Configuration Descriptor improperly configured"
ERR_PROCEDURE_IN_PROGRESS = 0x80
CONN_EVENT_S = 0.0075           # the shortest BLE connection interval: how fast a report streams out
FEATURE_E2E_CRC = 1 << 12
TYPE_LOCATION = 0x55            # type "interstitial fluid" (5), location "subcutaneous tissue" (5)
ADV = bytes.fromhex("020106" "0303" "1f18")   # flags + complete list of 16-bit UUIDs: 0x181F


def sfloat(value, exponent=0):
    m = int(round(value / (10 ** exponent)))
    return ((exponent & 0xF) << 12) | (m & 0x0FFF)


def encode_record(offset, mgdl, trend, crc):
    flags = 0x01 if trend is not None else 0
    body = bytearray((0, flags))
    g = sfloat(mgdl)
    body += bytes((g & 0xFF, g >> 8, offset & 0xFF, offset >> 8 & 0xFF))
    if trend is not None:
        t = sfloat(trend, -1)
        body += bytes((t & 0xFF, t >> 8))
    body[0] = len(body) + (2 if crc else 0)
    if crc:
        c = crc16_mcrf4xx(body)
        body += bytes((c & 0xFF, c >> 8))
    return bytes(body)


def feature_value(crc):
    feats = FEATURE_E2E_CRC if crc else 0
    b = bytes((feats & 0xFF, feats >> 8 & 0xFF, feats >> 16 & 0xFF, TYPE_LOCATION))
    c = crc16_mcrf4xx(b) if crc else 0xFFFF
    return b + bytes((c & 0xFF, c >> 8))


class CgmsPeer:
    def __init__(self, send, addr, passkey=None, crc=True):
        self.send = send              # callable(dict): one message to the firmware
        self.addr = addr
        self.passkey = passkey or None
        self.crc = crc
        self.records = []             # (offset, bytes) in time order: everything ever measured
        self.in_range = True
        self.connected = False
        self.paired = False
        self.notify_on = False
        self.indicate_on = False
        self.prev = None              # (minute, mgdl) for the trend
        self.racp_task = None
        self.connects = 0
        self.racp_requests = []       # operands asked for, for tests and the summary

    # ---- the sensor's life --------------------------------------------------------------------
    def start(self):
        self._advertise(True)

    def measure(self, minute, mgdl):
        """One measurement at trace minute; stored always, notified when someone listens.
        Returns its time offset (minutes since session start), which the gateway uses as seq."""
        trend = None
        if self.prev is not None and minute > self.prev[0]:
            trend = max(-20.0, min(20.0, (mgdl - self.prev[1]) / (minute - self.prev[0])))
        self.prev = (minute, mgdl)
        offset = int(600 + minute)
        rec = encode_record(offset, mgdl, trend, self.crc)
        self.records.append((offset, rec))
        if self.connected and self.notify_on:
            self._notify(MEASUREMENT, rec)
        return offset

    def set_in_range(self, on):
        self.in_range = on
        if not on and self.connected:
            self._drop("out_of_range")
            self.send({"ble_evt": {"evt": "disconnect", "reason": "out_of_range"}})
        self._advertise(on and not self.connected)

    def stop(self):
        if self.racp_task is not None:
            self.racp_task.cancel()

    # ---- GATT server --------------------------------------------------------------------------
    def from_fw(self, req):
        op = req.get("op")
        rid = req.get("id")
        if op == "connect":
            if not self.in_range or self.connected or req.get("addr") != self.addr:
                return self._rsp(rid, "no_device")
            self.connected = True
            self.paired = self.notify_on = self.indicate_on = False
            self.connects += 1
            self._advertise(False)
            return self._rsp(rid, 0, gatt=GATT)
        if not self.connected:
            return  # a request on a dead link gets nothing: the firmware times out or saw the drop
        if op == "disconnect":
            self._drop("central")
            self._advertise(self.in_range)
        elif op == "pair":
            if self.passkey is not None and req.get("passkey") != self.passkey:
                return self._rsp(rid, ERR_AUTHENTICATION)
            self.paired = True
            self._rsp(rid, 0)
        elif not self.paired:
            self._rsp(rid, ERR_AUTHENTICATION)
        elif op == "read" and req.get("uuid") == FEATURE:
            self._rsp(rid, 0, data=feature_value(self.crc).hex())
        elif op == "subscribe" and req.get("uuid") == MEASUREMENT:
            self.notify_on = bool(req.get("notify"))
            self._rsp(rid, 0)
        elif op == "subscribe" and req.get("uuid") == RACP:
            self.indicate_on = bool(req.get("indicate"))
            self._rsp(rid, 0)
        elif op == "write" and req.get("uuid") == RACP:
            self._racp(rid, bytes.fromhex(req.get("data", "")))
        else:
            self._rsp(rid, 0x0A)   # ATT "attribute not found"

    def _racp(self, rid, cmd):
        if not self.indicate_on or not self.notify_on:
            return self._rsp(rid, ERR_CCCD)
        if self.racp_task is not None and not self.racp_task.done():
            return self._rsp(rid, ERR_PROCEDURE_IN_PROGRESS)
        self._rsp(rid, 0)
        op = cmd[0] if cmd else 0
        if op != 0x01:
            return self._indicate(bytes((0x06, 0, op, 0x02)))        # op code not supported
        if len(cmd) == 2 and cmd[1] == 0x01:
            since = 0                                               # all records
        elif len(cmd) == 2 and cmd[1] == 0x06:
            since = self.records[-1][0] if self.records else 0x10000   # the last record
        elif len(cmd) == 5 and cmd[1] == 0x03 and cmd[2] == 0x01:
            since = cmd[3] | cmd[4] << 8                            # time offset >= since
        else:
            return self._indicate(bytes((0x06, 0, op, 0x04)))        # operator not supported
        self.racp_requests.append(since)
        self.racp_task = asyncio.create_task(self._report(since))

    async def _report(self, since):
        picked = [rec for off, rec in self.records if off >= since]
        for i in range(0, len(picked), 2):
            if not self.connected:
                return
            self._notify(MEASUREMENT, b"".join(picked[i:i + 2]))
            await asyncio.sleep(CONN_EVENT_S)
        if self.connected:
            self._indicate(bytes((0x06, 0, 0x01, 0x01 if picked else 0x06)))

    # ---- link ---------------------------------------------------------------------------------
    def _drop(self, why):
        self.connected = False
        self.paired = self.notify_on = self.indicate_on = False
        if self.racp_task is not None:
            self.racp_task.cancel()
            self.racp_task = None

    def _advertise(self, on):
        self.send({"periph": {"addr": self.addr, "adv": ADV.hex() if on else None}})

    def _rsp(self, rid, status, **more):
        rsp = {"id": rid, "status": status}
        rsp.update(more)
        self.send({"ble_rsp": rsp})

    def _notify(self, uuid, data):
        self.send({"ble_evt": {"evt": "notify", "uuid": uuid, "data": data.hex()}})

    def _indicate(self, data):
        self.send({"ble_evt": {"evt": "indicate", "uuid": RACP, "data": data.hex()}})
