"""Sign a command for a Nightstand gateway and publish it (or only print it).

    NIGHTSTAND_CMD_SECRET=<hex> python tools/nightstand_cmd.py --broker 127.0.0.1:1883 \\
        --prefix nightstand/bedroom snooze --minutes 30
    python tools/nightstand_cmd.py --secret-file secrets.json --prefix nightstand/bedroom ack \\
        --level high --print

The shared secret (config key commands.secret, hex) comes from --secret-file (a file holding the hex,
or a secrets.json with {"commands": {"secret": ...}}) or the NIGHTSTAND_CMD_SECRET environment
variable; it is never printed. The counter defaults to the current time in ms, so it keeps rising
without any state on this side. The payload is made by firmware.core.commands.sign, the same code
the gateway verifies with. Exit status: 0 sent (or printed), 1 broker failure, 2 bad input.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from firmware.core import commands, commands_schema  # noqa: E402

SECRET_ENV = "NIGHTSTAND_CMD_SECRET"
PASSWORD_ENV = "NIGHTSTAND_MQTT_PASSWORD"


class UsageError(Exception):
    pass


def read_secret(path, environ):
    """Secret bytes from the file or the environment; the message of any error names no value."""
    if path:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError as e:
            raise UsageError("cannot read --secret-file %s: %s" % (path, e.strerror))
        except UnicodeDecodeError:
            raise UsageError("--secret-file %s is not a text file" % path)
        if text.startswith("{"):
            try:
                text = json.loads(text)["commands"]["secret"]
            except (ValueError, KeyError, TypeError):
                raise UsageError("%s is JSON but has no commands.secret" % path)
        where = path
    elif environ.get(SECRET_ENV):
        text, where = environ[SECRET_ENV].strip(), SECRET_ENV
    else:
        raise UsageError("no secret: give --secret-file or set %s" % SECRET_ENV)
    why = commands_schema.SCHEMA["commands"]["secret"][1](text)
    if why or not text:
        raise UsageError("the secret in %s %s" % (where, why or "is empty"))
    return commands.secret_from_hex(text)


def parse_broker(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError("--broker must be HOST:PORT, got %r" % text)
    return host, int(port)


def build(args, environ, now=None):
    """(topic, payload bytes) for the parsed arguments."""
    now = time.time() if now is None else now
    secret = read_secret(args.secret_file, environ)
    cmd_args = {}
    if args.minutes is not None:
        cmd_args["minutes"] = args.minutes
    if args.level is not None:
        cmd_args["level"] = args.level
    n = args.counter if args.counter is not None else int(now * 1000)
    ts = args.ts if args.ts is not None else int(now)
    if not 1 <= n < 2 ** 53:
        raise UsageError("--counter must be a whole number from 1 to 2^53-1")
    if not 0 <= ts < 2 ** 53:
        raise UsageError("--ts must be epoch seconds, 0 or more")
    if not args.prefix.strip("/") or any(c in args.prefix for c in "#+\0"):
        raise UsageError("--prefix must be a topic prefix without wildcards, e.g. nightstand/bedroom")
    payload = commands.sign(secret, args.name, n, ts, cmd_args)
    # Check it the way the gateway will, so a bad argument is refused here and not silently there.
    # (Judged at the command's own ts: a deliberately old or future --ts is the gateway's to refuse.)
    _, why = commands.CommandVerifier(secret).verify(args.name, payload, ts)
    if why == "ahead":
        raise UsageError("the gateway would refuse this command (ahead): --counter must not be above "
                         "the command's time in epoch ms plus max_age_s")
    if why:
        raise UsageError("the gateway would refuse this command (%s): snooze takes --minutes "
                         "5..120, ack takes --level <alarm level>, selftest takes neither" % why)
    return "%s/cmd/%s" % (args.prefix.rstrip("/"), args.name), payload


def publish(topic, payload, args, environ):
    import paho.mqtt.publish as mqtt_publish    # only needed when actually sending
    host, port = parse_broker(args.broker)
    auth = None
    if args.user:
        auth = {"username": args.user, "password": environ.get(PASSWORD_ENV)}
    tls = {"ca_certs": args.cafile} if args.cafile else None
    mqtt_publish.single(topic, payload, qos=1, hostname=host, port=port, auth=auth, tls=tls,
                        client_id="nightstand-cmd-%d" % os.getpid(), keepalive=10)


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=commands.NAMES, help="the command")
    ap.add_argument("--prefix", required=True, help="topic prefix, e.g. nightstand/bedroom")
    ap.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT (default %(default)s)")
    ap.add_argument("--secret-file", help="hex secret, or secrets.json with commands.secret "
                    "(else $%s)" % SECRET_ENV)
    ap.add_argument("--minutes", type=int, help="snooze: how long (5..120)")
    ap.add_argument("--level", help="ack: the alarm level being acknowledged, e.g. high")
    ap.add_argument("--counter", type=int, help="command counter (default: now in ms)")
    ap.add_argument("--ts", type=int, help="timestamp, epoch s (default: now)")
    ap.add_argument("--user", help="MQTT user; the password comes from $%s" % PASSWORD_ENV)
    ap.add_argument("--cafile", help="CA certificate: connect with TLS, certificate required")
    ap.add_argument("--print", action="store_true", dest="print_only",
                    help="print the topic and payload instead of publishing")
    return ap


def main(argv=None, environ=None):
    environ = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    try:
        topic, payload = build(args, environ)
        if args.print_only:
            print(topic)
            print(payload.decode())
            return 0
        publish(topic, payload, args, environ)
    except UsageError as e:
        print("nightstand_cmd: %s" % e, file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:      # refused, unreachable, TLS failure, bad CA file
        print("nightstand_cmd: could not publish to %s: %s" % (args.broker, e), file=sys.stderr)
        return 1
    print("sent %s (n=%d)" % (topic, json.loads(payload)["n"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
