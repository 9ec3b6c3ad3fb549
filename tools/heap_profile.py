#!/usr/bin/env python3
"""Where the heap goes (issue 8's soak target): run it, read the figures.

    python tools/heap_profile.py [--heap 256wK] [--runtime] [--days 1] [--noise 200] [--json FILE]

1. Import cost from the .mpy tree as deployed (tools/soak.py's tree, mpy-cross -O0), in the order the
   host board boots (firmware.hal.host, then firmware.shell.app, as main.py does): a first process
   records the dependency order, a second imports the modules leaves-first, one at a time, so each
   figure is what that module alone keeps allocated after gc.collect() (its bytecode, constants,
   function and class objects, module dict). The interned qstrs (names and strings) are counted apart:
   MicroPython keeps them in pools that grow by doubling, so they land on whichever module tipped a pool.
   "host stand-in" marks code that exists only on the host (the virtual BLE controller, host board);
   aioble (core, central, security: what a broadcast gateway loads) is the real one from .deps/lib, as
   tools/install_deps.py installs it (.mpy, like mip on a board).
2. --romfs: the same imports from a ROMFS image (`mpremote romfs build`, as a board with ROMFS in its
   firmware would mount at /rom), against the same imports from files. MicroPython runs .mpy bytecode and
   strings from a ROMFS in place, so only the rest (function and class objects, raw-code records, module
   dicts, qstr records) lands in the heap. The unix port cannot map a file outside its heap (no
   vfs.rom_ioctl, no ffi), so the image is read into a bytes object here and reported apart: on a board
   it sits in flash.
3. --runtime: one soak run (tools/soak.py) with NIGHTSTAND_HEAP_TRACE=1: the host board prints
   micropython.mem_info(1) every time the heap free after gc.collect() reaches a new low. The block map
   is summarised by block kind (T tuple, L list, D dict, S str/bytes, B bytecode function, M module,
   h anything else); the first dump (just after boot) against the last (the lowest) is the working set
   that comes and goes.
All sizes are bytes of this 64-bit unix port (objects are twice their 32-bit size; bytecode and
strings are not), measured in one process each. Heap sizes are -X heapsize (64wK = 128 KiB here).
--build frozen32 / plain32 takes the import costs (and --runtime) on the 32-bit builds instead (tools/soak.py
--build; heap in plain K, e.g. --heap 256K): frozen32 imports everything, the virtual hardware too, from
its frozen modules, so only their objects are counted, as on a board with Nightstand frozen in.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, ROOT)

import soak  # noqa: E402

from deploy import HOST_ONLY as _HOST_FILES  # noqa: E402  (the modules that never go to a board)

# ... and the virtual hardware the host board runs on (tools/virtual_hw: bluetooth is the BLE controller;
# machine, neopixel, network and socket are C modules in a board's firmware, with next to nothing in the
# heap; ntptime is not here: a board's firmware has it as a frozen Python module, heap and all)
VIRTUAL_HW = ("bluetooth", "machine", "neopixel", "network", "socket")
HOST_ONLY = tuple(p[:-3].replace("/", ".") for p in _HOST_FILES) + VIRTUAL_HW
# What a host gateway with a broadcast sensor loads by its first reading: the board, the app, the config
# loader (dropped again once the config is loaded: BOOT_ONLY), the sensor decoder, the flash outage
# queue, umqtt (imported by the uplink thread) and the BLE stack the radio task opens (board.ble: the
# low-level bluetooth module, a virtual controller here and NimBLE in a board's firmware, then aioble).
ENTRY = ("firmware.hal.host", "firmware.shell.app", "firmware.shell.config_store",
         "firmware.sensor.open_broadcast", "firmware.shell.counter_store", "firmware.shell.outage_queue",
         "umqtt.simple", "bluetooth", "aioble", "aioble.security")
# Where the libraries are (tools/install_deps.py), then the unix port's frozen asyncio.
MPPATH = os.path.join(ROOT, ".deps", "lib") + ":.frozen"
from firmware.shell.config_store import BOOT_ONLY  # noqa: E402  (the modules the app drops after boot)
# Loaded by the uplink thread on the first spill to flash (or at boot when the file holds records): a
# night with the cloud up never has it. Still imported here, so its cost is shown.
OUTAGE_ONLY = ("firmware.shell.outage_queue",)

# First process: the order modules finish importing (leaves first), through a builtins.__import__ hook.
_ORDER = """
import sys, builtins
sys.path.insert(0, '.')
sys.path.append('tools/virtual_hw')
real = builtins.__import__
done = []
def imp(name, *a):
    new = name not in sys.modules
    m = real(name, *a)
    if new and name in sys.modules and name not in done:
        done.append(name)
    return m
builtins.__import__ = imp
for n in %r:
    __import__(n)
print('ORDER', repr(done))
"""

# Second process: each module alone, leaves first; qstr pool bytes apart.
_COST = """
import gc, sys, micropython
sys.path.insert(0, '.')
sys.path.append('tools/virtual_hw')
gc.collect()
start = gc.mem_alloc()
for n in %r:
    gc.collect()
    b = gc.mem_alloc()
    __import__(n)
    gc.collect()
    print('MOD', n, gc.mem_alloc() - b)
    micropython.qstr_info()
gc.collect()
print('TOTAL', gc.mem_alloc() - start, gc.mem_free())
micropython.qstr_info()
"""


def import_costs(heap="256wK", entry=ENTRY, build="pip64"):
    """Per-module heap kept after import. build: pip64 (the venv's 64-bit port, .mpy tree), plain32 (the
    32-bit port, .mpy tree from its own mpy-cross) or frozen32 (everything, the virtual hardware too, from
    the frozen modules: only their objects are in the heap, as on a board with Nightstand frozen in)."""
    import bench_mpy
    binary, root, env = soak.runtime(build)
    mp = binary or bench_mpy._venv_tool("micropython")
    env = dict(os.environ, MICROPYPATH=env.get("NIGHTSTAND_MICROPYPATH", MPPATH))
    p = subprocess.run([mp, "-X", "heapsize=" + heap, "-c", _ORDER % (list(entry),)], cwd=root,
                       capture_output=True, text=True, timeout=60, env=env)
    order = None
    for line in p.stdout.splitlines():
        if line.startswith("ORDER "):
            order = eval(line[6:], {})  # our own repr of a list of str
    if order is None:
        raise RuntimeError("import order probe failed: %s" % (p.stderr.strip() or p.stdout.strip()))
    order = [n for n in order if n.startswith(("firmware", "umqtt", "aioble")) or n in ("asyncio",) + VIRTUAL_HW]
    order = [n for n in order if n != "umqtt"]  # the package's empty __init__
    p = subprocess.run([mp, "-X", "heapsize=" + heap, "-c", _COST % (order,)], cwd=root,
                       capture_output=True, text=True, timeout=60, env=env)
    per, total, free, qstr, qprev = [], None, None, None, 0
    for line in p.stdout.splitlines():
        if line.startswith("MOD "):
            _, n, c = line.split()
            per.append([n, int(c), 0])
        elif line.startswith("qstr pool:") and per and total is None:
            q = int(re.search(r"n_total_bytes=(\d+)", line).group(1))
            per[-1][2], qprev = q - qprev, q
        elif line.startswith("TOTAL "):
            total, free = (int(x) for x in line.split()[1:])
        elif line.startswith("qstr pool:"):
            qstr = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
    if total is None:
        raise RuntimeError("import cost probe failed: %s" % (p.stderr.strip() or p.stdout.strip()))
    return {"order": order, "per_module": per, "total": total, "free": free, "qstr": qstr, "heap": heap,
            "build": build}


# Same imports, from a ROMFS image read into the heap (reported apart) or from the .mpy files.
_ROM = """
import gc, sys, vfs
gc.collect()
a0 = gc.mem_alloc()
img = %r
if img:
    with open(img, 'rb') as f:
        img = f.read()
    vfs.mount(vfs.VfsRom(img), '/rom')
    sys.path.insert(0, '/rom')
else:
    sys.path.insert(0, '.')
gc.collect()
a1 = gc.mem_alloc()
for n in %r:
    __import__(n)
gc.collect()
print('ROMFS', a1 - a0, gc.mem_alloc() - a1, sys.modules[%r].__file__)
"""


def romfs_costs(heap="256wK", entry=ENTRY):
    """{"files": B, "romfs": B, "image": B}: what importing `entry` keeps in the heap from files and from
    a ROMFS image of the same .mpy tree (image bytes apart)."""
    import tempfile
    import bench_mpy
    root = soak.mpy_tree()
    mp = bench_mpy._venv_tool("micropython")
    out = {}
    with tempfile.TemporaryDirectory(prefix="nightstand-romfs-") as tmp:
        image = os.path.join(tmp, "firmware.romfs")
        subprocess.run([bench_mpy._venv_tool("mpremote"), "romfs", "--no-mpy", "--output", image, "build", root],
                       check=True, capture_output=True, timeout=120)
        empty = os.path.join(tmp, "cwd")  # nothing importable here: every module must come from /rom
        os.mkdir(empty)
        for kind, img, cwd in (("files", "", root), ("romfs", image, empty)):
            p = subprocess.run([mp, "-X", "heapsize=" + heap, "-c", _ROM % (img, list(entry), entry[-1])],
                               cwd=cwd, capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, MICROPYPATH=MPPATH))
            line = [x for x in p.stdout.splitlines() if x.startswith("ROMFS ")]
            if not line:
                raise RuntimeError("romfs probe (%s) failed: %s" % (kind, p.stderr.strip() or p.stdout.strip()))
            _, image_b, kept, where = line[0].split()
            if kind == "romfs" and not where.startswith("/rom/"):
                raise RuntimeError("romfs probe imported %s from %s, not the image" % (entry[-1], where))
            out[kind] = int(kept)
            if kind == "romfs":
                out["image"] = int(image_b)
    return out


def parse_dumps(text, block=32):
    """[(header, Counter kind -> bytes, Counter kind -> count)] from the HEAPTRACE dumps in text."""
    text = text.replace("firmware: ", "")
    out = []
    for d in text.split("HEAPTRACE begin")[1:]:
        head, body = d.split("\n", 1)
        s = ""
        for line in body.split("HEAPTRACE end")[0].splitlines():
            m = re.match(r"^([0-9a-f]{8}): (.*)$", line)
            if m:
                off = int(m.group(1), 16) // block
                if len(s) < off:
                    s += "." * (off - len(s))
                s += m.group(2)
        size, count = collections.Counter(), collections.Counter()
        for obj in re.findall(r"[^.=]=*", s):
            size[obj[0]] += len(obj) * block
            count[obj[0]] += 1
        out.append((head.strip(), size, count))
    return out


def runtime(heap="256wK", days=1, noise=200, build="pip64"):
    r = soak.soak(days=days, heap=heap, noise=noise, env={"NIGHTSTAND_HEAP_TRACE": "1"}, build=build)
    dumps = parse_dumps(r.pop("stderr"), block=32 if build == "pip64" else 16)  # GC block: 4 words
    return r, dumps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--heap", default="256wK")
    ap.add_argument("--runtime", action="store_true", help="also a soak run with heap dumps")
    ap.add_argument("--romfs", action="store_true", help="also the same imports from a ROMFS image")
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--runtime-heap", help="heap of the --runtime soak (default: --heap)")
    ap.add_argument("--noise", type=int, default=200)
    ap.add_argument("--json")
    ap.add_argument("--build", choices=soak.BUILDS, default="pip64",
                    help="the import costs and --runtime under this build (tools/soak.py --build; 32-bit: heap in "
                    "plain K, e.g. --heap 256K)")
    a = ap.parse_args(argv)
    c = import_costs(a.heap, build=a.build)
    print("import cost from %s, leaves first (bytes kept after gc.collect(), %s; qstr B is\n"
          "the part that went to the interned-name pools, which grow by doubling: a jump lands on one module):" % (
              "the frozen modules" if a.build == "frozen32" else ".mpy",
              "64-bit unix port" if a.build == "pip64" else "32-bit unix port"))
    print("  %-36s %7s %7s" % ("module", "heap B", "qstr B"))
    for n, b, qb in sorted(c["per_module"], key=lambda x: -x[1]):
        print("  %-36s %7d %7d%s" % (n, b, qb, "  host stand-in" if n in HOST_ONLY else
                                     "  boot only (dropped after the config loads)" if n in BOOT_ONLY else
                                     "  outage only (loaded on the first spill to flash)" if n in OUTAGE_ONLY else ""))
    host = sum(b for n, b, _ in c["per_module"] if n in HOST_ONLY)
    boot = sum(b for n, b, _ in c["per_module"] if n in BOOT_ONLY)
    outage = sum(b for n, b, _ in c["per_module"] if n in OUTAGE_ONLY)
    q = c["qstr"] or {}
    print("  total %d B (host stand-in %d B, boot only %d B, outage only %d B); qstr pools %s B for %s names "
          "(%s B of text); free after import %d B at %s" % (c["total"], host, boot, outage, q.get("n_total_bytes"),
                                                            q.get("n_qstr"), q.get("n_str_data_bytes"), c["free"],
                                                            a.heap))
    result = {"imports": c}
    if a.romfs:
        r = romfs_costs(a.heap)
        print("the same imports from a ROMFS image (bytecode and strings used in place): %d B kept in the heap "
              "against %d B from files (%.0f %%); the image itself, %d B, is in flash on a board (read into "
              "this port's heap for the probe and not counted)" % (r["romfs"], r["files"],
                                                                   100.0 * r["romfs"] / r["files"], r["image"]))
        result["romfs"] = r
    if a.runtime:
        r, dumps = runtime(a.runtime_heap or a.heap, a.days, a.noise, a.build)
        print("runtime, %d day(s), --noise %d, %s: heap_free per day (best, worst, samples) %s; "
              "queue depth max %s; MemoryError %s" % (a.days, a.noise, a.runtime_heap or a.heap, r["per_day"],
                                                      r["queue_depth_max"], r["memory_error"]))
        if dumps:
            for label, (head, size, count) in (("first low", dumps[0]), ("lowest", dumps[-1])):
                print("  %-9s %s: used %d B: %s" % (label, head, sum(size.values()), " ".join(
                    "%s %d/%d" % (k, size[k], count[k]) for k in sorted(size, key=lambda k: -size[k]))))
            grew = dumps[-1][1] - dumps[0][1]
            print("  grew between them: %s" % " ".join("%s +%d" % (k, v) for k, v in grew.most_common()))
        result["runtime"] = r
        result["dumps"] = [(h, dict(s), dict(n)) for h, s, n in dumps]
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
