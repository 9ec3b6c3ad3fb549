# Freeze manifest of the host board (tools/build_ports.py builds the 32-bit unix port with it): the same
# firmware a maker freezes into an ESP32 (firmware/manifest.py), the unix port's own frozen modules
# (asyncio, ...), and what only the simulator's board needs. Run by MicroPython's manifestfile.py.
include("$(PORT_DIR)/variants/standard/manifest.py")
include("../firmware/manifest.py", board_base=False)

# Host-only: the simulator's board and virtual radio. One list: when the host runs other host-only
# modules (e.g. virtual bluetooth/machine/network modules), add them here as (package, files, base).
HOST_ONLY = (
    ("firmware", ("hal/host.py", "hal/virtual_aioble.py", "hal/virtual_gatt.py"), ".."),
)
for _pkg, _files, _base in HOST_ONLY:
    package(_pkg, files=_files, base_path=_base)
