# CPython only: TLS with CERT_REQUIRED and a password, against mosquitto with a CA, a server certificate
# and a password file made at test time. Followers use a second, plain listener of the same broker.
# Also: Home Assistant discovery at a follower, and no secret of the gateway's config anywhere a follower
# or the event log can see.
import json
import os
import subprocess
import time


from host_tests.simrun import Follower, trace
from host_tests.background import BackgroundSim
from host_tests.tls_broker import SECRETS, SERVER_NAME, gateway_files

class EverythingFollower(Follower):
    """Subscribes to every topic on the broker, not only the gateway's prefix."""

    def __init__(self, port):
        Follower.__init__(self, port, "")
        self.c.subscribe("#", 0)
        time.sleep(0.3)

    def _on(self, c, u, msg):
        with self.lock:
            self.messages.append((time.monotonic(), msg.topic, msg.payload, msg.retain))


def test_tls_with_the_right_ca_and_password_connects_and_no_secret_leaks(tmp_path, tls_broker, gateway):
    cfg, sec = gateway_files(tmp_path, gateway, tls_broker["dir"] / "ca.pem")
    prefix = gateway["prefix"]
    f = EverythingFollower(tls_broker["plain_port"])
    rows = [(m, 120 + m % 7) for m in range(0, 150, 5)]
    sim = BackgroundSim(tmp_path, trace(rows), tls_broker["tls_port"], "--config", str(cfg),
                        "--secrets", str(sec), "--drain-s", "2", speed=300)
    try:
        sim.wait(lambda e: e["event"] == "reading", 60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not f.payloads(prefix + "/reading"):
            time.sleep(0.1)
        # Home Assistant restarts: the gateway sends its discovery again
        n_disc = len([1 for _, t, _, _ in f.messages if t.startswith("homeassistant/sensor/")])
        f.c.publish("homeassistant/status", "online", qos=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(
                [1 for _, t, _, _ in f.messages if t.startswith("homeassistant/sensor/")]) < n_disc + 3:
            time.sleep(0.1)
        # a forged command, so the audit and reject paths are part of what must not leak
        f.c.publish(prefix + "/cmd/snooze", json.dumps({"n": 1, "ts": 1, "mac": "0" * 64}), qos=1)
        sim.wait(lambda e: e["event"] == "reject", 20)
        rc = sim.finish()
        time.sleep(0.3)
    finally:
        sim.stop()
        f.stop()
    assert rc == 0, sim.stderr()
    with f.lock:
        msgs = list(f.messages)
    mine = [(t, p) for _, t, p, _ in msgs if t.startswith(prefix + "/")]
    readings = [json.loads(p) for t, p in mine if t == prefix + "/reading"]
    assert readings and readings[0]["sgv"] == 120, "no reading came through TLS"
    assert (prefix + "/availability", b"online") in mine
    disc = [(t, json.loads(p), r) for _, t, p, r in msgs if t.startswith("homeassistant/sensor/nightstand_"
                                                                          + gateway["id"])]
    assert n_disc >= 3 and len(disc) >= n_disc + 3, "discovery not sent again on homeassistant/status"
    glucose = [d for t, d, r in disc if t.endswith("/glucose/config")][0]
    assert glucose["device_class"] == "blood_glucose_concentration"
    assert glucose["unit_of_measurement"] == "mg/dL"
    assert glucose["availability_topic"] == prefix + "/availability"
    assert glucose["state_topic"] == prefix + "/state"
    audits = [json.loads(p) for t, p in mine if t == prefix + "/audit"]
    assert audits and audits[0]["accepted"] is False
    # Nothing a follower or the event log saw holds a secret, in any spelling we could leak it in.
    seen = "\n".join("%s %s" % (t, p.decode(errors="replace")) for _, t, p, _ in msgs)
    seen += "\n" + sim.events_path.read_text() + "\n" + sim.stderr()
    for key, secret in SECRETS.items():
        for form in (secret, secret.upper(), secret[:12]):
            assert form not in seen, "%s leaked" % key
    assert bytes.fromhex(SECRETS["bind_key"]).hex() not in seen


def test_tls_with_a_wrong_ca_refuses_to_connect_and_shows_cloud_silent(tmp_path, tls_broker, gateway):
    cfg, sec = gateway_files(tmp_path, gateway, tls_broker["dir"] / "wrong-ca.pem")
    prefix = gateway["prefix"]
    f = Follower(tls_broker["plain_port"], prefix)
    rows = [(m, 120) for m in range(0, 20, 5)]
    sim = BackgroundSim(tmp_path, trace(rows), tls_broker["tls_port"], "--config", str(cfg),
                        "--secrets", str(sec), "--drain-s", "0", speed=300)
    try:
        silent = sim.wait(lambda e: e["event"] == "pattern" and e["name"] == "cloud_silent", 60)
        rc = sim.finish()
        time.sleep(0.3)
    finally:
        sim.stop()
        f.stop()
    assert rc == 0, sim.stderr()
    # judged within cloud_after_s (60 s) of boot plus a tick; 10 s at 300x is 33 ms of real time
    # that a loaded CI machine may take to run that tick
    assert silent["t"] <= 70, silent
    assert f.payloads("availability") == [] and f.payloads("reading") == []


# umqtt.simple 1.8 (frozen on boards, and what tools/install_deps.py installs for the host) takes
# ssl=<context> and calls ssl.wrap_socket(sock, server_hostname=server) itself. The real 1.8.0 runs here
# under MicroPython against the TLS broker, through the same TlsWrapper and mqtt_guard as the gateway.
_REAL_18 = r"""
import sys
sys.path.insert(0, ".")
import umqtt.simple as simple
from firmware.shell import mqtt_guard, tls

mqtt_guard.install(simple, 3, lambda: None)
m = {"host": "127.0.0.1", "port": int(sys.argv[1]), "keepalive": 30, "ca": sys.argv[2],
     "server_name": sys.argv[3]}
c = tls.make_client(simple, "fake18", m, "gateway", sys.argv[4])
assert isinstance(c.ssl, tls.TlsWrapper)
try:
    c.connect()
    c.publish(b"fake18/hello", b"over tls", False, 1)
    print("CONNECTED")
except Exception as e:
    print("REFUSED", repr(e))
"""


def _run_fake18(tls_broker, ca, name, tmp_path):
    from host_tests.simrun import ROOT
    script = tmp_path / "fake18.py"
    script.write_text(_REAL_18)
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, ".deps", "lib") + ":.frozen")
    r = subprocess.run([os.path.join(ROOT, ".venv", "bin", "micropython"), str(script),
                        str(tls_broker["tls_port"]), str(ca), name, SECRETS["mqtt_password"]],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def test_umqtt_18_api_connects_through_the_same_tls_wrapper(tls_broker, tmp_path):
    out = _run_fake18(tls_broker, tls_broker["dir"] / "ca.pem", SERVER_NAME, tmp_path)
    assert "CONNECTED" in out, out
    # the hostname check is on: the right CA but another name is refused
    out = _run_fake18(tls_broker, tls_broker["dir"] / "ca.pem", "evil.test", tmp_path)
    assert "REFUSED" in out and "CN" in out, out
    out = _run_fake18(tls_broker, tls_broker["dir"] / "wrong-ca.pem", SERVER_NAME, tmp_path)
    assert "REFUSED" in out and "trusted CA" in out, out
