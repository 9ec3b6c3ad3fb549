#!/usr/bin/env python3
"""Build MicroPython v1.28.0's mpy-cross and two 32-bit unix ports (issue 16), cached outside the repo.

    python tools/build_ports.py [--plain] [--frozen] [--print]     (default: both; --print: the paths)

A 32-bit unix port keeps objects at their ESP32 size (the pip unix port is 64-bit and doubles them), so
heap figures taken on it are a board's figures. Two builds:
  plain   the stock unix port, as a stock board runs Nightstand: firmware as .mpy files compiled by the
          matching mpy-cross (also built here).
  frozen  the same port with tools/manifest_host.py frozen in: firmware/manifest.py (what a maker freezes
          into ESP32 firmware) plus the host-only modules the simulator needs.
Both with MICROPY_FORCE_32BIT=1 MICROPY_PY_BTREE=0 MICROPY_PY_FFI=0 (the source export has no
berkeley-db or libffi; see ../shared/third_party/micropython/SNAPSHOT.md). Needs gcc-multilib.

Source: $NIGHTSTAND_MICROPYTHON_SRC, else ../shared/third_party/micropython (read-only: it is copied into
the cache once), else a `git clone --depth 1 --branch v1.28.0` of MicroPython with its two submodules.
Cache: $NIGHTSTAND_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/nightstand/micropython-v1.28.0/. The frozen
build (one per checkout) is keyed by a hash of the manifests and every file they freeze; it is rebuilt only
when that changes.
"""
import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "v1.28.0"
REPO = "https://github.com/micropython/micropython.git"
SHARED_SRC = os.path.join(os.path.dirname(ROOT), "shared", "third_party", "micropython")
SHARED_LIB = os.path.join(os.path.dirname(ROOT), "shared", "third_party", "micropython-lib")
FIRMWARE_MANIFEST = os.path.join(ROOT, "firmware", "manifest.py")
HOST_MANIFEST = os.path.join(ROOT, "tools", "manifest_host.py")
# The source export has no berkeley-db or libffi submodule; 32-bit keeps object sizes those of an ESP32.
FLAGS = ("VARIANT=standard", "MICROPY_FORCE_32BIT=1", "MICROPY_PY_BTREE=0", "MICROPY_PY_FFI=0")
JOBS = "-j2"


class BuildError(Exception):
    """One line: what failed and what to do."""


def log(msg):
    print("build_ports: " + msg, file=sys.stderr, flush=True)


def cache_dir():
    base = os.environ.get("NIGHTSTAND_CACHE")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "nightstand")
    return os.path.join(base, "micropython-" + TAG)


def micropython_lib():
    """The micropython-lib with umqtt.simple 1.8.0 and aioble 0.6.2, or None (the manifest then takes
    MicroPython's own lib/micropython-lib)."""
    p = os.environ.get("NIGHTSTAND_MICROPYTHON_LIB") or SHARED_LIB
    return p if os.path.isdir(p) else None


def _run(argv, cwd=None, what=None):
    p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-12:]
        raise BuildError("%s failed (%s):\n%s" % (what or argv[0], " ".join(argv), "\n".join(tail)))
    return p


def source(cache):
    """A writable MicroPython v1.28.0 tree in the cache (copied from the shared export or cloned)."""
    dest = os.path.join(cache, "src")
    stamp = os.path.join(dest, ".nightstand-source")
    origin = os.environ.get("NIGHTSTAND_MICROPYTHON_SRC") or (SHARED_SRC if os.path.isdir(SHARED_SRC) else None)
    want = "copy of " + origin if origin else "git clone %s %s" % (REPO, TAG)
    if os.path.exists(stamp) and open(stamp).read() == want:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    if origin:
        log("copying MicroPython %s from %s into %s" % (TAG, origin, dest))
        shutil.copytree(origin, dest, symlinks=True)
        for base, _dirs, files in os.walk(dest):    # the shared export is read-only: the copy may not be
            os.chmod(base, 0o755)
            for f in files:
                p = os.path.join(base, f)
                if not os.path.islink(p):
                    os.chmod(p, os.stat(p).st_mode | 0o200)
    else:
        log("../shared/third_party/micropython is absent: cloning MicroPython %s from %s (needs git and "
            "network) into %s" % (TAG, REPO, dest))
        _run(["git", "clone", "--quiet", "--depth", "1", "--branch", TAG, REPO, dest], what="git clone")
        _run(["git", "submodule", "update", "--init", "--depth", "1", "lib/mbedtls", "lib/micropython-lib"],
             cwd=dest, what="git submodule update")
    with open(stamp, "w") as f:
        f.write(want)
    return dest


def _check_multilib():
    p = subprocess.run(["gcc", "-m32", "-x", "c", "-o", os.devnull, "-"], input="int main(void){return 0;}",
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise BuildError("gcc cannot build 32-bit programs here: install gcc-multilib "
                         "(sudo apt-get install -y gcc-multilib) and run this again")


def frozen_inputs():
    """Every file whose content changes the frozen build: both manifests and what they freeze."""
    files = [FIRMWARE_MANIFEST, HOST_MANIFEST, os.path.abspath(__file__)]
    for top in (os.path.join(ROOT, "firmware"),):
        for base, dirs, names in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            files += [os.path.join(base, n) for n in sorted(names) if n.endswith(".py")]
    lib = micropython_lib()
    if lib:
        for sub in ("bluetooth/aioble/aioble", "umqtt.simple/umqtt"):
            d = os.path.join(lib, "micropython", sub)
            if os.path.isdir(d):
                files += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".py")]
    return files


def frozen_key():
    h = hashlib.sha256(" ".join(FLAGS).encode())
    for path in frozen_inputs():
        h.update(os.path.relpath(path, os.path.dirname(ROOT)).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _make_port(src, build, extra, cross):
    t0 = time.monotonic()
    _run(["make", "-C", os.path.join(src, "ports", "unix"), JOBS, "BUILD=" + build, "MPY_CROSS=" + cross]
         + list(FLAGS) + list(extra), what="make (unix port, %s)" % os.path.basename(build))
    return time.monotonic() - t0


class Builds:
    """Paths of the cached builds; build() makes whatever is missing or stale."""

    def __init__(self, cache=None):
        self.cache = cache or cache_dir()
        self.mpy_cross = os.path.join(self.cache, "src", "mpy-cross", "build", "mpy-cross")
        self.plain = os.path.join(self.cache, "build-std32", "micropython")
        # One frozen build per checkout: two clones (or worktrees) freeze different firmware, and sharing
        # one build would have each rebuild it under the other's running tests.
        tree = hashlib.sha256(ROOT.encode()).hexdigest()[:8]
        self.frozen = os.path.join(self.cache, "build-frozen32-" + tree, "micropython")
        self.times = {}

    def _lock(self):
        os.makedirs(self.cache, exist_ok=True)
        f = open(os.path.join(self.cache, ".lock"), "w")
        fcntl.flock(f, fcntl.LOCK_EX)      # pytest workers or two make targets: one builder at a time
        return f

    def build(self, plain=True, frozen=True):
        with self._lock():
            src = source(self.cache)
            if not os.path.exists(self.mpy_cross):
                _check_multilib()
                t0 = time.monotonic()
                _run(["make", "-C", os.path.join(src, "mpy-cross"), JOBS], what="make (mpy-cross)")
                self.times["mpy-cross"] = round(time.monotonic() - t0, 1)
                log("built mpy-cross in %.0f s" % self.times["mpy-cross"])
            if plain and not os.path.exists(self.plain):
                _check_multilib()
                self.times["plain"] = round(_make_port(src, os.path.dirname(self.plain), (), self.mpy_cross), 1)
                log("built the plain 32-bit unix port in %.0f s: %s" % (self.times["plain"], self.plain))
            if frozen:
                key = frozen_key()
                stamp = self.frozen + ".key"
                if not (os.path.exists(self.frozen) and os.path.exists(stamp) and open(stamp).read() == key):
                    _check_multilib()
                    extra = ["FROZEN_MANIFEST=" + HOST_MANIFEST]
                    env_lib = micropython_lib()
                    if env_lib:
                        os.environ["NIGHTSTAND_MICROPYTHON_LIB"] = env_lib  # read by firmware/manifest.py
                    if os.path.exists(stamp):
                        os.unlink(stamp)
                    self.times["frozen"] = round(_make_port(src, os.path.dirname(self.frozen), extra,
                                                            self.mpy_cross), 1)
                    with open(stamp, "w") as f:
                        f.write(key)
                    log("built the frozen 32-bit unix port (key %s) in %.0f s: %s" % (
                        key, self.times["frozen"], self.frozen))
        return self


def ensure(plain=True, frozen=True):
    """Builds (cached); raises BuildError with one line to act on."""
    return Builds().build(plain, frozen)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plain", action="store_true", help="only the plain 32-bit port (and mpy-cross)")
    ap.add_argument("--frozen", action="store_true", help="only the frozen 32-bit port (and mpy-cross)")
    ap.add_argument("--print", action="store_true", help="print the binaries' paths")
    a = ap.parse_args(argv)
    both = not (a.plain or a.frozen)
    try:
        b = ensure(plain=both or a.plain, frozen=both or a.frozen)
    except BuildError as e:
        print("build_ports: " + str(e), file=sys.stderr)
        return 1
    if a.print:
        print("mpy-cross %s" % b.mpy_cross)
        if both or a.plain:
            print("plain %s" % b.plain)
        if both or a.frozen:
            print("frozen %s" % b.frozen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
