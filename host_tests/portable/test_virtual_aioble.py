# The host board's aioble stand-in (firmware/hal/virtual_aioble.py) against the simulator's CGMS
# peripheral (tools/simlib/cgms_peer.py), joined in-process by a fake link that carries the same JSON
# lines as the simulator link. Runs on CPython and on the MicroPython unix port.
import json
import sys
import time

import asyncio

sys.path.insert(0, "tools")

from firmware.hal import virtual_aioble as va
from firmware.sensor import cgms
from simlib.cgms_peer import CgmsPeer

ADDR = "c4:7a:01:22:33:44"


def _real_ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


class _Clock:
    speed = 1000   # board-clock ms per real ms: a 20 s pairing timeout is 20 ms here

    def ticks_ms(self):
        return (_real_ms() * self.speed) & 0x3FFFFFFF


class _Link:
    """The simulator link in one process: firmware writes go to the peer, peer sends come back."""

    def __init__(self, radio, peer):
        self.radio, self.peer = radio, peer

    def write(self, b):
        self.peer.from_fw(json.loads(b)["ble"])

    def back(self, msg):
        self.radio.from_sim(json.loads(json.dumps(msg)))


def _setup(passkey=123456, fw_passkey=123456):
    radio = va.VirtualRadio(_Clock())
    peer = CgmsPeer(None, ADDR, passkey)
    link = _Link(radio, peer)
    peer.send = link.back
    radio.link = link

    def irq(event, data):   # what firmware/shell/cgms_central.py registers
        if event == 31 and data[1] == 2:
            radio.core.ble.gap_passkey(data[0], 2, fw_passkey)
    radio.core.register_irq_handler(irq, None)
    peer.start()
    return radio, peer


async def _open(radio, passkey=True):
    dev = radio.Device(1, ADDR)
    conn = await dev.connect(timeout_ms=10000)
    await conn.pair(bond=True, mitm=passkey, io=2, timeout_ms=20000)
    svc = await conn.service(va.UUID(0x181F))
    meas = await svc.characteristic(va.UUID(0x2AA7))
    racp = await svc.characteristic(va.UUID(0x2A52))
    feat = await svc.characteristic(va.UUID(0x2AA8))
    return conn, meas, racp, feat


def _run(coro):
    return asyncio.run(coro)


def test_connect_pair_subscribe_and_hear_a_measurement():
    radio, peer = _setup()

    async def go():
        conn, meas, racp, feat = await _open(radio)
        assert conn.encrypted and conn.bonded
        assert (await svc_missing(conn)) is None
        feature = await feat.read(timeout_ms=1000)
        assert feature[1] & 0x10          # bit 12: E2E-CRC
        await meas.subscribe(notify=True)
        peer.measure(5, 123)
        data = await meas.notified(1000)
        rec = cgms.decode_measurements(data, True)[0]
        assert (rec.offset, rec.glucose) == (605, 123.0)
    _run(go())


async def svc_missing(conn):
    return await conn.service(va.UUID(0x180D))


def test_only_the_newest_notification_is_kept_like_aioble():
    radio, peer = _setup()

    async def go():
        conn, meas, racp, feat = await _open(radio)
        await meas.subscribe(notify=True)
        peer.measure(5, 100)
        peer.measure(10, 110)     # both before the central looks: the first is gone
        rec = cgms.decode_measurements(await meas.notified(1000), True)[0]
        assert rec.offset == 610
        try:
            await meas.notified(500)
            assert False, "a second value appeared"
        except asyncio.TimeoutError:
            pass
    _run(go())


def test_racp_reports_stored_records_then_indicates_success():
    radio, peer = _setup()

    async def go():
        for m in (0, 5, 10, 15):
            peer.measure(m, 100 + m)   # stored while nobody is connected
        conn, meas, racp, feat = await _open(radio)
        await meas.subscribe(notify=True)
        await racp.subscribe(notify=False, indicate=True)
        await racp.write(cgms.racp_report_since(605), True, 1000)
        got = []
        while True:
            try:
                data = await meas.notified(50000)   # 50 ms real: several 7.5 ms connection events
            except asyncio.TimeoutError:
                break
            got += [r.offset for r in cgms.decode_measurements(data, True)]
        assert got == [605, 610, 615]
        assert cgms.parse_racp_response(await racp.indicated(1000)) == "success"
        await racp.write(cgms.racp_report_since(700), True, 1000)
        assert cgms.parse_racp_response(await racp.indicated(1000)) == "no_records"
    _run(go())


def test_racp_without_subscribing_is_a_gatt_error():
    radio, peer = _setup()

    async def go():
        conn, meas, racp, feat = await _open(radio)
        try:
            await racp.write(cgms.racp_report_since(0), True, 1000)
            assert False, "accepted"
        except va.GattError as e:
            assert e._status == 0xFD   # CCCD improperly configured
    _run(go())


def test_wrong_passkey_times_out_like_aioble():
    radio, peer = _setup(passkey=123456, fw_passkey=654321)

    async def go():
        conn = await radio.Device(1, ADDR).connect(timeout_ms=10000)
        try:
            await conn.pair(bond=True, mitm=True, io=2, timeout_ms=20000)
            assert False, "paired"
        except asyncio.TimeoutError:
            pass
        svc = await conn.service(va.UUID(0x181F))
        feat = await svc.characteristic(va.UUID(0x2AA8))
        try:
            await feat.read(timeout_ms=1000)
            assert False, "read without encryption"
        except va.GattError as e:
            assert e._status == 0x05   # insufficient authentication
    _run(go())


def test_out_of_range_drops_the_link_and_connect_times_out():
    radio, peer = _setup()

    async def go():
        conn, meas, racp, feat = await _open(radio)
        await meas.subscribe(notify=True)
        peer.set_in_range(False)
        try:
            await meas.notified(5000)
            assert False, "no disconnect"
        except va.DeviceDisconnectedError:
            pass
        assert not conn.is_connected()
        try:
            await radio.Device(1, ADDR).connect(timeout_ms=2000)
            assert False, "connected to a sensor out of range"
        except asyncio.TimeoutError:
            pass
        peer.set_in_range(True)
        conn2 = await radio.Device(1, ADDR).connect(timeout_ms=2000)
        assert conn2.is_connected()
    _run(go())


def test_connect_ends_the_running_scan_and_scans_hear_the_advertising_sensor():
    radio, peer = _setup()

    async def go():
        async with radio.scan(5000) as scanner:
            async for result in scanner:
                assert result.device.addr_hex() == ADDR and result.connectable
                break
        scanner = radio.scan(60000)
        await scanner.__aenter__()
        await radio.Device(1, ADDR).connect(timeout_ms=2000)   # connecting cancels the scan
        try:
            await scanner.__anext__()
            assert False, "the scan went on"
        except StopAsyncIteration:
            pass
        await scanner.__aexit__(None, None, None)
        assert ADDR not in [":".join("%02x" % b for b in a) for a in radio.advertisers]
    _run(go())


def test_unsupported_operation_raises_like_aioble():
    radio, peer = _setup()

    async def go():
        conn, meas, racp, feat = await _open(radio)
        try:
            await feat.notified(10)
            assert False
        except ValueError:
            pass
    _run(go())
