# Nightstand freeze manifest: firmware with the gateway, the aioble parts it uses and umqtt.simple
# frozen into flash. Frozen bytecode and strings run from flash, so only objects the code creates take
# heap: on a 32-bit build the gateway's heap after boot drops from ~64 KiB (.mpy files) to ~16 KiB
# (docs: "Boards and memory"). A maker builds it with MicroPython's own build, e.g. for a plain ESP32:
#
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/nightstand/firmware/manifest.py
#
# This file is run by MicroPython's own manifestfile.py (not imported by the firmware): `package`,
# `require`, `include`, `add_library` and `options` are the manifest API it provides; relative paths
# resolve against this file's folder.
#
# Options (include("firmware/manifest.py", board_base=False, lib="/path")):
#   board_base  True (default): also freeze what the port's stock firmware freezes
#               ($(PORT_DIR)/boards/manifest.py: asyncio, network helpers, ...), as FROZEN_MANIFEST
#               replaces the board's own manifest. The host build (tools/manifest_host.py) says False.
#   lib         a micropython-lib checkout with umqtt.simple 1.8.0 and aioble 0.6.2; default: the
#               NIGHTSTAND_MICROPYTHON_LIB environment variable, else ../../shared/third_party/
#               micropython-lib when present, else MicroPython's own lib/micropython-lib ($(MPY_LIB_DIR),
#               which at v1.28.0 has umqtt.simple 1.7.0 and aioble 0.6.1: both call the TLS wrapper
#               the same way and work with Nightstand).
import os

options.defaults(board_base=True, lib=None)

# Modules that exist only for the host simulator (tools/deploy.py HOST_ONLY says the same; a test checks):
# never frozen into a board's firmware. The host manifest adds them back.
HOST_ONLY = ("hal/host.py",)
# The aioble parts the gateway uses: core (+ device), central (scanning, connecting), client (GATT reads,
# notifications for a CGMS sensor), security (pairing). Not peripheral, server or l2cap.
AIOBLE = ("__init__.py", "core.py", "device.py", "central.py", "client.py", "security.py")
AIOBLE_REQUIRES = ("aioble-central", "aioble-client", "aioble-security")

_here = os.getcwd()  # manifestfile.py runs each manifest from its own folder
_lib = options.lib or os.environ.get("NIGHTSTAND_MICROPYTHON_LIB")
if not _lib:
    _shared = os.path.join(_here, "..", "..", "shared", "third_party", "micropython-lib")
    if os.path.isdir(_shared):
        _lib = os.path.abspath(_shared)
_aioble_dir = _lib and os.path.join(_lib, "micropython", "bluetooth", "aioble")
if _lib:
    # First in the search list, so the board manifest's own require("umqtt.simple") resolves to the
    # same file and it is frozen once.
    add_library("nightstand-lib", _lib, prepend=True)

if options.board_base:
    include("$(PORT_DIR)/boards/manifest.py")

# The firmware package, minus the host-only modules. This manifest itself is not a module.
_files = []
for _base, _dirs, _names in os.walk(_here):
    _dirs[:] = sorted(d for d in _dirs if d != "__pycache__")
    for _n in sorted(_names):
        _rel = os.path.relpath(os.path.join(_base, _n), _here).replace(os.sep, "/")
        if _n.endswith(".py") and _rel != "manifest.py" and _rel not in HOST_ONLY:
            _files.append(_rel)
package("firmware", files=_files, base_path="..")

if _aioble_dir and os.path.isdir(os.path.join(_aioble_dir, "aioble")):
    package("aioble", files=AIOBLE, base_path=_aioble_dir)
else:
    for _name in AIOBLE_REQUIRES:
        require(_name)

require("umqtt.simple")
