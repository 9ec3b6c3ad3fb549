# CPython only: tools/nightstand_cmd.py signs what the gateway accepts and never shows the secret.
import json
import os
import subprocess
import sys

from firmware.core import commands

from host_tests.paths import ROOT
SECRET = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f00112233445566778899aabbccddeeff"


def run(*argv, secret=SECRET):
    env = dict(os.environ, NIGHTSTAND_CMD_SECRET=secret)
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "nightstand_cmd.py")]
                          + list(argv), env=env, capture_output=True, text=True, timeout=30)


def test_printed_command_is_accepted_by_the_gateway_verifier():
    r = run("--prefix", "nightstand/bedroom", "snooze", "--minutes", "30", "--print")
    assert r.returncode == 0, r.stderr
    topic, payload = r.stdout.splitlines()
    assert topic == "nightstand/bedroom/cmd/snooze"
    v = commands.CommandVerifier(bytes.fromhex(SECRET), last_counter=5)
    cmd, why = v.verify("snooze", payload.encode(), json.loads(payload)["ts"])
    assert why is None and cmd["args"] == {"minutes": 30}
    assert SECRET not in r.stdout + r.stderr


def test_bad_secret_or_argument_is_refused_without_echoing_the_secret():
    r = run("--prefix", "p", "snooze", "--print", secret="abcd" * 5)
    assert r.returncode == 2 and "abcd" not in r.stdout + r.stderr
    r = run("--prefix", "p", "snooze", "--minutes", "600", "--print")
    assert r.returncode == 2 and "--minutes" in r.stderr


def test_unreachable_broker_fails_with_one_line():
    r = run("--prefix", "p", "--broker", "127.0.0.1:9", "selftest")
    assert r.returncode == 1 and "could not publish" in r.stderr
