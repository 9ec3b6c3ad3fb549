# A simulated Bluetooth SIG CGM Service (0x181F) sensor for tools/sim.py --sensor cgms.
#
# It measures on every trace row with a value and stores every record, also while out of range (a
# real sensor keeps measuring and keeps its history). While connected and subscribed it notifies
# each new record at once. `sensor_off` is the sensor leaving radio range: the link drops (as a BLE
# supervision timeout would) and it stops advertising; `sensor_on` brings it back, advertising and
# connectable. The Record Access Control Point answers "report stored records" (all, the last one,
# or with time offset >= N) by notifying the records, two per notification (20 bytes fit the default ATT
# MTU of 23), three notifications per 7.5 ms connection event (as a BLE controller packs them), then
# indicating `06 00 01 01` (success) or `06 00 01 06` (no records). Security as the CGM Service asks:
# nothing is readable or subscribable before pairing, and pairing needs the configured passkey when
# there is one.
#
# It is a simlib.peripheral.Peripheral on the virtual BLE controller (tools/virtual_hw/bluetooth.py), so
# the gateway's real aioble discovers, pairs, reads, writes CCCDs and gets notifications as on a board.
# stall_connections=N: on each of its next N connections it answers nothing after the connection
# itself (discovery stalls), as a sensor whose GATT server hangs; the central's ATT timeout would end it.
import asyncio

from firmware.sensor.cgms import crc16_mcrf4xx
from simlib.peripheral import ADV_IND, INDICATE, NOTIFY, READ, WRITE, Char, Peripheral, Service

SVC = 0x181F
MEASUREMENT = 0x2AA7
FEATURE = 0x2AA8
RACP = 0x2A52
ERR_CCCD = 0xFD                 # "Client Characteristic Configuration Descriptor improperly configured"
ERR_PROCEDURE_IN_PROGRESS = 0x80
CONN_EVENT_S = 0.0075           # the shortest BLE connection interval: how fast a report streams out
PER_EVENT = 3                   # notifications per connection event (NimBLE sends several per event)
FEATURE_E2E_CRC = 1 << 12
TYPE_LOCATION = 0x55            # type "interstitial fluid" (5), location "subcutaneous tissue" (5)
ADV = bytes.fromhex("020106" "0303" "1f18")   # flags + complete list of 16-bit UUIDs: 0x181F
ADV_EVERY_MS = 1000             # a free (unconnected) CGMS sensor advertises about once a second
DISCOVERY = ("services", "characteristics", "descriptors")


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


class CgmsPeer(Peripheral):
    def __init__(self, send, addr, passkey=None, crc=True, stall_connections=0, speed=1.0):
        self.meas = Char(MEASUREMENT, NOTIFY)
        self.feature = Char(FEATURE, READ, feature_value(crc))
        self.racp = Char(RACP, WRITE | INDICATE)
        Peripheral.__init__(self, send, addr, [Service(SVC, [self.meas, self.feature, self.racp])], ADV,
                            adv_type=ADV_IND, every_ms=ADV_EVERY_MS, passkey=passkey, secure=True)
        self.crc = crc
        self.records = []             # (offset, bytes) in time order: everything ever measured
        self.prev = None              # (minute, mgdl) for the trend
        self.racp_task = None
        self.racp_requests = []       # operands asked for, for tests and the summary
        self.stall_connections = stall_connections
        self.stalled = 0              # connections on which it stalled
        self.speed = speed            # simulated seconds per real second: connection events scale too

    # ---- the sensor's life --------------------------------------------------------------------
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
        self.notify(self.meas, rec)
        return offset

    def stop(self):
        if self.racp_task is not None:
            self.racp_task.cancel()

    # ---- GATT server hooks --------------------------------------------------------------------
    def on_connect(self):
        if self.stalled < self.stall_connections:
            self.stalled += 1
            self.stall = set(DISCOVERY)
        else:
            self.stall = set()

    def on_disconnect(self, why):
        if self.racp_task is not None:
            self.racp_task.cancel()
            self.racp_task = None

    def on_write(self, char, cmd):
        if char is not self.racp:
            return 0x03
        if not self.racp.indicate_on or not self.meas.notify_on:
            return ERR_CCCD
        if self.racp_task is not None and not self.racp_task.done():
            return ERR_PROCEDURE_IN_PROGRESS
        op = cmd[0] if cmd else 0
        if op != 0x01:
            asyncio.get_running_loop().call_soon(self.indicate, self.racp, bytes((0x06, 0, op, 0x02)))
            return 0
        if len(cmd) == 2 and cmd[1] == 0x01:
            since = 0                                               # all records
        elif len(cmd) == 2 and cmd[1] == 0x06:
            since = self.records[-1][0] if self.records else 0x10000   # the last record
        elif len(cmd) == 5 and cmd[1] == 0x03 and cmd[2] == 0x01:
            since = cmd[3] | cmd[4] << 8                            # time offset >= since
        else:
            asyncio.get_running_loop().call_soon(self.indicate, self.racp, bytes((0x06, 0, op, 0x04)))
            return 0
        self.racp_requests.append(since)
        self.racp_task = asyncio.create_task(self._report(since))
        return 0

    async def _report(self, since):
        await asyncio.sleep(0)   # the write's answer goes out first
        picked = [rec for off, rec in self.records if off >= since]
        pairs = [b"".join(picked[i:i + 2]) for i in range(0, len(picked), 2)]
        for i in range(0, len(pairs), PER_EVENT):
            if not self.connected:
                return
            self.notify_many(self.meas, pairs[i:i + PER_EVENT])
            await asyncio.sleep(CONN_EVENT_S / self.speed)
        if self.connected:
            self.indicate(self.racp, bytes((0x06, 0, 0x01, 0x01 if picked else 0x06)))
