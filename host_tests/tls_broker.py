# The TLS test broker (issue 6): mosquitto with a CA, a server certificate and a password file made at
# test time, plus a plain listener for followers. The `tls_broker` fixture is registered in conftest.py,
# so the integration and the fault tests share it.
import datetime
import json
import os
import subprocess

import pytest

import host_tests.simrun  # noqa: F401  (puts tools/ on sys.path for simlib)

SERVER_NAME = "broker.test"
MQTT_USER = "gateway"
SECRETS = {
    "mqtt_password": "Pw-9f2c7e1a-mqtt",
    "wifi_password": "Wifi-5b8d3c-secret",
    "bind_key": "d4e5f60718293a4b5c6d7e8f90a1b2c3",
    "cmd_secret": "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718",
}


def _certs(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, issuer, key, sign_key, ca, sans=()):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=7))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
        return b.sign(sign_key, hashes.SHA256())

    def pem(c):
        return c.public_bytes(serialization.Encoding.PEM)

    ca_key, wrong_key, srv_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    (d / "ca.pem").write_bytes(pem(cert("Nightstand test CA", "Nightstand test CA", ca_key, ca_key, True)))
    (d / "wrong-ca.pem").write_bytes(pem(cert("Some other CA", "Some other CA", wrong_key, wrong_key, True)))
    (d / "server.pem").write_bytes(pem(cert(SERVER_NAME, "Nightstand test CA", srv_key, ca_key, False,
                                            (SERVER_NAME,))))
    (d / "server.key").write_bytes(srv_key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                                         serialization.NoEncryption()))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    from simlib import brokers
    exe = brokers.find_mosquitto()
    passwd = next((p for p in ("/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd")
                   if os.path.exists(p)), None)
    if not exe or not passwd:
        pytest.fail("mosquitto and mosquitto_passwd are needed (apt-get install -y mosquitto)")
    # Not under pytest's tmp dir (mode 0700): mosquitto started as root drops to its own user before
    # it reads certificates and the password file, so they must be reachable by any user.
    import pathlib
    import tempfile
    d = pathlib.Path(tempfile.mkdtemp(prefix="nightstand-tls-"))
    _certs(d)
    subprocess.run([passwd, "-b", "-c", str(d / "passwd"), MQTT_USER, SECRETS["mqtt_password"]],
                   check=True, capture_output=True)
    os.chmod(d, 0o755)
    for p in d.iterdir():
        os.chmod(p, 0o644)
    tls_port, plain_port = brokers.free_port(), brokers.free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(
        "per_listener_settings true\npersistence false\n"
        "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\npassword_file %s\n"
        "allow_anonymous false\n"
        "listener %d 127.0.0.1\nallow_anonymous true\n"
        % (tls_port, d / "ca.pem", d / "server.pem", d / "server.key", d / "passwd", plain_port))
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not (brokers.wait_port("127.0.0.1", tls_port, 10, proc)
            and brokers.wait_port("127.0.0.1", plain_port, 10, proc)):
        proc.kill()
        pytest.fail("mosquitto with TLS did not start: %s" % proc.stderr.read().decode()[-500:])
    yield {"dir": d, "tls_port": tls_port, "plain_port": plain_port}
    proc.terminate()
    proc.wait(5)
    import shutil
    shutil.rmtree(d, ignore_errors=True)


def gateway_files(tmp_path, gateway, ca):
    cfg = tmp_path / "tlscfg.json"
    cfg.write_text(json.dumps({"gateway_id": gateway["id"],
                               "mqtt": {"tls": True, "ca": str(ca), "server_name": SERVER_NAME,
                                        "user": MQTT_USER}}))
    sec = tmp_path / "tlssecrets.json"
    sec.write_text(json.dumps({
        "mqtt": {"password": SECRETS["mqtt_password"]},
        "wifi": {"networks": [{"ssid": "home", "password": SECRETS["wifi_password"]}]},
        "sensor": {"bind_key": SECRETS["bind_key"]},
        "commands": {"secret": SECRETS["cmd_secret"]},
    }))
    return cfg, sec
