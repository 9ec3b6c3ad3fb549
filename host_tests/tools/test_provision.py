# tools/provision.py: a bad value is refused with its key named and nothing written; good flags write
# files the firmware's own loader accepts; secrets land only in secrets.json and are never printed.
import json
import os
import stat
import sys

from host_tests.paths import ROOT
sys.path.insert(0, os.path.join(ROOT, "tools"))

import provision
from firmware.core import config

KEY = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f"


def _no_prompt(prompt):
    raise AssertionError("asked for a secret that was given: " + prompt)


def _run(tmp_path, capsys, *args, ask=None, ask_secret=_no_prompt):
    rc = provision.main(["--out-dir", str(tmp_path)] + list(args),
                        ask=ask or _no_prompt, ask_secret=ask_secret)
    out, err = capsys.readouterr()
    return rc, out, err


def _files(tmp_path):
    with open(tmp_path / "config.json") as f:
        c = json.load(f)
    with open(tmp_path / "secrets.json") as f:
        s = json.load(f)
    return c, s


GOOD = ["--gateway-id", "maya", "--wifi", "HomeNet", "--wifi-password", "correct horse",
        "--wifi", "Mesh-2", "--wifi-password", "battery staple", "--broker", "192.168.1.10:8883",
        "--mqtt-user", "gw", "--mqtt-password", "s3cr3t-mqtt", "--keepalive", "45",
        "--prefix", "home", "--sensor-id", "0x0BEDC0DE", "--bind-key", KEY]


def test_good_flags_write_files_the_firmware_loads(tmp_path, capsys):
    rc, out, err = _run(tmp_path, capsys, *GOOD, "--low", "75", "--high", "240")
    assert rc == 0, err
    c, s = _files(tmp_path)
    cfg = config.build(c, s)                      # exactly what the board's config_store does
    assert cfg["gateway_id"] == "maya"
    assert cfg["mqtt"]["host"] == "192.168.1.10" and cfg["mqtt"]["port"] == 8883
    assert cfg["mqtt"]["keepalive"] == 45 and cfg["mqtt"]["prefix"] == "home"
    assert cfg["sensor"]["id"] == 0x0BEDC0DE and cfg["sensor"]["bind_key"] == KEY
    assert cfg["alarms"]["low"] == 75 and cfg["alarms"]["high"] == 240
    assert cfg["alarms"]["urgent_low"] == 55       # untouched keys keep the firmware default
    assert [n["ssid"] for n in cfg["wifi"]["networks"]] == ["HomeNet", "Mesh-2"]


def test_secrets_only_in_secrets_file_and_never_printed(tmp_path, capsys):
    rc, out, err = _run(tmp_path, capsys, *GOOD)
    assert rc == 0
    ctext = (tmp_path / "config.json").read_text()
    stext = (tmp_path / "secrets.json").read_text()
    for secret in (KEY, "s3cr3t-mqtt", "correct horse", "battery staple"):
        assert secret not in ctext
        assert secret not in out and secret not in err
        assert secret in stext
    c, s = _files(tmp_path)
    assert "bind_key" not in c.get("sensor", {}) and "wifi" not in c
    assert set(s) == {"sensor", "mqtt", "wifi"} and set(s["mqtt"]) == {"password"}
    assert stat.S_IMODE(os.stat(tmp_path / "secrets.json").st_mode) == 0o600


def test_bad_value_refused_with_key_named_and_nothing_written(tmp_path, capsys):
    rc, out, err = _run(tmp_path, capsys, *GOOD, "--low", "500")
    assert rc == 2 and "alarms.low" in err
    assert not os.path.exists(tmp_path / "config.json")
    assert not os.path.exists(tmp_path / "secrets.json")
    rc, out, err = _run(tmp_path, capsys, *GOOD[:-2], "--bind-key", "not-hex")
    assert rc == 2 and "sensor.bind_key" in err and "not-hex" not in out
    rc, out, err = _run(tmp_path, capsys, *GOOD, "--set", "mqtt.colour=blue")
    assert rc == 2 and "mqtt.colour" in err
    rc, out, err = _run(tmp_path, capsys, *GOOD, "--broker", "host:port")
    assert rc == 2 and "mqtt.port" in err
    rc, out, err = _run(tmp_path, capsys, *GOOD, "--keepalive", "1")
    assert rc == 2 and "mqtt.keepalive" in err
    assert not os.path.exists(tmp_path / "config.json")


def test_mmol_thresholds_converted(tmp_path, capsys):
    rc, out, err = _run(tmp_path, capsys, *GOOD, "--units", "mmol", "--urgent-low", "3.0",
                        "--low", "3.9", "--high", "13.9", "--urgent-high", "16.7")
    assert rc == 0, err
    c, _ = _files(tmp_path)
    assert c["alarms"] == {"urgent_low": 54, "low": 70, "high": 250, "urgent_high": 301}
    # 30 mmol/L is 540 mg/dL: no sane low threshold, refused by name.
    rc, out, err = _run(tmp_path, capsys, *GOOD, "--force", "--units", "mmol", "--low", "30")
    assert rc == 2 and "alarms.low" in err


def test_cross_key_rules_from_the_firmware(tmp_path, capsys):
    rc, out, err = _run(tmp_path, capsys, *GOOD, "--low", "200", "--high", "180")
    assert rc == 2 and "alarms" in err


def test_missing_secrets_are_asked_without_echo(tmp_path, capsys):
    asked = []

    def secret(prompt):
        asked.append(prompt)
        return KEY if "Bind key" in prompt else "pw-from-getpass"

    rc, out, err = _run(tmp_path, capsys, "--wifi", "HomeNet", "--sensor-id", "7", ask_secret=secret)
    assert rc == 0, err
    assert len(asked) == 2
    _, s = _files(tmp_path)
    assert s["wifi"]["networks"] == [{"ssid": "HomeNet", "password": "pw-from-getpass"}]
    assert s["sensor"]["bind_key"] == KEY
    assert "pw-from-getpass" not in out and KEY not in out


def test_interactive_session(tmp_path, capsys):
    answers = iter(["kids-room", "HomeNet", "", "10.0.0.2", "", "", "", "4242", "", "mmol",
                    "", "4.0", "", "", ""])
    secrets = iter(["wifi-pass-1", KEY])
    rc, out, err = _run(tmp_path, capsys, "--interactive", ask=lambda p: next(answers),
                        ask_secret=lambda p: next(secrets))
    assert rc == 0, err
    c, s = _files(tmp_path)
    cfg = config.build(c, s)
    assert cfg["gateway_id"] == "kids-room" and cfg["mqtt"]["host"] == "10.0.0.2"
    assert cfg["sensor"]["id"] == 4242
    assert cfg["alarms"]["low"] == 72               # 4.0 mmol/L
    assert cfg["alarms"]["urgent_low"] == 55        # shown as 3.1 mmol/L; Enter keeps 55, not 56
    assert "urgent_low" not in c["alarms"]
    assert "wifi-pass-1" not in out and KEY not in out


def test_existing_files_kept_without_force(tmp_path, capsys):
    assert _run(tmp_path, capsys, *GOOD)[0] == 0
    before = (tmp_path / "config.json").read_text()
    rc, out, err = _run(tmp_path, capsys, *GOOD, "--gateway-id", "other")
    assert rc == 1 and "--force" in err
    assert (tmp_path / "config.json").read_text() == before
    assert _run(tmp_path, capsys, *GOOD, "--gateway-id", "other", "--force")[0] == 0
    assert _files(tmp_path)[0]["gateway_id"] == "other"


# ---- the phone as a source (issue 14): loopback only ------------------------------------------------
def _phone_server(status=b"200 OK", body=None):
    """A one-shot stand-in for xDrip+'s web service on a loopback port; returns (port, thread, seen)."""
    import socket
    import threading
    import time
    from firmware.sensor.lan_entries import http_date
    now = int(time.time()) * 1000  # whole seconds, as a Date header has
    if body is None:
        body = b'[{"date":%d,"sgv":104,"delta":-2.5,"direction":"FortyFiveDown","noise":1}]' % (now - 40000)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen = []

    def serve():
        c, _ = srv.accept()
        seen.append(c.recv(4096))
        c.sendall(b"HTTP/1.0 " + status + b"\r\nDate: " + http_date(now).encode()
                  + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        c.close()
        srv.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv.getsockname()[1], t, seen


def test_phone_source_is_written_with_its_secret_hidden_and_checked_once(tmp_path, capsys):
    port, t, seen = _phone_server()
    rc, out, err = _run(tmp_path, capsys, "--gateway-id", "maya", "--sensor-kind", "none",
                        "--phone", "127.0.0.1:%d" % port, "--phone-secret", "Abc", "--check-phone")
    t.join(5)
    assert rc == 0, err
    assert "newest reading 104 mg/dL, 40 s old" in out
    # the request the box sends: GET line first, api-secret = SHA-1 hex of the secret
    assert seen[0].startswith(b"GET /sgv.json?count=3&brief_mode=Y HTTP/1.0\r\n")
    assert b"api-secret: 915858afa2278f25527f192038108346164b47f2\r\n" in seen[0]
    c, s = _files(tmp_path)
    assert c["sources"] == [{"kind": "phone", "host": "127.0.0.1", "port": port}]
    assert s["sources"] == [{"name": "phone", "secret": "Abc"}] and "Abc" not in out
    cfg = config.build(c, s)
    assert cfg["sensor"] is None and cfg["sources"][0]["secret"] == "Abc"


def test_phone_check_names_a_refused_secret_and_writes_nothing(tmp_path, capsys):
    port, t, _ = _phone_server(b"403 Forbidden", b"Authentication failed - check api-secret")
    rc, out, err = _run(tmp_path, capsys, "--sensor-id", "7", "--bind-key", KEY,
                        "--phone", "127.0.0.1:%d" % port, "--phone-secret", "wrong", "--check-phone")
    t.join(5)
    assert rc == 3 and "refused the secret" in out
    assert not (tmp_path / "config.json").exists()


def test_phone_beside_the_radio_sensor(tmp_path, capsys):
    rc, out, err = _run(tmp_path, capsys, "--sensor-id", "7", "--bind-key", KEY, "--phone", "192.168.1.23",
                        ask_secret=lambda p: "")
    assert rc == 0, err
    c, s = _files(tmp_path)
    assert [x["kind"] for x in c["sources"]] == ["broadcast", "phone"]
    assert s["sources"] == [{"name": "broadcast", "bind_key": KEY}]
    cfg = config.build(c, s)
    assert cfg["sensor"]["id"] == 7 and cfg["sources"][1]["port"] == 17580


def test_phone_check_says_when_nothing_listens(tmp_path, capsys):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc, out, err = _run(tmp_path, capsys, "--sensor-kind", "none", "--phone", "127.0.0.1:%d" % port,
                        "--phone-secret", "", "--check-phone")
    assert rc == 3 and "Open Web Service" in out
