"""Write the gateway's config.json and secrets.json, from flags or by asking (--interactive).

    python tools/provision.py --gateway-id bedroom --wifi HomeNet --broker 192.168.1.10:1883 \\
        --sensor-id 200133374 --units mmol --urgent-low 3.0 --low 3.9 --high 13.9 --urgent-high 16.7

Secrets (sensor bind key, MQTT password, Wi-Fi networks: the keys in firmware.core.config.SECRET_KEYS)
go only to secrets.json (mode 600) and are never printed; when not given as flags they are asked for
with getpass, which does not echo. Everything is validated by firmware.core.config.build, the same
code the board runs, and a bad value is refused with its dotted key named (exit status 2).
Only the values given are written: the board merges them over its defaults.

The phone as a source (xDrip+, Juggluco or GlucoDataHandler serving readings on the home network):
    python tools/provision.py ... --phone 192.168.1.23 [--phone-secret S] [--check-phone]
writes a `sources` list (the radio sensor, unless --sensor-kind none, and the phone); the phone's secret
goes to secrets.json. --check-phone asks the phone once, from this computer, what the box will ask
(`GET /sgv.json?count=3&brief_mode=Y`) and says in one line what it answered and what to change.
"""
import argparse
import getpass
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from firmware.core import config  # noqa: E402
from firmware.core.config import ConfigError  # noqa: E402

MGDL_PER_MMOL = 18.016   # glucose molar mass 180.16 g/mol / 10: the factor meters and apps use
# WPA2-Personal (IEEE 802.11i): a passphrase of 8 to 63 printable ASCII characters, or the 256-bit key as
# 64 hex digits. Anything else no access point accepts: the board would only show "no Wi-Fi" at night.
WPA_MIN, WPA_MAX = 8, 63
THRESHOLDS = ("urgent_low", "low", "high", "urgent_high", "dead_band")


def to_mgdl(value, units):
    """mg/dL as the config stores it; mmol/L x 18.016 rounded to a whole mg/dL."""
    v = float(value)
    if units == "mmol":
        return int(round(v * MGDL_PER_MMOL))
    return int(v) if v == int(v) else v


def _put(tree, dotted, value):
    parts = dotted.split(".")
    for p in parts[:-1]:
        tree = tree.setdefault(p, {})
    tree[parts[-1]] = value


def split_secrets(layer, path=""):
    """(config part, secrets part) of a nested dict, by config.SECRET_KEYS."""
    plain, secret = {}, {}
    for k, v in layer.items():
        key = path + k
        if key in config.SECRET_KEYS:
            secret[k] = v
        elif type(v) is dict:
            p, s = split_secrets(v, key + ".")
            if p:
                plain[k] = p
            if s:
                secret[k] = s
        else:
            plain[k] = v
    return plain, secret


def _json_or_text(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def wifi_password_problem(pw):
    """None when an access point could accept pw (empty: an open network); else why not."""
    if pw == "":
        return None
    if len(pw) == 64 and all(c in "0123456789abcdefABCDEF" for c in pw):
        return None
    if not WPA_MIN <= len(pw) <= WPA_MAX:
        return "must be %d to %d characters (WPA2), 64 hex digits, or empty for an open network (got %d)" \
            % (WPA_MIN, WPA_MAX, len(pw))
    if not all(" " <= c <= "~" for c in pw):
        return "must be printable ASCII characters (WPA2)"
    return None


def _int_auto(text):
    return int(text, 0)   # sensor ids are often written in hex on the label


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-i", "--interactive", action="store_true", help="ask for each value")
    ap.add_argument("--out-dir", default=".", help="where config.json and secrets.json go")
    ap.add_argument("--force", action="store_true", help="overwrite existing files")
    ap.add_argument("--gateway-id")
    ap.add_argument("--wifi", action="append", default=[], metavar="SSID",
                    help="a Wi-Fi network, repeatable, tried in order")
    ap.add_argument("--wifi-password", action="append", default=[], metavar="PW",
                    help="password of the n-th --wifi (asked with getpass when missing)")
    ap.add_argument("--broker", metavar="HOST[:PORT]")
    ap.add_argument("--mqtt-user")
    ap.add_argument("--mqtt-password", help="asked with getpass when --mqtt-user is given without it")
    ap.add_argument("--keepalive", type=int)
    ap.add_argument("--prefix")
    ap.add_argument("--sensor-kind", choices=("broadcast", "cgms", "none"),
                    help="what the box's own radio hears (none: only the phone / Nightscout)")
    ap.add_argument("--sensor-id", type=_int_auto)
    ap.add_argument("--bind-key", help="32 hex digits (asked with getpass for a broadcast sensor)")
    ap.add_argument("--allow-plain", action="store_true", help="accept unencrypted broadcasts")
    ap.add_argument("--sensor-address", help="CGMS: BLE address aa:bb:cc:dd:ee:ff")
    ap.add_argument("--passkey", type=int, help="CGMS: bonding passkey")
    ap.add_argument("--phone", metavar="HOST[:PORT]",
                    help="the phone's address on the home network (its web service, port 17580)")
    ap.add_argument("--phone-secret", help="the phone app's web service secret (asked with getpass "
                    "when --phone is given without it; empty for none)")
    ap.add_argument("--check-phone", action="store_true",
                    help="ask the phone once from this computer before writing anything")
    ap.add_argument("--units", choices=("mgdl", "mmol"), default="mgdl",
                    help="units of the threshold flags below")
    for t in THRESHOLDS:
        ap.add_argument("--" + t.replace("_", "-"), type=float)
    ap.add_argument("--sensor-silent-after-s", type=int)
    ap.add_argument("--cloud-silent-after-s", type=int)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any config key by dotted name (VALUE is JSON or text), e.g. for keys "
                         "added after this tool was written")
    return ap


def layer_from_args(a, ask_secret):
    """The nested config layer the flags describe (secrets included); ask_secret(prompt) -> str."""
    L = {}
    if a.gateway_id is not None:
        _put(L, "gateway_id", a.gateway_id)
    if a.wifi:
        nets = []
        for i, ssid in enumerate(a.wifi):
            pw = a.wifi_password[i] if i < len(a.wifi_password) else None
            if pw is None:
                pw = ask_secret("Wi-Fi password for %s (empty for an open network): " % ssid)
            why = wifi_password_problem(pw)
            if why:
                raise ConfigError("wifi.networks[%d].password" % i, why)
            nets.append({"ssid": ssid, "password": pw})
        _put(L, "wifi.networks", nets)
    if a.broker:
        host, _, port = a.broker.partition(":")
        _put(L, "mqtt.host", host)
        if port:
            try:
                _put(L, "mqtt.port", int(port))
            except ValueError:
                raise ConfigError("mqtt.port", "must be a whole number")
    if a.mqtt_user is not None:
        _put(L, "mqtt.user", a.mqtt_user)
        if a.mqtt_password is None:
            a.mqtt_password = ask_secret("MQTT password for %s: " % a.mqtt_user)
    if a.mqtt_password is not None:
        _put(L, "mqtt.password", a.mqtt_password)
    if a.keepalive is not None:
        _put(L, "mqtt.keepalive", a.keepalive)
    if a.prefix is not None:
        _put(L, "mqtt.prefix", a.prefix)
    if a.sensor_kind and a.sensor_kind != "none":
        _put(L, "sensor.kind", a.sensor_kind)
    if a.sensor_id is not None:
        _put(L, "sensor.id", a.sensor_id)
    if a.allow_plain:
        _put(L, "sensor.allow_plain", True)
    if a.sensor_address is not None:
        _put(L, "sensor.address", a.sensor_address)
    if a.passkey is not None:
        _put(L, "sensor.passkey", a.passkey)
    if a.bind_key is None and a.sensor_id is not None and not a.allow_plain \
            and (a.sensor_kind or "broadcast") == "broadcast":
        a.bind_key = ask_secret("Bind key of sensor %d (32 hex digits): " % a.sensor_id)
    if a.bind_key is not None:
        _put(L, "sensor.bind_key", a.bind_key.strip())
    for t in THRESHOLDS:
        v = getattr(a, t)
        if v is not None:
            _put(L, "alarms." + t, to_mgdl(v, a.units))
    if a.sensor_silent_after_s is not None:
        _put(L, "silence.sensor_after_s", a.sensor_silent_after_s)
    if a.cloud_silent_after_s is not None:
        _put(L, "silence.cloud_after_s", a.cloud_silent_after_s)
    for item in a.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(key, "--set needs KEY=VALUE")
        _put(L, key, _json_or_text(value))
    if a.phone or a.sensor_kind == "none":
        L = _as_sources(L, a, ask_secret)
    return L


def _as_sources(L, a, ask_secret):
    """The layer with a `sources` list instead of `sensor`: the radio sensor (unless --sensor-kind none)
    and the phone."""
    from firmware.core.sources_schema import KINDS
    sensor = L.pop("sensor", {})
    srcs = []
    if a.sensor_kind != "none":
        kind = sensor.get("kind", "broadcast")
        srcs.append(dict((k, v) for k, v in sensor.items() if k == "kind" or k in KINDS[kind]))
        srcs[0]["kind"] = kind
    if a.phone:
        host, _, port = a.phone.partition(":")
        phone = {"kind": "phone", "host": host}
        if port:
            try:
                phone["port"] = int(port)
            except ValueError:
                raise ConfigError("sources[%d].port" % len(srcs), "must be a whole number")
        if a.phone_secret is None:
            a.phone_secret = ask_secret("Phone web service secret (not shown; empty if none): ")
        if a.phone_secret:
            phone["secret"] = a.phone_secret
        srcs.append(phone)
    L["sources"] = srcs
    return L


def split_source_secrets(plain, secret):
    """Secret fields of each source (bind_key, secret, token) go to the secrets file, by source name."""
    from firmware.core.sources_schema import SECRET_FIELDS
    if "sources" not in plain:
        return plain, secret
    kept, hidden = [], []
    for src in plain["sources"]:
        name = src.get("name", src.get("kind"))
        pub = dict((k, v) for k, v in src.items() if k not in SECRET_FIELDS)
        sec = dict((k, v) for k, v in src.items() if k in SECRET_FIELDS)
        kept.append(pub)
        if sec:
            sec["name"] = name
            hidden.append(sec)
    plain = dict(plain, sources=kept)
    if hidden:
        secret = dict(secret, sources=hidden)
    return plain, secret


# What to tell the maker for each answer of --check-phone, in the apps' own words (docs/sources.md).
PHONE_HINTS = {
    "down": "nothing answers there: is the app's web service on (xDrip+: Settings > Inter-app settings > "
            "xDrip Web Service and Open Web Service; Juggluco: Settings > Web server, Active, untick "
            "Local only; GlucoDataHandler: its xDrip+ server with the open server option), and is this the "
            "phone's address on the home network?",
    "hung": "the phone took the connection but never answered: is the app asleep (battery saver)?",
    "auth_failed": "the phone refused the secret: give the app's Web service secret exactly (xDrip+ also "
                   "refuses a secret when it has none set: leave it empty then)",
    "no_data": "the phone answers but has no reading yet (no sensor running in the app?)",
    "bad": "the phone answered something that is not the web service's JSON",
}


def check_phone(host, port, secret, timeout_s=5.0):
    """(outcome, one line) for one poll of the phone, from this computer."""
    import socket
    import time
    from firmware.sensor import lan_entries
    from firmware.shell.http_source import request
    _, _, _, req = request({"kind": "phone", "host": host, "port": port, "secret": secret or ""})
    data, eof = b"", False
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(req)
            while len(data) <= lan_entries.MAX_BYTES:
                chunk = s.recv(1024)
                if not chunk:
                    eof = True
                    break
                data += chunk
    except socket.timeout:
        return "hung" if data == b"" else "bad", PHONE_HINTS["hung"]
    except OSError as e:
        return "down", "%s: %s" % (e.strerror or e, PHONE_HINTS["down"])
    a = lan_entries.parse(data, eof, "phone", int(time.time() * 1000))
    if a.kind == "ok":
        date, mgdl, trend, age = a.entries[-1]
        return "ok", "the phone answered: newest reading %d mg/dL, %d s old" % (mgdl, age // 1000)
    if a.kind == "auth_failed":
        return "auth_failed", "%s: %s" % (a.reason, PHONE_HINTS["auth_failed"])
    if a.kind == "no_data":
        return "no_data", PHONE_HINTS["no_data"]
    return "bad", "%s: %s" % (a.reason, PHONE_HINTS["bad"])


def interview(a, ask, ask_secret):
    """Fill the argparse namespace by asking; Enter keeps the default shown in brackets."""
    d = config.defaults()

    def q(prompt, default):
        got = ask("%s [%s]: " % (prompt, default)).strip()
        return got if got else default

    a.gateway_id = q("Gateway name (used in MQTT topics)", a.gateway_id or d["gateway_id"])
    while True:
        ssid = ask("Wi-Fi network name (empty when done): ").strip()
        if not ssid:
            break
        a.wifi.append(ssid)
        a.wifi_password.append(ask_secret("Wi-Fi password for %s: " % ssid))
    a.broker = q("MQTT broker host[:port]", a.broker or "%s:%d" % (d["mqtt"]["host"], d["mqtt"]["port"]))
    a.prefix = q("MQTT topic prefix", a.prefix or d["mqtt"]["prefix"])
    a.keepalive = int(q("MQTT keepalive seconds", a.keepalive or d["mqtt"]["keepalive"]))
    a.sensor_kind = q("Sensor kind the box's radio hears (broadcast, cgms, or none: only the phone)",
                      a.sensor_kind or d["sensor"]["kind"])
    if a.sensor_kind == "none":
        pass
    elif a.sensor_kind == "cgms":
        a.sensor_address = q("Sensor BLE address", a.sensor_address or "")
        a.passkey = int(q("Sensor passkey", a.passkey or 0))
    else:
        a.sensor_id = _int_auto(str(q("Sensor id (from its label)", a.sensor_id or d["sensor"]["id"])))
        if a.bind_key is None:
            a.bind_key = ask_secret("Bind key (32 hex digits, not shown): ")
    if not a.phone:
        a.phone = ask("Phone on the home network (xDrip+ / Juggluco / GlucoDataHandler web service): "
                      "its address, empty for none: ").strip() or None
    if a.phone and a.phone_secret is None:
        a.phone_secret = ask_secret("Phone web service secret (not shown; empty if none): ")
    if a.phone:
        a.check_phone = True
    a.units = q("Units for the alarm thresholds (mgdl or mmol)", a.units)
    for t in THRESHOLDS:
        cur = getattr(a, t)
        dflt = d["alarms"][t]
        if a.units == "mmol":
            dflt = round(dflt / MGDL_PER_MMOL, 1)
        got = ask("Threshold %s (%s) [%s]: " % (t, a.units, cur if cur is not None else dflt)).strip()
        if got:
            setattr(a, t, float(got))
        # Enter keeps the firmware's mg/dL value as it is: converting the rounded mmol/L shown
        # back would move it (55 -> 3.1 -> 56).
    return a


class WriteError(Exception):
    pass


def write(out_dir, plain, secret, force):
    """Both files, or neither: each is written to a temporary file next to it, and only when both are
    complete are they renamed into place (a failure leaves no partial file and no half of the pair)."""
    paths = (os.path.join(out_dir, "config.json"), os.path.join(out_dir, "secrets.json"))
    for p in paths:
        if os.path.isdir(p):
            raise WriteError("%s is a folder, not a file: remove or rename it" % p)
        if not force and os.path.exists(p):
            raise FileExistsError(p)
    tmps = []
    try:
        os.makedirs(out_dir, exist_ok=True)
        for p, tree, mode in ((paths[0], plain, 0o644), (paths[1], secret, 0o600)):
            tmp = p + ".tmp-%d" % os.getpid()
            # Created with its final mode: the secrets are never readable by others, not even briefly.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            tmps.append(tmp)
            with os.fdopen(fd, "w") as f:
                json.dump(tree, f, indent=2, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
        for tmp, p in zip(tmps, paths):
            os.replace(tmp, p)
    except OSError as e:
        raise WriteError("cannot write %s: %s" % (e.filename or out_dir, e.strerror or e))
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
    return paths


def _leaves(tree, path=""):
    for k, v in tree.items():
        if type(v) is dict:
            yield from _leaves(v, path + k + ".")
        else:
            yield path + k


def main(argv=None, ask=input, ask_secret=getpass.getpass):
    a = parser().parse_args(argv)
    try:
        if a.interactive:
            interview(a, ask, ask_secret)
        layer = layer_from_args(a, ask_secret)
        plain, secret = split_secrets(layer)
        plain, secret = split_source_secrets(plain, secret)
        cfg = config.build(plain, secret)   # the board's own validator, in the board's order
    except ConfigError as e:
        print("provision: refused: %s" % e, file=sys.stderr)
        return 2
    except (ValueError, OverflowError) as e:  # a typed answer that is not a number, --low inf
        print("provision: refused: %s" % e, file=sys.stderr)
        return 2
    except EOFError:
        print("provision: standard input ended before every question was answered; nothing written",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("provision: interrupted; nothing written", file=sys.stderr)
        return 130
    if a.check_phone:
        for src in cfg["sources"]:
            if src["kind"] == "phone":
                outcome, line = check_phone(src["host"], src["port"], src["secret"])
                print("phone %s:%d: %s" % (src["host"], src["port"], line))
                if outcome not in ("ok", "no_data"):
                    print("provision: the phone check failed; nothing written (fix it, or run without "
                          "--check-phone)", file=sys.stderr)
                    return 3
    try:
        paths = write(a.out_dir, plain, secret, a.force)
    except FileExistsError as e:
        print("provision: %s exists; pass --force to replace it" % e, file=sys.stderr)
        return 1
    except WriteError as e:
        print("provision: %s; nothing written" % e, file=sys.stderr)
        return 1
    print("wrote %s: %s" % (paths[0], ", ".join(sorted(_leaves(plain))) or "(defaults)"))
    print("wrote %s (mode 600): %s" % (paths[1], ", ".join(sorted(_leaves(secret))) or "(none)"))
    print("next: python tools/deploy.py --port PORT --board BOARD --config %s --secrets %s"
          % paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
