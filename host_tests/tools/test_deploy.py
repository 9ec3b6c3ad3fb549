# tools/deploy.py: the exact command sequence for every board (dry run, no board), and the checks
# that stop a deploy before it can leave a board half-installed.
import json
import os
import subprocess
import sys
from unittest import mock

import pytest

from host_tests.paths import ROOT
sys.path.insert(0, os.path.join(ROOT, "tools"))

import deploy

BOARDS = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "board_configs"))
                if f.endswith(".json") and json.load(open(os.path.join(ROOT, "board_configs", f)))
                .get("kind") == "esp32")
PORT = "/dev/ttyUSB0"
MP = "mpremote connect " + PORT + " "
IMPL = ("(name='micropython', version=(1, 29, 0, ''), _machine='%s', _mpy=%d, _build='%s')")


def _configs(tmp_path):
    c = tmp_path / "config.json"
    s = tmp_path / "secrets.json"
    c.write_text(json.dumps({"gateway_id": "bedroom", "sensor": {"id": 7}}))
    s.write_text(json.dumps({"sensor": {"bind_key": "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f"},
                             "wifi": {"networks": [{"ssid": "home", "password": "pw"}]}}))
    return str(c), str(s)


def _dry(capsys, *args):
    rc = deploy.main(["--port", PORT, "--dry-run"] + list(args))
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


@pytest.mark.parametrize("board", BOARDS)
def test_dry_run_sequence_for_each_board(board, capsys, tmp_path):
    cfg, sec = _configs(tmp_path)
    rc, lines, _ = _dry(capsys, "--board", board, "--config", cfg, "--secrets", sec)
    assert rc == 0
    remote = [ln for ln in lines if ln.startswith("mpremote")]
    extra = [MP + "cp main.py :main.py"] if os.path.exists(os.path.join(ROOT, "main.py")) else []
    boot = [MP + "cp boot.py :boot.py"] if os.path.exists(os.path.join(ROOT, "boot.py")) else []
    assert remote == [
        MP + "exec 'import sys; print(sys.implementation)'",
        MP + "exec " + deploy.shlex.quote(deploy.MEM_PROBE),
        MP + "exec 'open(\"safe_mode\", \"w\").close()'",
        MP + "reset",
        MP + "mip install aioble-core aioble-central aioble-client aioble-security",
        MP + "exec 'import umqtt.simple' || " + MP + "mip install umqtt.simple",
        MP + "rm -r :firmware || true",
        MP + "cp -r build/deploy/%s/firmware :" % board,
        MP + "cp board_configs/%s.json :board.json" % board,
        MP + "cp %s :config.json" % cfg,
        MP + "cp %s :secrets.json" % sec,
    ] + boot + extra + [
        MP + "rm :safe_mode",
        MP + "reset",
    ]
    # Every firmware module is compiled (at -O0) before the copy; the simulator's modules are not.
    compiled = [ln.split()[-1] for ln in lines if ln.startswith("mpy-cross -O0 -o build/deploy/%s/" % board)]
    assert "firmware/hal/esp32.py" in compiled and "firmware/core/config.py" in compiled
    assert "firmware/hal/host.py" not in compiled
    first_cp = lines.index(MP + "cp -r build/deploy/%s/firmware :" % board)
    assert all(lines.index("mpy-cross -O0 -o build/deploy/%s/%s %s" % (board, p[:-3] + ".mpy", p))
               < first_cp for p in compiled)
    assert lines[-1].startswith("# then: show the first boot lines")


def test_dry_run_without_config_copies_none(capsys):
    rc, lines, _ = _dry(capsys, "--board", "esp32_devkitc", "--no-config")
    assert rc == 0
    assert not any(":config.json" in ln or ":secrets.json" in ln for ln in lines)


def test_provisioned_files_in_the_current_directory_are_used(capsys, tmp_path, monkeypatch):
    cfg, sec = _configs(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc, lines, err = _dry(capsys, "--board", "esp32_devkitc")
    assert rc == 0 and "config.json and secrets.json" in err
    assert MP + "cp %s :config.json" % cfg in lines
    assert MP + "cp %s :secrets.json" % sec in lines


def test_host_and_unknown_boards_refused(capsys):
    rc, lines, err = _dry(capsys, "--board", "host")
    assert rc == 1 and lines == [] and "only esp32" in err
    rc, lines, err = _dry(capsys, "--board", "esp8266_nodemcu")
    assert rc == 1 and "esp32_devkitc" in err           # lists the known ones


def test_bad_config_refused_before_touching_the_board(capsys, tmp_path):
    c = tmp_path / "config.json"
    c.write_text(json.dumps({"alarms": {"low": "seventy"}}))
    runner = mock.Mock()
    rc = deploy.main(["--port", PORT, "--board", "esp32_devkitc", "--config", str(c)], runner=runner)
    assert rc == 1
    assert "alarms.low" in capsys.readouterr().err
    runner.assert_not_called()


def test_parse_implementation():
    text = IMPL % ("Generic ESP32S3 module with ESP32S3", 2822 & 0xFF | (3 << 8) | (10 << 10), "")
    version, major, sub, machine = deploy.parse_implementation(text)
    assert version == (1, 29, 0) and major == 6 and sub == 3
    assert machine.endswith("ESP32S3")
    with pytest.raises(deploy.DeployError):
        deploy.parse_implementation("CircuitPython 9.0 REPL")


def test_board_checks():
    good = ((1, 29, 0), 6, 3, "Generic ESP32 module with ESP32")
    deploy.check_board(good, "esp32", (6, 3))
    with pytest.raises(deploy.DeployError, match="1.22 or newer"):
        deploy.check_board(((1, 19, 1), 6, 0, ""), "esp32", (6, 3))
    with pytest.raises(deploy.DeployError, match="mpy-cross emits v6"):
        deploy.check_board(((1, 29, 0), 7, 0, ""), "esp32", (6, 3))
    with pytest.raises(deploy.DeployError, match="for esp32c3"):
        deploy.check_board(good, "esp32c3", (6, 3))


class FakeBoard:
    """Stands in for subprocess.run: answers the probes like a board, records every command."""

    # Memory as the board reports it to deploy.MEM_PROBE: GC heap bytes, free ESP-IDF data heap bytes,
    # Nightstand frozen in. Default: a PSRAM board (8 MiB heap), so the other checks are what is tested.
    def __init__(self, machine="ESP32C3 module with ESP32C3", has_umqtt=True, mpy=6 | (3 << 8),
                 heap=8 * 1024 * 1024, idf_free=300 * 1024, frozen=False):
        self.calls = []
        self.machine, self.has_umqtt, self.mpy = machine, has_umqtt, mpy
        self.heap, self.idf_free, self.frozen = heap, idf_free, frozen

    def __call__(self, argv, **kw):
        self.calls.append(argv)
        out, rc = "", 0
        if argv[-1] == deploy.PROBE:
            out = IMPL % (self.machine, self.mpy, "")
        elif argv[-1] == deploy.MEM_PROBE:
            out = "NSMEM %d %d %d\n" % (self.heap, self.idf_free, 1 if self.frozen else 0)
        elif argv[-1] == deploy.UMQTT_PROBE and not self.has_umqtt:
            out, rc = "ImportError: no module named 'umqtt'", 1
        elif "mpy-cross" in argv[0] and "-o" in argv:
            pass   # compiling is real work we do not need here
        return subprocess.CompletedProcess(argv, rc, out, "")


def _run(board, fake, *extra):
    with mock.patch.object(deploy, "mpy_cross_version", return_value=(6, 3)):
        return deploy.main(["--port", PORT, "--board", board, "--no-tail"] + list(extra),
                           runner=fake, sleep=lambda s: None)


def test_umqtt_installed_only_when_missing(capsys):
    fake = FakeBoard(has_umqtt=True)
    assert _run("esp32c3_supermini", fake) == 0
    assert not any(c[-2:] == ["install", "umqtt.simple"] for c in fake.calls)
    fake = FakeBoard(has_umqtt=False)
    assert _run("esp32c3_supermini", fake) == 0
    assert any(c[-2:] == ["install", "umqtt.simple"] for c in fake.calls)


def test_wrong_chip_stops_before_safe_mode(capsys):
    fake = FakeBoard(machine="Generic ESP32 module with ESP32")
    assert _run("esp32c3_supermini", fake) == 1
    assert len(fake.calls) == 1                        # only the read-only probe ran
    assert "for esp32c3" in capsys.readouterr().err


def test_real_run_follows_the_dry_run(capsys):
    rc, lines, _ = _dry(capsys, "--board", "esp32s3_devkitc1")
    fake = FakeBoard(machine="ESP32S3 module with ESP32S3")
    assert _run("esp32s3_devkitc1", fake) == 0
    ran = [[os.path.basename(c[0])] + c[1:] for c in fake.calls]
    printed = []
    for ln in lines:
        if ln.startswith("#"):
            continue
        first = ln.split(" || ")[0]
        printed.append(deploy.shlex.split(first))
    assert ran == printed


def test_compiled_tree_loads_under_micropython(tmp_path):
    """The .mpy files the deploy makes are real bytecode the MicroPython VM loads."""
    mpyc = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not (os.path.exists(mpyc) and os.path.exists(mp)):
        pytest.skip("mpy-cross / micropython not in the venv")
    # the whole pure core (config imports its neighbours) plus the pieces the check imports
    core = sorted("firmware/core/" + f for f in os.listdir(os.path.join(ROOT, "firmware", "core"))
                  if f.endswith(".py"))
    for src in ["firmware/__init__.py", "firmware/hal/__init__.py", "firmware/hal/esp32_button.py"] + core:
        dst = tmp_path / (src[:-3] + ".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpyc, "-O0", "-o", str(dst), os.path.join(ROOT, src)], check=True)
    out = subprocess.run([mp, "-c", "import firmware.core.board as b, firmware.hal.esp32_button as k;"
                          "print(b.__file__, k.PressDetector(30, 1500).update(0, 1))"],
                         cwd=str(tmp_path), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "board.mpy None" in out.stdout


def test_every_firmware_module_compiles_with_mpy_cross(tmp_path):
    """What the deploy does to each module, done to all of them (host-only ones too): a syntax
    MicroPython lacks fails here, not on the bedside box."""
    mpyc = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.path.exists(mpyc):
        pytest.skip("mpy-cross not in the venv")
    failed = []
    n = 0
    for base, _, files in os.walk(os.path.join(ROOT, "firmware")):
        for f in files:
            if f.endswith(".py"):
                n += 1
                p = subprocess.run([mpyc, "-O0", "-o", str(tmp_path / "m.mpy"), os.path.join(base, f)],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    failed.append(p.stderr.strip())
    assert n > 10
    assert failed == []


# --- memory check (issue 16) ---
# A plain ESP32 (WROOM-32, stock MicroPython 1.28, radios off): MicroPython starts with a 56 KiB heap and
# ESP-IDF has ~110 KiB free that the heap may grow into, less what Wi-Fi, BLE and TLS take.
PLAIN_ESP32 = dict(machine="Generic ESP32 module with ESP32", heap=57344 + 1024, idf_free=110 * 1024)


def _written(fake):
    """Commands that change the board (anything but the read-only probes)."""
    return [c for c in fake.calls if c[-1] not in (deploy.PROBE, deploy.MEM_PROBE)]


def test_plain_esp32_with_stock_firmware_is_refused_before_anything_is_written(capsys):
    fake = FakeBoard(**PLAIN_ESP32)
    assert _run("esp32_devkitc", fake) == 1
    assert _written(fake) == []                        # no safe-mode flag, no mip, no copy
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if "KiB" in ln][0]
    assert "needs %d KiB" % deploy.NEED_KIB["stock"] in line and "nothing was written" in line
    assert "FROZEN_MANIFEST=" in line and "firmware/manifest.py" in line     # the next step
    assert "esp32s3_devkitc1_n8r8" in line


def test_board_with_nightstand_frozen_in_gets_configs_but_no_mpy_firmware(capsys):
    fake = FakeBoard(frozen=True, **PLAIN_ESP32)
    assert _run("esp32_devkitc", fake) == 0
    flat = [" ".join(c[1:]) for c in fake.calls]
    assert not any("mip install" in c for c in flat)
    assert not any("mpy-cross" in c[0] for c in fake.calls)
    assert not any(c.endswith("cp -r build/deploy/esp32_devkitc/firmware :") for c in flat)
    # an old /firmware on the filesystem would shadow the frozen one: removed; the configs still go
    assert any(c.endswith("rm -r :firmware") for c in flat)
    assert any(c.endswith("cp board_configs/esp32_devkitc.json :board.json") for c in flat)
    assert "Nightstand frozen in" in capsys.readouterr().out


def test_a_config_that_polls_the_phone_asks_the_heap_the_phone_needs(capsys, tmp_path):
    # A plain board with Nightstand frozen in whose heap lies between the two needs: it takes a
    # radio-only config, but a gateway that also polls the phone needs more (docs/boards.md): refused,
    # nothing written.
    have = (deploy.NEED_KIB["frozen"] + deploy.NEED_WITH_SOURCE_KIB["frozen"]) // 2
    board = dict(PLAIN_ESP32, heap=56 * 1024, idf_free=(have - 56 + deploy.RADIO_RESERVE_KIB) * 1024)
    radio = {"kind": "broadcast", "allow_plain": True}
    for sources, rc in (([radio], 0), ([radio, {"kind": "phone", "host": "127.0.0.1"}], 1)):
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps({"sources": sources}))
        fake = FakeBoard(frozen=True, **board)
        assert _run("esp32_devkitc", fake, "--config", str(cfg)) == rc
        std = capsys.readouterr()
        if rc == 0:
            assert "has Nightstand frozen in (needs %d KiB): fits" % deploy.NEED_KIB["frozen"] in std.out
            continue
        assert _written(fake) == []
        line = [ln for ln in std.err.splitlines() if "KiB" in ln][0]
        assert "offers %d KiB" % have in line
        assert "phone or Nightscout source needs %d KiB" % deploy.NEED_WITH_SOURCE_KIB["frozen"] in line
        assert "nothing was written" in line and "esp32s3_devkitc1_n8r8" in line


def test_a_config_whose_radio_is_a_dexcom_g6_or_cgms_asks_what_that_central_needs(capsys, tmp_path):
    # The G6 and CGMS centrals need more heap than the broadcast radio under a crowded sky (docs/boards.md):
    # a frozen-in board that takes a broadcast config is refused for them, in one sentence, nothing written;
    # a G6 beside the phone asks the larger of the two.
    g6 = {"kind": "dexcom_g6", "transmitter_id": "8G1234"}
    cgms = {"kind": "cgms", "address": "C0:11:22:33:44:55"}
    phone = {"kind": "phone", "host": "127.0.0.1"}
    for sources, need in (([g6], deploy.NEED_CENTRAL_KIB["dexcom_g6"]["frozen"]),
                          ([cgms], deploy.NEED_CENTRAL_KIB["cgms"]["frozen"]),
                          ([g6, phone], max(deploy.NEED_CENTRAL_KIB["dexcom_g6"]["frozen"],
                                            deploy.NEED_WITH_SOURCE_KIB["frozen"]))):
        assert need > deploy.NEED_KIB["frozen"]
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps({"sources": sources}))
        for have, rc in ((need - 4, 1), (need, 0)):
            board = dict(PLAIN_ESP32, heap=56 * 1024, idf_free=(have - 56 + deploy.RADIO_RESERVE_KIB) * 1024)
            fake = FakeBoard(frozen=True, **board)
            assert _run("esp32_devkitc", fake, "--config", str(cfg)) == rc, (sources, have)
            std = capsys.readouterr()
            if rc == 0:
                assert "G6 or CGMS sensor " in std.out and "needs %d KiB): fits" % need in std.out, std.out
                continue
            assert _written(fake) == []
            line = [ln for ln in std.err.splitlines() if "KiB" in ln][0]
            assert "offers %d KiB" % have in line and "G6 or CGMS sensor " in line, line
            assert "needs %d KiB" % need in line and "nothing was written" in line, line


def test_psram_board_gets_the_mpy_firmware(capsys):
    fake = FakeBoard(machine="ESP32S3 module with ESP32S3")
    assert _run("esp32s3_devkitc1_n8r8", fake) == 0
    flat = [" ".join(c[1:]) for c in fake.calls]
    assert any(c.endswith("cp -r build/deploy/esp32s3_devkitc1_n8r8/firmware :") for c in flat)
    assert "has PSRAM" in capsys.readouterr().out


def test_psram_board_running_firmware_without_psram_support_is_refused(capsys):
    fake = FakeBoard(machine="ESP32S3 module with ESP32S3", heap=100 * 1024, idf_free=60 * 1024)
    assert _run("esp32s3_devkitc1_n8r8", fake) == 1
    assert _written(fake) == []
    assert "SPIRAM firmware" in capsys.readouterr().err


@pytest.mark.parametrize("board", BOARDS)
def test_dry_run_states_the_memory_check(board, capsys):
    rc, lines, _ = _dry(capsys, "--board", board, "--no-config")
    assert rc == 0
    note = [ln for ln in lines if ln.startswith("# memory check")]
    assert len(note) == 1
    mem = json.load(open(os.path.join(ROOT, "board_configs", board + ".json")))["memory"]
    assert "class " + mem["class"] in note[0]
    assert "%d KiB" % deploy.NEED_KIB["stock"] in note[0] and "%d KiB" % deploy.NEED_KIB["frozen"] in note[0]
    # the check comes before the first command that writes to the board
    assert lines.index(note[0]) < lines.index(MP + "exec 'open(\"safe_mode\", \"w\").close()'")


def test_board_config_without_memory_class_is_refused(capsys, tmp_path, monkeypatch):
    raw = json.load(open(os.path.join(ROOT, "board_configs", "esp32_devkitc.json")))
    del raw["memory"]
    d = tmp_path / "board_configs"
    d.mkdir()
    (d / "mine.json").write_text(json.dumps(raw))
    monkeypatch.setattr(deploy, "ROOT", str(tmp_path))
    rc, lines, err = _dry(capsys, "--board", "mine", "--no-config")
    assert rc == 1 and lines == []
    assert "memory" in err and "psram" in err and "plain" in err


_FAKE_MPREMOTE = """#!%s
# A plain ESP32 on stock MicroPython 1.28, as mpremote would relay it: logs every command, answers the
# two read-only probes, and accepts anything else (which the test then says must not have happened).
import sys
with open(%r, "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
code = sys.argv[-1]
if code.startswith("import sys; print(sys.implementation)"):
    print("(name='micropython', version=(1, 28, 0, ''), _machine='Generic ESP32 module with ESP32', "
          "_mpy=%d, _build='ESP32_GENERIC')")
elif "NSMEM" in code:
    print("NSMEM 58368 112640 0")
"""


def test_make_deploy_refuses_a_plain_esp32_through_a_fake_mpremote(tmp_path):
    """The whole tool as a maker runs it, against a fake mpremote reporting a plain ESP32's heap."""
    log = tmp_path / "mpremote.log"
    fake = tmp_path / "mpremote"
    mpy = 6 | (3 << 8)
    fake.write_text(_FAKE_MPREMOTE % (sys.executable, str(log), mpy))
    fake.chmod(0o755)
    mpyc = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.path.exists(mpyc):
        pytest.skip("mpy-cross not in the venv")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), "--port", "/dev/ttyFAKE0",
                        "--board", "esp32_devkitc", "--no-config", "--no-tail", "--mpremote", str(fake),
                        "--mpy-cross", mpyc], capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    first = [ln for ln in p.stderr.splitlines() if ln.startswith("deploy: ")][0]
    assert first.startswith("deploy: this board has no PSRAM and offers 87 KiB") and "nothing was written" in first
    assert "firmware/manifest.py" in first            # the next step: frozen firmware (or a PSRAM board)
    ran = log.read_text().splitlines()
    assert len(ran) == 2 and "sys.implementation" in ran[0] and "NSMEM" in ran[1]   # read-only probes only
