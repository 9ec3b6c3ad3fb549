#!/usr/bin/env python3
"""Memory on 32-bit builds (issue 16), for `make bench`: does the gateway fit the boards it names?

    python tools/bench_memory.py [--quick] [--json FILE] [--only frozen32,plain32]

For each 32-bit build of MicroPython v1.28.0 (tools/build_ports.py; objects at an ESP32's size):
  frozen32  Nightstand frozen in (firmware/manifest.py), as a maker's own firmware build runs it
  plain32   stock port, firmware as .mpy files from the matching mpy-cross, as `make deploy` puts it on a
            stock board
it measures
  boot      heap in use after `import firmware.shell.app` (gc.collect(); gc.mem_alloc()), and the bytes
            the firmware added to the interpreter's own
  min heap  the smallest -X heapsize (4 KiB steps) that runs a simulated day with --noise 200: every
            reading accepted and delivered, no MemoryError (tools/soak.py bisect)
  + phone   frozen32 only: the same bisect with the phone polled beside the radio sensor (tools/soak.py
            --source phone), the most a family's gateway runs: the HTTP poll's reads are the largest
            blocks it asks of a heap the advert flood has cut up
  crowded   frozen32 only: for the Dexcom G6 and CGMS centrals, the smallest heap that runs one simulated
            hour at --speed 20, where --noise 200 is 20 neighbour adverts a simulated second (what 200
            neighbours send; the day above hears 0.7); faster, the centrals' GATT round trips stall on the
            simulator link. Every reading delivered, no MemoryError, no fault shown
  week      seven simulated days (--quick: two) with --noise 200 at the target heap (frozen32: 48 KiB,
            the issue's target) or at the smallest heap found (plain32), and the growth of the best heap
            free after gc from day 1 to the last day (target <= 1 KiB); faults the box showed, e.g. `heap`
            (under 8 KiB free after a collection, firmware/core/faults.py)
Exit 1 when the frozen build misses its target (a week at 48 KiB, growth <= 1 KiB).
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import soak  # noqa: E402

TARGET_KIB = 48          # the target for the frozen build: a plain ESP32 gives ~56 KiB at start
GROWTH_LIMIT = soak.GROWTH_LIMIT
BUILDS = ("frozen32", "plain32")
# Bisect ranges (KiB), the top one a heap that runs: with the real aioble over the virtual controller a
# day needs 60 KiB frozen and about three times that as .mpy files (2026-12-01, make bench).
RANGES = {"frozen32": (40, 96), "plain32": (128, 256)}
STEP_KIB = 4
# ... with the phone beside the radio sensor: 72 KiB frozen (68 KiB: polls in state `heap`, 2026-12-01).
PHONE_RANGE = (56, 112)
PHONE_ARGS = soak.source_args("broadcast", ("phone",))
# ... an hour under a crowded sky, per central (2026-12-01: the G6 76 KiB, CGMS 68 KiB; tools/deploy.py
# NEED_CENTRAL_KIB). The broadcast radio under the same sky needed what its day needs (60 KiB).
CROWDED = {"dexcom_g6": (64, 88), "cgms": (56, 80)}
CROWDED_HOURS = 1
CROWDED_SPEED = 20

_BOOT = """
import gc, sys
sys.path.insert(0, '.')
gc.collect()
base = gc.mem_alloc()
import firmware.shell.app
gc.collect()
print('BOOT', gc.mem_alloc(), gc.mem_alloc() - base, gc.mem_free(), firmware.shell.app.__file__)
"""


def boot_heap(build):
    """{"in_use": B, "firmware": B, "free": B, "from": path}: heap after importing the app."""
    binary, root, env = soak.runtime(build)
    p = subprocess.run([binary, "-X", "heapsize=256K", "-c", _BOOT], cwd=root, capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, MICROPYPATH=env.get("NIGHTSTAND_MICROPYPATH", ".frozen")))
    line = [x for x in p.stdout.splitlines() if x.startswith("BOOT ")]
    if not line:
        raise RuntimeError("%s: import firmware.shell.app failed: %s" % (build, (p.stderr or p.stdout).strip()[-200:]))
    _, in_use, fw, free, where = line[0].split()
    return {"in_use": int(in_use), "firmware": int(fw), "free": int(free), "from": where}


def host_only_bytes(build):
    """Bytes of heap the host-only code keeps on this build: the host board and the virtual hardware
    (tools/heap_profile.py HOST_ONLY: the BLE controller, machine, neopixel, network, socket), which a
    board has in C or not at all. Their import cost only, measured leaves first; the objects they make
    while running (the controller's connections, the simulator link) are not counted, so a board's need
    estimated with it is an upper bound."""
    import heap_profile
    r = heap_profile.import_costs("256K", heap_profile.ENTRY + ("network",), build)
    return sum(c for n, c, _q in r["per_module"] if n in heap_profile.HOST_ONLY)


def measure(build, quick=False, log=print):
    out = {"build": build, "boot": boot_heap(build), "host_only_B": host_only_bytes(build)}
    b = out["boot"]
    log("  %s: heap in use after import firmware.shell.app %d B (firmware %d B), from %s; host-only code "
        "%d B" % (build, b["in_use"], b["firmware"], b["from"], out["host_only_B"]))
    lo, hi = RANGES[build]
    size, tried = soak.bisect(lo, hi, days=1, step=STEP_KIB, build=build, log=log)
    out["min_heap_kib"], out["bisect"] = size, tried
    if build == "frozen32":
        lo, hi = PHONE_RANGE
        out["min_heap_phone_kib"], _ = soak.bisect(lo, hi, days=1, step=STEP_KIB, build=build, log=log,
                                                   sim_args=PHONE_ARGS)
        out["crowded_kib"] = {}
        for radio, (lo, hi) in CROWDED.items():
            out["crowded_kib"][radio], _ = soak.bisect(lo, hi, days=CROWDED_HOURS / 24.0, speed=CROWDED_SPEED,
                                                       step=STEP_KIB, build=build, log=log,
                                                       sim_args=soak.source_args(radio), faults_fail=True)
    days = 2 if quick else 7
    at = TARGET_KIB if build == "frozen32" else (size or hi)
    r = soak.soak(days, "%dK" % at, build=build)
    out["week"] = {k: r[k] for k in ("days", "heap", "runs", "holds", "growth_bytes", "faults", "per_day",
                                      "heap_free_day1", "heap_free_last_day", "heap_free_min", "readings_sent",
                                      "readings_accepted", "memory_error", "real_s", "low_heap_samples",
                                      "health_samples", "queue_depth_when_low")}
    out["week"]["why"] = None if r["holds"] else soak._why(r)
    log("  %s: %d days at %d KiB: %s, growth %s B, faults %s, lowest heap free %s B" % (
        build, days, at, "holds" if r["holds"] else "does NOT hold (%s)" % soak._why(r), r["growth_bytes"],
        r["faults"] or "none", r["heap_free_min"]))
    return out


def add_rows(tab, res):
    """bench.py's table rows for the results of measure()."""
    for build, r in res.items():
        name = "frozen (32-bit)" if build == "frozen32" else ".mpy files (32-bit)"
        tab.add("mem_%s_boot_B" % build, "heap in use after boot, %s" % name, r["boot"]["in_use"], "B", fmt="%d")
        target = TARGET_KIB if build == "frozen32" else None
        tab.add("mem_%s_min_heap_KiB" % build, "smallest heap for a day --noise 200, %s" % name,
                r["min_heap_kib"], "KiB", target, fmt="%d")
        if r.get("host_only_B") is not None and r["min_heap_kib"]:
            tab.add("mem_%s_board_KiB" % build, "... less the host-only code (%d B): a board needs at most, %s" % (
                r["host_only_B"], name), r["min_heap_kib"] - r["host_only_B"] / 1024.0, "KiB", fmt="%.1f",
                note="the simulator's board and virtual hardware are C or absent on a board")
        if "min_heap_phone_kib" in r:
            tab.add("mem_%s_min_heap_phone_KiB" % build,
                    "smallest heap for a day with the phone polled beside the radio, %s" % name,
                    r["min_heap_phone_kib"], "KiB", fmt="%d", note="tools/soak.py --source phone")
        for radio, kib in sorted((r.get("crowded_kib") or {}).items()):
            tab.add("mem_%s_crowded_%s_KiB" % (build, radio),
                    "smallest heap for an hour under a crowded sky, %s central, %s" % (
                        {"dexcom_g6": "Dexcom G6", "cgms": "CGMS"}[radio], name), kib, "KiB", fmt="%d",
                    note="tools/soak.py --sensor %s --hours %d --speed %d: 20 neighbour adverts a simulated "
                         "second" % (radio, CROWDED_HOURS, CROWDED_SPEED))
        w = r["week"]
        tab.add("mem_%s_week" % build, "%d days at %s, %s" % (w["days"], w["heap"], name),
                "holds" if w["holds"] else "no: " + (w["why"] or "")[:60],
                note="faults shown: %s; %d of %d minutes under 8 KiB free" % (
                    ", ".join(w["faults"]) or "none", w["low_heap_samples"], w["health_samples"]))
        tab.add("mem_%s_growth_B" % build, "heap growth day 1 -> %d at %s, %s" % (w["days"], w["heap"], name),
                w["growth_bytes"], "B", GROWTH_LIMIT if build == "frozen32" else None, fmt="%d")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="two simulated days instead of seven")
    ap.add_argument("--only", default=",".join(BUILDS))
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    res = {}
    for build in a.only.split(","):
        res[build] = measure(build, a.quick)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    fz = res.get("frozen32")
    return 1 if fz and not (fz["week"]["holds"] and (fz["min_heap_kib"] or 999) <= TARGET_KIB) else 0


if __name__ == "__main__":
    sys.exit(main())
