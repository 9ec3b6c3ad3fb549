# Honest tools (issue 17): every bad input to tools/sim.py, tools/provision.py, tools/deploy.py and
# tools/nightstand_cmd.py gets one clear line on stderr and a non-zero exit, never a traceback, and never
# a partial file; the simulator says so when the firmware dies or readings never reached the broker, and
# leaves no temporary folder behind.
import json
import os
import subprocess
import sys

from host_tests.paths import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
from simlib import faults

PY = sys.executable
SECRET = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f00112233445566778899aabbccddeeff"


def tool(name, *argv, stdin=subprocess.DEVNULL, env=None, timeout=60):
    return subprocess.run([PY, os.path.join(ROOT, "tools", name)] + [str(a) for a in argv], cwd=ROOT,
                          stdin=stdin, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def one_line(r, *words):
    """Non-zero exit, exactly one line on stderr naming the problem, no traceback."""
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode != 0, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# ---- tools/sim.py -----------------------------------------------------------------------------------------
def _files(tmp_path):
    binary = tmp_path / "trace.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"minute,mgdl\n0,1\x0020\n")
    far = tmp_path / "far.csv"
    far.write_text("minute,mgdl\n0,120\n1e12,100\n")
    good = tmp_path / "good.csv"
    good.write_text("minute,mgdl\n0,120\n")
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    return binary, nul, far, good, lst


def test_sim_refuses_bad_traces_configs_and_speeds_in_one_line(tmp_path):
    binary, nul, far, good, lst = _files(tmp_path)
    cases = [
        (["--trace", binary], ["not a text CSV"]),
        (["--trace", nul], ["not a text CSV"]),
        (["--trace", far], ["1e+12", "43200"]),                   # the limit is named
        (["--trace", good, "--config", lst], ["must be a JSON object"]),
        (["--trace", good, "--secrets", lst], ["must be a JSON object"]),
        (["--trace", good, "--config", binary], ["not valid JSON"]),
        (["--trace", good, "--speed", "nan"], ["--speed", "0.1", "10000"]),
        (["--trace", good, "--speed", "inf"], ["--speed"]),
        (["--trace", good, "--speed", "1e-9"], ["--speed"]),
        (["--trace", good, "--speed", "-3"], ["--speed"]),
        (["--trace", good, "--fw-config", tmp_path / "nope.json"], ["--fw-config"]),
        (["--trace", tmp_path / "missing.csv"], ["missing.csv"]),
        (["--trace", good, "--events", good / "ev.jsonl"], ["good.csv"]),   # a file where a folder must be
    ]
    for argv, words in cases:
        one_line(tool("sim.py", "--quiet", "--events", tmp_path / "ev.jsonl", *argv), *words)


def test_sim_refuses_a_scenario_that_would_run_for_days(tmp_path):
    month = tmp_path / "month.csv"
    month.write_text("minute,mgdl\n0,120\n40000,120\n")
    one_line(tool("sim.py", "--trace", month, "--speed", "1", "--quiet"), "real time", "24 h")


def test_sim_accepts_a_csv_with_a_byte_order_mark_and_leaves_no_temporary_folder(tmp_path, mosquitto):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffminute,mgdl\n0,120\n5,118\n".encode("utf-8"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = tool("sim.py", "--trace", bom, "--speed", "300", "--quiet", "--events", tmp_path / "ev.jsonl",
             "--broker", "127.0.0.1:%d" % mosquitto.port, env={"TMPDIR": str(tmp)}, timeout=120)
    assert r.returncode == 0, r.stderr
    seqs = [json.loads(x)["seq"] for x in open(tmp_path / "ev.jsonl") if '"reading"' in x]
    assert len(seqs) == 2
    assert os.listdir(tmp) == [], os.listdir(tmp)       # its work folder went with it
    # and with the simulator's own broker, that broker's folder too
    r = tool("sim.py", "--trace", bom, "--speed", "300", "--quiet", "--events", tmp_path / "ev2.jsonl",
             env={"TMPDIR": str(tmp)}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp) == [], os.listdir(tmp)


def test_sim_exits_non_zero_when_the_firmware_dies(tmp_path, mosquitto):
    rows = [(m, 120) for m in range(0, 60, 5)]
    run = faults.SimRun(tmp_path, rows, mosquitto.port, speed=60)
    run.wait_for(lambda e: len(faults.accepted(e)) >= 2)
    faults.kill_firmware(run)
    rc, evs, err = run.wait(60)
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith("firmware:")]
    assert rc != 0 and len(lines) == 1 and "firmware exited" in lines[0], (rc, err)


def test_sim_exits_non_zero_when_accepted_readings_never_reach_the_broker(tmp_path, mosquitto):
    # The firmware runs a config of its own (--fw-config) that publishes under another gateway id: it
    # accepts every reading, and none arrives where the simulator's follower listens.
    fw = tmp_path / "fw.json"
    fw.write_text(json.dumps({"gateway_id": "elsewhere", "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
                              "sensor": {"bind_key": faults.DEMO_KEY, "address": "c4:7a:01:22:33:44"}}))
    rows = [(0, 120), (5, 118), (10, 117)]
    rc, evs, err = faults.run(tmp_path, rows, mosquitto.port, "--drain-s", "2", "--fw-config", fw, speed=300)
    assert len(faults.accepted(evs)) == 3, evs
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith("firmware:")]
    assert rc == 3 and len(lines) == 1 and "3 of 3 readings" in lines[0] and "never reached" in lines[0], (rc, err)
    # a scenario that ends with the broker away is no loss: the gateway still holds them, as it should
    rows = [(0, 120), (5, 118, "broker_down"), (10, 117)]
    rc, evs, err = faults.run(tmp_path, rows, mosquitto.port, "--drain-s", "1", speed=300, name="away")
    assert rc == 0, err


# ---- tools/provision.py -----------------------------------------------------------------------------------
def test_provision_refuses_bad_input_and_writes_no_partial_file(tmp_path):
    base = ["--gateway-id", "bedroom", "--sensor-id", "1", "--bind-key", "00" * 16]
    # a folder where secrets.json should go: nothing written, not even config.json
    out = tmp_path / "a"
    (out / "secrets.json").mkdir(parents=True)
    one_line(tool("provision.py", "--out-dir", out, *base), "secrets.json", "folder")
    assert sorted(os.listdir(out)) == ["secrets.json"] and os.path.isdir(out / "secrets.json")
    # standard input closed in an interview
    out = tmp_path / "b"
    one_line(tool("provision.py", "--out-dir", out, "-i"), "standard input")
    assert not out.exists() or os.listdir(out) == []
    # a one-character Wi-Fi password (WPA2 needs 8..63), and one too long
    for pw in ("a", "x" * 64 + "y"):
        out = tmp_path / ("c" + str(len(pw)))
        one_line(tool("provision.py", "--out-dir", out, "--wifi", "Home", "--wifi-password", pw, *base),
                 "wifi.networks[0].password", "8 to 63")
        assert not out.exists()
    # a threshold that is not a number
    out = tmp_path / "d"
    one_line(tool("provision.py", "--out-dir", out, "--low", "inf", *base), "refused")
    assert not out.exists()
    # --out-dir is a file
    f = tmp_path / "file"
    f.write_text("x")
    one_line(tool("provision.py", "--out-dir", f, *base), "nothing written")
    # good input still works, both files complete
    out = tmp_path / "ok"
    r = tool("provision.py", "--out-dir", out, "--wifi", "Home", "--wifi-password", "correct horse", *base)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["config.json", "secrets.json"]
    assert json.load(open(out / "secrets.json"))["wifi"]["networks"][0]["password"] == "correct horse"


# ---- tools/deploy.py --------------------------------------------------------------------------------------
def test_deploy_refuses_bad_config_files_and_board_names_in_one_line(tmp_path):
    binary, nul, far, good, lst = _files(tmp_path)
    for argv, words in (
            (["--config", lst], ["must be a JSON object"]),
            (["--secrets", lst], ["must be a JSON object"]),
            (["--config", binary], ["not valid JSON"]),
            (["--config", tmp_path], [str(tmp_path)]),
            (["--config", tmp_path / "nope.json"], ["nope.json"])):
        one_line(tool("deploy.py", "--port", "/dev/null", "--board", "esp32_devkitc", "--dry-run", *argv), *words)
    one_line(tool("deploy.py", "--port", "/dev/null", "--board", "../../etc/passwd", "--dry-run", "--no-config"),
             "--board")


# ---- tools/nightstand_cmd.py ------------------------------------------------------------------------------
def test_nightstand_cmd_refuses_bad_input_in_one_line(tmp_path):
    binary, nul, far, good, lst = _files(tmp_path)
    env = {"NIGHTSTAND_CMD_SECRET": SECRET}
    pre = ["--prefix", "nightstand/bedroom", "--print"]
    for argv, e, words in (
            (["snooze", "--counter", "0"] + pre, env, ["--counter"]),
            (["snooze", "--counter", str(2 ** 53)] + pre, env, ["--counter"]),
            (["snooze", "--ts", "-5"] + pre, env, ["--ts"]),
            (["snooze", "--counter", str(2 ** 52), "--ts", "1"] + pre, env, ["ahead"]),
            (["snooze", "--prefix", "nightstand/#", "--print"], env, ["--prefix"]),
            (["snooze", "--secret-file", binary] + pre, {}, ["not a text file"]),
            (["snooze", "--secret-file", tmp_path] + pre, {}, ["--secret-file"]),
            (["snooze", "--secret-file", lst] + pre, {}, ["hex digits"]),
            (["snooze", "--minutes", "500"] + pre, env, ["refuse"])):
        e = dict(e, NIGHTSTAND_CMD_SECRET=e.get("NIGHTSTAND_CMD_SECRET", ""))
        one_line(tool("nightstand_cmd.py", *argv, env=e), *words)


def test_sim_summary_counts_every_reading_across_a_broker_restart(tmp_path):
    """The summary said `25 at the broker` when 31 of 31 had arrived: its follower was still in paho's
    reconnect backoff when the gateway replayed its queue. Kill the broker mid-run, start it again on
    the same port (persistence on), and the summary must count every reading."""
    import re
    import subprocess as sp
    store = tmp_path / "mosq"
    store.mkdir()
    broker = faults.start_mosquitto(persist_dir=str(store))
    trace = tmp_path / "t.csv"
    trace.write_text(faults.trace_text([(m, 120) for m in range(0, 60, 5)]))
    events = tmp_path / "ev.jsonl"
    p = sp.Popen([PY, os.path.join(ROOT, "tools", "sim.py"), "--trace", trace, "--speed", "120", "--events",
                  events, "--broker", "127.0.0.1:%d" % broker.port], cwd=ROOT, stdout=sp.DEVNULL,
                 stderr=sp.PIPE, text=True)

    def seen(minute):
        try:
            return any('"reading"' in x and json.loads(x)["t"] >= minute * 60 for x in open(events))
        except (OSError, ValueError):
            return False
    try:
        assert faults.wait_until(lambda: seen(15), 60)
        faults.wait_until((store / "mosquitto.db").exists, 5)
        faults.kill_broker(broker)
        assert faults.wait_until(lambda: seen(35), 60)
        broker = faults.start_mosquitto(port=broker.port, persist_dir=str(store))
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
        broker.stop()
    assert p.returncode == 0, err
    m = re.search(r"readings: (\d+) sent by the CGM, (\d+) accepted by the gateway, (\d+) at the broker", err)
    assert m and m.group(1) == m.group(2) == m.group(3) == "12", err
