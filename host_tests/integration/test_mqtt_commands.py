# CPython only: authenticated remote commands end to end, through the simulator against real mosquitto,
# sent with tools/nightstand_cmd.py as a parent would send them.
import json
import os
import subprocess
import sys
import time

from host_tests.simrun import Follower, trace
from host_tests.background import BackgroundSim

from host_tests.paths import ROOT
SECRET = "5e1f0c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f"
FORGED = "00112233445566778899aabbccddeeff0011223344556677"


def send(port, prefix, *argv, secret=SECRET):
    env = dict(os.environ, NIGHTSTAND_CMD_SECRET=secret)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "nightstand_cmd.py"),
                        "--broker", "127.0.0.1:%d" % port, "--prefix", prefix] + list(argv),
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_snooze_silences_a_high_forgery_is_rejected_and_urgent_low_cannot_be_silenced(
        tmp_path, mosquitto, gateway):
    cfg = tmp_path / "cmdcfg.json"
    # max_age_s 3600: the simulated clock runs 100x, so the gateway's wall time drifts from ours
    cfg.write_text(json.dumps({"gateway_id": gateway["id"], "commands": {"max_age_s": 3600}}))
    secrets = tmp_path / "cmdsecrets.json"
    secrets.write_text(json.dumps({"commands": {"secret": SECRET}}))
    rows = [(m, 120) for m in range(0, 10, 5)] + [(m, 262) for m in range(10, 35, 5)]
    rows += [(m, 48) for m in range(35, 65, 5)]
    prefix = gateway["prefix"]
    f = Follower(mosquitto.port, prefix)
    sim = BackgroundSim(tmp_path, trace(rows), mosquitto.port, "--config", str(cfg),
                        "--secrets", str(secrets), speed=100)
    try:
        sim.wait(lambda e: e["event"] == "pattern" and e["name"] == "high" and e["sound"], 60)
        send(mosquitto.port, prefix, "snooze", "--minutes", "30")
        snoozed = sim.wait(lambda e: e["event"] == "alarm" and e["state"] == "snoozed", 20)
        assert snoozed["level"] == "high" and "30 min" in snoozed["why"]   # not the high's 60
        quiet = sim.wait(lambda e: e["event"] == "pattern" and e["name"] == "high" and not e["sound"], 20)
        assert quiet

        send(mosquitto.port, prefix, "snooze", "--minutes", "30", secret=FORGED)
        rej = sim.wait(lambda e: e["event"] == "reject" and e["reason"].startswith("command_"), 20)
        assert rej["reason"] == "command_bad_auth"

        # signed, but 600 minutes is out of range: refused with a reason the sender can act on
        import paho.mqtt.publish as pub
        from firmware.core import commands
        bad = commands.sign(bytes.fromhex(SECRET), "snooze", int(time.time() * 1000), int(time.time()),
                            {"minutes": 600})
        pub.single(prefix + "/cmd/snooze", bad, qos=1, hostname="127.0.0.1", port=mosquitto.port)
        rej = sim.wait(lambda e: e["event"] == "reject" and e["reason"] == "command_bad_args", 20)

        sim.wait(lambda e: e["event"] == "pattern" and e["name"] == "urgent_low" and e["sound"], 60)
        send(mosquitto.port, prefix, "snooze", "--minutes", "30")
        send(mosquitto.port, prefix, "ack", "--level", "urgent_low")
        refused = sim.wait(lambda e: e["event"] == "alarm" and e["state"] == "refused", 20)
        assert refused["level"] == "urgent_low"
        sim.finish()
        time.sleep(0.5)
        audits = [json.loads(p) for p in f.payloads("audit")]
    finally:
        sim.stop()
        f.stop()
    evs = sim.events()
    # urgent low kept sounding from its raise to the end: nothing remote quieted it
    ul = [e for e in evs if e["event"] == "pattern" and e["t"] >= refused["t"] - 600]
    assert ul and all(e["name"] == "urgent_low" and e["sound"] for e in ul if e["name"] == "urgent_low")
    assert not [e for e in evs if e["event"] == "alarm" and e["level"] == "urgent_low"
                and e["state"] in ("snoozed", "acked")]
    assert [a["accepted"] for a in audits] == [True, False, False, True, True], audits
    assert audits[0]["cmd"] == "snooze" and audits[0]["outcome"] == "snoozed: quiet for 30 min (remote)"
    assert audits[1]["reason"] == "bad_auth" and "outcome" not in audits[1]
    assert audits[2]["reason"] == "bad_args" and "outcome" not in audits[2]
    assert audits[3]["outcome"].startswith("refused") and audits[4]["outcome"].startswith("refused")
    for a in audits:
        assert SECRET not in json.dumps(a) and "mac" not in a


def test_a_recorded_command_cannot_be_played_again_even_after_a_reboot(tmp_path, mosquitto, gateway):
    import paho.mqtt.publish as pub
    from firmware.core import commands
    cfg = tmp_path / "cmdcfg.json"
    cfg.write_text(json.dumps({"gateway_id": gateway["id"], "commands": {"max_age_s": 3600}}))
    secrets = tmp_path / "cmdsecrets.json"
    secrets.write_text(json.dumps({"commands": {"secret": SECRET}}))
    data = tmp_path / "data"
    prefix = gateway["prefix"]
    payload = commands.sign(bytes.fromhex(SECRET), "selftest", int(time.time() * 1000), int(time.time()))
    rows = [(m, 120) for m in range(0, 25, 5)]
    outcomes = []
    for boot in range(2):
        f = Follower(mosquitto.port, prefix)
        sim = BackgroundSim(tmp_path, trace(rows), mosquitto.port, "--config", str(cfg),
                            "--secrets", str(secrets), "--data", str(data), speed=100)
        try:
            sim.wait(lambda e: e["event"] == "pattern" and e["name"] == "ok", 60)
            time.sleep(0.5)
            pub.single(prefix + "/cmd/selftest", payload, qos=1, hostname="127.0.0.1", port=mosquitto.port)
            if boot == 1:
                sim.wait(lambda e: e["event"] == "reject" and e["reason"].startswith("command_"), 20)
            else:
                sim.wait(lambda e: e["event"] == "pattern" and e["name"] == "selftest"
                         and e["t"] > 10, 20)
            sim.finish()
            time.sleep(0.3)
            outcomes.append([json.loads(p) for p in f.payloads("audit")])
        finally:
            sim.stop()
            f.stop()
    assert outcomes[0][0]["accepted"] is True
    assert outcomes[1][0]["accepted"] is False and outcomes[1][0]["reason"] == "replay"
