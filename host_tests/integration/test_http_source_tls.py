# An https:// Nightscout polled by the firmware's own source task (firmware/shell/http_source.py) under
# the MicroPython unix port: through the uplink's TLS wrapper, certificate checked against the source's
# `ca`, the host name looked up in the lookup thread. A server signed by another CA is refused (`down`),
# never read.
import datetime
import json
import os
import ssl
import subprocess
import threading
import time

from host_tests.paths import ROOT

_DRIVER = r'''
import sys, json, asyncio, time
sys.path.insert(0, ".")
from firmware.shell.http_source import HttpSource

class Clock:
    speed = 1
    def ticks_ms(self):
        return time.ticks_ms()
    def wall_ms(self):
        return None
    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(ms)

class Gw:
    def __init__(self):
        self.out = []
    def on_reading(self, now, r, measured, name):
        self.out.append(["reading", name, r.mgdl, r.backfilled])
    def on_source(self, now, name, outcome, why=None):
        self.out.append(["source", name, outcome, why])
    def on_reject(self, now, reason, source=None):
        self.out.append(["reject", source, reason])

class App:
    board = None
    def __init__(self):
        self.clock, self.gw = Clock(), Gw()
    def flush(self):
        pass

app = App()
src = {"kind": "nightscout", "name": "ns", "url": sys.argv[1], "secret": "", "token": "tok-1",
       "ca": sys.argv[2], "poll_s": 60, "timeout_s": 5}
asyncio.run(HttpSource(app, src).poll())
print("RESULT " + json.dumps(app.gw.out))
'''


def _certs(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, key, sign_key, ca, sans=()):
        name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
        return b.sign(sign_key, hashes.SHA256())

    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    ca_key, wrong_key, srv_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    (d / "ca.pem").write_bytes(pem(cert("NS test CA", "NS test CA", ca_key, ca_key, True)))
    (d / "wrong-ca.pem").write_bytes(pem(cert("Other CA", "Other CA", wrong_key, wrong_key, True)))
    (d / "server.pem").write_bytes(pem(cert("localhost", "NS test CA", srv_key, ca_key, False, ("localhost",))))
    (d / "server.key").write_bytes(srv_key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                                         serialization.NoEncryption()))


def _https_server(d):
    """One-request https Nightscout on a loopback port; returns (port, seen requests)."""
    import socket
    from firmware.sensor.lan_entries import http_date
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(d / "server.pem"), str(d / "server.key"))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    seen = []
    now = int(time.time()) * 1000
    body = json.dumps([{"type": "sgv", "date": now - 30000, "sgv": 88, "direction": "Flat", "delta": 0.5}]).encode()

    def serve():
        srv.settimeout(20)
        try:
            c, _ = srv.accept()
            with ctx.wrap_socket(c, server_side=True) as s:
                seen.append(s.recv(4096))
                s.sendall(b"HTTP/1.1 200 OK\r\nDate: " + http_date(now).encode() + b"\r\nContent-Length: %d\r\n"
                          b"Last-Modified: " % len(body) + http_date(now).encode() + b"\r\n\r\n" + body)
        except (OSError, ssl.SSLError):
            pass
        srv.close()
    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], seen


def _poll(tmp_path, port, ca):
    drv = tmp_path / "driver.py"
    drv.write_text(_DRIVER)
    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    p = subprocess.run([mp, str(drv), "https://localhost:%d/" % port, str(ca)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, p.stdout + p.stderr
    return json.loads(line[0][7:])


def test_https_nightscout_is_read_with_its_certificate_checked(tmp_path):
    _certs(tmp_path)
    port, seen = _https_server(tmp_path)
    out = _poll(tmp_path, port, tmp_path / "ca.pem")
    assert ["reading", "ns", 88, False] in out, out
    assert out[-1] == ["source", "ns", "ok", None]
    assert seen[0].startswith(b"GET /api/v1/entries/sgv.json?count=3&token=tok-1 HTTP/1.0\r\n")


def test_https_nightscout_signed_by_another_ca_is_refused(tmp_path):
    _certs(tmp_path)
    port, seen = _https_server(tmp_path)
    out = _poll(tmp_path, port, tmp_path / "wrong-ca.pem")
    assert out[-1][:3] == ["source", "ns", "down"] and out[-1][3].startswith("TLS: "), out
    assert not [x for x in out if x[0] == "reading"]
