# Issue 16: the portable tests on MicroPython v1.28.0 built 32-bit (objects at an ESP32's size), plain and
# with Nightstand frozen in from firmware/manifest.py, the frozen one proving it runs the frozen firmware.
# tools/build_ports.py builds both (cached outside the repo: the first build takes a few minutes).
# Skipped, with the reason, only where the builds cannot be made; NIGHTSTAND_REQUIRE_PORTS=1 (CI) fails.
import os
import shutil
import subprocess
import sys

import pytest

from host_tests.paths import ROOT, TOOLS

sys.path.insert(0, TOOLS)
import build_ports
import deploy


@pytest.fixture(scope="module")
def builds():
    try:
        return build_ports.ensure()
    except build_ports.BuildError as e:
        if os.environ.get("NIGHTSTAND_REQUIRE_PORTS"):
            pytest.fail("the 32-bit builds are required here: %s" % e)
        pytest.skip("cannot build the 32-bit MicroPython ports here: %s" % e)


def _runner(binary, cwd, env):
    return subprocess.run([binary, "host_tests/mp_runner.py"], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, **env))


def test_portable_tests_pass_on_the_plain_32bit_port(builds):
    p = _runner(builds.plain, ROOT, {"MICROPYPATH": os.path.join(ROOT, ".deps", "lib") + ":.frozen"})
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert " 0 failed" in p.stdout and "FAIL" not in p.stdout


def test_portable_tests_pass_on_the_frozen_32bit_port_from_the_frozen_firmware(builds, tmp_path):
    # Only the tests and their helpers: no firmware/ and no umqtt anywhere on the path, so every firmware
    # module can only come from the frozen modules.
    os.makedirs(str(tmp_path / "host_tests"))
    for name in ("__init__.py", "mp_runner.py"):
        shutil.copy(os.path.join(ROOT, "host_tests", name), str(tmp_path / "host_tests"))
    for sub in ("portable", "vectors"):
        shutil.copytree(os.path.join(ROOT, "host_tests", sub), str(tmp_path / "host_tests" / sub))
    shutil.copytree(os.path.join(ROOT, "tools", "simlib"), str(tmp_path / "tools" / "simlib"))
    env = {"MICROPYPATH": ".frozen"}
    # ... and the real aioble and the virtual hardware under it (tools/manifest_host.py), not .deps/lib or
    # tools/virtual_hw from the tree: what the frozen soak measures must be what is frozen
    mods = ("firmware.shell.app", "firmware.frozen_marker", "umqtt.simple", "aioble", "aioble.central",
            "aioble.security", "bluetooth", "machine", "neopixel", "socket")
    where = subprocess.run([builds.frozen, "-c", "import sys\nfor n in %r:\n __import__(n)\n "
                            "print(sys.modules[n].__file__)" % (mods,)],
                           cwd=str(tmp_path), capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, **env))
    # frozen modules report their path inside the firmware image, relative and without a folder of ours
    assert where.stdout.split() == [
        "firmware/shell/app.py", "firmware/frozen_marker.py", "umqtt/simple.py", "aioble/__init__.py",
        "aioble/central.py", "aioble/security.py", "bluetooth.py", "machine.py", "neopixel.py",
        "socket.py"], where.stderr
    assert not os.path.exists(str(tmp_path / "firmware"))
    p = _runner(builds.frozen, str(tmp_path), env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert " 0 failed" in p.stdout and "FAIL" not in p.stdout


def _manifest_files(src, board_base, port_dir, manifest=None):
    """Target paths the firmware manifest freezes, as MicroPython's own manifest tool resolves it."""
    sys.path.insert(0, os.path.join(src, "tools"))
    try:
        import manifestfile
    finally:
        sys.path.pop(0)
    m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {
        "MPY_DIR": src, "MPY_LIB_DIR": os.path.join(src, "lib", "micropython-lib"), "PORT_DIR": port_dir,
        "BOARD_DIR": None})
    m.include(manifest or os.path.join(ROOT, "firmware", "manifest.py"), board_base=board_base)
    return [f.target_path for f in m.files()]


def test_firmware_manifest_freezes_the_gateway_and_nothing_host_only(builds, tmp_path):
    src = os.path.join(builds.cache, "src")
    files = _manifest_files(src, False, os.path.join(src, "ports", "unix"))
    assert "firmware/hal/esp32.py" in files and "firmware/shell/app.py" in files
    assert "firmware/frozen_marker.py" in files
    for host_only in deploy.HOST_ONLY:
        assert host_only not in files
    assert "firmware/manifest.py" not in files
    assert {"aioble/central.py", "aioble/client.py", "aioble/security.py", "umqtt/simple.py"} <= set(files)
    assert not {"aioble/peripheral.py", "aioble/server.py", "aioble/l2cap.py"} & set(files)
    # As a maker's ESP32 build runs it: the board's own manifest (which also freezes umqtt.simple) comes
    # in first, and umqtt.simple is still frozen once.
    port = tmp_path / "esp32"
    (port / "boards").mkdir(parents=True)
    (port / "boards" / "manifest.py").write_text('require("umqtt.simple")\n')
    files = _manifest_files(src, True, str(port))
    assert files.count("umqtt/simple.py") == 1 and "firmware/core/gateway.py" in files


def test_without_the_shared_source_the_build_clones_micropython_at_its_tag_and_says_so(tmp_path, monkeypatch,
                                                                                      capsys):
    # A user's clone has no ../shared: the source comes from MicroPython's repository the ordinary way.
    # The commands are recorded, not run (no network here).
    ran = []
    monkeypatch.setattr(build_ports, "SHARED_SRC", str(tmp_path / "absent"))
    monkeypatch.delenv("NIGHTSTAND_MICROPYTHON_SRC", raising=False)
    def fake_run(argv, cwd=None, what=None):
        ran.append(argv)
        if argv[1] == "clone":
            os.makedirs(argv[-1])                    # what git clone leaves behind
    monkeypatch.setattr(build_ports, "_run", fake_run)
    dest = build_ports.source(str(tmp_path / "cache"))
    assert ran[0] == ["git", "clone", "--quiet", "--depth", "1", "--branch", "v1.28.0", build_ports.REPO, dest]
    assert ran[1][:4] == ["git", "submodule", "update", "--init"] and "lib/micropython-lib" in ran[1]
    assert "absent: cloning MicroPython v1.28.0" in capsys.readouterr().err
    ran.clear()
    build_ports.source(str(tmp_path / "cache"))     # done once: the second call reuses it
    assert ran == []


def test_in_a_makers_clone_the_manifest_takes_aioble_and_umqtt_from_micropythons_own_lib(builds, tmp_path,
                                                                                       monkeypatch):
    # No ../shared beside a maker's clone and no NIGHTSTAND_MICROPYTHON_LIB: the aioble parts and umqtt.simple
    # come from MicroPython's lib/micropython-lib by require(), still only the parts the gateway uses.
    monkeypatch.delenv("NIGHTSTAND_MICROPYTHON_LIB", raising=False)
    clone = tmp_path / "a" / "b" / "nightstand"
    shutil.copytree(os.path.join(ROOT, "firmware"), str(clone / "firmware"))
    src = os.path.join(builds.cache, "src")
    files = _manifest_files(src, False, os.path.join(src, "ports", "unix"),
                            manifest=str(clone / "firmware" / "manifest.py"))
    assert {"aioble/central.py", "aioble/client.py", "aioble/security.py", "umqtt/simple.py",
            "firmware/hal/esp32.py"} <= set(files)
    assert "aioble/server.py" not in files and "firmware/hal/host.py" not in files
