"""Type-check the ESP32 adapter (and boot.py/main.py when present) against micropython-esp32-stubs.

mypy sees MicroPython's own API: the stubs' `stdlib/` as its typeshed (custom_typeshed_dir), and the
ESP32 port modules (machine, network, neopixel, ntptime, ...) through a generated stub directory on
MYPYPATH. mypy refuses site-packages itself on MYPYPATH, so build/typecheck/stubs holds symlinks to
just the files the micropython-esp32-stubs distribution installs.

Usage: python tools/typecheck.py [FILE ...]     (default: firmware/hal/esp32*.py, boot.py, main.py)
Exit status is mypy's: non-zero when a call does not exist on the ESP32 or has the wrong arguments.
"""
import glob
import os
import subprocess
import sys
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "build", "typecheck")
STUBS_DIST = "micropython-esp32-stubs"
# The stdlib stubs need this shared helper package, which ships with the stdlib stubs.
EXTRA = ("_mpy_shed",)
# Not in the stubs: aioble is installed on the board by `mip`, so its API is checked by tests instead.
NO_STUBS = ("aioble", "aioble.*")


def default_targets():
    files = sorted(glob.glob(os.path.join(ROOT, "firmware", "hal", "esp32*.py")))
    for name in ("boot.py", "main.py"):
        for where in (ROOT, os.path.join(ROOT, "firmware")):
            p = os.path.join(where, name)
            if os.path.exists(p):
                files.append(p)
    return files


def stub_root():
    """site-packages directory holding the ESP32 stubs (and the MicroPython stdlib stubs)."""
    dist = metadata.distribution(STUBS_DIST)
    return str(dist.locate_file(""))


def _top_names():
    names = set()
    for f in metadata.distribution(STUBS_DIST).files or ():
        top = f.parts[0]
        if top.endswith(".dist-info") or not (top.endswith(".pyi") or len(f.parts) > 1):
            continue
        names.add(top)
    return sorted(names)


def prepare():
    """Create build/typecheck/{stubs,mypy.ini}; return the ini path."""
    site = stub_root()
    if not os.path.exists(os.path.join(site, "stdlib", "VERSIONS")):
        raise SystemExit("micropython-stdlib-stubs missing: pip install micropython-esp32-stubs")
    stubs = os.path.join(WORK, "stubs")
    os.makedirs(stubs, exist_ok=True)
    modules = []
    for name in list(_top_names()) + list(EXTRA):
        src = os.path.join(site, name)
        dst = os.path.join(stubs, name)
        if not os.path.lexists(dst):
            os.symlink(src, dst)
        modules.append(name[:-4] if name.endswith(".pyi") else name)
    # Errors inside the stubs themselves are the stub authors' business, not ours.
    quiet = ",".join(sorted(set(m for m in modules) | {m + ".*" for m in modules}))
    ini = os.path.join(WORK, "mypy.ini")
    with open(ini, "w") as f:
        f.write("[mypy]\n")
        f.write("custom_typeshed_dir = %s\n" % site)
        f.write("mypy_path = %s:%s\n" % (stubs, ROOT))
        f.write("python_version = 3.11\n")
        f.write("check_untyped_defs = True\n")
        f.write("warn_unused_ignores = False\n")
        f.write("cache_dir = %s\n" % os.path.join(WORK, "cache"))
        f.write("explicit_package_bases = True\n")
        f.write("\n[mypy-%s]\nignore_errors = True\n" % quiet)
        f.write("\n[mypy-%s]\nignore_missing_imports = True\n" % ",".join(NO_STUBS))
        # The pure core and the shell are checked by their own tests on two interpreters; here they
        # are followed only for the types the adapter uses.
        f.write("\n[mypy-firmware.core.*,firmware.shell.*,firmware.sensor.*]\n"
                "follow_imports = silent\n")
    return ini


def run(files=None):
    """(exit status, mypy output)."""
    files = list(files) if files else default_targets()
    ini = prepare()
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    mypy = os.path.join(os.path.dirname(sys.executable), "mypy")
    cmd = [mypy if os.path.exists(mypy) else "mypy", "--config-file", ini] + files
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def main(argv):
    files = argv or default_targets()
    rc, out = run(files)
    sys.stdout.write(out)
    if rc == 0:
        print("typecheck: %d file(s) match the ESP32 MicroPython API" % len(files))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
